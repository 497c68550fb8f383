"""Every /api/v1 router of the query and action API, included by the app factory."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute
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
    users_routes,
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


def _document_user_auth(api: APIRouter) -> APIRouter:
    """Every /api/v1 route authorizes with a user token (collector.api.access.require): say so in OpenAPI."""
    for route in api.routes:
        if isinstance(route, APIRoute) and "security" not in (route.openapi_extra or {}):
            route.openapi_extra = {**(route.openapi_extra or {}), "security": [{"userToken": []}]}
    return api


_document_user_auth(router)
# Bulk action routes come first: /findings/bulk/<action> would otherwise match /findings/{fingerprint}/<action>.
for _module in (finding_action_routes, replay_routes, findings_routes, users_routes):
    router.include_router(_document_user_auth(_module.router))
# the query API, one module per area
for area in (kpis.router, timeline.router, rule_health.router, integration_health.router, audit_log.router,
             evidence.router, exports.router):
    router.include_router(area)
