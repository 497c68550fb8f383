"""Admin API: read-only SQL for debugging and API key management (scope `admin`)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from collector.auth import BEARER_AUTH, SCOPES, Principal, require_scope
from collector.errors import IngestHTTPError
from syncwatch.errors import StoreError
from syncwatch.store import READONLY_MAX_ROWS

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
MAX_QUERY_ROWS = READONLY_MAX_ROWS


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(..., min_length=1, max_length=100_000, description="One read-only ClickHouse statement.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Values for {name:Type} placeholders.")


class QueryResponse(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200)
    system: str = Field(..., description="Source system the key speaks for, or '*' for any.")
    scopes: list[str] = Field(..., description=f"Any of {', '.join(SCOPES)}.")
    source_prefixes: list[str] = Field(default_factory=list, description="Allowed CloudEvents source prefixes.")
    expires_at: datetime | None = None


class KeyCreated(BaseModel):
    key_id: str
    token: str = Field(..., description="Shown once; only its SHA-256 is stored.")


@router.post("/query", response_model=QueryResponse, summary="Run one read-only SQL statement",
             openapi_extra=BEARER_AUTH)
async def query(body: QueryRequest, request: Request, _: Principal = Depends(require_scope("admin"))) -> QueryResponse:
    store = request.app.state.store
    return await anyio.to_thread.run_sync(_run_readonly, store, body)


def _run_readonly(store: Any, body: QueryRequest) -> QueryResponse:
    try:
        columns, rows, truncated = store.query_readonly(body.sql, body.parameters or None, MAX_QUERY_ROWS)
    except StoreError as exc:
        raise IngestHTTPError(400, "query_failed", str(exc)) from exc
    return QueryResponse(columns=columns, rows=[[_jsonable(v) for v in row] for row in rows], truncated=truncated)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # 'nan', 'inf', '-inf': JSON has no such numbers, and null would hide them
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, bytes):  # FixedString and binary columns: text if it is UTF-8, else hex
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


@router.get("/keys", summary="List API keys (never their secrets)", openapi_extra=BEARER_AUTH)
async def list_keys(request: Request, _: Principal = Depends(require_scope("admin"))) -> list[dict[str, Any]]:
    return await anyio.to_thread.run_sync(request.app.state.keys.list)


@router.post("/keys", response_model=KeyCreated, status_code=201, summary="Create an API key",
             openapi_extra=BEARER_AUTH)
async def create_key(body: KeyRequest, request: Request, _: Principal = Depends(require_scope("admin"))) -> KeyCreated:
    keys = request.app.state.keys
    try:
        key_id, token = await anyio.to_thread.run_sync(
            lambda: keys.create(body.name, body.system, body.scopes, body.source_prefixes, body.expires_at)
        )
    except ValueError as exc:
        raise IngestHTTPError(400, "invalid_key_request", str(exc)) from exc
    return KeyCreated(key_id=key_id, token=token)


@router.delete("/keys/{key_id}", summary="Revoke an API key", openapi_extra=BEARER_AUTH)
async def revoke_key(key_id: str, request: Request, _: Principal = Depends(require_scope("admin"))) -> dict[str, str]:
    revoked = await anyio.to_thread.run_sync(request.app.state.keys.revoke, key_id)
    if not revoked:
        raise IngestHTTPError(404, "not_found", f"no API key {key_id!r}")
    return {"key_id": key_id, "status": "revoked"}
