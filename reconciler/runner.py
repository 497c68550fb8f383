"""The runner: executes one compiled rule, applies its findings, records the run.

The only place that executes rule SQL. A rule that fails (bad SQL, timeout, a compiler error)
records its error in ``rule_runs`` and never stops the rules after it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from reconciler.findings import ApplyResult, Scope, apply_run
from syncwatch.store import Store

log = logging.getLogger(__name__)

# A rule may run this long before ClickHouse cancels it; generous, since a full run over
# 10M x 10M records takes seconds, and a stuck query must not hold the scheduler forever.
DEFAULT_TIMEOUT_SECONDS = 300
# An incremental run starts this long before the last run began. A row's received_at is when the
# collector took it, and the writer stores it a moment later (up to its batch delay, longer when
# inserts are slow or the collector's clock runs behind the reconciler's): a row received just
# before a run began but stored after it was not seen by that run, and would otherwise wait for the
# next full run. Keys seen twice are simply compared again.
INGEST_LAG = timedelta(minutes=5)
RUN_COLUMNS = ("run_id", "rule", "rule_version", "started_at", "duration_ms", "full", "rows_scanned", "opened",
               "updated", "resolved", "reopened", "error")


class CompiledLike(Protocol):
    """What a compiler returns (compile_reconcile.CompiledRule and friends)."""

    sql: str
    parameters: Mapping[str, Any]


Compiled = CompiledLike | tuple[str, Mapping[str, Any]]
# Compiling lazily lets a compiler error count as that rule's failed run, not everyone's.
CompiledSource = Compiled | Callable[[], Compiled]


@dataclass(frozen=True)
class RunResult:
    run_id: str
    rule: str
    rule_version: str
    started_at: datetime
    duration_ms: float
    full: bool
    rows_scanned: int | None = None
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    reopened: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class RuleJob:
    """One rule as the runner needs it; ``compiled`` may be a callable so compiling happens at run time."""

    name: str
    version: str
    severity: str
    compiled: CompiledSource
    scope: Scope | None = None


def run_rule(store: Store, rule_name: str, rule_version: str, severity: str, compiled: CompiledSource,
             full: bool, *, scope: Scope | None = None, now: datetime | None = None,
             timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> RunResult:
    """Run one rule and apply its candidates; never raises for a rule's own failure.

    A full run may auto-resolve any finding of the rule. An incremental run (``full=False``)
    auto-resolves only findings whose keys are in ``scope``; without a scope it resolves none,
    since a finding it did not look at is not known to be gone.
    """
    run_id = uuid.uuid4().hex
    started = now or datetime.now(UTC)
    clock = time.perf_counter()
    if not full and scope is None:
        scope = Scope.of_keys([])
    try:
        sql, params = _unpack(compiled)
        applied = apply_run(store, rule_name, rule_version, severity, sql, params, run_id=run_id,
                            scope=None if full else scope, now=started,
                            settings={"max_execution_time": timeout_seconds})
        error = ""
    except Exception as exc:  # any failure of one rule is that rule's recorded error, by design
        log.warning("rule %s failed: %s", rule_name, exc)
        applied, error = ApplyResult(), f"{type(exc).__name__}: {exc}"
    result = RunResult(run_id, rule_name, rule_version, started, (time.perf_counter() - clock) * 1000, full,
                       applied.rows_scanned, applied.opened, applied.updated, applied.resolved, applied.reopened,
                       error[:4000])
    _record(store, result)
    return result


def run_all(store: Store, jobs: Iterable[RuleJob], *, full: bool,
            timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> list[RunResult]:
    """Run rules one after another; each one's failure is recorded and the rest still run."""
    return [run_rule(store, job.name, job.version, job.severity, job.compiled, full, scope=job.scope,
                     timeout_seconds=timeout_seconds) for job in jobs]


def last_success(store: Store, rule: str, version: str | None = None, *, full_only: bool = False) -> datetime | None:
    """Start of the rule's last successful run (at ``version``, if given): the watermark of its
    next incremental run. A new rule version has none, so its first run is full. ``full_only``
    asks for the last successful full run instead."""
    rows = store.query("SELECT max(started_at), count() FROM rule_runs WHERE rule = {r:String} AND error = '' "
                       "AND ({v:String} = '' OR rule_version = {v:String}) AND (full = 1 OR NOT {f:Bool})",
                       {"r": rule, "v": version or "", "f": full_only})
    return rows[0][0].replace(tzinfo=UTC) if rows and rows[0][1] else None


def recent_runs(store: Store, rule: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    where = "WHERE rule = {r:String}" if rule else ""
    columns, rows = store.query_columns(
        f"SELECT {', '.join(RUN_COLUMNS)} FROM rule_runs {where} ORDER BY started_at DESC LIMIT {{n:UInt32}}",
        {"r": rule or "", "n": limit})
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _unpack(compiled: CompiledSource) -> tuple[str, Mapping[str, Any]]:
    if callable(compiled):
        compiled = compiled()
    if isinstance(compiled, tuple):
        return compiled
    return compiled.sql, compiled.parameters


def _record(store: Store, result: RunResult) -> None:
    row = [getattr(result, c) for c in RUN_COLUMNS]
    row[3] = result.started_at.astimezone(UTC) if result.started_at.tzinfo else result.started_at
    row[5] = int(result.full)
    try:
        store.insert_rows("rule_runs", [row], RUN_COLUMNS)
    except Exception as exc:  # the store may be what failed; the run's outcome is still logged
        log.error("could not record run %s of rule %s: %s", result.run_id, result.rule, exc)
