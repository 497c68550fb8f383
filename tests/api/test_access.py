"""Users and roles: tokens, revocation, and audited 403s."""

from __future__ import annotations

import pytest

from collector.api.access import PERMISSIONS, ROLES, UserDirectory, validate_user_request
from tests.conftest import ADMIN_TOKEN, Harness


def test_each_role_sees_its_permissions(harness: Harness) -> None:
    users: UserDirectory = harness.app.state.users
    for role in ROLES:
        user, token = users.create(f"{role} person", role)
        response = harness.client.get("/api/v1/me", headers=harness.auth(token))
        if role in PERMISSIONS["kpis:read"]:
            assert response.status_code == 200
            body = response.json()
            assert body["role"] == role and body["user_id"] == user.user_id
            assert body["permissions"] == sorted(p for p, roles in PERMISSIONS.items() if role in roles)


def test_bootstrap_admin_token_is_an_admin(harness: Harness) -> None:
    response = harness.client.get("/api/v1/me", headers=harness.auth(ADMIN_TOKEN))
    assert response.status_code == 200 and response.json()["role"] == "admin"


@pytest.mark.parametrize(
    ("header", "message"),
    [(None, "missing Authorization"), ("Basic x", "Bearer"), ("Bearer nope", "malformed"),
     ("Bearer swu_0123456789ab_" + "0" * 48, "not valid"), ("Bearer sw_0123456789ab_" + "0" * 48, "malformed")],
)
def test_bad_user_tokens_are_401(harness: Harness, header: str | None, message: str) -> None:
    response = harness.client.get("/api/v1/me", headers={"Authorization": header} if header else {})
    assert response.status_code == 401 and message in response.json()["error"]["message"]


def test_revoked_user_is_401(harness: Harness) -> None:
    users: UserDirectory = harness.app.state.users
    user, token = users.create("leaver", "ops")
    assert harness.client.get("/api/v1/me", headers=harness.auth(token)).status_code == 200
    assert users.revoke(user.user_id)
    response = harness.client.get("/api/v1/me", headers=harness.auth(token))
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    assert not users.revoke("000000000000")


def test_a_denied_request_is_403_and_audited(harness: Harness) -> None:
    from fastapi import Depends

    from collector.api.access import require

    @harness.app.get("/api/v1/test-only-audit-read")
    async def probe(_: object = Depends(require("audit:read"))) -> dict[str, str]:
        return {"ok": "yes"}

    _, token = harness.app.state.users.create("exec", "executive")
    response = harness.client.get("/api/v1/test-only-audit-read", headers=harness.auth(token))
    assert response.status_code == 403 and "audit:read" in response.json()["error"]["message"]
    [entry] = harness.app.state.audit.entries()
    assert (entry.actor, entry.role, entry.action, entry.outcome) == ("exec", "executive", "denied", "403 forbidden")
    assert '"permission":"audit:read"' in entry.parameters
    assert harness.app.state.audit.verify().ok


@pytest.mark.parametrize(("name", "role"), [("ok", "boss"), ("", "ops"), ("x;DROP", "ops")])
def test_user_requests_are_validated(name: str, role: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        validate_user_request(name, role)


def test_an_unknown_permission_is_a_programming_error() -> None:
    from collector.api.access import require

    with pytest.raises(ValueError, match="unknown permission"):
        require("everything")
