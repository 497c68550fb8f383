"""Replay routes: request (dry run by default), bulk, approve (four-eyes), reject, and the replay records.

Statuses: 200 dry run or delivered (or failed: the body's state and results say which event
failed and why), 202 waiting for a second ops user's approval, 403 self-approval, 404 unknown
finding or replay, 409 a refused replay (resolved finding, already delivered without force, one
already pending, nothing to send, no endpoint configured), 503 invalid rules/replay.yaml.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from collector.api import replay_actions
from collector.api.access import User, require
from collector.api.action_bodies import BulkReplay, BulkResult, ReplayBody, Text
from collector.api.finding_action_routes import selected, summarize
from collector.api.finding_actions import Outcome
from collector.api.findings_routes import Fingerprint
from collector.api.in_thread import in_thread
from collector.api.replay_actions import ReplayView
from collector.api.rule_catalog import catalog_of
from collector.errors import IngestHTTPError
from reconciler import replay_store
from reconciler.replay import ReplayRefusedError

router = APIRouter(tags=["replays"])
ReplayId = Annotated[str, Path(pattern=r"^[0-9a-f]{20}$", description="The replay's id.")]
_CODES = {400: "invalid_request", 403: "forbidden", 404: "not_found", 409: "conflict", 503: "unavailable"}


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Text


def _http(exc: ReplayRefusedError) -> IngestHTTPError:
    return IngestHTTPError(exc.status, _CODES.get(exc.status, "refused"), str(exc))


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await in_thread(fn, *args)
    except ReplayRefusedError as exc:
        raise _http(exc) from exc


def _request(state: Any, user: User, fingerprint: str, body: ReplayBody, batch: str = "") -> tuple[int, ReplayView]:
    catalog = catalog_of(state, state.settings.rules_dir)
    return replay_actions.request_replay(state.store, state.audit, catalog, state.settings.rules_dir, user,
                                         fingerprint, body, batch=batch)


@router.post("/findings/bulk/replay", response_model=BulkResult,
             summary="Replay many findings (dry run by default); each reports its own outcome and replay id")
async def bulk_replay(body: BulkReplay, request: Request, user: User = Depends(require("findings:act"))) -> BulkResult:
    state, batch = request.app.state, uuid.uuid4().hex[:16]
    single = ReplayBody(dry_run=body.dry_run, force=body.force, target=body.target)

    def work() -> BulkResult:
        outcomes, ids = [], {}
        for fp in selected(state, body):
            try:
                code, replayed = _request(state, user, fp, single, batch)
            except ReplayRefusedError as exc:
                outcomes.append(Outcome(fp, "replay", exc.status, str(exc)))
                continue
            outcomes.append(Outcome(fp, "replay", code, replayed.message, replayed.state))
            ids[fp] = replayed.replay_id
        return summarize("replay", batch, outcomes, ids)

    return await in_thread(work)


@router.post("/findings/{fingerprint}/replay", response_model=ReplayView,
             responses={202: {"model": ReplayView, "description": "Waiting for a second ops user's approval"}},
             summary="Replay the finding's source events to the target system (dry run unless dry_run is false)")
async def replay_finding(fingerprint: Fingerprint, request: Request, body: ReplayBody | None = None,
                         user: User = Depends(require("findings:act"))) -> Any:
    code, replayed = await _call(_request, request.app.state, user, fingerprint, body or ReplayBody())
    return JSONResponse(replayed.model_dump(mode="json"), status_code=code)


@router.post("/replays/{replay_id}/approve", response_model=ReplayView,
             summary="Approve a pending replay (four-eyes: not by its requester); it is then delivered")
async def approve(replay_id: ReplayId, request: Request, user: User = Depends(require("findings:act"))) -> ReplayView:
    state = request.app.state
    result: ReplayView = await _call(replay_actions.approve, state.store, state.audit, state.settings.rules_dir, user,
                                     replay_id)
    return result


@router.post("/replays/{replay_id}/reject", response_model=ReplayView, summary="Reject a pending replay")
async def reject(replay_id: ReplayId, body: RejectBody, request: Request,
                 user: User = Depends(require("findings:act"))) -> ReplayView:
    state = request.app.state
    result: ReplayView = await _call(replay_actions.reject, state.store, state.audit, user, replay_id, body.reason)
    return result


@router.get("/replays", response_model=list[ReplayView], summary="Replays, newest first (e.g. those awaiting approval)")
async def list_replays(request: Request,
                       state: Annotated[str | None, Query(pattern="^(" + "|".join(replay_store.STATES) + ")$")] = None,
                       fingerprint: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                       _: User = Depends(require("findings:read"))) -> list[ReplayView]:
    rows = await in_thread(replay_store.listing, request.app.state.store, state, fingerprint, limit)
    return [replay_actions.view(r) for r in rows]


@router.get("/replays/{replay_id}", response_model=ReplayView, summary="One replay: its plan, state and results")
async def get_replay(replay_id: ReplayId, request: Request, _: User = Depends(require("findings:read"))) -> ReplayView:
    found = await in_thread(replay_store.get, request.app.state.store, replay_id)
    if found is None:
        raise IngestHTTPError(404, "not_found", f"no replay {replay_id!r}")
    return replay_actions.view(found)
