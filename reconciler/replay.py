"""Replay: re-deliver a finding's source events to the system that is missing them.

Three steps, each its own function so that a dry run is exactly the first two:

1. `route` (pure): which system receives the events (the target) and which systems' events are
   sent (the sources). Reconcile findings: the side that has the record sends to the other
   (missing_left: right -> left, otherwise left -> right). Workflow findings (stuck, sla_breach):
   the target is the system of the overdue step's event type, the sources every other system of
   the instance. A request may name the target instead.
2. `plan`: the source events whose keys match the finding's (`events_sql`, pure), each turned into
   one POST of a structured CloudEvent with an `Idempotency-Key` derived from finding + event, so
   that replaying again (with `force`) is still applied once by a receiver that honours the key.
3. `deliver`: the requests, in event time order, with the target's timeout on each, stopping at
   the first failure (later events may depend on earlier ones); a status per event. It blocks, so
   the API runs it in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any

import httpx

from reconciler.model import WorkflowRule
from reconciler.replay_config import ReplayConfig, Target
from syncwatch.errors import SyncwatchError
from syncwatch.store import Store

CONTENT_TYPE = "application/cloudevents+json"
REDACTED = "<redacted: from rules/replay.yaml>"
# A replay stops sending once it has taken this long in all, whatever the per-request timeouts add up to.
TOTAL_BUDGET_SECONDS = 120.0
WORKFLOW_KINDS = frozenset({"stuck", "sla_breach", "failed_step"})


class ReplayRefusedError(SyncwatchError):
    """A replay that must not happen (or cannot be planned); `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PlannedRequest:
    event_id: str
    event_source: str
    event_type: str
    event_time: str
    method: str
    url: str
    headers: dict[str, str]  # as shown: configured header values redacted
    body: dict[str, Any]
    idempotency_key: str


@dataclass(frozen=True)
class DeliveryResult:
    event_id: str
    idempotency_key: str
    status_code: int | None
    error: str = ""
    duration_ms: float = 0.0

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Plan:
    target: str
    url: str
    source_systems: list[str]
    requests: list[PlannedRequest] = field(default_factory=list)


def route(finding_kind: str, field_name: str, systems: list[str], rule: Any,
          requested: str | None) -> tuple[str, list[str]]:
    """(target system, source systems) of a finding; raises ReplayRefusedError when there is none."""
    if isinstance(rule, WorkflowRule) or finding_kind in WORKFLOW_KINDS:
        return _workflow_route(finding_kind, field_name, systems, rule, requested)
    if len(systems) < 2:
        raise ReplayRefusedError(409, f"the finding names systems {systems}: a replay needs a source and a target")
    left, right = systems[0], systems[1]
    target = requested or (left if finding_kind == "missing_left" else right)
    if target not in (left, right):
        raise ReplayRefusedError(400, f"target {target!r} is not a side of this finding: choose {left} or {right}")
    return target, [right if target == left else left]


def _workflow_route(kind: str, field_name: str, systems: list[str], rule: Any,
                    requested: str | None) -> tuple[str, list[str]]:
    target = requested
    if target is None and kind in ("stuck", "sla_breach") and isinstance(rule, WorkflowRule):
        step = next((s for s in rule.steps if s.name == field_name), None)
        target = step.event_type.split(".")[0] if step else None
    if target is None:
        raise ReplayRefusedError(400, f"cannot tell which system should receive a replay of this {kind} finding: "
                                      "give target (a system configured in rules/replay.yaml)")
    sources = [s for s in systems if s != target]
    if not sources:
        raise ReplayRefusedError(409, f"no system other than {target} has events of this finding to replay")
    return target, sources


def events_sql(sources: list[str], keys: dict[str, str], primary: str, types: list[str],
               limit: int) -> tuple[str, dict[str, Any]]:
    """The source events of the finding: its primary key (the rule's key_name) equal, and any other key of
    the finding that the event carries equal too (an event without 'period' still matches an aggregate's)."""
    sql = (
        "SELECT type, source, id, system, time, subject, datacontenttype, dataschema, trace_id, span_id, data, "
        "extensions FROM events FINAL "
        "WHERE has({sources:Array(String)}, system) "
        # the bloom filter index on mapValues(keys) narrows the read before the exact tests
        "AND has(mapValues(keys), {primary_value:String}) "
        "AND keys[{primary_name:String}] = {primary_value:String} "
        "AND arrayAll((k, v) -> NOT mapContains(keys, k) OR keys[k] = v, "
        "{names:Array(String)}, {values:Array(String)}) "
        "AND (empty({types:Array(String)}) OR arrayExists(p -> type LIKE p, {types:Array(String)})) "
        "ORDER BY time, source, id LIMIT {limit:UInt32}"
    )
    if primary not in keys:
        raise ReplayRefusedError(409, f"the finding's keys {keys} lack its rule's key {primary!r}")
    return sql, {"sources": sources, "primary_name": primary, "primary_value": keys[primary], "names": list(keys),
                 "values": list(keys.values()), "types": types, "limit": limit}


def idempotency_key(fingerprint: str, event_source: str, event_id: str) -> str:
    """The same for every replay of one event for one finding (never for two different events)."""
    material = "\x1f".join(("syncwatch-replay", fingerprint, event_source, event_id))
    return "sw-replay-" + hashlib.sha256(material.encode()).hexdigest()[:40]


def cloudevent(row: dict[str, Any]) -> dict[str, Any]:
    """A stored event as a structured-mode CloudEvent (JSON format, spec 1.0)."""
    when = row["time"] if row["time"].tzinfo else row["time"].replace(tzinfo=UTC)
    event: dict[str, Any] = {"specversion": "1.0", "id": row["id"], "source": row["source"], "type": row["type"],
                             "time": when.isoformat().replace("+00:00", "Z")}
    for name in ("subject", "datacontenttype", "dataschema"):
        if row.get(name):
            event[name] = row[name]
    if row.get("trace_id") and row.get("span_id"):
        event["traceparent"] = f"00-{row['trace_id']}-{row['span_id']}-01"
    for name, value in (row.get("extensions") or {}).items():
        event.setdefault(name, value)
    try:
        event["data"] = json.loads(row["data"]) if row.get("data") else None
    except ValueError:
        event["data"] = row["data"]  # stored as text: sent as text
    return event


def plan(store: Store, fingerprint: str, keys: dict[str, str], primary: str, target_name: str, sources: list[str],
         config: ReplayConfig, replay_id: str) -> Plan:
    target = config.targets.get(target_name)
    if target is None or not target.enabled:
        raise ReplayRefusedError(409, f"no replay endpoint is configured for {target_name!r}: add targets.{target_name}"
                                      f".url to rules/replay.yaml (or set the variable it names)")
    sql, params = events_sql(sources, keys, primary, target.like_patterns(), config.max_events + 1)
    columns, rows = store.query_columns(sql, params)
    events = [dict(zip(columns, r, strict=True)) for r in rows]
    if not events:
        raise ReplayRefusedError(409, f"no events from {', '.join(sources)} match the finding's keys {keys}: "
                                      "nothing to replay")
    if len(events) > config.max_events:
        raise ReplayRefusedError(409, f"more than {config.max_events} events match the finding's keys; a replay "
                                      "re-delivers at most max_events (rules/replay.yaml)")
    requests = [_request(fingerprint, target, e, replay_id) for e in events]
    return Plan(target_name, target.url, sources, requests)


def _request(fingerprint: str, target: Target, event: dict[str, Any], replay_id: str) -> PlannedRequest:
    key = idempotency_key(fingerprint, event["source"], event["id"])
    shown = {name: REDACTED for name in target.headers}
    shown.update({"Content-Type": CONTENT_TYPE, "Idempotency-Key": key, "X-Syncwatch-Replay-Id": replay_id})
    body = cloudevent(event)
    return PlannedRequest(event["id"], event["source"], event["type"], body["time"], "POST", target.url, shown, body,
                          key)


def deliver(requests: list[PlannedRequest], target: Target, *, transport: httpx.BaseTransport | None = None
            ) -> list[DeliveryResult]:
    """Send each request in order; stop at the first that fails. Real headers come from `target`."""
    results: list[DeliveryResult] = []
    started = time.monotonic()
    with httpx.Client(timeout=target.timeout.total_seconds(), follow_redirects=False, transport=transport) as http:
        for request in requests:
            if time.monotonic() - started > TOTAL_BUDGET_SECONDS:
                results.append(DeliveryResult(request.event_id, request.idempotency_key, None,
                                              f"not sent: the replay took over {TOTAL_BUDGET_SECONDS:g} s"))
                break
            result = _send(http, request, target)
            results.append(result)
            if not result.delivered:
                break
    return results


def _send(http: httpx.Client, request: PlannedRequest, target: Target) -> DeliveryResult:
    headers = {**{k: v for k, v in request.headers.items() if v != REDACTED}, **target.headers,
               "User-Agent": "syncwatch-replay"}
    clock = time.perf_counter()
    try:
        response = http.request(request.method, request.url, content=json.dumps(request.body).encode(),
                                headers=headers)
    except httpx.HTTPError as exc:
        return DeliveryResult(request.event_id, request.idempotency_key, None, f"{type(exc).__name__}: {exc}"[:500],
                              (time.perf_counter() - clock) * 1000)
    error = "" if response.is_success else f"HTTP {response.status_code}: {response.text[:300]}"
    return DeliveryResult(request.event_id, request.idempotency_key, response.status_code, error,
                          (time.perf_counter() - clock) * 1000)


def summary(results: list[DeliveryResult], planned: int) -> tuple[str, str]:
    """(state, message) of a finished delivery."""
    delivered = sum(1 for r in results if r.delivered)
    if delivered == planned:
        return "delivered", f"delivered {delivered}/{planned}"
    failed = next((r for r in results if not r.delivered), None)
    reason = f"; event {failed.event_id}: {failed.error}" if failed else ""
    return "failed", f"failed: delivered {delivered}/{planned}{reason}"[:1000]


def as_json(items: list[Any]) -> str:
    return json.dumps([asdict(i) for i in items], ensure_ascii=False, default=str)
