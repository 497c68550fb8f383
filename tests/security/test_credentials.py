"""Credentials at rest and in motion: expiry of user tokens, hashes only in the store, and no secret
in any log line or error body."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.api.access import USER_COLUMNS, UserDirectory
from syncwatch import schema
from syncwatch.store import Store
from tests.conftest import ADMIN_TOKEN, Harness
from tests.syncwatch.test_cli import cli

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_a_user_token_expires(harness: Harness) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    # naive: read as UTC; a credential cannot be created expired, so this one expires a moment later
    moment = datetime.now(UTC) + timedelta(milliseconds=300)
    past = moment.replace(tzinfo=None).isoformat()
    live = harness.client.post("/api/v1/users", headers=ADMIN, json={"name": "temp", "role": "ops", "expires_at": soon})
    gone = harness.client.post("/api/v1/users", headers=ADMIN, json={"name": "late", "role": "ops", "expires_at": past})
    assert live.status_code == gone.status_code == 201
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.05)
    assert harness.client.get("/api/v1/me", headers=harness.auth(live.json()["token"])).status_code == 200
    refused = harness.client.get("/api/v1/me", headers=harness.auth(gone.json()["token"]))
    assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]
    listed = {u["name"]: u for u in harness.client.get("/api/v1/users", headers=ADMIN).json()}
    assert datetime.fromisoformat(listed["temp"]["expires_at"]) == datetime.fromisoformat(soon)
    assert listed["late"]["expires_at"] is not None
    [entry] = [e for e in harness.app.state.audit.entries() if '"late"' in e.parameters]
    assert json.loads(entry.parameters)["expires_at"].startswith(past[:19])


def test_a_credential_cannot_be_created_expired(harness: Harness, tmp_path: Path) -> None:
    user = harness.client.post("/api/v1/users", headers=ADMIN,
                               json={"name": "late", "role": "ops", "expires_at": "2020-01-01T00:00:00Z"})
    assert user.status_code == 400 and "2020-01-01T00:00:00+00:00 is not in the future" in user.text
    assert harness.count("SELECT count() FROM users") == 0
    refused = cli(tmp_path, "users", "create", "contractor", "--role", "auditor", "--expires", "2001-02-03")
    assert refused.returncode != 0 and "is not in the future" in refused.stderr


def test_users_made_before_expiry_existed_keep_working(chdb_dsn: str, database: str) -> None:
    store = Store(chdb_dsn, database)
    try:
        before = [m for m in schema.bundled_migrations() if m.name != "credential_expiry"]
        schema.migrate(store, before)
        now = datetime.now(UTC)
        secret = "ab" * 24
        store.insert_rows("users", [["0123456789ab", "old", "ops", hashlib.sha256(secret.encode()).hexdigest(), now,
                                     None, now]], USER_COLUMNS[:7])
        assert [m.name for m in schema.migrate(store)] == ["credential_expiry"]
        user = UserDirectory(store).authenticate(f"Bearer swu_0123456789ab_{secret}")
        assert (user.name, user.role) == ("old", "ops")
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
        store.close()


def test_the_cli_creates_an_expiring_user(tmp_path: Path) -> None:
    created = cli(tmp_path, "users", "create", "contractor", "--role", "auditor", "--expires", "2999-02-03")
    assert created.returncode == 0, created.stderr
    listed = cli(tmp_path, "users", "list")
    assert "contractor" in listed.stdout and "2999-02-03T00:00:00+00:00" in listed.stdout
    assert created.stdout.split("token:")[1].split()[0] not in listed.stdout


def test_keys_and_tokens_are_stored_as_hashes_only(harness: Harness) -> None:
    _, key = harness.app.state.keys.create("k", "crm", ["events"])
    _, token = harness.app.state.users.create("u", "ops")
    key_secret, user_secret = key.rsplit("_", 1)[1], token.rsplit("_", 1)[1]
    for table, secret in (("api_keys", key_secret), ("users", user_secret)):
        rows = harness.store.query(f"SELECT * FROM {table} FINAL")
        text = json.dumps([list(r) for r in rows], default=str)
        assert secret not in text and secret[:16] not in text, table
        assert hashlib.sha256(secret.encode()).hexdigest() in text, table
    assert ADMIN_TOKEN not in json.dumps([list(r) for r in harness.store.query("SELECT * FROM users FINAL")],
                                         default=str)
    listed = harness.client.get("/api/v1/admin/keys", headers=ADMIN).text + \
        harness.client.get("/api/v1/users", headers=ADMIN).text
    for secret in (key_secret, user_secret):
        assert hashlib.sha256(secret.encode()).hexdigest() not in listed and secret not in listed


def _secrets(h: Harness) -> dict[str, str]:
    _, key = h.app.state.keys.create("k", "crm", ["events"])
    revoked_id, revoked = h.app.state.keys.create("r", "crm", ["events"])
    h.app.state.keys.revoke(revoked_id)
    _, token = h.app.state.users.create("u", "executive")
    return {"key": key, "revoked key": revoked, "user token": token, "admin token": ADMIN_TOKEN}


def test_no_secret_reaches_a_log_line_or_an_error_body(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    secrets = _secrets(harness)
    near = {name: value[:-4] + "0000" for name, value in secrets.items()}  # a wrong secret that is almost right
    caplog.set_level(logging.DEBUG)
    bodies = []
    c = harness.client
    for value in [*secrets.values(), *near.values()]:
        auth = {"Authorization": f"Bearer {value}"}
        bodies += [
            c.post("/v1/events", content=b"{bad", headers={**auth, "Content-Type": "application/cloudevents+json"}),
            c.post("/v1/records/erp/x", content=b"[]", headers={**auth, "Content-Type": "application/json"}),
            c.post("/v1/traces", content=b"\x00garbage", headers={**auth, "Content-Type": "application/x-protobuf"}),
            c.get("/api/v1/audit", headers=auth),  # 403 for the executive: audited
            c.get("/api/v1/findings?limit=-1", headers=auth),
            c.post("/api/v1/admin/query", headers=auth, json={"sql": f"SELECT '{value}' FROM nowhere"}),
            c.post("/api/v1/admin/keys", headers=auth, json={"name": "x", "system": "BAD!", "scopes": ["events"]}),
            c.get("/api/v1/me", headers={"Authorization": f"Basic {value}"}),
        ]
    assert {b.status_code for b in bodies} >= {400, 401, 403}
    audit = json.dumps([e.__dict__ for e in harness.app.state.audit.entries()], default=str)
    for name, value in [*secrets.items(), *near.items()]:
        secret_part = value.rsplit("_", 1)[-1]
        assert secret_part not in caplog.text, f"{name} in the log"
        assert secret_part not in audit, f"{name} in the audit log"
        for body in bodies:
            leaked = secret_part in body.text and "nowhere" not in body.text  # the SQL echoes its own text
            assert not leaked, f"{name} in a {body.status_code} body: {body.text[:200]}"
