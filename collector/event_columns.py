"""CloudEvents a column at a time: a batch in the common form checked and turned into the events table's
columns, the registry's verdicts on each type's data put on the rows, and the table (or, for a small
request, Rows) built from the columns.

Why: the collector takes ~200k events/s on two cores, a few microseconds per event in all. Checked event
by event, an event's attributes alone cost two: a dozen Python calls and a regex. Checked as columns,
each check is one call over the whole batch (a count, a min/max, one conversion of the joined
traceparents or data) that runs in C. A batch not in the common form is left to decode_cloudevents,
which takes it event by event and names any problem exactly.
"""

from __future__ import annotations

import array
from collections.abc import Collection, Iterable, Sequence, Set
from datetime import UTC, datetime
from itertools import accumulate, chain, repeat
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collector.decoded import SMALL_BATCH_ROWS, DecodeContext, Rows
from collector.event_registry import EventRegistry, Verdicts
from collector.event_types import Pairs
from syncwatch.model import EVENTS_SCHEMA, STR, US

SPECVERSION = "1.0"
MIN_YEAR, MAX_YEAR = 1900, 2299  # the range of ClickHouse DateTime64
# UTC offsets are under a day, so a time inside these bounds has its local year inside MIN_YEAR..MAX_YEAR
_EARLIEST, _LATEST = datetime(MIN_YEAR, 1, 2, tzinfo=UTC), datetime(MAX_YEAR, 12, 31, tzinfo=UTC)
_NOT_OPENER_OR_NUL = bytes(b for b in range(256) if b not in b"[{\x00")
_LOWER_HEX_AND_DASH = b"0123456789abcdef-"
_OPTIONAL = ("subject", "datacontenttype", "dataschema")  # stored as "" when absent
REPEATED = ("type", "source", "specversion", *_OPTIONAL)  # columns that often hold one value for a whole batch
Column = list[Any] | pa.Array  # a batch that becomes a table has its trace and span ids and data as Arrow arrays
_NAMES = tuple(EVENTS_SCHEMA.names)  # a pyarrow Field's .name costs ~0.4 us: 6 us of a one-event request


def plain_columns(attributes: dict[str, list[Any]], ctx: DecodeContext) -> dict[str, Column] | None:
    """The events table's columns (less system, keys, received_at, extensions) from the envelope
    attributes of a batch (name -> one value per event), when every event is in the common form; else None.

    The common form: specversion 1.0, no data_base64, a time with a UTC offset or none, canonical
    traceparents (see _trace_ids) or none, sources the key may send, no extension attributes (the
    caller's part), and JSON data (msgspec.Raw) that is neither null nor a string (whose meaning
    depends on datacontenttype), UTF-8 and within the depth limit."""
    a, n = attributes, len(attributes["id"])
    if not n or a["specversion"].count(SPECVERSION) < n or a["data_base64"].count(None) < n:
        return None
    if ctx.source_prefixes and not all(map(ctx.allows_source, set(a["source"]))):
        return None
    times = [ctx.received_at if t is None else t for t in a["time"]] if None in a["time"] else a["time"]
    as_arrow = n >= SMALL_BATCH_ROWS
    ids = _trace_ids(a["traceparent"], as_arrow)
    if ids is None or not _times_ok(times):
        return None
    if (texts := (_data_array if as_arrow else _data_texts)(a["data"], ctx.max_depth)) is None:
        return None
    return {"type": a["type"], "source": a["source"], "id": a["id"], "specversion": a["specversion"], "time": times,
            **{name: _or_empty(a[name]) for name in _OPTIONAL}, "trace_id": ids[0], "span_id": ids[1],
            "data": texts}  # and no "extensions": none of the events has any


def _or_empty(values: list[str | None]) -> list[str]:
    if None not in values:
        return values  # type: ignore[return-value]
    return [""] * len(values) if values.count(None) == len(values) else [v or "" for v in values]


def _trace_ids(values: list[str | None], as_arrow: bool = False) -> tuple[Column, Column] | None:
    """Trace and span ids when every traceparent is ``00-<32 hex>-<16 hex>-<2 hex>`` in lowercase, ids
    not all zero (what nearly every sender sends), or when there are none; else None. As Arrow arrays
    for a batch that becomes a table, else as lists.

    A regex match per event would cost more than all its other checks. Joined, 55 characters each,
    the traceparents are checked with a few slices, counts and one conversion of the whole."""
    n = len(values)
    if values.count(None) == n:
        return [""] * n, [""] * n
    joined = "" if None in values else "".join(values)  # type: ignore[arg-type]
    if len(joined) != 55 * n or len(set(map(len, values))) != 1 or not joined.isascii():  # type: ignore[arg-type]
        return None  # (each one 55 long: a short one beside a long one would shift the rest into place)
    if not joined[0::55] == joined[1::55] == "0" * n:  # version 00
        return None
    if not joined[2::55] == joined[35::55] == joined[52::55] == "-" * n or joined.count("-") != 3 * n:
        return None
    if joined.encode().translate(None, _LOWER_HEX_AND_DASH):  # a character that is neither
        return None
    if f"-{'0' * 32}-" in joined or f"-{'0' * 16}-" in joined:  # dashes 33 (17) apart: only a trace (span) id
        return None
    if as_arrow:
        return _cut_ids(joined, n)
    return [v[3:35] for v in values], [v[36:52] for v in values]  # type: ignore[index]


def _cut_ids(joined: str, n: int) -> tuple[pa.Array, pa.Array]:
    """The ids of n joined traceparents (checked, ASCII), cut out of one fixed-width array in C: slicing
    each traceparent and converting the lists took 130 against 35 us per 1,000."""
    rows = pa.FixedSizeBinaryArray.from_buffers(pa.binary(55), n, [None, pa.py_buffer(joined.encode())])
    return pc.binary_slice(rows, 3, 35).cast(STR), pc.binary_slice(rows, 36, 52).cast(STR)


def _times_ok(times: list[datetime]) -> bool:
    """Whether every time has a UTC offset and lies inside DateTime64's years (min and max run in C)."""
    try:
        earliest, latest = min(times), max(times)
    except TypeError:  # times with and without an offset do not compare
        return False
    return earliest.tzinfo is not None and earliest >= _EARLIEST and latest <= _LATEST


def _data_texts(raws: list[msgspec.Raw], limit: int) -> list[str] | None:
    """Each event's JSON data as text, when none is null, a string, deeper than `limit` or not UTF-8."""
    try:
        texts = list(map(str, raws, repeat("utf-8")))
    except UnicodeDecodeError:
        return None
    if "" in texts or "null" in texts or any(map(str.startswith, texts, repeat('"'))):
        return None
    # check_depth's bound (depth <= openers) for each document at once: joined by NUL, which is never
    # in JSON text (msgspec refuses it even inside strings), with everything but openers and NULs dropped
    openers = b"\x00".join(raws).translate(None, _NOT_OPENER_OR_NUL).split(b"\x00")
    return texts if max(map(len, openers)) <= limit and len(openers) == len(raws) else None


_QUOTE, _N, _BRACE, _BRACKET = b'"n{['  # their byte values


def _data_array(raws: list[msgspec.Raw], limit: int) -> pa.Array | None:
    """_data_texts for a batch that becomes a table: the same verdict, and the texts as one Arrow column
    made from the joined bytes, with the checks done on arrays (0.13 against 0.30 ms per 1,000 events,
    the str column's conversion included). The first byte of a document tells a string ('"') or null
    ('n': msgspec has checked the JSON, and no other JSON text starts so); the openers are counted per
    document by summing a mask of them between the documents' offsets."""
    n = len(raws)
    lengths = np.fromiter(map(len, raws), np.int64, n)
    if not n or lengths.min() == 0 or lengths.sum() >= 2**31:  # absent data; past Arrow's 32-bit offsets
        return None
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:], dtype=np.int32)
    joined = b"".join(raws)
    octets = np.frombuffer(joined, np.uint8)
    first = octets[offsets[:-1]]
    if ((first == _QUOTE) | (first == _N)).any():
        return None
    openers = ((octets == _BRACE) | (octets == _BRACKET)).view(np.uint8)
    if np.add.reduceat(openers, offsets[:-1], dtype=np.int32).max() > limit:
        return None
    column = pa.Array.from_buffers(STR, n, [None, pa.py_buffer(offsets), pa.py_buffer(joined)])
    try:
        column.validate(full=True)  # UTF-8
    except pa.ArrowInvalid:
        return None
    return column


def judge(registry: EventRegistry, types: list[str], data: list[Any], parsed: Set[int]) -> tuple[Pairs, dict[int, str]]:
    """Each row's key names and texts, and the rows to quarantine with why, from the registry's verdicts
    on the rows' data: of all rows of one type in one call, which is what makes a batch cheap.

    `data` is each row's data as JSON text (msgspec.Raw), or, for the rows in `parsed`, its value."""
    n = len(types)
    keys: Pairs = ([()] * n, [()] * n)
    reasons: dict[int, str] = {}
    for event_type, rows in _rows_by_type(types).items():
        if not registry.needs_data(event_type):
            continue
        parsed_rows = [i for i in rows if i in parsed] if parsed else []  # rare: binary mode, base64, ...
        json_rows = [i for i in rows if i not in parsed] if parsed_rows else rows
        for part, check in ((json_rows, registry.check_batch), (parsed_rows, registry.check_values)):
            if part:
                verdicts = check(event_type, data if len(part) == n else [data[i] for i in part])
                _place(part, verdicts, keys, reasons)
    return keys, reasons


def _rows_by_type(types: list[str]) -> dict[str, list[int]]:
    if types and types.count(types[0]) == len(types):  # the common case: a batch of one type
        return {types[0]: list(range(len(types)))}
    groups: dict[str, list[int]] = {}
    for i, event_type in enumerate(types):
        groups.setdefault(event_type, []).append(i)
    return groups


def _place(rows: list[int], verdicts: Verdicts, keys: Pairs, reasons: dict[int, str]) -> None:
    names, texts = keys
    if len(rows) == len(names):  # every row: the lists as they are
        names[:], texts[:] = verdicts.key_names, verdicts.key_texts
    else:
        for row, row_names, row_texts in zip(rows, verdicts.key_names, verdicts.key_texts, strict=True):
            names[row], texts[row] = row_names, row_texts
    reasons.update((rows[i], reason) for i, reason in verdicts.reasons.items())


# --- the events table ----------------------------------------------------------------------------------

# `columns` lacks "extensions" when no event has any, and system, received_at and keys, which are added.

def keep_rows(columns: dict[str, Column], keep: list[int]) -> dict[str, Column]:
    return {name: col.take(pa.array(keep, pa.int64())) if isinstance(col, pa.Array) else [col[i] for i in keep]
            for name, col in columns.items()}


def events_rows(ctx: DecodeContext, columns: dict[str, Column], keys: Pairs) -> Rows:
    n = len(keys[0])
    # columns made for a table, of which quarantine left a few rows
    columns = {name: col.to_pylist() if isinstance(col, pa.Array) else col for name, col in columns.items()}
    out = {**columns, "extensions": columns.get("extensions") or [{} for _ in range(n)], "system": [ctx.system] * n,
           "received_at": [ctx.received_at] * n,
           "keys": [dict(zip(k, v, strict=True)) for k, v in zip(*keys, strict=True)]}
    return Rows({name: out[name] for name in _NAMES})


def events_table(ctx: DecodeContext, columns: dict[str, Column], keys: Pairs) -> pa.Table:
    n = len(keys[0])
    arrays = {name: _array(col, EVENTS_SCHEMA.field(name).type, name in REPEATED) for name, col in columns.items()
              if name not in ("extensions", "time")}
    arrays["time"] = _times(columns["time"])
    no_extensions = [{}] * n  # one dict n times: only read, to an empty map
    arrays |= {"keys": pairs_array(*keys), "extensions": map_array(columns.get("extensions") or no_extensions),
               "system": pa.repeat(pa.scalar(ctx.system, STR), n),
               "received_at": pa.repeat(pa.scalar(ctx.received_at, US), n)}
    return pa.Table.from_arrays([arrays[name] for name in _NAMES], schema=EVENTS_SCHEMA)


def _array(values: Column, type_: pa.DataType, repeated: bool) -> pa.Array:
    """pa.array(values), except that a column of one value is repeated in C rather than converted n times."""
    if isinstance(values, pa.Array):
        return values
    if repeated and values and values.count(values[0]) == len(values):
        return pa.repeat(pa.scalar(values[0], type_), len(values))
    return pa.array(values, type_)


def _times(values: Column) -> pa.Array:
    """The times (each with a UTC offset) as UTC timestamps. pyarrow asks each datetime for its offset, a
    Python call per row; written as RFC 3339 text by msgspec and parsed by Arrow, both in C, the column
    takes 80 instead of 170 us per 1,000. Anything Arrow does not parse goes the slow way."""
    if isinstance(values, pa.Array):
        return values
    try:
        return pc.cast(pa.array(msgspec.to_builtins(values), STR), US)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return pa.array(values, US)


def map_array(dicts: Sequence[dict[str, str]]) -> pa.Array:
    """A Map(String, String) column from dicts, built from flat children (faster than from the dicts)."""
    return pairs_array(dicts, list(map(dict.values, dicts)) if any(dicts) else [])


def pairs_array(keys: Sequence[Collection[str]], values: Iterable[Iterable[str]]) -> pa.Array:
    """A Map(String, String) column from each row's keys and values (in the same order)."""
    if not any(keys):  # no row has any (extensions, mostly)
        return pa.MapArray.from_arrays(pa.repeat(pa.scalar(0, pa.int32()), len(keys) + 1), _NO_STR, _NO_STR)
    flat_values = pa.array(list(chain.from_iterable(values)), STR)
    if keys.count(keys[0]) < len(keys):
        offsets = pa.array(list(accumulate(map(len, keys), initial=0)), pa.int32())
        return pa.MapArray.from_arrays(offsets, pa.array(list(chain.from_iterable(keys)), STR), flat_values)
    # every row has the same keys (a batch of one type, say): repeat them in C rather than convert them n times
    names = list(keys[0])
    indices = array.array("i", range(len(names))) * len(keys)  # 0 1 2 0 1 2 ...
    positions = pa.Array.from_buffers(pa.int32(), len(indices), [None, pa.py_buffer(indices)])
    flat_keys = pa.array(names, STR).take(positions)
    offsets = pa.array(np.arange(0, len(indices) + 1, len(names), dtype=np.int32))  # 2 against 29 us from a list
    return pa.MapArray.from_arrays(offsets, flat_keys, flat_values)


_NO_STR = pa.array([], STR)
