"""Every /api/v1 router of the query and action API, included by the app factory."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from collector.api import (
    audit_log,
    evidence,
    exports,
    finding_action_routes,
    findings_routes,
    integration_health,
    kpis,
    replay_routes,
    rule_health,
    timeline,
)
from collector.api.access import PERMISSIONS, User, require

router = APIRouter(prefix="/api/v1")


class Me(BaseModel):
    user_id: str
    name: str
    role: str
    permissions: list[str]


@router.get("/me", tags=["access"], summary="Who the token belongs to and what its role may do")
async def me(user: User = Depends(require("kpis:read"))) -> Me:
    allowed = sorted(p for p in PERMISSIONS if user.may(p))
    return Me(user_id=user.user_id, name=user.name, role=user.role, permissions=allowed)


# Bulk action routes come first: /findings/bulk/<action> would otherwise match /findings/{fingerprint}/<action>.
router.include_router(finding_action_routes.router)
router.include_router(replay_routes.router)
router.include_router(findings_routes.router)
# the query API, one module per area
for area in (kpis.router, timeline.router, rule_health.router, integration_health.router, audit_log.router,
             evidence.router, exports.router):
    router.include_router(area)
