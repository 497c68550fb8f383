"""Replay requests, four-eyes approvals and rejections: the decisions, each appended to the audit log.

    request (dry_run, the default) -> state dry_run: the plan, nothing sent
    request (dry_run: false)       -> impact above four_eyes_above? pending_approval : delivering -> delivered | failed
    approve (another ops user)     -> delivering -> delivered | failed
    reject                         -> rejected

Delivery blocks on the network, so these functions run in a worker thread (the routes see to it).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from collector.api.access import User
from collector.api.action_bodies import ReplayBody
from collector.api.findings_query import Finding, get_finding
from collector.api.rule_catalog import RuleCatalog
from reconciler import replay, replay_store
from reconciler.audit import AuditLog
from reconciler.replay import PlannedRequest, ReplayRefusedError
from reconciler.replay_config import ReplayConfig, ReplayConfigError, load_replay
from reconciler.replay_store import ReplayRecord
from syncwatch.store import Store


class ReplayView(BaseModel):
    replay_id: str
    fingerprint: str
    rule: str
    target: str
    url: str
    source_systems: list[str]
    state: str = Field(description="dry_run, pending_approval, delivering, delivered, failed or rejected.")
    dry_run: bool
    force: bool
    requested_by: str
    requested_role: str
    requested_at: datetime
    approved_by: str
    approved_at: datetime | None
    impact_amount: float
    impact_currency: str
    requests: list[dict[str, Any]] = Field(description="Exactly what is (or would be) sent where; secrets redacted.")
    results: list[dict[str, Any]] = Field(description="Per event: HTTP status, error, idempotency key.")
    message: str


def view(rec: ReplayRecord) -> ReplayView:
    return ReplayView(replay_id=rec.replay_id, fingerprint=rec.fingerprint, rule=rec.rule, target=rec.target,
                      url=rec.url, source_systems=rec.source_systems, state=rec.state, dry_run=rec.dry_run,
                      force=rec.force, requested_by=rec.requested_by, requested_role=rec.requested_role,
                      requested_at=rec.requested_at, approved_by=rec.approved_by, approved_at=rec.approved_at,
                      impact_amount=float(rec.impact_amount), impact_currency=rec.impact_currency,
                      requests=rec.planned(), results=rec.delivered(), message=rec.message)


def _config(rules_dir: Path) -> ReplayConfig:
    try:
        return load_replay(rules_dir)
    except (ReplayConfigError, OSError, OverflowError) as exc:  # an operator's file: say what is wrong, no 500
        raise ReplayRefusedError(503, f"replays are unavailable: {exc}") from exc


def request_replay(store: Store, audit: AuditLog, catalog: RuleCatalog, rules_dir: Path, user: User,
                   fingerprint: str, body: ReplayBody, *, batch: str = "") -> tuple[int, ReplayView]:
    """Plan a replay of one finding and, unless it is a dry run or needs approval, deliver it.
    Returns (HTTP status, the replay): 200, or 202 when it awaits a second ops user's approval."""
    finding = get_finding(store, fingerprint)
    if finding is None:
        raise ReplayRefusedError(404, f"no finding with fingerprint {fingerprint!r}")
    parameters = {**body.audit_parameters(), **({"batch": batch} if batch else {})}
    try:
        rec, target = _start(store, catalog, rules_dir, user, finding, body)
    except ReplayRefusedError as exc:
        if exc.status in (400, 409):
            audit.append(user.name, user.role, "replay", fingerprint, parameters, f"{exc.status} refused: {exc}")
        raise
    if rec.state == "delivering":
        rec = _deliver(store, rec, target)
    parameters.update(replay_id=rec.replay_id, target=rec.target, events=len(rec.planned()))
    audit.append(user.name, user.role, "replay", fingerprint, parameters, rec.message)
    return (202 if rec.state == "pending_approval" else 200), view(rec)


def _start(store: Store, catalog: RuleCatalog, rules_dir: Path, user: User, finding: Finding,
           body: ReplayBody) -> tuple[ReplayRecord, Any]:
    if finding.status == "resolved":
        raise ReplayRefusedError(409, f"finding {finding.fingerprint} is resolved: reopen it before replaying")
    config = _config(rules_dir)
    loaded = catalog.get(finding.rule)
    target, sources = replay.route(finding.kind, finding.field, finding.systems, loaded.rule if loaded else None,
                                   body.target)
    replay_id = uuid.uuid4().hex[:20]
    with replay_store.changing(store):
        if not body.dry_run:
            refusal = replay_store.repeat_refusal(replay_store.of_finding(store, finding.fingerprint), body.force)
            if refusal:
                raise ReplayRefusedError(409, refusal)
        # the rule's key_name identifies the business object; without the rule, the first key does
        primary = loaded.rule.key_name if loaded else next(iter(finding.keys), "")
        planned = replay.plan(store, finding.fingerprint, finding.keys, primary, target, sources, config, replay_id)
        impact = Decimal(str(finding.impact_amount))
        state, message = _first_state(body.dry_run, impact, finding.impact_currency, config, planned)
        rec = _record_of(replay_id, finding, planned, state, message, body, user)
        replay_store.record(store, rec)
    return rec, config.targets[target]


def _first_state(dry_run: bool, impact: Decimal, currency: str, config: ReplayConfig,
                 planned: replay.Plan) -> tuple[str, str]:
    count = len(planned.requests)
    if dry_run:
        return "dry_run", f"dry run: {count} request(s) to {planned.target} at {planned.url}; nothing sent"
    if impact > config.four_eyes_above:
        return "pending_approval", (f"pending approval: impact {impact:.2f} {currency} is above "
                                    f"{config.four_eyes_above}; a second ops user must approve")
    return "delivering", f"delivering {count} request(s) to {planned.target}"


def _record_of(replay_id: str, finding: Finding, planned: replay.Plan, state: str, message: str, body: ReplayBody,
               user: User) -> ReplayRecord:
    now = datetime.now(UTC)
    return ReplayRecord(
        replay_id=replay_id, fingerprint=finding.fingerprint, rule=finding.rule, target=planned.target,
        url=planned.url, source_systems=planned.source_systems, state=state, dry_run=body.dry_run, force=body.force,
        requested_by=user.name, requested_by_id=user.user_id, requested_role=user.role, requested_at=now,
        approved_by="", approved_by_id="", approved_at=None, impact_amount=Decimal(str(finding.impact_amount)),
        impact_currency=finding.impact_currency, plan=replay.as_json(planned.requests), results="[]",
        message=message, updated_at=now)


def _deliver(store: Store, rec: ReplayRecord, target: Any) -> ReplayRecord:
    requests = [PlannedRequest(**r) for r in rec.planned()]
    try:
        results = replay.deliver(requests, target)
        state, message = replay.summary(results, len(requests))
        done = rec.moved(state, message, results=replay.as_json(results))
    except Exception as exc:  # whatever broke, the replay must not stay 'delivering' for ever
        done = rec.moved("failed", f"failed: {type(exc).__name__}: {exc}"[:1000])
    replay_store.record(store, done)
    return done


def approve(store: Store, audit: AuditLog, rules_dir: Path, user: User, replay_id: str) -> ReplayView:
    """A second ops user approves a pending replay, which is then delivered exactly as planned."""
    with replay_store.changing(store):
        rec = _pending(store, replay_id, "approved")
        if rec.requested_by_id == user.user_id:
            message = "four-eyes: the user who requested a replay cannot approve it; ask another ops user"
            audit.append(user.name, user.role, "replay_approved", rec.fingerprint, {"replay_id": replay_id},
                         f"403 refused: {message}")
            raise ReplayRefusedError(403, message)
        target = _config(rules_dir).targets.get(rec.target)
        if target is None or target.url != rec.url:
            raise ReplayRefusedError(409, f"the endpoint of {rec.target!r} changed since replay {replay_id} was "
                                          "planned: reject it and request a new one")
        rec = rec.moved("delivering", f"approved by {user.name}", approved_by=user.name, approved_by_id=user.user_id,
                        approved_at=datetime.now(UTC))
        replay_store.record(store, rec)
    rec = _deliver(store, rec, target)
    audit.append(user.name, user.role, "replay_approved", rec.fingerprint,
                 {"replay_id": replay_id, "requested_by": rec.requested_by}, rec.message)
    return view(rec)


def reject(store: Store, audit: AuditLog, user: User, replay_id: str, reason: str) -> ReplayView:
    """Any ops user (the requester too, to withdraw it) rejects a pending replay; nothing is sent."""
    with replay_store.changing(store):
        rec = _pending(store, replay_id, "rejected")
        rec = rec.moved("rejected", f"rejected by {user.name}: {reason}"[:1000])
        replay_store.record(store, rec)
    audit.append(user.name, user.role, "replay_rejected", rec.fingerprint, {"replay_id": replay_id, "reason": reason},
                 "ok")
    return view(rec)


def _pending(store: Store, replay_id: str, verb: str) -> ReplayRecord:
    rec = replay_store.get(store, replay_id)
    if rec is None:
        raise ReplayRefusedError(404, f"no replay {replay_id!r}")
    if rec.state != "pending_approval":
        raise ReplayRefusedError(409, f"replay {replay_id} is {rec.state}: only a replay awaiting approval can be "
                                      f"{verb}")
    return rec

