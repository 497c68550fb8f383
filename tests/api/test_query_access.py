"""Every query endpoint against every role: the roles holding its permission get 200, the others 403
(and each refusal lands in the audit log), and no token is 401."""

from __future__ import annotations

from collector.api.access import PERMISSIONS, ROLES
from tests.api.story import bearer, tokens, write_story
from tests.conftest import Harness

# (path, permission): every GET of the query API this module owns
ENDPOINTS = [
    ("/api/v1/kpis", "kpis:read"),
    ("/api/v1/kpis/summary", "kpis:read"),
    ("/api/v1/kpis/time_to_bill_hours?bucket=week", "kpis:read"),
    ("/api/v1/timeline?key=timesheet_id:TS-3", "timeline:read"),
    ("/api/v1/rules", "health:read"),
    ("/api/v1/rules/time_to_bill/runs", "health:read"),
    ("/api/v1/integrations/health?window=7d", "health:read"),
    ("/api/v1/audit", "audit:read"),
    ("/api/v1/audit/verify", "audit:read"),
    ("/api/v1/export/findings?format=csv", "export"),
    ("/api/v1/export/timeline?key=:TS-3&format=parquet", "export"),
    ("/api/v1/export/audit", "export"),
    ("/api/v1/findings/{breach}/evidence", "export"),
]


def test_each_role_gets_exactly_what_its_permissions_allow(harness: Harness) -> None:
    story = write_story(harness.store)
    users = tokens(harness.app)
    denied = 0
    for template, permission in ENDPOINTS:
        path = template.format(breach=story.breach)
        for role in ROLES:
            response = harness.client.get(path, headers=bearer(users[role]))
            if role in PERMISSIONS[permission]:
                assert response.status_code == 200, (path, role, response.text)
            else:
                denied += 1
                assert response.status_code == 403, (path, role)
                assert permission in response.json()["error"]["message"]
    refusals = [e for e in harness.app.state.audit.entries() if e.action == "denied"]
    assert len(refusals) == denied > 0
    assert {e.role for e in refusals} == {r for r in ROLES for _, p in ENDPOINTS if r not in PERMISSIONS[p]}
    assert harness.app.state.audit.verify().ok


def test_no_token_is_401_everywhere(harness: Harness) -> None:
    for template, _ in ENDPOINTS:
        response = harness.client.get(template.format(breach="0" * 64))
        assert response.status_code == 401, template
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_every_route_is_documented_with_a_tag_and_summary(harness: Harness) -> None:
    spec = harness.client.get("/openapi.json").json()
    for template, _ in ENDPOINTS:
        path = template.split("?")[0].replace("{breach}", "{fingerprint}").replace("time_to_bill_hours", "{name}")
        path = path.replace("rules/time_to_bill/", "rules/{name}/")
        operation = spec["paths"][path]["get"]
        assert operation["tags"] and operation["summary"], path
