"""POST actions on one finding (/findings/{fingerprint}/<action>) and on a selection (/findings/bulk/<action>).

Status mapping (the only place it lives): unknown fingerprint 404, an action that does not apply
to the finding's status 409, a rule run holding the rule's findings 503 with Retry-After, a bad
body 400 naming the field (app-wide handler). A bulk action answers 200 with one outcome per
finding, each carrying the status the single action would have answered.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request

from collector.api import finding_actions
from collector.api.access import User, require
from collector.api.action_bodies import (
    MAX_BULK,
    ActionResult,
    AnnotateBody,
    AssignBody,
    BulkAnnotate,
    BulkAssign,
    BulkEmpty,
    BulkResolve,
    BulkResult,
    BulkSilence,
    Empty,
    ItemOutcome,
    ResolveBody,
    Selection,
    SilenceBody,
)
from collector.api.finding_actions import Outcome
from collector.api.findings_query import get_finding, select_fingerprints
from collector.api.findings_routes import Fingerprint
from collector.api.in_thread import RETRY_AFTER_SECONDS, in_thread
from collector.api.rule_catalog import catalog_of
from collector.errors import IngestHTTPError

router = APIRouter(tags=["finding actions"])
_CODES = {404: "not_found", 409: "conflict", 503: "busy"}


def error_of(outcome: Outcome) -> IngestHTTPError:
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if outcome.status_code == 503 else None
    return IngestHTTPError(outcome.status_code, _CODES.get(outcome.status_code, "failed"), outcome.message, headers)


def _answer(state: Any, outcome: Outcome) -> ActionResult:
    if not outcome.ok:
        raise error_of(outcome)
    finding = get_finding(state.store, outcome.fingerprint)
    assert finding is not None  # it was just acted on; findings are never deleted
    return ActionResult(fingerprint=outcome.fingerprint, action=outcome.action, outcome=outcome.message,
                        status=finding.status, audit_seq=outcome.audit_seq, finding=finding)


async def _single(request: Request, user: User, action: str, fingerprint: str,
                  parameters: dict[str, Any]) -> ActionResult:
    state = request.app.state

    def work() -> ActionResult:
        return _answer(state, finding_actions.act(state.store, state.audit, user, action, fingerprint, parameters))

    return await in_thread(work)


def selected(state: Any, selection: Selection) -> list[str]:
    """The fingerprints of a bulk body; a filter matching more than MAX_BULK findings is refused."""
    if selection.fingerprints is not None:
        return list(dict.fromkeys(selection.fingerprints))
    assert selection.filter is not None
    found = select_fingerprints(state.store, selection.filter, MAX_BULK + 1)
    if len(found) > MAX_BULK:
        raise IngestHTTPError(400, "too_many", f"the filter matches more than {MAX_BULK} findings; a bulk action "
                                               "takes at most that many: narrow the filter")
    return found


def summarize(action: str, batch: str, outcomes: list[Outcome], replay_ids: dict[str, str] | None = None) -> BulkResult:
    items = [ItemOutcome(fingerprint=o.fingerprint, ok=o.ok, status_code=o.status_code, message=o.message,
                         status=o.status, audit_seq=o.audit_seq, replay_id=(replay_ids or {}).get(o.fingerprint))
             for o in outcomes]
    ok = sum(1 for i in items if i.ok)
    return BulkResult(action=action, batch=batch, selected=len(items), succeeded=ok, failed=len(items) - ok,
                      results=items)


async def _bulk(request: Request, user: User, action: str, body: Selection, parameters: dict[str, Any]) -> BulkResult:
    state = request.app.state
    batch = uuid.uuid4().hex[:16]

    def work() -> BulkResult:
        fingerprints = selected(state, body)
        if action == "rechecked":
            catalog = catalog_of(state, state.settings.rules_dir)
            outcomes = finding_actions.recheck_findings(state.store, state.audit, user, catalog, fingerprints,
                                                        batch=batch)
        else:
            outcomes = [finding_actions.act(state.store, state.audit, user, action, fp, parameters, batch=batch)
                        for fp in fingerprints]
        return summarize(action, batch, outcomes)

    return await in_thread(work)


# -- many findings (registered before /findings/{fingerprint}/..., which "bulk" would match) ----------

@router.post("/findings/bulk/acknowledge", response_model=BulkResult, summary="Acknowledge many findings")
async def bulk_acknowledge(body: BulkEmpty, request: Request,
                           user: User = Depends(require("findings:act"))) -> BulkResult:
    return await _bulk(request, user, "acknowledged", body, {})


@router.post("/findings/bulk/assign", response_model=BulkResult, summary="Assign many findings to a person or team")
async def bulk_assign(body: BulkAssign, request: Request, user: User = Depends(require("findings:act"))) -> BulkResult:
    return await _bulk(request, user, "assigned", body, body.audit_parameters())


@router.post("/findings/bulk/annotate", response_model=BulkResult, summary="Add the same note to many findings")
async def bulk_annotate(body: BulkAnnotate, request: Request,
                        user: User = Depends(require("findings:act"))) -> BulkResult:
    return await _bulk(request, user, "annotated", body, body.audit_parameters())


@router.post("/findings/bulk/silence", response_model=BulkResult, summary="Silence many findings until a time")
async def bulk_silence(body: BulkSilence, request: Request,
                       user: User = Depends(require("findings:silence"))) -> BulkResult:
    return await _bulk(request, user, "silenced", body, body.audit_parameters())


@router.post("/findings/bulk/resolve", response_model=BulkResult, summary="Resolve many findings with a reason")
async def bulk_resolve(body: BulkResolve, request: Request,
                       user: User = Depends(require("findings:act"))) -> BulkResult:
    return await _bulk(request, user, "resolved", body, body.audit_parameters())


@router.post("/findings/bulk/reopen", response_model=BulkResult, summary="Reopen many findings")
async def bulk_reopen(body: BulkEmpty, request: Request, user: User = Depends(require("findings:act"))) -> BulkResult:
    return await _bulk(request, user, "reopened", body, {})


@router.post("/findings/bulk/recheck", response_model=BulkResult,
             summary="Re-check many findings now (one restricted run per rule)")
async def bulk_recheck(body: BulkEmpty, request: Request, user: User = Depends(require("findings:act"))) -> BulkResult:
    return await _bulk(request, user, "rechecked", body, {})


# -- one finding ---------------------------------------------------------------------------------------

@router.post("/findings/{fingerprint}/acknowledge", response_model=ActionResult,
             summary="Acknowledge: someone is on it (from open or silenced)")
async def acknowledge(fingerprint: Fingerprint, request: Request, body: Empty | None = None,
                      user: User = Depends(require("findings:act"))) -> ActionResult:
    return await _single(request, user, "acknowledged", fingerprint, {})


@router.post("/findings/{fingerprint}/assign", response_model=ActionResult, summary="Assign to a person or a team")
async def assign(fingerprint: Fingerprint, body: AssignBody, request: Request,
                 user: User = Depends(require("findings:act"))) -> ActionResult:
    return await _single(request, user, "assigned", fingerprint, body.audit_parameters())


@router.post("/findings/{fingerprint}/annotate", response_model=ActionResult,
             summary="Add a note (kept in the audit log)")
async def annotate(fingerprint: Fingerprint, body: AnnotateBody, request: Request,
                   user: User = Depends(require("findings:act"))) -> ActionResult:
    return await _single(request, user, "annotated", fingerprint, body.audit_parameters())


@router.post("/findings/{fingerprint}/silence", response_model=ActionResult,
             summary="Silence until a time: not alerted, not counted as open")
async def silence(fingerprint: Fingerprint, body: SilenceBody, request: Request,
                  user: User = Depends(require("findings:silence"))) -> ActionResult:
    return await _single(request, user, "silenced", fingerprint, body.audit_parameters())


@router.post("/findings/{fingerprint}/resolve", response_model=ActionResult, summary="Resolve by hand, with a reason")
async def resolve(fingerprint: Fingerprint, body: ResolveBody, request: Request,
                  user: User = Depends(require("findings:act"))) -> ActionResult:
    return await _single(request, user, "resolved", fingerprint, body.audit_parameters())


@router.post("/findings/{fingerprint}/reopen", response_model=ActionResult,
             summary="Reopen a resolved, acknowledged or silenced finding")
async def reopen(fingerprint: Fingerprint, request: Request, body: Empty | None = None,
                 user: User = Depends(require("findings:act"))) -> ActionResult:
    return await _single(request, user, "reopened", fingerprint, {})


@router.post("/findings/{fingerprint}/recheck", response_model=ActionResult,
             summary="Re-check now: re-run the finding's rule for its key and update the finding")
async def recheck(fingerprint: Fingerprint, request: Request, body: Empty | None = None,
                  user: User = Depends(require("findings:act"))) -> ActionResult:
    state = request.app.state

    def work() -> ActionResult:
        catalog = catalog_of(state, state.settings.rules_dir)
        [outcome] = finding_actions.recheck_findings(state.store, state.audit, user, catalog, [fingerprint])
        return _answer(state, outcome)

    return await in_thread(work)
