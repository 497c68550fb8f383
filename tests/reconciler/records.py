"""Test helpers: write record snapshots straight into the store and run compiled rules on it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.compile_reconcile import compile
from reconciler.model import AggregateRule, ReconcileRule
from syncwatch.store import Store

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=10)
COLUMNS = ["system", "entity", "key", "version", "updated_at", "deleted", "fields", "trace_id", "span_id",
           "received_at", "stored_at"]


def trace_of(label: str) -> str:
    """A W3C trace id (32 hex digits) made from a label: records store ids as bytes, so they must be hex."""
    return hashlib.sha256(label.encode()).hexdigest()[:32]


def span_of(label: str) -> str:
    """A W3C span id (16 hex digits) made from a label."""
    return hashlib.sha256(label.encode()).hexdigest()[32:48]


@dataclass
class Records:
    """Rows to insert; `add` returns self so a test reads as a table of records."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, system: str, entity: str, key: str, fields: dict[str, Any] | None = None, *, at: datetime = OLD,
            version: int = 1, deleted: bool = False, received: datetime | None = None,
            stored: datetime | None = None) -> Records:
        """`received` defaults to `at`, and `stored` (when the store took the row) to `received`: tests run
        on a clock of their own, and incremental runs select rows by when they were stored."""
        text = {k: _text(v) for k, v in (fields or {}).items()}
        trace = trace_of(f"{system}-{key}-{version}")
        self.rows.append((system, entity, key, version, at, int(deleted), text, trace, span_of(f"{system}-{key}"),
                          received or at, stored or received or at))
        return self

    def write(self, store: Store) -> None:
        if self.rows:
            store.insert_rows("records", self.rows, COLUMNS)
        self.rows = []


def _text(value: Any) -> str:
    """A field value as the collector stores it: booleans true/false, numbers as JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def run(store: Store, rule: ReconcileRule | AggregateRule, since: datetime | None = None,
        now: datetime = NOW) -> list[dict[str, Any]]:
    compiled = compile(rule, since, now=now)
    names, rows = store.query_columns(compiled.sql, compiled.parameters)
    return [dict(zip(names, row, strict=True)) for row in rows]


def found(store: Store, rule: ReconcileRule | AggregateRule, since: datetime | None = None,
          now: datetime = NOW) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """The (kind, field, keys) of every problem row: what the exact-set assertions compare."""
    return {(r["kind"], r["field"], tuple(sorted(r["keys"].items()))) for r in run(store, rule, since, now)}


def k(**keys: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(keys.items()))


def reconcile(**overrides: Any) -> ReconcileRule:
    """A PSA-vs-ERP project rule; keyword arguments replace its top-level fields."""
    base: dict[str, Any] = {
        "name": "t", "kind": "reconcile", "key_name": "project_id",
        "left": {"system": "psa", "entity": "project"}, "right": {"system": "erp", "entity": "project"},
    }
    return ReconcileRule.model_validate({**base, **overrides})
