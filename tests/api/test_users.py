"""Users admin: the /api/v1/users endpoints and `syncwatch users`, on the store and through a running server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncwatch.bench.serverproc import ServerProcess
from syncwatch.cli import main
from tests.api.people import People, people_of
from tests.conftest import ADMIN_TOKEN, Harness
from tests.syncwatch.test_cli import cli


@pytest.fixture
def people(harness: Harness) -> People:
    return people_of(harness)


def test_create_list_revoke_over_http(people: People) -> None:
    client, admin = people.harness.client, people.as_("eve")
    created = client.post("/api/v1/users", json={"name": "frank", "role": "auditor"}, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["role"], body["revoked_at"]) == ("frank", "auditor", None)
    assert body["token"].startswith(f"swu_{body['user_id']}_")
    frank = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/v1/me", headers=frank).json()["role"] == "auditor"

    listed = client.get("/api/v1/users", headers=admin).json()
    assert {(u["name"], u["role"]) for u in listed} >= {("frank", "auditor"), ("ana", "ops"), ("eve", "admin")}
    assert "token" not in json.dumps(listed) and "swu_" not in json.dumps(listed)

    revoked = client.delete(f"/api/v1/users/{body['user_id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json() == {"user_id": body["user_id"], "status": "revoked"}
    assert client.get("/api/v1/me", headers=frank).status_code == 401
    again = client.delete(f"/api/v1/users/{body['user_id']}", headers=admin)
    assert again.status_code == 409 and "already revoked" in again.json()["error"]["message"]

    trail = [(e.actor, e.action, json.loads(e.parameters)) for e in people.harness.app.state.audit.entries()]
    assert trail == [("eve", "user_created", {"user_id": body["user_id"], "name": "frank", "role": "auditor"}),
                     ("eve", "user_revoked", {"user_id": body["user_id"], "name": "frank"})]


def test_the_bootstrap_admin_token_manages_users(harness: Harness) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = harness.client.post("/api/v1/users", json={"name": "first ops", "role": "ops"}, headers=auth)
    assert created.status_code == 201


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "role": "boss"}, "invalid role"),
    ({"name": "x;DROP", "role": "ops"}, "invalid user name"),
    ({"name": "", "role": "ops"}, "name"),
    ({"role": "ops"}, "name"),
    ({"name": "x", "role": "ops", "admin": True}, "admin"),
])
def test_bad_user_requests_are_400(people: People, body: dict[str, object], field: str) -> None:
    response = people.harness.client.post("/api/v1/users", json=body, headers=people.as_("eve"))
    assert response.status_code == 400 and field in response.json()["error"]["message"]


def test_revoking_an_unknown_or_malformed_id(people: People) -> None:
    client, admin = people.harness.client, people.as_("eve")
    assert client.delete("/api/v1/users/0123456789ab", headers=admin).status_code == 404
    assert client.delete("/api/v1/users/nope", headers=admin).status_code == 400


@pytest.mark.parametrize("command", [["users"], ["users", "create"], ["users", "list"], ["users", "revoke"]])
def test_users_commands_have_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_users_cli_on_the_embedded_store(tmp_path: Path) -> None:
    created = cli(tmp_path, "users", "create", "Ana Ops", "--role", "ops")
    assert created.returncode == 0, created.stderr
    user_id, token = created.stdout.split()[1], created.stdout.split()[3]
    assert token.startswith(f"swu_{user_id}_")
    listed = cli(tmp_path, "users", "list").stdout
    assert user_id in listed and "Ana Ops" in listed and "ops" in listed and "swu_" not in listed
    assert cli(tmp_path, "users", "revoke", user_id).returncode == 0
    audit = cli(tmp_path, "query", "SELECT actor, action FROM actions ORDER BY seq", "--format", "json")
    assert [r["action"] for r in json.loads(audit.stdout)] == ["user_created", "user_revoked"]
    assert json.loads(audit.stdout)[0]["actor"].startswith("cli:")
    missing = cli(tmp_path, "users", "revoke", "0123456789ab")
    assert missing.returncode == 1 and "no user" in missing.stderr
    bad_role = cli(tmp_path, "users", "create", "x", "--role", "boss")
    assert bad_role.returncode == 2
    bad_name = cli(tmp_path, "users", "create", "x;DROP", "--role", "ops")
    assert bad_name.returncode == 1 and "invalid user name" in bad_name.stderr


@pytest.mark.slow
def test_users_cli_through_a_running_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", ADMIN_TOKEN)
    server.start()
    env = {"SYNCWATCH_PORT": server.url.rsplit(":", 1)[1], "SYNCWATCH_ADMIN_TOKEN": ADMIN_TOKEN}
    try:
        created = cli(tmp_path / "data", "users", "create", "ben", "--role", "auditor", extra_env=env)
        assert created.returncode == 0, created.stderr
        user_id = created.stdout.split()[1]
        assert "ben" in cli(tmp_path / "data", "users", "list", extra_env=env).stdout
        assert cli(tmp_path / "data", "users", "revoke", user_id, extra_env=env).returncode == 0
        assert cli(tmp_path / "data", "users", "revoke", user_id, extra_env=env).returncode == 0  # idempotent
        missing = cli(tmp_path / "data", "users", "revoke", "0123456789ab", extra_env=env)
        assert missing.returncode == 1 and "no user" in missing.stderr
    finally:
        server.stop()
