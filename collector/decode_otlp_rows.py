"""Building blocks shared by the OTLP row builders (spans, logs, metrics) of both encodings.

Protobuf messages and the msgspec structs of collector.decode_otlp_json both expose the
protobuf field names as attributes; a `Dialect` hides the few places where they differ. Columns
are built as Python lists and become one pa.Table per request (no per-row Arrow calls): the
collector's target is about 100k spans/s on two cores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from collector.decoded import DecodeContext, Decoded, quarantine_rows
from syncwatch.model import QUARANTINE, STR

MAX_NS = 2**63 - 1  # DateTime64(9) and Arrow timestamp[ns] hold signed 64-bit nanoseconds
MAX_MESSAGES = 20  # reasons listed in the response; the quarantine table keeps every one
TOO_LATE = "is beyond 2262-04-11 (not a Unix time in nanoseconds)"


@dataclass(frozen=True)
class Dialect:
    """How to read one encoding of OTLP.

    `trace_id`/`span_id` give lowercase hex, "" for an empty or all-zero id (the exporter's
    "empty" id) and None for a malformed one; `id_problem` says what is wrong with one.
    """

    name: str
    trace_id: Callable[[Any], str | None]
    span_id: Callable[[Any], str | None]
    id_problem: Callable[[Any, int], str]
    id_text: Callable[[Any], str]  # an id as sent, as text (for quarantine rows)
    attrs: Callable[[Any, list[str], list[str]], None]  # append keys, and values rendered as text
    value: Callable[[Any], str]  # AnyValue as text: numbers/bools as text, arrays/kvlists as JSON
    which: Callable[[Any, str], str | None]  # the field set in a oneof group ("data" or "value")
    has: Callable[[Any, str], bool]  # whether an optional scalar field is present
    render: Callable[[Any], str]  # an item as OTLP/JSON text, for the quarantine table


def camel(name: str) -> str:
    """OTLP/JSON field name of a protobuf field name."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def json_text(value: Any) -> str:
    """JSON text of an array/kvlist value (orjson writes NaN and infinities as null)."""
    return orjson.dumps(value).decode()


class MapColumn:
    """A Map(String, String) column kept as flat key/value lists plus offsets."""

    __slots__ = ("keys", "offsets", "values")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[str] = []
        self.offsets: list[int] = [0]

    def add(self, keys: list[str], values: list[str]) -> None:
        self.keys += keys
        self.values += values
        self.offsets.append(len(self.keys))

    def add_attrs(self, d: Dialect, kvs: Any) -> None:
        d.attrs(kvs, self.keys, self.values)
        self.offsets.append(len(self.keys))

    def array(self) -> pa.Array:
        offsets = pa.array(self.offsets, pa.int32())
        return pa.MapArray.from_arrays(offsets, pa.array(self.keys, STR), pa.array(self.values, STR))


def list_array(offsets: list[int], values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


class ScopeColumns:
    """Columns constant within one scope (resource and scope fields): kept once per scope and
    expanded to one value per row by a single take() when the table is built."""

    def __init__(self, names: tuple[str, ...], maps: tuple[str, ...]) -> None:
        self.values: dict[str, list[str]] = {name: [] for name in names}
        self.maps = {name: MapColumn() for name in maps}
        self.scopes = 0
        self.rows: list[int] = []  # the scope number of every row

    def open(self, values: dict[str, str], maps: dict[str, tuple[list[str], list[str]]]) -> None:
        for name, value in values.items():
            self.values[name].append(value)
        for name, (keys, vals) in maps.items():
            self.maps[name].add(keys, vals)
        self.scopes += 1

    def close(self, rows: int) -> None:
        self.rows += [self.scopes - 1] * rows

    def arrays(self) -> dict[str, pa.Array]:
        index = pa.array(self.rows, pa.int32())
        out = {name: pa.array(vals, STR).take(index) for name, vals in self.values.items()}
        out.update({name: col.array().take(index) for name, col in self.maps.items()})
        return out


@dataclass(frozen=True)
class Resource:
    """A resource's attributes rendered once, shared by all its scopes."""

    keys: list[str]
    values: list[str]
    service: str  # resource attribute service.name, "" when absent

    @classmethod
    def read(cls, d: Dialect, resource: Any) -> Resource:
        keys: list[str] = []
        values: list[str] = []
        d.attrs(resource.attributes, keys, values)
        service = values[keys.index("service.name")] if "service.name" in keys else ""
        return cls(keys, values, service)


class Rejects:
    """Items refused one by one: counted, explained, and kept in the quarantine table."""

    def __init__(self, kind: str, render: Callable[[Any], str]) -> None:
        self.kind = kind
        self.render = render
        self.items: list[tuple[str, str, str, str, str]] = []
        self.count = 0

    def add(self, where: str, item: Any, reason: str, ids: tuple[str, str, str], n: int = 1) -> None:
        """Refuse `item` (n rows' worth) at path `where`; ids are (source, item_id, type)."""
        self.items.append((*ids, f"{where}: {reason}", self.render(item)))
        self.count += n

    def apply(self, decoded: Decoded, ctx: DecodeContext) -> Decoded:
        if not self.items:
            return decoded
        decoded.rejected += self.count
        decoded.messages += [item[3] for item in self.items[:MAX_MESSAGES]]
        if len(self.items) > MAX_MESSAGES:
            decoded.messages.append(f"... and {len(self.items) - MAX_MESSAGES} more; see the quarantine table")
        decoded.add(QUARANTINE, quarantine_rows(ctx, self.kind, self.items))
        return decoded
