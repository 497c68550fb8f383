"""Every route of the service and who may call it: the expectation table the security tests share.

The routes are enumerated from the app itself, so a new route that is missing here fails
`test_every_route_has_an_expectation` until someone decides who may call it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

PUBLIC = "public"
# How a route authenticates: an API key (collector/auth.py) or a user token (collector/api/access.py).
KEY = "key"
USER = "user"

# (method, path template) -> (credential kind, scope or permission). `public` routes take no credential.
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/openapi.json"): (PUBLIC, ""),
    ("GET", "/docs"): (PUBLIC, ""),
    ("GET", "/docs/oauth2-redirect"): (PUBLIC, ""),
    ("GET", "/redoc"): (PUBLIC, ""),
    ("GET", "/healthz"): (PUBLIC, ""),
    ("GET", "/readyz"): (PUBLIC, ""),
    ("GET", "/metrics"): (PUBLIC, ""),
    ("POST", "/v1/traces"): (KEY, "telemetry"),
    ("POST", "/v1/logs"): (KEY, "telemetry"),
    ("POST", "/v1/metrics"): (KEY, "telemetry"),
    ("POST", "/v1/events"): (KEY, "events"),
    ("POST", "/v1/records/{system}/{entity}"): (KEY, "records"),
    ("POST", "/api/v1/admin/query"): (KEY, "admin"),
    ("GET", "/api/v1/admin/keys"): (KEY, "admin"),
    ("POST", "/api/v1/admin/keys"): (KEY, "admin"),
    ("DELETE", "/api/v1/admin/keys/{key_id}"): (KEY, "admin"),
    ("GET", "/api/v1/me"): (USER, "kpis:read"),
    **{("POST", f"/api/v1/findings/{where}/{action}"): (USER, "findings:silence" if action == "silence"
                                                        else "findings:act")
       for where in ("bulk", "{fingerprint}")
       for action in ("acknowledge", "assign", "annotate", "silence", "resolve", "reopen", "recheck", "replay")},
    ("POST", "/api/v1/replays/{replay_id}/approve"): (USER, "findings:act"),
    ("POST", "/api/v1/replays/{replay_id}/reject"): (USER, "findings:act"),
    ("GET", "/api/v1/replays"): (USER, "findings:read"),
    ("GET", "/api/v1/replays/{replay_id}"): (USER, "findings:read"),
    ("GET", "/api/v1/findings"): (USER, "findings:read"),
    ("GET", "/api/v1/findings/{fingerprint}"): (USER, "findings:read"),
    ("GET", "/api/v1/users"): (USER, "users:admin"),
    ("POST", "/api/v1/users"): (USER, "users:admin"),
    ("DELETE", "/api/v1/users/{user_id}"): (USER, "users:admin"),
    ("GET", "/api/v1/kpis"): (USER, "kpis:read"),
    ("GET", "/api/v1/kpis/summary"): (USER, "kpis:read"),
    ("GET", "/api/v1/kpis/{name}"): (USER, "kpis:read"),
    ("GET", "/api/v1/timeline"): (USER, "timeline:read"),
    ("GET", "/api/v1/rules"): (USER, "health:read"),
    ("GET", "/api/v1/rules/{name}/runs"): (USER, "health:read"),
    ("GET", "/api/v1/integrations/health"): (USER, "health:read"),
    ("GET", "/api/v1/audit"): (USER, "audit:read"),
    ("GET", "/api/v1/audit/verify"): (USER, "audit:read"),
    ("GET", "/api/v1/findings/{fingerprint}/evidence"): (USER, "export"),
    ("GET", "/api/v1/export/findings"): (USER, "export"),
    ("GET", "/api/v1/export/timeline"): (USER, "export"),
    ("GET", "/api/v1/export/audit"): (USER, "export"),
}

# Valid-looking values for path parameters, so a request reaches authentication and authorization.
PATH_VALUES = {"system": "crm", "entity": "project", "key_id": "0123456789ab", "fingerprint": "0" * 64,
               "replay_id": "0" * 20, "user_id": "0123456789ab", "name": "time_to_bill"}


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    kind: str
    grant: str  # the scope (KEY) or permission (USER) the route needs

    @property
    def path(self) -> str:
        return self.template.format(**PATH_VALUES)


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves (HEAD is GET's twin and left out)."""
    found = set()
    for context in iter_route_contexts(app.routes):
        for method in context.methods or ():
            if method != "HEAD":
                found.add((method, str(context.path)))
    return found


def routes(kind: str | None = None) -> list[Route]:
    every = [Route(m, t, k, g) for (m, t), (k, g) in sorted(EXPECTED.items())]
    return [r for r in every if kind is None or r.kind == kind]
