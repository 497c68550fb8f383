"""The event-type registry: JSON Schemas for event data and business-key mappings, from rules/.

Layout (rules/README.md is the reference):

- ``rules/schemas/<event type>.json``: the JSON Schema (draft-07) of the event's ``data``; the
  file name without ``.json`` is the event type, e.g. ``psa.timesheet.approved.json``.
- ``rules/mappings/*.yaml``: event type -> ``keys`` and ``dimensions``, each a name -> dotted path
  into ``data``. A segment ending in ``[]`` walks every element of an array, and a path that
  contains ``[]`` is a *many* key: its value is stored as a JSON array of strings
  (``["TS-1","TS-2"]``), which ClickHouse unnests with ``arrayJoin(JSONExtract(v, 'Array(String)'))``.

Keys and dimensions both land in the events table's ``keys`` map; the split only says which names
correlate business objects and which group them in KPIs.

>>> reg = EventRegistry.from_parts({}, {"x.y.z": TypeMapping({"order_id": "data.id"}, {})})
>>> reg.keys("x.y.z", {"id": 17})
{'order_id': '17'}
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Required, TypedDict

import fastjsonschema
import msgspec
from fastjsonschema.draft04 import DOLLAR_FINDER
from fastjsonschema.draft07 import CodeGeneratorDraft07
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from syncwatch.errors import SyncwatchError

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PATH = re.compile(r"^data(\.[A-Za-z0-9_\-]+(\[\])?)+$")
SUPPORTED_DRAFTS = ("http://json-schema.org/draft-07/schema", "http://json-schema.org/draft-07/schema#")
MAPPING_SECTIONS = ("keys", "dimensions")

Validator = Callable[[Any], Any]
_ANY = msgspec.json.Decoder()
Step = tuple[str, bool]  # (object member, walk every element of the array found there)


class RegistryError(SyncwatchError):
    """The rules/ event schemas or mappings are invalid; `problems` lists every one, each naming file and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid event registry:\n  " + "\n  ".join(problems))
        self.problems = problems


class KeyMappingError(ValueError):
    """An event's data does not have the shape its mapping expects (e.g. an object where a key should be)."""


@dataclass(frozen=True)
class TypeMapping:
    """Business keys and dimensions of one event type: name -> dotted path into data."""

    keys: dict[str, str]
    dimensions: dict[str, str]

    def paths(self) -> dict[str, str]:
        return {**self.keys, **self.dimensions}


Getter = Callable[[Any], Any]


def _getter(path: str) -> tuple[Getter, bool]:
    """A function data -> value (or list of values for a many path) and whether the path is many."""
    segments = path.split(".")[1:]  # the leading "data" is the event's data itself
    steps = tuple((s.removesuffix("[]"), s.endswith("[]")) for s in segments)
    if [each for _, each in steps] == [False] * (len(steps) - 1) + [True]:  # data.a.ids[]: one array
        members = tuple(m for m, _ in steps)
        return (lambda data: v if type(v := _follow(data, members)) is list else []), True
    if any(each for _, each in steps):
        return (lambda data: list(_walk(data, steps))), True
    if len(steps) == 1:  # the common case, kept to one dict lookup
        member = steps[0][0]
        return (lambda data: data.get(member) if type(data) is dict else None), False
    members = tuple(m for m, _ in steps)
    return (lambda data: _follow(data, members)), False


def _follow(node: Any, members: tuple[str, ...]) -> Any:
    for member in members:
        if type(node) is not dict:
            return None
        node = node.get(member)
    return node


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


def key_text(value: Any, what: str) -> str:
    """A scalar JSON value as key text: strings as they are, numbers as their JSON text, true/false."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return msgspec.json.encode(value).decode()
    if type(value) is date:  # from the fast path's `format: date`; the same text as sent
        return value.isoformat()
    raise KeyMappingError(f"{what} must be a string, number or boolean, got {_json_kind(value)}")


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", type(None): "null"}.get(type(value), type(value).__name__)


@dataclass
class EventRegistry:
    """Validators and key extractors per event type. Types with neither are accepted as they are."""

    validators: dict[str, Validator] = field(default_factory=dict)
    mappings: dict[str, TypeMapping] = field(default_factory=dict)
    schemas: dict[str, dict] = field(default_factory=dict)
    _getters: dict[str, tuple[tuple[str, Getter, bool], ...]] = field(default_factory=dict, repr=False)
    _members: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict, repr=False)
    _fast: dict[str, msgspec.json.Decoder] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._fast = {t: d for t, s in self.schemas.items() if t in self.validators and (d := fast_decoder(s, t))}
        # one-segment paths (data.x), the common case, are plain dict lookups in keys()
        self._members = {t: tuple((n, p[5:]) for n, p in m.paths().items() if p.count(".") == 1 and "[" not in p)
                         for t, m in self.mappings.items()}
        self._getters = {t: tuple((n, *_getter(p)) for n, p in m.paths().items() if (n, p[5:]) not in self._members[t])
                         for t, m in self.mappings.items()}

    @classmethod
    def from_parts(cls, schemas: Mapping[str, dict], mappings: Mapping[str, TypeMapping]) -> EventRegistry:
        """A registry from in-memory schemas and mappings (tests, embedding); schemas are compiled here."""
        problems: list[str] = []
        validators = {t: v for t, s in schemas.items() if (v := _compile(s, f"<schema {t}>", problems))}
        for t, m in mappings.items():
            _parse_mapping(t, {"keys": m.keys, "dimensions": m.dimensions}, "<mappings>", None, problems)
        if problems:
            raise RegistryError(problems)
        return cls(validators, dict(mappings), dict(schemas))

    @classmethod
    def load(cls, rules_dir: Path | str) -> EventRegistry:
        """Load rules_dir/schemas/*.json and rules_dir/mappings/*.yaml; RegistryError lists every problem."""
        rules_dir = Path(rules_dir)
        problems: list[str] = []
        schemas: dict[str, dict] = {}
        validators = _load_schemas(rules_dir / "schemas", schemas, problems)
        mappings = _load_mappings(rules_dir / "mappings", problems)
        for event_type, mapping in mappings.items():
            if event_type in schemas:
                _check_paths(event_type, mapping, schemas[event_type], problems)
        if problems:
            raise RegistryError(problems)
        return cls(validators, mappings, schemas)

    @property
    def types(self) -> list[str]:
        return sorted(self.validators.keys() | self.mappings.keys())

    def needs_data(self, event_type: str) -> bool:
        """Whether validate()/keys() look at this type's data (so a decoder can skip parsing it)."""
        return event_type in self.validators or event_type in self.mappings

    def validate(self, event_type: str, data: Any) -> str | None:
        """The reason `data` violates the schema registered for `event_type`, or None if it conforms."""
        validator = self.validators.get(event_type)
        if validator is None:
            return None
        try:
            validator(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            return exc.message
        return None

    def check_json(self, event_type: str, doc: bytes) -> tuple[Any, str | None]:
        """Parse JSON data and validate it: (data, violation or None); same verdict as validate().

        Fast path: a msgspec type compiled from the schema parses and validates in C. It is never
        more lenient than the schema, so when it refuses, fastjsonschema gives the verdict and reason.
        """
        fast = self._fast.get(event_type)
        if fast is not None:
            try:
                return fast.decode(doc), None
            except msgspec.ValidationError:
                pass
        data = _ANY.decode(doc)
        return data, self.validate(event_type, data)

    def keys(self, event_type: str, data: Any) -> dict[str, str]:
        """Business keys and dimensions of one event; absent or null paths are left out.

        Raises KeyMappingError when a path meets an object or array where a scalar should be.
        """
        out: dict[str, str] = {}
        if type(data) is dict:
            get_member = data.get
            for name, member in self._members.get(event_type, ()):
                value = get_member(member)
                if type(value) is str:
                    out[name] = value
                elif value is not None:
                    out[name] = key_text(value, f"key {name!r}")
        for name, get, many in self._getters.get(event_type, ()):
            value = get(data)
            if many:
                if texts := [key_text(v, f"{name} element") for v in value]:
                    out[name] = msgspec.json.encode(list(dict.fromkeys(texts))).decode()
            elif type(value) is str:
                out[name] = value
            elif value is not None:
                out[name] = key_text(value, f"key {name!r}")
        return out


# --- the msgspec fast path ---------------------------------------------------------------------------
# A draft-07 subset compiled to msgspec types that accept only what fastjsonschema accepts (same
# regexes, same bounds); anything else in a schema means no fast path for that type. TypedDicts
# ignore undeclared members, which is what a schema without additionalProperties allows.

_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "default", "examples"}
_FORMATS = CodeGeneratorDraft07.FORMAT_REGEXS
_INT64 = range(-(2**63), 2**63)


class _Unsupported(Exception):
    pass


def fast_decoder(schema: dict, name: str) -> msgspec.json.Decoder | None:
    try:
        return msgspec.json.Decoder(_fast_type(schema, name.replace(".", "_")))
    except (_Unsupported, TypeError, ValueError, re.error):
        return None


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
    return _constrained(str, min_length=s.get("minLength"), max_length=s.get("maxLength"), pattern=pattern)


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


# --- loading -----------------------------------------------------------------------------------------

def _refuse_remote(uri: str) -> dict:
    raise ValueError(f"remote $ref {uri!r} is not supported: put the definition in the file")


_NO_REMOTE = {"http": _refuse_remote, "https": _refuse_remote, "file": _refuse_remote, "ftp": _refuse_remote}


def _compile(schema: Any, where: str, problems: list[str]) -> Validator | None:
    if not isinstance(schema, dict):
        problems.append(f"{where}: a schema must be a JSON object, got {_json_kind(schema)}")
        return None
    draft = schema.get("$schema")
    if draft is not None and draft not in SUPPORTED_DRAFTS:
        problems.append(f"{where}: $schema {draft!r} is not supported; use {SUPPORTED_DRAFTS[1]!r}")
        return None
    try:
        # use_default=False: validation must never rewrite the payload we store
        return fastjsonschema.compile(schema, handlers=_NO_REMOTE, use_default=False)
    except Exception as exc:  # JsonSchemaDefinitionException, a refused $ref, a bad regex pattern
        problems.append(f"{where}: invalid JSON Schema: {exc}")
        return None


def _load_schemas(folder: Path, schemas: dict[str, dict], problems: list[str]) -> dict[str, Validator]:
    validators: dict[str, Validator] = {}
    for path in sorted(folder.glob("*.json")):
        event_type = path.name.removesuffix(".json")
        if not EVENT_TYPE.match(event_type):
            problems.append(f"{path}: file name must be the event type (e.g. psa.timesheet.approved.json)")
            continue
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: not valid JSON: {exc}")
            continue
        if (validator := _compile(schema, str(path), problems)) is not None:
            validators[event_type] = validator
            schemas[event_type] = schema
    return validators


def _check_paths(event_type: str, mapping: TypeMapping, schema: dict, problems: list[str]) -> None:
    """A mapped path must name properties the type's schema declares (catches typos at load)."""
    for name, path in mapping.paths().items():
        node: Any = schema
        for segment in path.split(".")[1:]:
            member = segment.removesuffix("[]")
            properties = node.get("properties") if isinstance(node, dict) else None
            if not isinstance(properties, dict):
                break  # declared through $ref/allOf/...: nothing to check against
            node = properties.get(member)
            if node is None:
                problems.append(f"mapping {event_type}.{name}: path {path!r}: {member!r} is not a property in "
                                f"schemas/{event_type}.json")
                break
            if segment.endswith("[]"):
                node = node.get("items") if isinstance(node, dict) else None


def _load_mappings(folder: Path, problems: list[str]) -> dict[str, TypeMapping]:
    mappings: dict[str, TypeMapping] = {}
    seen: dict[str, Path] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            doc = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
        except (YAMLError, UnicodeDecodeError) as exc:
            mark = getattr(exc, "problem_mark", None)
            position = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            problems.append(f"{path}{position}: not valid YAML: {getattr(exc, 'problem', None) or exc}")
            continue
        if doc is None:
            continue
        if not isinstance(doc, CommentedMap):
            problems.append(f"{path}: must be a mapping of event type -> {{keys, dimensions}}")
            continue
        for event_type, spec in doc.items():
            if event_type in seen:
                problems.append(f"{_at(path, doc, event_type, event_type)}: already mapped in {seen[event_type]}")
                continue
            seen[event_type] = path
            if (mapping := _parse_mapping(str(event_type), spec, path, doc, problems)) is not None:
                mappings[event_type] = mapping
    return mappings


def _parse_mapping(
    event_type: str, spec: Any, file: Path | str, parent: Any, problems: list[str]
) -> TypeMapping | None:
    before = len(problems)
    where = _at(file, parent, event_type, event_type)
    if not EVENT_TYPE.match(event_type):
        problems.append(f"{where}: not an event type (dot-separated lowercase words, e.g. psa.project.created)")
    if not isinstance(spec, dict):
        problems.append(f"{where}: must be a mapping with 'keys' and optionally 'dimensions'")
        return None
    for unknown in sorted(set(spec) - set(MAPPING_SECTIONS), key=str):
        problems.append(f"{_at(file, spec, unknown, f'{event_type}.{unknown}')}: unknown field; "
                        f"allowed: {', '.join(MAPPING_SECTIONS)}")
    sections = {s: _parse_section(spec, s, file, event_type, problems) for s in MAPPING_SECTIONS}
    for name in sorted(sections["keys"].keys() & sections["dimensions"].keys()):
        field_name = f"{event_type}.dimensions.{name}"
        problems.append(f"{_at(file, spec.get('dimensions'), name, field_name)}: already a key; "
                        "a name is either a key or a dimension")
    if len(problems) > before:
        return None
    return TypeMapping(sections["keys"], sections["dimensions"])


def _parse_section(spec: dict, section: str, file: Path | str, event_type: str, problems: list[str]) -> dict[str, str]:
    entries = spec.get(section) or {}
    if not isinstance(entries, dict):
        at = _at(file, spec, section, f"{event_type}.{section}")
        problems.append(f"{at}: must be a mapping of name -> data path")
        return {}
    out: dict[str, str] = {}
    for name, path in entries.items():
        at = _at(file, entries, name, f"{event_type}.{section}.{name}")
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(f"{at}: name must be lowercase letters, digits and _ (max 64), starting with a letter")
        elif not isinstance(path, str) or not PATH.match(path):
            problems.append(f"{at}: path {path!r} must be a dotted path into data, e.g. data.project_id "
                            "or data.lines[].timesheet_id")
        else:
            out[name] = path
    return out


def _at(file: Path | str, node: Any, key: Any, field_name: str) -> str:
    """'file:line: field' with the line where `key` sits in a ruamel.yaml node, when it knows."""
    try:
        return f"{file}:{node.lc.key(key)[0] + 1}: {field_name}"  # ruamel.yaml positions are 0-based
    except (AttributeError, KeyError, TypeError):
        return f"{file}: {field_name}"
