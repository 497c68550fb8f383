"""Event data as typed msgspec values: types compiled from JSON Schemas, and business keys read a column at a time.

Why: the collector takes ~200k events/s, and judging each event's data in Python costs microseconds. The
registry instead decodes the ``data`` of all events of one type in a request with ONE msgspec call into
``list[<Struct compiled from the schema>]``, then reads each business key for all of them at once
(``map(attrgetter(...), items)``): the parsing, validation and most of the key reading run in C.

The compiled types are a draft-07 subset that accept only what fastjsonschema accepts (same regexes, same
bounds; top-level date-times through msgspec's stricter parser, see all_date_times); anything else in a
schema means no typed path for that event type. So data the typed decoder
takes is valid, and when it refuses, fastjsonschema gives the verdict and the reason.
"""

from __future__ import annotations

import functools
import keyword
import re
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import attrgetter, itemgetter
from typing import Annotated, Any, Literal, Required, TypedDict

import msgspec
import msgspec.inspect as mi
from fastjsonschema.draft04 import DOLLAR_FINDER
from fastjsonschema.draft07 import CodeGeneratorDraft07

Getter = Callable[[Any], Any]
ToText = Callable[[Any], str | None]
KeyPart = tuple[Getter, ToText | None]  # reads a path's first member; turns that into key text (None: it is text)
Step = tuple[str, bool]  # (object member, walk every element of the array found there)
ColumnCheck = Callable[[list[str]], bool]  # whether every one of a member's (non-null) values is allowed
Pairs = tuple[list[tuple[str, ...]], list[tuple[str, ...]]]  # per item: key names, key texts


class KeyMappingError(ValueError):
    """An event's data does not have the shape its mapping expects (e.g. an object where a key should be)."""


# --- business keys -----------------------------------------------------------------------------------

def key_text(value: Any, what: str) -> str:
    """A scalar JSON value as key text: strings as they are, numbers as their JSON text, true/false."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return msgspec.json.encode(value).decode()
    if type(value) is date:  # from the typed path's `format: date`; the same text as sent
        return value.isoformat()
    raise KeyMappingError(f"{what} must be a string, number or boolean, got {json_kind(value)}")


def json_kind(value: Any) -> str:
    return {dict: "object", list: "array", type(None): "null"}.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class KeyReader:
    """Reads the business keys and dimensions of one event type from its data, a column at a time."""

    names: tuple[str, ...]
    parts: tuple[KeyPart, ...]

    def columns(self, items: list[Any]) -> list[list[str | None]]:
        """Per key, its text for every item (None: absent or null); KeyMappingError on a value of the wrong shape."""
        out = []
        for first, to_text in self.parts:
            values = list(map(first, items))
            if to_text is not None and values.count(None) < len(values):
                values = [None if v is None else to_text(v) for v in values]
            out.append(values)
        return out

    def pairs(self, items: list[Any]) -> Pairs:
        """Per item, the names and texts of the keys it has; absent keys are left out."""
        n = len(items)
        kept: list[tuple[str, list[str | None]]] = []
        every_item_has_all = True  # the common case: every item has the same keys
        for name, col in zip(self.names, self.columns(items), strict=True):
            if _no_none(col):
                kept.append((name, col))
            elif col.count(None) < n:
                kept.append((name, col))
                every_item_has_all = False
        if not kept:
            return [()] * n, [()] * n
        names, columns = tuple(name for name, _ in kept), [col for _, col in kept]
        texts = list(zip(*columns, strict=True))
        if every_item_has_all:
            return [names] * n, texts
        present = [[(name, t) for name, t in zip(names, row, strict=True) if t is not None] for row in texts]
        return [tuple(name for name, _ in p) for p in present], [tuple(t for _, t in p) for p in present]


def _no_none(texts: list[str | None]) -> bool:
    """Whether a column of key texts has no None: a join of 1,000 texts costs a third of `None in texts`,
    which compares each text with None."""
    try:
        "".join(texts)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def key_reader(paths: Mapping[str, str], first: Callable[[str], Getter | None] | None = None,
               is_text: Callable[[str], bool] = lambda member: False) -> KeyReader | None:
    """A reader for name -> dotted path (``data.a.b``, ``data.lines[].id``); see the registry's module doc.

    `first(member)` reads a top-level member from the data (default: a dict member; None: the member
    cannot be read, so no reader), and `is_text(member)` says that member's value is always text or None.
    One-member paths come first: the order the keys map has always been stored in."""
    parts: dict[str, KeyPart] = {}
    for name, path in sorted(paths.items(), key=lambda item: "." in item[1][5:] or "[" in item[1]):
        steps = tuple((s.removesuffix("[]"), s.endswith("[]")) for s in path.split(".")[1:])
        get = first(steps[0][0]) if first is not None else _member(steps[0][0])
        if get is None:
            return None
        parts[name] = (get, None if len(steps) == 1 and not steps[0][1] and is_text(steps[0][0])
                       else _to_text(name, steps))
    return KeyReader(tuple(parts), tuple(parts.values()))


_NO_KEYS = KeyReader((), ())


def _member(member: str) -> Getter:
    return lambda data: data.get(member) if type(data) is dict else None


def _to_text(name: str, steps: tuple[Step, ...]) -> ToText:
    """Turns the value of the path's first member into the key's text (or None when absent)."""
    (_, each), rest = steps[0], steps[1:]
    members = tuple(m for m, _ in rest)
    if [e for _, e in steps] == [False] * (len(steps) - 1) + [True]:  # data.a.ids[]: one array, at the end
        return lambda v: _many_text(v if type(v := _follow(v, members)) is list else [], name)
    if any(e for _, e in steps):
        return lambda v: _many_text(list(_walk_from(v, each, rest)), name)
    what = f"key {name!r}"

    def scalar(value: Any) -> str | None:
        value = _follow(value, members)
        return value if value is None or type(value) is str else key_text(value, what)
    return scalar


def _many_text(values: list[Any], name: str) -> str | None:
    """A many key: its distinct texts as a JSON array, in order of appearance; None when there are none."""
    if texts := [key_text(v, f"{name} element") for v in values]:
        return msgspec.json.encode(list(dict.fromkeys(texts))).decode()
    return None


def _follow(node: Any, members: tuple[str, ...]) -> Any:
    for member in members:
        if type(node) is not dict:
            return None
        node = node.get(member)
    return node


def _walk_from(node: Any, each: bool, rest: tuple[Step, ...]) -> Iterator[Any]:
    if each:
        if type(node) is list:
            for element in node:
                yield from _walk(element, rest)
        return
    yield from _walk(node, rest)


def _walk(node: Any, steps: tuple[Step, ...]) -> Iterator[Any]:
    for i, (member, each) in enumerate(steps):
        if type(node) is not dict:
            return
        node = node.get(member)
        if each:
            if type(node) is list:
                for element in node:
                    yield from _walk(element, steps[i + 1:])
            return
    if node is not None:
        yield node


# --- the typed path ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TypedData:
    """The typed path of one event type: decodes many events' data at once, and reads their keys."""

    one: msgspec.json.Decoder  # of one data document
    many: msgspec.json.Decoder  # of a JSON array of them
    checks: tuple[tuple[Getter, ColumnCheck], ...]  # top-level string members' patterns and formats
    keys: KeyReader

    def decode(self, docs: Sequence[bytes | msgspec.Raw]) -> list[Any]:
        """The documents as typed values; msgspec.ValidationError when any breaks the schema."""
        items = self.many.decode(b"[" + b",".join(docs) + b"]")
        if not self._match(items):
            raise msgspec.ValidationError("a value does not match its pattern or format")
        return items

    def decode_each(self, docs: Sequence[bytes | msgspec.Raw]) -> list[Any]:
        """Each document as a typed value, decoded on its own: None where it breaks the schema."""
        items = []
        for doc in docs:
            try:
                items.append(self.one.decode(doc))
            except msgspec.ValidationError:
                items.append(None)
        return [item if item is not None and self._match([item]) else None for item in items]

    def _match(self, items: list[Any]) -> bool:
        # A column at a time: msgspec's own pattern check (Meta(pattern), the same re.search) costs
        # about twice as much per value as this map, and a date-time on every event adds up.
        for get, check in self.checks:
            values = list(map(get, items))
            if not check([v for v in values if v is not None] if None in values else values):
                return False
        return True


def typed_data(schema: dict, paths: Mapping[str, str], event_type: str) -> TypedData | None:
    """The typed path of an event type, or None when its schema or mapping is outside the subset."""
    name = event_type.replace(".", "_")
    try:
        if (record := _struct(schema, name)) is None:  # not an object with properties: dicts, read as dicts
            t = _fast_type(schema, name)
            return TypedData(msgspec.json.Decoder(t), msgspec.json.Decoder(list[t]), (), key_reader(paths) or _NO_KEYS)
        struct, member_checks = record
    except (_Unsupported, TypeError, ValueError, re.error):
        return None
    fields = {f.encode_name: f for f in mi.type_info(struct).fields}
    reader = key_reader(paths, lambda m: attrgetter(fields[m].name) if m in fields else None,
                        lambda m: _is_text(fields[m].type))
    if reader is None:  # a path into a member the Struct drops as undeclared: judge with the schema
        return None
    checks = tuple((attrgetter(fields[m].name), check) for m, check in member_checks.items())
    return TypedData(msgspec.json.Decoder(struct), msgspec.json.Decoder(list[struct]), checks, reader)


def _is_text(t: mi.Type) -> bool:
    """Whether every value of the type is a string or null, so that it is its own key text."""
    kinds = t.types if isinstance(t, mi.UnionType) else (t,)
    return all(isinstance(k, mi.StrType | mi.LiteralType | mi.NoneType) for k in kinds)


# A draft-07 subset compiled to msgspec types that accept only what fastjsonschema accepts (same
# regexes, same bounds); anything else in a schema means no typed path for that type. Structs and
# TypedDicts ignore undeclared members, which is what a schema without additionalProperties allows.

_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "default", "examples"}
_FORMATS = CodeGeneratorDraft07.FORMAT_REGEXS
_INT64 = range(-(2**63), 2**63)


class _Unsupported(Exception):
    pass


def _struct(s: Any, name: str) -> tuple[type[msgspec.Struct], dict[str, ColumnCheck]] | None:
    """A Struct for a top level that is an object with properties (quicker to decode and read than a
    dict), and the checks it leaves to TypedData.decode: the patterns and formats of its string members.
    None for any other top level. Nested objects stay TypedDicts (dicts for the key paths)."""
    if not isinstance(s, dict) or s.get("type") != "object" or not s.get("properties"):
        return None
    _only(set(s) - _ANNOTATIONS - {"type"}, {"properties", "required", "additionalProperties"})
    if s.get("additionalProperties", True) is not True:
        raise _Unsupported
    types = {k: _fast_type(v, f"{name}_{k}") for k, v in s["properties"].items()}
    checks: dict[str, ColumnCheck] = {}
    for member, t in types.items():  # Annotated[str, Meta(pattern=...)] from _fast_string: keep the lengths
        if typing.get_origin(t) is Annotated and t.__origin__ is str and (pattern := t.__metadata__[0].pattern):
            prop = s["properties"][member]
            types[member] = _constrained(str, **_lengths(prop))
            checks[member] = (all_date_times if prop.get("format") == "date-time" and "pattern" not in prop
                              else functools.partial(_all_match, re.compile(pattern).search))
    required = set(s.get("required") or [])
    types |= {k: Any for k in required - types.keys()}
    fields = [(_attribute(k, i), t, msgspec.field(name=k) if k in required else msgspec.field(default=None, name=k))
              for i, (k, t) in enumerate(types.items())]
    return msgspec.defstruct(name, fields, kw_only=True, gc=False), checks  # gc=False: data holds no cycles


def _all_match(search: Callable[[str], Any], values: list[str]) -> bool:
    return all(map(search, values))


_RFC3339 = list[Annotated[datetime, msgspec.Meta(tz=True)]]
_SEPARATOR = itemgetter(10)  # between date and time
_T = {"T", "t"}


def all_date_times(values: list[str]) -> bool:
    """Whether every value is a date-time that draft-07's format regex (fastjsonschema's) takes.

    msgspec parses RFC 3339 in C, a column in a sixth of the time the regex takes to match it. What it
    takes, the regex takes too, but for a space between date and time, which the separator check refuses.
    What the regex takes and msgspec does not (a leap second, year 0000, non-ASCII digits) is left to
    fastjsonschema on the slow path: a refusal here is never final."""
    try:
        return set(map(_SEPARATOR, values)) <= _T and len(msgspec.convert(values, _RFC3339)) == len(values)
    except (IndexError, msgspec.ValidationError):
        return False


def _attribute(member: str, i: int) -> str:
    """The Struct attribute of a JSON member: its own name when Python allows it, else one made up."""
    return member if member.isidentifier() and not keyword.iskeyword(member) and member[0] != "_" else f"_{i}"


def _fast_type(s: Any, name: str) -> Any:
    if not isinstance(s, dict):
        raise _Unsupported
    rest = set(s) - _ANNOTATIONS
    kind = s.get("type")
    if "enum" in s:
        if rest - {"enum", "type"} or kind not in (None, "string") or not all(isinstance(v, str) for v in s["enum"]):
            raise _Unsupported
        return Literal[tuple(s["enum"])]
    nullable = isinstance(kind, list) and "null" in kind
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) != 1:
            raise _Unsupported
        kind = kinds[0]
    if kind is None:
        if rest:
            raise _Unsupported
        return Any
    build = {"object": _fast_object, "array": _fast_array, "string": _fast_string, "number": _fast_number,
             "integer": _fast_integer, "boolean": _fast_boolean}.get(kind)
    if build is None:
        raise _Unsupported
    t = build(s, rest - {"type"}, name)
    return t | None if nullable else t


def _only(rest: set[str], allowed: set[str]) -> None:
    if rest - allowed:
        raise _Unsupported


def _fast_object(s: dict, rest: set[str], name: str) -> Any:
    _only(rest, {"properties", "required", "additionalProperties"})
    if s.get("additionalProperties", True) is not True:
        raise _Unsupported
    properties, required = s.get("properties") or {}, s.get("required") or []
    if not properties and not required:
        return dict[str, Any]
    fields = {k: _fast_type(v, f"{name}_{k}") for k, v in properties.items()}
    fields |= {k: Required[fields.get(k, Any)] for k in required}
    return TypedDict(name, fields, total=False)  # type: ignore[operator]


def _fast_array(s: dict, rest: set[str], name: str) -> Any:
    _only(rest, {"items", "minItems", "maxItems", "uniqueItems"})
    if s.get("uniqueItems"):
        raise _Unsupported
    item = _fast_type(s["items"], f"{name}_item") if "items" in s else Any
    return _constrained(list[item], min_length=s.get("minItems"), max_length=s.get("maxItems"))


def _fast_string(s: dict, rest: set[str], name: str) -> Any:
    _only(rest, {"minLength", "maxLength", "pattern", "format"})
    if rest == {"format"} and s["format"] == "date":
        return date  # msgspec's RFC 3339 full-date is stricter than the format regex; key_text restores the text
    lookaheads = []
    if "pattern" in s:  # search semantics, and fastjsonschema's '$' -> '\Z'
        lookaheads.append(r"(?=[\s\S]*?(?:" + DOLLAR_FINDER.sub(r"\\Z", s["pattern"]) + "))")
    if s.get("format") in _FORMATS:  # match semantics (an unknown format is not checked by either)
        lookaheads.append("(?=(?:" + _FORMATS[s["format"]] + "))")
    pattern = "^" + "".join(lookaheads) if lookaheads else None
    return _constrained(str, **_lengths(s), pattern=pattern)


def _lengths(s: dict) -> dict[str, Any]:
    return {"min_length": s.get("minLength"), "max_length": s.get("maxLength")}


def _bounds(s: dict) -> dict[str, Any]:
    bounds = {"ge": s.get("minimum"), "le": s.get("maximum"), "gt": s.get("exclusiveMinimum"),
              "lt": s.get("exclusiveMaximum")}
    if any(v is not None and (type(v) is not int or v not in _INT64) for v in bounds.values()):
        raise _Unsupported  # keep ints ints: a fractional or huge bound gets no fast path
    return bounds


def _fast_number(s: dict, rest: set[str], name: str) -> Any:
    _only(rest, {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
    bounds = _bounds(s)
    return _constrained(int, **bounds) | _constrained(float, **bounds)


def _fast_integer(s: dict, rest: set[str], name: str) -> Any:
    _only(rest, {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
    return _constrained(int, **_bounds(s))


def _fast_boolean(s: dict, rest: set[str], name: str) -> Any:
    _only(rest, set())
    return bool


def _constrained(t: Any, **meta: Any) -> Any:
    meta = {k: v for k, v in meta.items() if v is not None}
    return Annotated[t, msgspec.Meta(**meta)] if meta else t
