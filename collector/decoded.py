"""What every decoder returns, and the errors decoders raise. Pure data; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from syncwatch.model import INGEST_BATCHES, QUARANTINE, SCHEMAS


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
        return not self.source_prefixes or source.startswith(self.source_prefixes)


@dataclass
class Decoded:
    """Rows to store, per table, and what happened to each item of the request."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    accepted: int = 0
    quarantined: int = 0
    rejected: int = 0
    messages: list[str] = field(default_factory=list)

    def add(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        if rows.schema != SCHEMAS[table]:
            rows = rows.cast(SCHEMAS[table])
        if table in self.tables:
            rows = pa.concat_tables([self.tables[table], rows])
        self.tables[table] = rows

    def with_batch_row(self, kind: str, ctx: DecodeContext, nbytes: int) -> Decoded:
        """Append the ingest_batches row that records this request for integration health."""
        row = {
            "batch_id": [ctx.batch_id], "received_at": [ctx.received_at], "kind": [kind],
            "system": [ctx.system], "key_id": [ctx.key_id], "accepted": [self.accepted],
            "quarantined": [self.quarantined], "rejected": [self.rejected], "bytes": [nbytes],
        }
        self.add(INGEST_BATCHES, pa.table(row, schema=SCHEMAS[INGEST_BATCHES]))
        return self


def quarantine_rows(ctx: DecodeContext, kind: str, items: list[tuple[str, str, str, str, str]]) -> pa.Table:
    """Quarantine rows from (source, item_id, type, reason, payload) tuples."""
    cols = list(zip(*items, strict=True)) if items else [[] for _ in range(5)]
    n = len(items)
    return pa.table(
        {
            "received_at": [ctx.received_at] * n, "kind": [kind] * n, "system": [ctx.system] * n,
            "source": list(cols[0]), "item_id": list(cols[1]), "type": list(cols[2]),
            "reason": list(cols[3]), "payload": list(cols[4]), "batch_id": [ctx.batch_id] * n,
        },
        schema=SCHEMAS[QUARANTINE],
    )
