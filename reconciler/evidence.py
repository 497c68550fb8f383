"""Evidence packs: one finding's proof as a zip an auditor can check offline, without a store.

Layout (format `syncwatch-evidence/1`)::

    manifest.json         format, finding fingerprint, who exported it and when, SHA-256 of every other
                          file, and a seal (SHA-256 of the manifest's own content)
    finding.json          the finding as stored
    events.json           its events from every system (full data), records.json, spans.json
    rule.json             rule name, version, the canonical JSON whose SHA-256 is the version, path, first seen
    rule.yaml             the rule's YAML exactly as it ran
    actions.json          every audit entry about the finding
    chain.json            the audit chain from the finding's first action to the head at export time:
                          every entry in full (so each hash can be recomputed), head_seq and head_hash

`verify_pack` checks: the manifest's seal, every file's hash against the manifest and no file
outside it; the chain segment links and every entry's hash matches its content; it ends at
head_hash; actions.json is exactly the segment's entries about the finding; the rule's canonical
JSON hashes to its version, which is the finding's rule_version, and rule.yaml loads to that same
version.

What it proves: nothing in the pack was changed after export (the manifest), and the actions are
the ones the audit log held, unaltered, up to `head_hash`. Compare head_hash (and head_seq) with
the live log's entry at that seq (GET /api/v1/audit) or a head recorded elsewhere to pin the
pack to the real log; the export itself is in the log (`evidence_exported`) with the SHA-256 of
the manifest, which binds every file of the pack to that entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from reconciler.audit import AuditEntry, verify_entries
from reconciler.errors import RuleError
from reconciler.loader import load_text
from reconciler.rule_versions import version_of

FORMAT = "syncwatch-evidence/1"
MANIFEST = "manifest.json"
FILES = ("finding.json", "events.json", "records.json", "spans.json", "rule.json", "rule.yaml", "actions.json",
         "chain.json")


def to_json(value: Any) -> str:
    """Stable, readable JSON: sorted keys, ISO times, decimals as text (exact amounts)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=_plain) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        # the store's times are UTC; clickhouse-connect returns some of them without an offset
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_pack(files: Mapping[str, str], manifest: Mapping[str, Any]) -> tuple[bytes, str]:
    """The zip of `files` (name -> text) with a manifest listing their SHA-256; returns the zip and the
    manifest's own SHA-256 (what the audit log records about the export)."""
    encoded = {name: text.encode() for name, text in files.items()}
    listing = {**manifest, "format": FORMAT, "files": {n: sha256(b) for n, b in sorted(encoded.items())}}
    manifest_bytes = to_json({**listing, "seal": seal(listing)}).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as pack:
        pack.writestr(MANIFEST, manifest_bytes)
        for name, data in sorted(encoded.items()):
            pack.writestr(name, data)
    return buffer.getvalue(), sha256(manifest_bytes)


def seal(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest's own content (without the seal): an edited manifest shows. Whoever
    rewrites it whole can recompute this too; the audit log's `evidence_exported` entry holds the
    SHA-256 of the manifest as exported, which no one can rewrite unnoticed."""
    return sha256(to_json({k: v for k, v in manifest.items() if k != "seal"}).encode())


@dataclass
class PackReport:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    finding: str = ""
    head_seq: int | None = None
    head_hash: str = ""
    manifest_sha256: str = ""

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "checked": self.checked, "finding": self.finding,
                "head_seq": self.head_seq, "head_hash": self.head_hash, "manifest_sha256": self.manifest_sha256}


def verify_pack(data: bytes) -> PackReport:
    """Check a pack offline (see the module docstring for what is checked and what it proves)."""
    report = PackReport()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as pack:
            contents = {name: pack.read(name) for name in pack.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        report.fail(f"not a readable zip file: {exc}")
        return report
    manifest = _manifest(contents, report)
    if manifest is None:
        return report
    docs = _check_files(contents, manifest, report)
    report.finding = str(manifest.get("finding", ""))
    if all(name in docs for name in ("chain.json", "actions.json")):
        _check_chain(docs["chain.json"], docs["actions.json"], report)
    if all(name in docs for name in ("finding.json", "rule.json")) and "rule.yaml" in contents:
        _check_rule(docs["finding.json"], docs["rule.json"], contents["rule.yaml"].decode("utf-8", "replace"),
                    report)
    return report


def _manifest(contents: dict[str, bytes], report: PackReport) -> dict[str, Any] | None:
    raw = contents.get(MANIFEST)
    if raw is None:
        report.fail(f"{MANIFEST} is missing")
        return None
    report.manifest_sha256 = sha256(raw)
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # a crafted pack may nest arrays past any stack
        report.fail(f"{MANIFEST} is not valid JSON: {exc}")
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(files, dict):
        report.fail(f"{MANIFEST} is not a {FORMAT} manifest")
        return None
    if manifest.get("seal") != seal(manifest):
        report.fail(f"{MANIFEST} was changed: its seal does not match its content")
    return manifest


def _check_files(contents: dict[str, bytes], manifest: dict[str, Any], report: PackReport) -> dict[str, Any]:
    """Hash every listed file; returns the parsed JSON of those that match."""
    listed: dict[str, str] = manifest["files"]
    docs: dict[str, Any] = {}
    for name in sorted(set(contents) - set(listed) - {MANIFEST}):
        report.fail(f"{name} is in the pack but not in the manifest")
    for name in FILES:
        if name not in listed:
            report.fail(f"{name} is not listed in the manifest")
    for name, digest in sorted(listed.items()):
        if name not in contents:
            report.fail(f"{name} is listed in the manifest but missing")
        elif sha256(contents[name]) != digest:
            report.fail(f"{name} was changed: its SHA-256 differs from the manifest")
        elif name.endswith(".json"):
            try:
                doc = json.loads(contents[name])
            except (ValueError, RecursionError) as exc:
                report.fail(f"{name} is not valid JSON: {exc}")
                continue
            if name in SHAPES and not isinstance(doc, SHAPES[name]):
                report.fail(f"{name} holds a JSON {type(doc).__name__}, not the {SHAPES[name].__name__} a pack has")
                continue
            docs[name] = doc
    report.checked.append(f"SHA-256 of {len(listed)} files against the manifest")
    return docs


# what the checks below read from each file: a crafted pack with `null` in them crashed the verifier
SHAPES: dict[str, type] = {"chain.json": dict, "actions.json": list, "finding.json": dict, "rule.json": dict}


def _entries(items: Any) -> list[AuditEntry]:
    return [AuditEntry(**item) for item in items]


def _check_chain(chain: dict[str, Any], actions: Any, report: PackReport) -> None:
    try:
        segment, mine = _entries(chain["entries"]), _entries(actions)
        report.head_seq, report.head_hash = chain["head_seq"], str(chain["head_hash"])
    except (KeyError, TypeError) as exc:
        report.fail(f"chain.json or actions.json does not hold audit entries: {exc}")
        return
    if segment:
        result = verify_entries(segment, start_prev=segment[0].prev_hash, start_seq=segment[0].seq)
        for problem in result.breaks:
            report.fail(f"chain.json: entry {problem.seq}: {problem.problem}")
        if (segment[-1].seq, segment[-1].hash) != (report.head_seq, report.head_hash):
            report.fail("chain.json: the entries do not end at head_seq/head_hash")
    about = [e for e in segment if e.finding_fingerprint == report.finding]
    if about != mine:
        report.fail("actions.json differs from the chain's entries about the finding (changed, missing or extra)")
    if any(e.finding_fingerprint != report.finding for e in mine):
        report.fail("actions.json holds an entry about another finding")
    report.checked.append(f"audit chain: {len(segment)} entries recomputed and linked up to head "
                          f"{report.head_hash[:12] or '(empty log)'}; {len(mine)} about the finding")


def _check_rule(finding: dict[str, Any], rule: dict[str, Any], source: str, report: PackReport) -> None:
    if finding.get("fingerprint") != report.finding:
        report.fail("finding.json is not the finding the manifest names")
    if not rule.get("canonical"):
        report.checked.append("rule text: not recorded for this version (the finding predates rule_versions)")
        return
    version = version_of(rule["canonical"])
    if version != rule.get("version") or version != finding.get("rule_version"):
        report.fail(f"rule.json: the canonical text hashes to {version}, not the finding's rule_version "
                    f"{finding.get('rule_version')!r}")
    try:
        loaded = [r.version for r in load_text(source, "rule.yaml")]
    except RuleError as exc:
        report.fail(f"rule.yaml does not load: {exc}")
        return
    if loaded != [finding.get("rule_version")]:
        report.fail(f"rule.yaml loads to version {loaded}, not the finding's {finding.get('rule_version')!r}")
    report.checked.append(f"rule {rule.get('rule')} version {version}: canonical text and YAML both match")
