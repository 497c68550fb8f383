"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import State

from syncwatch import schema
from syncwatch.errors import StoreError

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves requests")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: store reachable, migrations applied, spool below high water")
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks = await anyio.to_thread.run_sync(_checks, state)
    ready = all(check["ok"] for check in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def _checks(state: State) -> dict[str, dict[str, object]]:
    try:
        current = schema.is_current(state.store)
        store = {"ok": True}
        migrations = {"ok": current, "detail": "applied" if current else "pending migrations"}
    except StoreError as exc:
        store = {"ok": False, "detail": str(exc)}
        migrations = {"ok": False, "detail": "store unreachable"}
    pending = state.spool.pending_bytes()
    high_water = int(state.settings.spool_max_bytes * state.settings.spool_high_water)
    return {
        "store": store,
        "migrations": migrations,
        "writer": {"ok": state.writer.store_up, "detail": state.writer.last_error or "inserting"},
        "spool": {"ok": pending < high_water, "pending_bytes": pending, "high_water_bytes": high_water},
    }


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    state = request.app.state
    state.metrics.spool_bytes.set(state.spool.pending_bytes())
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
