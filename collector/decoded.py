"""What every decoder returns, and the errors decoders raise. Pure data; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from syncwatch.model import INGEST_BATCHES, SCHEMAS


class DecodeError(Exception):
    """The request body cannot be read as the protocol says: answered with 400.

    `code` is a short machine-readable reason (also the `reason` label of the rejected
    counter); `message` names the problem and, where it can, the offending item/field.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnsupportedMediaType(DecodeError):
    """Content-Type the endpoint does not speak: answered with 415."""


class SourceNotAllowed(DecodeError):
    """An item claims a source the API key may not speak for: answered with 403."""


@dataclass(frozen=True)
class DecodeContext:
    """Facts about the request that decoders need, fixed before decoding starts."""

    system: str  # source system of the API key ("*" for keys that may speak for any system)
    key_id: str
    source_prefixes: tuple[str, ...]  # CloudEvents `source` must start with one of these; () = any
    received_at: datetime  # timezone-aware UTC
    batch_id: str
    max_depth: int = 64

    def allows_source(self, source: str) -> bool:
        return not self.source_prefixes or any(source_under(source, p) for p in self.source_prefixes)


# A prefix that ends inside a name ("/crm", "urn:crm") matches only at a boundary: "/crm" allows
# "/crm" and "/crm/app" but not "/crmx" or "/crm-evil" (another system's key could be named so).
_BOUNDARIES = ("/", ":", "#", "?")


def source_under(source: str, prefix: str) -> bool:
    if not source.startswith(prefix):
        return False
    return prefix.endswith(_BOUNDARIES) or len(source) == len(prefix) or source[len(prefix)] in _BOUNDARIES


SMALL_BATCH_ROWS = 256  # below this, rows travel as Python columns: Arrow's per-table cost would dominate


@dataclass
class Rows:
    """Columns as Python lists, for small requests.

    Building Arrow arrays, an IPC stream and later a concatenation for every one-event request
    costs more than the event itself; Rows are spooled as msgpack and the writer turns the rows of
    many requests into one Arrow table (`to_arrow`) per insert.
    """

    columns: dict[str, list[Any]]

    @property
    def num_rows(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def extend(self, other: Rows) -> None:
        for name, values in other.columns.items():
            self.columns[name].extend(values)

    def to_pylist(self) -> list[dict[str, Any]]:
        """Row dicts, as pa.Table.to_pylist gives them."""
        names = list(self.columns)
        return [dict(zip(names, row, strict=True)) for row in zip(*self.columns.values(), strict=True)]

    def to_arrow(self, schema: pa.Schema) -> pa.Table:
        return pa.Table.from_arrays([pa.array(self.columns[f.name], f.type) for f in schema], schema=schema)


Batch = pa.Table | Rows


@dataclass
class Decoded:
    """Rows to store, per table, and what happened to each item of the request."""

    tables: dict[str, Batch] = field(default_factory=dict)
    accepted: int = 0
    quarantined: int = 0
    rejected: int = 0
    messages: list[str] = field(default_factory=list)

    def add(self, table: str, rows: Batch) -> None:
        if rows.num_rows == 0:
            return
        if isinstance(rows, pa.Table) and rows.schema != SCHEMAS[table]:
            rows = rows.cast(SCHEMAS[table])
        held = self.tables.get(table)
        if held is None:
            self.tables[table] = rows
        elif isinstance(held, Rows) and isinstance(rows, Rows):
            held.extend(rows)
        else:
            self.tables[table] = pa.concat_tables([as_arrow(table, held), as_arrow(table, rows)])

    def with_batch_row(self, kind: str, ctx: DecodeContext, nbytes: int) -> Decoded:
        """Append the ingest_batches row that records this request for integration health."""
        self.add(INGEST_BATCHES, Rows({
            "batch_id": [ctx.batch_id], "received_at": [ctx.received_at], "kind": [kind],
            "system": [ctx.system], "key_id": [ctx.key_id], "accepted": [self.accepted],
            "quarantined": [self.quarantined], "rejected": [self.rejected], "bytes": [nbytes],
        }))
        return self


def as_arrow(table: str, rows: Batch) -> pa.Table:
    return rows.to_arrow(SCHEMAS[table]) if isinstance(rows, Rows) else rows


def quarantine_rows(ctx: DecodeContext, kind: str, items: list[tuple[str, str, str, str, str]]) -> Rows:
    """Quarantine rows from (source, item_id, type, reason, payload) tuples (usually few)."""
    cols = list(zip(*items, strict=True)) if items else [[] for _ in range(5)]
    n = len(items)
    return Rows({
        "received_at": [ctx.received_at] * n, "kind": [kind] * n, "system": [ctx.system] * n,
        "source": list(cols[0]), "item_id": list(cols[1]), "type": list(cols[2]),
        "reason": list(cols[3]), "payload": list(cols[4]), "batch_id": [ctx.batch_id] * n,
    })
