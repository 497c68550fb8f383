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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastjsonschema
import msgspec
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from collector.event_types import KeyMappingError, KeyReader, TypedData, json_kind, key_reader, typed_data
from syncwatch.errors import SyncwatchError

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PATH = re.compile(r"^data(\.[A-Za-z0-9_\-]+(\[\])?)+$")
SUPPORTED_DRAFTS = ("http://json-schema.org/draft-07/schema", "http://json-schema.org/draft-07/schema#")
MAPPING_SECTIONS = ("keys", "dimensions")

Validator = Callable[[Any], Any]
_ANY = msgspec.json.Decoder()
_ANY_ARRAY = msgspec.json.Decoder(list[Any])
_NO_KEYS = KeyReader((), ())


class RegistryError(SyncwatchError):
    """The rules/ event schemas or mappings are invalid; `problems` lists every one, each naming file and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid event registry:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TypeMapping:
    """Business keys and dimensions of one event type: name -> dotted path into data."""

    keys: dict[str, str]
    dimensions: dict[str, str]

    def paths(self) -> dict[str, str]:
        return {**self.keys, **self.dimensions}


@dataclass
class Verdicts:
    """The registry's word on each of a batch of events of one type: its keys, or why it is quarantined."""

    key_names: list[tuple[str, ...]]  # per item; absent keys are left out
    key_texts: list[tuple[str, ...]]
    reasons: dict[int, str]  # item index -> why the item is quarantined (its keys are then empty)


@dataclass
class EventRegistry:
    """Validators and key extractors per event type. Types with neither are accepted as they are."""

    validators: dict[str, Validator] = field(default_factory=dict)
    mappings: dict[str, TypeMapping] = field(default_factory=dict)
    schemas: dict[str, dict] = field(default_factory=dict)
    _readers: dict[str, KeyReader] = field(default_factory=dict, repr=False)
    _typed: dict[str, TypedData] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._readers = {t: r for t, m in self.mappings.items() if (r := key_reader(m.paths()))}
        self._typed = {t: d for t, s in self.schemas.items() if t in self.validators and (
            d := typed_data(s, self.mappings[t].paths() if t in self.mappings else {}, t))}

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

    def keys(self, event_type: str, data: Any) -> dict[str, str]:
        """Business keys and dimensions of one event; absent or null paths are left out.

        Raises KeyMappingError when a path meets an object or array where a scalar should be.
        """
        reader = self._readers.get(event_type, _NO_KEYS)
        return {name: col[0] for name, col in zip(reader.names, reader.columns([data]), strict=True)
                if col[0] is not None}

    def check_batch(self, event_type: str, docs: Sequence[bytes | msgspec.Raw]) -> Verdicts:
        """Validate and key the JSON data of many events of one type: the same verdicts, reasons and keys
        as validate() and keys() give each one, in a fraction of the time.

        Fast path: one msgspec call decodes all of them into the type compiled from the schema (see
        collector.event_types). It is never more lenient than the schema, so data it takes is valid."""
        typed = self._typed.get(event_type)
        if typed is None:
            return self._check_untyped(event_type, docs)
        try:
            return Verdicts(*typed.keys.pairs(typed.decode(docs)), {})
        except (msgspec.ValidationError, KeyMappingError):
            return self._check_each(event_type, typed, docs)

    def _check_each(self, event_type: str, typed: TypedData, docs: Sequence[bytes | msgspec.Raw]) -> Verdicts:
        """check_batch() when some item breaks the schema or has a key of the wrong shape: the items the
        typed decoder takes on their own are keyed together; fastjsonschema judges the others."""
        items = typed.decode_each(docs)
        taken = [i for i, item in enumerate(items) if item is not None]
        try:
            names, texts = typed.keys.pairs([items[i] for i in taken])
        except KeyMappingError:  # leave it to check_values to name the items
            taken, names, texts = [], [], []
        verdicts = Verdicts([()] * len(docs), [()] * len(docs), {})
        for i, row_names, row_texts in zip(taken, names, texts, strict=True):
            verdicts.key_names[i], verdicts.key_texts[i] = row_names, row_texts
        rest = sorted(set(range(len(docs))) - set(taken))
        judged = self._check_untyped(event_type, [docs[i] for i in rest])
        for j, i in enumerate(rest):
            verdicts.key_names[i], verdicts.key_texts[i] = judged.key_names[j], judged.key_texts[j]
        verdicts.reasons = {rest[j]: reason for j, reason in judged.reasons.items()}
        return verdicts

    def _check_untyped(self, event_type: str, docs: Sequence[bytes | msgspec.Raw]) -> Verdicts:
        """check_values() over documents still to parse. A document the parser cannot hold (a number
        such as 1e999, beyond any float) gets its own reason, and the others their verdicts."""
        try:
            return self.check_values(event_type, _ANY_ARRAY.decode(b"[" + b",".join(docs) + b"]"))
        except msgspec.ValidationError:
            pass
        values: dict[int, Any] = {}
        broken: dict[int, str] = {}
        for i, doc in enumerate(docs):
            try:
                values[i] = _ANY.decode(doc)
            except msgspec.ValidationError:  # JSON text it parsed once already: only a number can fail
                broken[i] = "data: a number is out of range (beyond a 64-bit float)"
        order = sorted(values)
        judged = self.check_values(event_type, [values[i] for i in order])
        verdicts = Verdicts([()] * len(docs), [()] * len(docs), dict(broken))
        for j, i in enumerate(order):
            verdicts.key_names[i], verdicts.key_texts[i] = judged.key_names[j], judged.key_texts[j]
        verdicts.reasons.update({order[j]: reason for j, reason in judged.reasons.items()})
        return verdicts

    def check_values(self, event_type: str, values: list[Any]) -> Verdicts:
        """check_batch() for data already parsed: item by item, unless there is nothing to validate."""
        reader = self._readers.get(event_type, _NO_KEYS)
        if event_type not in self.validators:
            try:
                return Verdicts(*reader.pairs(values), {})
            except KeyMappingError:
                pass  # name the items whose keys have the wrong shape
        verdicts = Verdicts([], [], {})
        for i, data in enumerate(values):
            names, texts, reason = (), (), self.validate(event_type, data)
            if reason is None:
                try:
                    [names], [texts] = reader.pairs([data])
                except KeyMappingError as exc:
                    reason = f"business keys: {exc}"
            if reason is not None:
                verdicts.reasons[i] = reason
            verdicts.key_names.append(names)
            verdicts.key_texts.append(texts)
        return verdicts


# --- loading -----------------------------------------------------------------------------------------

def _refuse_remote(uri: str) -> dict:
    raise ValueError(f"remote $ref {uri!r} is not supported: put the definition in the file")


_NO_REMOTE = {"http": _refuse_remote, "https": _refuse_remote, "file": _refuse_remote, "ftp": _refuse_remote}


def _compile(schema: Any, where: str, problems: list[str]) -> Validator | None:
    if not isinstance(schema, dict):
        problems.append(f"{where}: a schema must be a JSON object, got {json_kind(schema)}")
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
