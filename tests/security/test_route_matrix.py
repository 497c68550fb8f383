"""Every route x every kind of bad credential, every user route x every role, every key route x every scope.

The routes come from the app (tests/security/routes.py): a route added without an expectation fails
here, and so does an expectation whose route is gone.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from collector.api.access import PERMISSIONS, ROLES
from collector.auth import SCOPES
from collector.decoded import source_under
from tests.conftest import ADMIN_TOKEN, Harness
from tests.security.routes import EXPECTED, KEY, PUBLIC, USER, Route, app_routes, routes


def call(h: Harness, route: Route, headers: dict[str, str], path: str | None = None) -> object:
    # no body and no query: authentication and authorization come before any validation
    return h.client.request(route.method, path or route.path, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_has_an_expectation(harness: Harness) -> None:
    served = app_routes(harness.app)
    assert served - set(EXPECTED) == set(), "routes without an entry in tests/security/routes.py EXPECTED"
    assert set(EXPECTED) - served == set(), "expectations for routes the app no longer serves"
    documented = {(m.upper(), p) for p, ops in harness.client.get("/openapi.json").json()["paths"].items()
                  for m in ops}
    assert documented == {r for r, (kind, _) in EXPECTED.items() if r[0] != "GET" or kind != PUBLIC
                          or r[1] in ("/healthz", "/readyz", "/metrics")}


def test_public_routes_need_no_credential(harness: Harness) -> None:
    for route in routes(PUBLIC):
        response = call(harness, route, {})
        assert response.status_code == 200, route


def _credentials(h: Harness) -> dict[str, dict[str, tuple[str, str]]]:
    """kind -> case -> (Authorization header, a word the 401 names)."""
    keys, users = h.app.state.keys, h.app.state.users
    revoked_key, revoked_key_token = keys.create("revoked", "*", ["admin"])
    keys.revoke(revoked_key)
    soon = datetime.now(UTC) + timedelta(milliseconds=300)  # a credential cannot be created expired
    _, expired_key = keys.create("expired", "*", ["admin"], None, soon)
    _, real_key = keys.create("real", "*", ["admin"])
    revoked_user, revoked_user_token = users.create("revoked", "admin")
    users.revoke(revoked_user.user_id)
    _, expired_user = users.create("expired", "admin", soon)
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    _, real_user = users.create("real", "admin")
    common = {
        "none": ("", "missing"),
        "basic": ("Basic YWRtaW46YWRtaW4=", "Bearer"),
        "empty bearer": ("Bearer ", "Bearer"),
        "garbage": ("Bearer not-a-token", "malformed"),
        "admin token with a suffix": (f"Bearer {ADMIN_TOKEN}x", "malformed"),
    }
    return {
        KEY: {**common,
              "unknown key": ("Bearer sw_0123456789ab_" + "0" * 48, "not valid"),
              "wrong secret": (f"Bearer {real_key[:-6]}000000", "not valid"),
              "revoked": (f"Bearer {revoked_key_token}", "revoked"),
              "expired": (f"Bearer {expired_key}", "expired"),
              "a user token": (f"Bearer {real_user}", "malformed")},
        USER: {**common,
               "unknown user": ("Bearer swu_0123456789ab_" + "0" * 48, "not valid"),
               "wrong secret": (f"Bearer {real_user[:-6]}000000", "not valid"),
               "revoked": (f"Bearer {revoked_user_token}", "revoked"),
               "expired": (f"Bearer {expired_user}", "expired"),
               "an API key": (f"Bearer {real_key}", "malformed")},
    }


def test_every_authenticated_route_refuses_bad_credentials_with_401(harness: Harness) -> None:
    credentials = _credentials(harness)
    checked = 0
    for route in routes(KEY) + routes(USER):
        for case, (header, word) in credentials[route.kind].items():
            response = call(harness, route, {"Authorization": header} if header else {})
            where = f"{route.method} {route.template} with {case}"
            assert response.status_code == 401, f"{where}: {response.status_code} {response.text}"
            assert word in response.text, f"{where}: {response.text}"
            assert response.headers["WWW-Authenticate"] == "Bearer", where
            checked += 1
    assert checked == 10 * len(routes(KEY) + routes(USER))
    assert harness.count("SELECT count() FROM events") + harness.count("SELECT count() FROM records") == 0
    assert harness.count("SELECT count() FROM otel_traces") == 0


@pytest.mark.parametrize("role", ROLES)
def test_every_user_route_for_every_role(harness: Harness, role: str) -> None:
    user, token = harness.app.state.users.create(f"{role} person", role)
    audit = harness.app.state.audit
    denied = 0
    for route in routes(USER):
        response = call(harness, route, bearer(token))
        where = f"{role} {route.method} {route.template}: {response.status_code} {response.text}"
        assert response.status_code < 500, where
        if role in PERMISSIONS[route.grant]:
            assert response.status_code != 401, where
            assert "lacks the" not in response.text, where
            continue
        denied += 1
        assert response.status_code == 403 and route.grant in response.json()["error"]["message"], where
        entry = audit.entries()[-1]
        assert (entry.actor, entry.role, entry.action, entry.outcome) == (user.name, role, "denied", "403 forbidden")
        assert json.loads(entry.parameters) == {"method": route.method, "path": route.path,
                                                "permission": route.grant}, where
    assert denied == sum(role not in PERMISSIONS[r.grant] for r in routes(USER))
    assert audit.verify().ok


@pytest.mark.parametrize("scope", SCOPES)
def test_every_key_route_for_every_scope(harness: Harness, scope: str) -> None:
    token = harness.key("crm", scope)
    for route in routes(KEY):
        response = call(harness, route, bearer(token))
        where = f"{scope} {route.method} {route.template}: {response.status_code} {response.text}"
        assert response.status_code not in (401, 500), where
        if scope in (route.grant, "admin"):
            assert response.status_code != 403, where
        else:
            assert response.status_code == 403 and f"{route.grant!r} scope" in response.text, where


def test_user_tokens_of_any_role_cannot_use_key_routes(harness: Harness) -> None:
    for role in ROLES:
        _, token = harness.app.state.users.create(f"{role} person", role)
        for route in routes(KEY):
            assert call(harness, route, bearer(token)).status_code == 401, (role, route)


def test_a_key_cannot_speak_for_another_system_on_any_ingest_route(harness: Harness) -> None:
    """Source spoofing: a crm key posting as the ERP, by CloudEvents source (every mode) or records path."""
    token = bearer(harness.key("crm", "events", "records"))
    event = {"specversion": "1.0", "id": "s-1", "source": "/erp/sap", "type": "erp.invoice.posted",
             "data": {"invoice_id": "I-1", "project_id": "P-1"}}
    near_misses = ["/erp/sap", "/crmx/app", "/crm-evil", "/crm.evil/x", "//crm/x", "/CRM/app", "crm/app"]
    attempts = [
        ("/v1/events", {"Content-Type": "application/cloudevents+json"}, json.dumps(event)),
        ("/v1/events", {"Content-Type": "application/cloudevents-batch+json"},
         json.dumps([{**event, "id": "s-2", "source": "/crm/app"}, {**event, "id": "s-3"}])),
        ("/v1/events", {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "s-4",
                        "ce-source": "/erp/sap", "ce-type": "erp.invoice.posted"}, json.dumps(event["data"])),
        *[("/v1/events", {"Content-Type": "application/cloudevents+json"},
           json.dumps({**event, "id": f"n-{i}", "source": source})) for i, source in enumerate(near_misses)],
        ("/v1/records/erp/project", {"Content-Type": "application/json"},
         json.dumps([{"key": "P-1", "version": 1, "fields": {}}])),
    ]
    for path, headers, body in attempts:
        response = harness.client.post(path, content=body, headers={**token, **headers})
        assert response.status_code == 403, (path, headers, body, response.text)
    assert harness.count("SELECT count() FROM events") == 0
    assert harness.count("SELECT count() FROM records") == 0
    assert harness.count("SELECT count() FROM quarantine") == 0


@pytest.mark.parametrize(("source", "prefix", "allowed"), [
    ("/crm", "/crm", True), ("/crm/app", "/crm", True), ("/crm:x", "/crm", True), ("/crmx", "/crm", False),
    ("/crm-evil/app", "/crm", False), ("/crm/app", "/crm/", True), ("/crmx", "/crm/", False),
    ("urn:crm:1", "urn:crm:", True), ("urn:crmx", "urn:crm", False), ("/erp", "/crm", False),
])
def test_a_source_prefix_matches_at_a_boundary(source: str, prefix: str, allowed: bool) -> None:
    assert source_under(source, prefix) is allowed
