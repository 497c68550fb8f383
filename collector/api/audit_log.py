"""GET /api/v1/audit (the hash-chained log of every action, paginated and filtered) and
GET /api/v1/audit/verify (recompute the whole chain: any altered, removed or reordered row shows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from collector.api.access import User, require
from collector.api.findings_query import FINGERPRINT
from reconciler.audit import AUDIT_COLUMNS, AuditEntry, entry_from_row
from reconciler.sql import Params
from syncwatch.store import Store

router = APIRouter(tags=["audit"])
MAX_PAGE = 1000
MAX_OFFSET = 10**12  # beyond any real log; keeps the bound UInt64 parameter in range


@dataclass(frozen=True)
class AuditFilter:
    fingerprint: str | None = None
    actor: str | None = None
    action: str | None = None

    def where(self, p: Params) -> str:
        conditions = [f"{column} = {p(value)}" for column, value in
                      (("finding_fingerprint", self.fingerprint), ("actor", self.actor), ("action", self.action))
                      if value is not None]
        return "WHERE " + " AND ".join(conditions) if conditions else ""


def page_sql(f: AuditFilter, limit: int, offset: int) -> tuple[str, dict[str, Any]]:
    p = Params()
    sql = (f"SELECT {', '.join(AUDIT_COLUMNS)} FROM actions {f.where(p)} ORDER BY seq "
           f"LIMIT {p(limit, 'UInt32')} OFFSET {p(offset, 'UInt64')}")
    return sql, p.values


def count_sql(f: AuditFilter) -> tuple[str, dict[str, Any]]:
    p = Params()
    return f"SELECT count() FROM actions {f.where(p)}", p.values


class AuditEntryOut(BaseModel):
    seq: int
    at: str = Field(description="UTC, microseconds: the exact text that is hashed")
    actor: str
    role: str
    action: str
    finding_fingerprint: str
    parameters: str = Field(description="canonical JSON of the action's parameters")
    outcome: str
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    total: int
    limit: int
    offset: int
    entries: list[AuditEntryOut]


class ChainBreakOut(BaseModel):
    seq: int
    problem: str


class ChainVerification(BaseModel):
    ok: bool
    checked: int
    head_hash: str
    breaks: list[ChainBreakOut]


def audit_entries(store: Store, f: AuditFilter, limit: int, offset: int) -> list[AuditEntry]:
    sql, params = page_sql(f, limit, offset)
    return [entry_from_row(row) for row in store.query(sql, params)]


@router.get("/audit", summary="The audit log in chain order, filtered by finding, actor or action")
def list_audit(request: Request,
               fingerprint: str | None = Query(None, pattern=FINGERPRINT, description="finding fingerprint"),
               actor: str | None = Query(None, max_length=200), action: str | None = Query(None, max_length=64),
               limit: int = Query(100, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0, le=MAX_OFFSET),
               _: User = Depends(require("audit:read"))) -> AuditPage:
    store: Store = request.app.state.store
    f = AuditFilter(fingerprint, actor, action)
    sql, params = count_sql(f)
    total = int(store.query(sql, params)[0][0])
    entries = [AuditEntryOut(**e.as_dict()) for e in audit_entries(store, f, limit, offset)]
    return AuditPage(total=total, limit=limit, offset=offset, entries=entries)


@router.get("/audit/verify", summary="Recompute the hash chain: ok, entries checked, and every break found")
async def verify_audit(request: Request, _: User = Depends(require("audit:read"))) -> ChainVerification:
    result = await run_in_threadpool(request.app.state.audit.verify)
    return ChainVerification(**result.as_dict())
