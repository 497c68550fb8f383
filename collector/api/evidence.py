"""GET /api/v1/findings/{fingerprint}/evidence: the finding's evidence pack (reconciler.evidence).

Gathers the finding, its events, records and spans (matched on the finding's keys and trace ids,
as the timeline does), the rule text of the finding's rule_version, and the audit chain from the
finding's first action to the head; zips them with a manifest; and logs the export in the audit
chain with the manifest's SHA-256, so a pack can later be matched with its export.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from collector.api.access import User, require
from collector.api.findings_query import FINGERPRINT
from collector.api.params import not_found
from collector.api.rule_pack import RulePack, rule_pack
from collector.api.timeline import many_keys
from collector.api.timeline_sql import Selector, event_match, record_match, span_match
from reconciler import rule_versions
from reconciler.audit import AUDIT_COLUMNS, GENESIS, AuditEntry, entry_from_row
from reconciler.evidence import build_pack, to_json
from reconciler.sql import Params
from syncwatch.store import Store

router = APIRouter(tags=["evidence"])
MAX_ROWS = 10_000  # per kind of evidence; a finding's own events are far fewer
SPAN_COLUMNS = ("Timestamp", "TraceId", "SpanId", "ParentSpanId", "ServiceName", "SpanName", "SpanKind", "Duration",
                "StatusCode", "StatusMessage", "SpanAttributes", "ResourceAttributes")
# Named, not `*`: records store their ids as bytes and give the hex through ALIAS columns `*` leaves out
RECORD_COLUMNS = ("system", "entity", "key", "version", "updated_at", "deleted", "fields", "trace_id", "span_id",
                  "received_at")


def _dicts(store: Store, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    names, rows = store.query_columns(sql, params)
    return [dict(zip(names, row, strict=True)) for row in rows]


def finding(store: Store, fingerprint: str) -> dict[str, Any] | None:
    rows = _dicts(store, "SELECT * FROM findings FINAL WHERE fingerprint = {fp:String}", {"fp": fingerprint})
    return rows[0] if rows else None


def selector_of(found: dict[str, Any], many: dict[str, tuple[str, ...]]) -> Selector:
    traces = tuple(t for t in (found["left_trace_id"], found["right_trace_id"]) if t)
    return Selector(tuple(sorted(found["keys"].items())), traces, many)


def related_sql(sel: Selector) -> dict[str, tuple[str, dict[str, Any]]]:
    """events/records/spans queries of a finding's evidence, each with its parameters."""
    queries = {}
    for name, build in (("events", _events), ("records", _records), ("spans", _spans)):
        p = Params()
        queries[name] = (build(p, sel), p.values)
    return queries


def _events(p: Params, sel: Selector) -> str:
    return f"SELECT * FROM events FINAL WHERE {event_match(p, sel)} ORDER BY time LIMIT {MAX_ROWS}"


def _records(p: Params, sel: Selector) -> str:
    return (f"SELECT {', '.join(RECORD_COLUMNS)} FROM records FINAL WHERE {record_match(p, sel)} "
            f"ORDER BY system, entity, key LIMIT {MAX_ROWS}")


def _spans(p: Params, sel: Selector) -> str:
    traces = f"(SELECT trace_id FROM events FINAL WHERE {event_match(p, sel)} AND trace_id != '')"
    return (f"SELECT {', '.join(SPAN_COLUMNS)} FROM otel_traces WHERE {span_match(p, sel, traces)} "
            f"ORDER BY Timestamp LIMIT {MAX_ROWS}")


def chain_segment(store: Store, fingerprint: str) -> list[AuditEntry]:
    """Every entry from the finding's first action to the head (empty when nothing was done to it).
    The chain is append-only, so entries read after the first action's seq are consistent."""
    first = store.query("SELECT min(seq), count() FROM actions WHERE finding_fingerprint = {fp:String}",
                        {"fp": fingerprint})
    if not first or not first[0][1]:
        return []
    rows = store.query(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM actions WHERE seq >= {{first:UInt64}} ORDER BY seq",
                       {"first": int(first[0][0])})
    return [entry_from_row(row) for row in rows]


def chain_proof(store: Store, fingerprint: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    segment = chain_segment(store, fingerprint)
    if segment:
        head_seq, head_hash = segment[-1].seq, segment[-1].hash
    else:  # no action on the finding yet: the head alone says how far the log had got
        tail = store.query("SELECT seq, hash FROM actions ORDER BY seq DESC LIMIT 1")
        head_seq, head_hash = (int(tail[0][0]), str(tail[0][1])) if tail else (0, GENESIS)
    entries = [e.as_dict() for e in segment]
    proof = {"head_seq": head_seq, "head_hash": head_hash, "entries": entries,
             "how_to_check": "each entry's hash is SHA-256 of the canonical JSON of [seq, at, actor, role, action, "
                             "finding_fingerprint, parameters, outcome, prev_hash]; each prev_hash is the hash of "
                             "the entry before; the last entry is the head"}
    return proof, [e for e in entries if e["finding_fingerprint"] == fingerprint]


def rule_text(store: Store, rules: RulePack, name: str, version: str) -> dict[str, Any]:
    found = rule_versions.lookup(store, name, version)
    loaded = rules.get(name)
    if found is None and loaded is not None and loaded.version == version:
        rule_versions.record(store, loaded)  # ran before versions were kept, and has not changed since
        found = rule_versions.lookup(store, name, version)
    if found is None:
        return {"rule": name, "version": version, "canonical": "", "source": "",
                "note": "this rule version was not recorded and is no longer loaded"}
    return {"rule": found.rule, "version": found.version, "canonical": found.canonical, "source": found.source,
            "path": found.path, "line": found.line, "first_seen": found.first_seen}


def pack(store: Store, rules: RulePack, found: dict[str, Any], many: dict[str, tuple[str, ...]],
         user: User, now: datetime) -> tuple[bytes, str, dict[str, Any]]:
    fingerprint = found["fingerprint"]
    queries = related_sql(selector_of(found, many))
    related = {name: _dicts(store, sql, params) for name, (sql, params) in queries.items()}
    rule = rule_text(store, rules, found["rule"], found["rule_version"])
    chain, actions = chain_proof(store, fingerprint)
    files = {"finding.json": to_json(found), "events.json": to_json(related["events"]),
             "records.json": to_json(related["records"]), "spans.json": to_json(related["spans"]),
             "rule.json": to_json({k: v for k, v in rule.items() if k != "source"}), "rule.yaml": rule["source"],
             "actions.json": to_json(actions), "chain.json": to_json(chain)}
    manifest = {"finding": fingerprint, "created_at": now, "created_by": {"name": user.name, "role": user.role},
                "verify_with": "syncwatch evidence verify PACK.zip"}
    data, manifest_sha = build_pack(files, manifest)
    return data, manifest_sha, {"head_seq": chain["head_seq"], "head_hash": chain["head_hash"]}


@router.get("/findings/{fingerprint}/evidence",
            summary="The finding's evidence pack: a zip an auditor verifies offline",
            response_class=Response, responses={200: {"content": {"application/zip": {}}}})
def get_evidence(request: Request,
                 fingerprint: str = Path(pattern=FINGERPRINT, description="the finding's fingerprint (64 hex digits)"),
                 user: User = Depends(require("export")), rules: RulePack = Depends(rule_pack)) -> Response:
    store: Store = request.app.state.store
    found = finding(store, fingerprint)
    if found is None:
        raise not_found("finding", f"no finding with fingerprint {fingerprint!r}")
    data, manifest_sha, head = pack(store, rules, found, many_keys(request.app.state.registry), user,
                                    datetime.now(UTC))
    request.app.state.audit.append(user.name, user.role, "evidence_exported", "",
                                   {"finding": fingerprint, "manifest_sha256": manifest_sha, **head})
    name = f"evidence-{fingerprint[:12]}.zip"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "X-Manifest-SHA256": manifest_sha}
    return Response(data, media_type="application/zip", headers=headers)
