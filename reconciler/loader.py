"""Load rule packs: YAML files -> validated rule models, every problem reported at once.

A file holds one rule (a mapping) or a list of rules. Positions come from ruamel.yaml's round-trip
loader, so each problem reads `file:line:col: field: message`, like soda-core's `file[line,col]`.
A directory is searched recursively for *.yaml / *.yml; given the rules/ root, only rules/packs/
is read (schemas/ and mappings/ belong to the collector).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler import model, model_kpi
from reconciler.errors import RuleError
from reconciler.field_hints import fields_at, unknown_field
from reconciler.model import NAME_PATTERN, At, WorkflowRule
from reconciler.model_kpi import AnyRule, KpiRule

__all__ = ["LoadedRule", "load_rules", "load_text", "rule_version"]

_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyRule)
_PATTERN_HELP = {
    NAME_PATTERN: "use lowercase letters, digits and _ (at most 64), starting with a letter",
    model.FIELD_PATTERN: "a field name is letters, digits, _ . - (at most 128), starting with a letter or _",
}


@dataclass(frozen=True)
class LoadedRule:
    """A validated rule, the version of its content and where it was defined."""

    rule: Any  # one of the models in reconciler.model_kpi.AnyRule
    version: str
    path: str
    line: int
    node: Any = field(default=None, repr=False, compare=False)  # the YAML mapping, for positions

    @property
    def name(self) -> str:
        return str(self.rule.name)


def rule_version(rule: BaseModel) -> str:
    """A short hash of the rule's canonical content: formatting and comments do not change it."""
    canonical = json.dumps(rule.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_rules(path: Path | str) -> list[LoadedRule]:
    """Every rule under `path` (a file or a directory); raises RuleError listing all problems."""
    root = Path(path)
    if root.is_dir() and (root / "packs").is_dir():
        root = root / "packs"
    if not root.exists():
        raise RuleError([f"{root}: no such file or directory"])
    files = [root] if root.is_file() else sorted(
        f for f in root.rglob("*") if f.suffix in (".yaml", ".yml") and not f.name.startswith("."))
    rules: list[LoadedRule] = []
    problems: list[str] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{file}: not UTF-8 text (byte {exc.start}, counting from 0)")
            continue
        except OSError as exc:  # unreadable, a dangling symlink, a symlink loop
            problems.append(f"{file}: cannot read: {exc.strerror or exc}")
            continue
        loaded, errors = _load(text, str(file))
        rules += loaded
        problems += errors
    problems += _duplicates(rules) + _kpi_references(rules)
    if problems:
        raise RuleError(problems)
    return rules


def load_text(text: str, source: str = "<rules>") -> list[LoadedRule]:
    """The rules in one YAML text (for tests and the API); raises RuleError listing all problems."""
    rules, problems = _load(text, source)
    problems += _duplicates(rules)
    if problems:
        raise RuleError(problems)
    return rules


def _load(text: str, source: str) -> tuple[list[LoadedRule], list[str]]:
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        return [], [f"{where}: not valid YAML: {exc.problem or exc}"]
    except YAMLError as exc:
        return [], [f"{source}: not valid YAML: {exc}"]
    except RecursionError:
        return [], [f"{source}: nested too deeply to be a rule"]
    if doc is None:
        return [], []
    items = doc if isinstance(doc, CommentedSeq) else [doc]
    rules: list[LoadedRule] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, CommentedMap):
            line, col = _item_position(doc, i)
            problems.append(f"{source}:{line}:{col}: a rule must be a mapping (name: ..., kind: ..., ...)")
            continue
        plain = _plain(item)
        halves = _lone_surrogates(plain)
        for path in halves:
            _, (line, col) = _locate(item, list(path), at_key=False)
            problems.append(f"{source}:{line}:{col}: {_dotted(list(path))}: text holds half of a UTF-16 surrogate "
                            "pair (a lone \\uD800-\\uDFFF escape); write the character itself or \\UXXXXXXXX")
        if halves:
            continue
        try:
            rule = _ADAPTER.validate_python(plain)
        except ValidationError as exc:
            problems += _explain(exc, item, source)
            continue
        rules.append(LoadedRule(rule, rule_version(rule), source, item.lc.line + 1, item))
    return rules, problems


def _item_position(doc: Any, index: int) -> tuple[int, int]:
    if isinstance(doc, CommentedSeq):
        line, col = doc.lc.item(index)
        return line + 1, col + 1
    return 1, 1


def _plain(node: Any) -> Any:
    """ruamel's round-trip nodes as plain Python values (YAML dates as ISO text)."""
    if isinstance(node, dict):
        return {_joined_surrogates(str(k)): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or type(node).__name__ == "ScalarBoolean":
        return bool(node)
    if isinstance(node, datetime | date):
        return node.isoformat()
    if isinstance(node, str):
        return _joined_surrogates(str(node))
    for kind in (int, float):
        if isinstance(node, kind):
            return kind(node)
    return node


def _joined_surrogates(text: str) -> str:
    """YAML's "\\uXXXX" escapes name UTF-16 halves one by one (as JSON writes a character above
    U+FFFF); a pair becomes its character. A lone half stays, for `_lone_surrogates` to report."""
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")


def _lone_surrogates(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a text holds half a UTF-16 pair: not Unicode text, and ClickHouse cannot bind it."""
    if isinstance(value, str):
        return [path] if any("\ud800" <= c <= "\udfff" for c in value) else []
    if isinstance(value, dict):
        return [p for k, v in value.items()
                for p in [*_lone_surrogates(k, (*path, k)), *_lone_surrogates(v, (*path, k))]]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _lone_surrogates(v, (*path, i))]
    return []


def _duplicates(rules: Iterable[LoadedRule]) -> list[str]:
    seen: dict[str, LoadedRule] = {}
    problems = []
    for r in rules:
        if r.name in seen:
            first = seen[r.name]
            problems.append(f"{r.path}:{r.line}:1: name: rule {r.name!r} is already defined at "
                            f"{first.path}:{first.line}")
        seen.setdefault(r.name, r)
    return problems


def _kpi_references(rules: list[LoadedRule]) -> list[str]:
    """KPIs naming a workflow, step or rule the pack does not define (checked over the whole pack)."""
    workflows = {r.name: r.rule for r in rules if isinstance(r.rule, WorkflowRule)}
    finders = {r.name for r in rules if not isinstance(r.rule, KpiRule)}
    problems = []
    for r in rules:
        if not isinstance(r.rule, KpiRule):
            continue
        for path, message in model_kpi.references(r.rule, workflows, finders):
            _, (line, col) = _locate(r.node, list(path), at_key=False) if r.node is not None else ([], (r.line, 1))
            problems.append(f"{r.path}:{line}:{col}: {_dotted(list(path))}: {message}")
    return problems


# -- turning pydantic errors into positioned messages --------------------------------------------------

def _explain(exc: ValidationError, doc: CommentedMap, source: str) -> list[str]:
    problems: list[tuple[int, int, str]] = []
    for err in exc.errors():
        loc = list(err["loc"])
        if loc and loc[0] == doc.get("kind") and err["type"] not in ("union_tag_invalid", "union_tag_not_found"):
            loc = loc[1:]  # the discriminated union's tag
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, At):
            loc += list(error.path)
        path, (line, col) = _locate(doc, loc, at_key=err["type"] == "extra_forbidden")
        named = isinstance(error, At) or err["type"] == "missing"  # the rest of loc is a field, not a union member
        field = _dotted(loc if named else path)
        message = f"{source}:{line}:{col}: {field or 'rule'}: {_message(err, error, path, doc.get('kind'))}"
        if (line, col, message) not in problems:  # a union reports one problem once per member type
            problems.append((line, col, message))
    return [message for _, _, message in sorted(problems)]


def _locate(doc: Any, loc: list[Any], at_key: bool) -> tuple[list[Any], tuple[int, int]]:
    """The part of `loc` present in the document, and the line and column (1-based) it points at."""
    node, found = doc, []
    line, col = doc.lc.line, doc.lc.col
    for i, part in enumerate(loc):
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part) if at_key and i == len(loc) - 1 else node.lc.value(part)
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
        else:
            break
        node = node[part]
        found.append(part)
    return found, (line + 1, col + 1)


def _dotted(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(err: dict[str, Any], error: Any, path: list[Any], rule_kind: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if isinstance(error, ValueError):
        return str(error)
    if kind == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        roots = [m for m in _rule_models() if _kind(m) == rule_kind]
        return unknown_field(name, fields_at(roots, path[:-1]) or [f for f in _known_fields() if f != name])
    if kind == "missing":
        return "required field is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"kind must be one of {', '.join(_kinds())}"
    if path and path[-1] == "relative" and kind.startswith(("less_than", "greater_than", "decimal")):
        return f"{err['msg']}: give a fraction (0.01 = 1%) or a percentage like '1%'"
    if kind == "string_pattern_mismatch":
        shown = repr(err["input"])[:60]
        return f"{shown} is not allowed: {_PATTERN_HELP.get(ctx.get('pattern', ''), err['msg'])}"
    return str(err["msg"])


def _kinds() -> list[str]:
    return [_kind(m) for m in _rule_models()]


def _kind(rule_model: type[BaseModel]) -> str:
    return str(get_args(rule_model.model_fields["kind"].annotation)[0])


def _rule_models() -> list[type[BaseModel]]:
    return [m for m in _models()
            if isinstance(m, type) and issubclass(m, BaseModel) and "kind" in m.model_fields]


def _known_fields() -> list[str]:
    models = [m for m in _models() if isinstance(m, type) and issubclass(m, BaseModel)]
    return sorted({name for m in models for name in m.model_fields})


def _models() -> list[Any]:
    return list({id(v): v for mod in (model, model_kpi) for v in vars(mod).values()}.values())
