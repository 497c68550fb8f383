"""Record snapshots -> rows of the records table (pure: bytes in, Arrow tables out).

POST /v1/records/{system}/{entity} carries a JSON array (``application/json``) or NDJSON
(``application/x-ndjson``, one object a line, blank lines ignored) of::

    {"key": "P-17", "version": 42, "updated_at": "2024-05-01T12:00:00Z",
     "fields": {"name": "Apollo", "budget": 120000.5, "active": true, "tags": ["a"]},
     "deleted": false, "traceparent": "00-<trace id>-<span id>-01"}

- ``key`` (non-empty string) and ``version`` (integer, 0 to 2**63-1) or ``updated_at`` (RFC 3339 with an
  offset) are required; everything else is optional, and an unknown member is an error.
- The ``version`` column is ``version`` when given, else ``updated_at`` in epoch microseconds.
  The records table keeps the highest version per (system, entity, key): the latest version wins,
  so a system should use one of the two consistently per entity.
- ``fields`` become a Map(String, String): strings as they are, integers in decimal, other numbers
  in their shortest round-trip JSON form (``1.50`` is stored as ``1.5``), booleans as
  ``true``/``false``, objects and arrays as compact JSON text; a null field is left out of the map
  (``mapContains`` tells a missing field from an empty string).
- Any invalid record refuses the whole request with an error naming the record (``record[3]`` in an
  array, ``line 4`` in NDJSON) and the field; nothing is half stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
import pyarrow as pa

from collector.decode_cloudevents import (
    NonEmpty,
    check_depth,
    check_time,
    decode_json,
    map_array,
    parse_traceparent,
)
from collector.decoded import SMALL_BATCH_ROWS, DecodeContext, Decoded, DecodeError, Rows, UnsupportedMediaType
from syncwatch.model import RECORDS, RECORDS_SCHEMA

KIND = "record"  # the ingest kind: ingest_batches.kind
JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
PATH_SEGMENT = re.compile(r"^[a-z0-9_.\-]{1,64}$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
VERSION_MAX = 2**63 - 1  # msgspec bounds are int64; ample for counters and epoch microseconds


class RecordItem(msgspec.Struct, forbid_unknown_fields=True):
    """One snapshot as sent; see the module docstring."""

    key: NonEmpty
    version: Annotated[int, msgspec.Meta(ge=0, le=VERSION_MAX)] | None = None
    updated_at: datetime | None = None
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    deleted: bool = False
    traceparent: str | None = None


_ARRAY = msgspec.json.Decoder(list[RecordItem])
_ONE = msgspec.json.Decoder(RecordItem)


def decode_records(body: bytes, content_type: str, system: str, entity: str, ctx: DecodeContext) -> Decoded:
    """Decode one POST /v1/records/{system}/{entity} request into records rows."""
    for name, value in (("system", system), ("entity", entity)):
        if not PATH_SEGMENT.match(value):
            raise DecodeError("invalid_path", f"{name} {value!r} in the path must be 1-64 lowercase letters, "
                              "digits, '_', '-' or '.'")
    media = content_type.partition(";")[0].strip().lower()
    if media in JSON_TYPES:
        items = [(f"record[{i}]", item) for i, item in enumerate(decode_json(body, _ARRAY, "record"))]
    elif media in NDJSON_TYPES:
        items = list(_ndjson(body))
    else:
        raise UnsupportedMediaType("unsupported_media_type", f"Content-Type {content_type!r} is not supported; use "
                                   f"{JSON_TYPES[0]} (a JSON array) or {NDJSON_TYPES[0]} (one object a line)")
    rows = [_row(where, item, ctx) for where, item in items]
    return _decoded(rows, system, entity, ctx)


def _ndjson(body: bytes) -> Iterator[tuple[str, RecordItem]]:
    for number, line in enumerate(body.split(b"\n"), start=1):
        if line.strip():
            where = f"line {number}: record"
            yield where, decode_json(line, _ONE, where, where)


def _row(where: str, item: RecordItem, ctx: DecodeContext) -> tuple:
    updated_at = check_time(f"{where}.updated_at", item.updated_at) if item.updated_at is not None else None
    if item.version is not None:
        version = item.version
    elif updated_at is not None:
        version = _epoch_us(where, updated_at)
    else:
        raise DecodeError("missing_field", f"{where}: needs 'version' (integer >= 0) or 'updated_at' (RFC 3339) "
                          "to order snapshots of the same key")
    trace_id, span_id = parse_traceparent(item.traceparent, f"{where}.traceparent") if item.traceparent else ("", "")
    fields = {name: value if type(value) is str else _field_text(f"{where}.fields.{name}", value, ctx.max_depth)
              for name, value in item.fields.items() if value is not None}
    return (item.key, version, updated_at or ctx.received_at, int(item.deleted), fields, trace_id, span_id)


def _epoch_us(where: str, updated_at: datetime) -> int:
    micros = (updated_at - EPOCH) // MICROSECOND
    if micros < 0:
        raise DecodeError("invalid_time", f"{where}.updated_at: before 1970 it cannot serve as the version; "
                          "send 'version'")
    return micros


def _field_text(where: str, value: Any, max_depth: int) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    text = msgspec.json.encode(value)
    if type(value) in (dict, list):
        check_depth(text, max_depth, where)
    return text.decode()


def _decoded(rows: list[tuple], system: str, entity: str, ctx: DecodeContext) -> Decoded:
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(7)]
    names = ("key", "version", "updated_at", "deleted", "fields", "trace_id", "span_id")
    columns = dict(zip(names, cols, strict=True))
    columns |= {"system": [system] * n, "entity": [entity] * n, "received_at": [ctx.received_at] * n}
    decoded = Decoded(accepted=n)
    if n < SMALL_BATCH_ROWS:
        decoded.add(RECORDS, Rows({name: list(values) for name, values in columns.items()}))
        return decoded
    arrays = [map_array(columns[f.name]) if f.name == "fields" else pa.array(columns[f.name], f.type)
              for f in RECORDS_SCHEMA]
    decoded.add(RECORDS, pa.Table.from_arrays(arrays, schema=RECORDS_SCHEMA))
    return decoded
