"""Every rule version that ran, kept with its text: a finding's `rule_version` resolves to the rule
exactly as it was when the finding was made (the evidence pack ships it).

A version is the first 12 hex digits of the SHA-256 of the rule's canonical JSON
(reconciler.loader.rule_version); the stored `canonical` text lets anyone recompute it, and `source`
is the rule's YAML as written (its own lines of the file, comments included). If the file changed
since the rule was loaded, the loaded YAML node is written out instead, which still loads to the
same version.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from reconciler.errors import RuleError
from reconciler.loader import LoadedRule, load_text
from syncwatch.store import Store

log = logging.getLogger(__name__)
COLUMNS = ("rule", "version", "canonical", "source", "path", "line", "first_seen")


@dataclass(frozen=True)
class RuleText:
    rule: str
    version: str
    canonical: str
    source: str
    path: str
    line: int
    first_seen: datetime


def canonical_json(rule: BaseModel) -> str:
    """The text a rule's version hashes (the same as reconciler.loader.rule_version)."""
    return json.dumps(rule.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def version_of(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def source_text(loaded: LoadedRule) -> str:
    """The rule's own lines of its file if they still load to this version, else its YAML re-written."""
    try:
        snippet = _own_lines(Path(loaded.path).read_text(encoding="utf-8"), loaded.name)
    except OSError:
        snippet = None
    if snippet is not None and _loads_to(snippet, loaded):
        return snippet
    buffer = io.StringIO()
    YAML(typ="rt").dump(loaded.node if loaded.node is not None else loaded.rule.model_dump(mode="json"), buffer)
    return buffer.getvalue()


def _own_lines(text: str, name: str) -> str | None:
    """The whole file for a one-rule file; for a list of rules, the lines of the item named `name`."""
    doc = YAML(typ="rt").load(text)
    if not isinstance(doc, CommentedSeq):
        return text
    lines = text.splitlines(keepends=True)
    starts = [doc.lc.item(i)[0] for i in range(len(doc))] + [len(lines)]
    for i, item in enumerate(doc):
        if isinstance(item, dict) and item.get("name") == name:
            return "".join(lines[starts[i]:starts[i + 1]])
    return None


def _loads_to(snippet: str, loaded: LoadedRule) -> bool:
    try:
        return [r.version for r in load_text(snippet, loaded.path)] == [loaded.version]
    except RuleError:
        return False


def record(store: Store, loaded: LoadedRule, now: datetime | None = None) -> bool:
    """Store this rule version's text unless it is already there; True when written. One primary-key
    lookup per run; never raises (a run must not fail because its text could not be kept)."""
    try:
        if store.query("SELECT 1 FROM rule_versions WHERE rule = {r:String} AND version = {v:String} LIMIT 1",
                       {"r": loaded.name, "v": loaded.version}):
            return False
        row = [loaded.name, loaded.version, canonical_json(loaded.rule), source_text(loaded), loaded.path,
               loaded.line, now or datetime.now(UTC)]
        store.insert_rows("rule_versions", [row], COLUMNS)
        return True
    except Exception as exc:  # the store may be down; the run records that itself
        log.warning("could not record version %s of rule %s: %s", loaded.version, loaded.name, exc)
        return False


def lookup(store: Store, rule: str, version: str) -> RuleText | None:
    """The text of one rule version (the earliest recording, should two processes have raced)."""
    rows = store.query(
        "SELECT rule, version, argMin(canonical, first_seen), argMin(source, first_seen), argMin(path, first_seen), "
        "argMin(line, first_seen), min(first_seen) FROM rule_versions "
        "WHERE rule = {r:String} AND version = {v:String} GROUP BY rule, version", {"r": rule, "v": version})
    if not rows:
        return None
    values: list[Any] = list(rows[0])
    moment = values[6]
    values[6] = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return RuleText(*values)
