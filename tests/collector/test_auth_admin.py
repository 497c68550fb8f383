"""Authentication, scopes, source spoofing, and the admin API (read-only SQL, keys)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from collector.routes.admin import MAX_QUERY_ROWS
from tests.conftest import ADMIN_TOKEN, Harness

EVENT = {"specversion": "1.0", "id": "e-1", "source": "/crm/salesforce", "type": "crm.account.created",
         "time": "2026-11-25T10:00:00Z", "datacontenttype": "application/json",
         "data": {"account_id": "A-1", "name": "Acme", "region": "EMEA"}}
CE = {"Content-Type": "application/cloudevents+json"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def post_event(h: Harness, headers: dict[str, str], event: dict | None = None) -> int:
    body = json.dumps(event or EVENT)
    return h.client.post("/v1/events", content=body, headers={**CE, **headers}).status_code


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Authorization"),
        ("Basic abc", "Bearer"),
        ("Bearer ", "Bearer"),
        ("Bearer not-a-key", "malformed"),
        ("Bearer sw_0123456789ab_" + "0" * 48, "not valid"),
    ],
)
def test_bad_credentials_are_401(harness: Harness, header: str | None, message: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = harness.client.post("/v1/events", content=json.dumps(EVENT), headers={**CE, **headers})
    assert response.status_code == 401
    assert message in response.json()["error"]["message"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_wrong_secret_for_a_real_key_is_401(harness: Harness) -> None:
    token = harness.key("crm", "events")
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    assert post_event(harness, harness.auth(forged)) == 401


def test_revoked_and_expired_keys_are_401(harness: Harness) -> None:
    keys = harness.app.state.keys
    key_id, token = keys.create("old", "crm", ["events"])
    assert post_event(harness, harness.auth(token)) == 200
    keys.revoke(key_id)
    assert post_event(harness, harness.auth(token)) == 401
    _, expired = keys.create("expired", "crm", ["events"], None, datetime.now(UTC) + timedelta(milliseconds=200))
    time.sleep(0.3)  # a key cannot be created expired
    response = harness.client.post("/v1/events", content=json.dumps(EVENT), headers={**CE, **harness.auth(expired)})
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


def test_revocation_from_another_process_applies_after_refresh(harness: Harness) -> None:
    key_id, token = harness.app.state.keys.create("k", "crm", ["events"])
    assert post_event(harness, harness.auth(token)) == 200
    now = datetime.now(UTC)
    harness.store.command(
        "INSERT INTO api_keys SELECT key_id, name, system, scopes, source_prefixes, secret_sha256, created_at, "
        "expires_at, {now:DateTime64(3)}, {now:DateTime64(6)} FROM api_keys FINAL WHERE key_id = {k:String}",
        {"now": now, "k": key_id},
    )
    time.sleep(0.3)  # key_refresh_seconds is 0.2 in tests
    assert post_event(harness, harness.auth(token)) == 401


def test_scope_is_enforced(harness: Harness) -> None:
    records_only = harness.auth(harness.key("crm", "records"))
    response = harness.client.post("/v1/events", content=json.dumps(EVENT), headers={**CE, **records_only})
    assert response.status_code == 403 and "'events' scope" in response.json()["error"]["message"]
    assert harness.client.post("/api/v1/admin/query", json={"sql": "SELECT 1"}, headers=records_only).status_code == 403


def test_a_crm_key_cannot_speak_for_the_erp(harness: Harness) -> None:
    crm = harness.auth(harness.key("crm", "events", "records"))
    spoofed = {**EVENT, "source": "/erp/sap"}
    assert post_event(harness, crm, spoofed) == 403
    records = harness.client.post("/v1/records/erp/project", json=[{"key": "P-1", "version": 1, "fields": {}}],
                                  headers=crm)
    assert records.status_code == 403
    assert harness.count("SELECT count() FROM events") == 0
    assert harness.count("SELECT count() FROM records") == 0


def test_admin_query_is_read_only_and_single_statement(harness: Harness) -> None:
    ok = harness.client.post("/api/v1/admin/query", json={"sql": "SELECT 1 AS one, 'x' AS s"}, headers=ADMIN)
    assert ok.status_code == 200 and ok.json() == {"columns": ["one", "s"], "rows": [[1, "x"]], "truncated": False}
    for sql in ["DROP TABLE events", "INSERT INTO events (id) VALUES ('x')", "SELECT 1; DROP TABLE events",
                "SELEC 1"]:
        response = harness.client.post("/api/v1/admin/query", json={"sql": sql}, headers=ADMIN)
        assert response.status_code == 400, sql
        assert response.json()["error"]["code"] == "query_failed"
    assert harness.store.query("EXISTS TABLE events")[0][0] == 1
    bound = harness.client.post("/api/v1/admin/query", headers=ADMIN,
                                json={"sql": "SELECT {v:String}", "parameters": {"v": "it's; DROP"}})
    assert bound.json().get("rows") == [["it's; DROP"]], bound.text


def test_admin_query_is_bounded_in_rows_time_and_memory(harness: Harness) -> None:
    # an endless table: the answer stops at the row limit instead of filling the process's memory
    endless = harness.client.post("/api/v1/admin/query", json={"sql": "SELECT number FROM system.numbers"},
                                  headers=ADMIN)
    assert endless.status_code == 200
    assert len(endless.json()["rows"]) == MAX_QUERY_ROWS and endless.json()["truncated"] is True
    exact = harness.client.post("/api/v1/admin/query", json={"sql": f"SELECT number FROM numbers({MAX_QUERY_ROWS})"},
                                headers=ADMIN).json()
    assert len(exact["rows"]) == MAX_QUERY_ROWS and exact["truncated"] is False
    greedy = harness.client.post("/api/v1/admin/query", headers=ADMIN,
                                 json={"sql": "SELECT groupArray(number) FROM numbers(10000000000)"})
    assert greedy.status_code == 400 and "memory limit" in greedy.json()["error"]["message"]
    raised = harness.client.post("/api/v1/admin/query", headers=ADMIN,
                                 json={"sql": "SELECT 1 SETTINGS max_memory_usage = 0"})
    assert raised.status_code == 400 and "readonly" in raised.json()["error"]["message"].lower()


def test_admin_query_shows_binary_and_non_finite_values(harness: Harness) -> None:
    body = harness.client.post("/api/v1/admin/query", headers=ADMIN, json={
        "sql": "SELECT toFixedString('ab', 2) AS text, unhex('00ff') AS raw, nan AS n, -inf AS i"}).json()
    assert body["rows"] == [["ab", "00ff", "nan", "-inf"]]


def test_admin_bodies_refuse_unknown_fields(harness: Harness) -> None:
    query = harness.client.post("/api/v1/admin/query", json={"sql": "SELECT 1", "sqll": "x"}, headers=ADMIN)
    key = harness.client.post("/api/v1/admin/keys", headers=ADMIN,
                              json={"name": "sf", "system": "crm", "scopes": ["events"], "scope": ["admin"]})
    assert query.status_code == 400 and "sqll" in query.text
    assert key.status_code == 400 and "scope" in key.text


@pytest.mark.parametrize(("extra", "message"), [
    ({"source_prefixes": ["/crm", ""]}, "must not be empty"),
    ({"source_prefixes": [" "]}, "must not be empty"),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "is not in the future"),
    ({"expires_at": "2020-01-01T00:00:00"}, "is not in the future"),
])
def test_a_key_that_would_be_too_wide_or_dead_is_refused(harness: Harness, extra: dict, message: str) -> None:
    response = harness.client.post("/api/v1/admin/keys", headers=ADMIN,
                                   json={"name": "sf", "system": "crm", "scopes": ["events"], **extra})
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert harness.count("SELECT count() FROM api_keys") == 0


def test_admin_key_lifecycle_over_http(harness: Harness) -> None:
    created = harness.client.post("/api/v1/admin/keys", headers=ADMIN,
                                  json={"name": "sf", "system": "crm", "scopes": ["events"]})
    assert created.status_code == 201
    key_id, token = created.json()["key_id"], created.json()["token"]
    listed = harness.client.get("/api/v1/admin/keys", headers=ADMIN).json()
    assert [k["key_id"] for k in listed] == [key_id] and "token" not in listed[0]
    assert token.split("_")[2] not in json.dumps(listed)
    stored_hash = harness.store.query("SELECT secret_sha256 FROM api_keys FINAL")[0][0]
    assert token not in stored_hash and len(stored_hash) == 64
    assert post_event(harness, harness.auth(token)) == 200
    assert harness.client.delete(f"/api/v1/admin/keys/{key_id}", headers=ADMIN).status_code == 200
    assert post_event(harness, harness.auth(token)) == 401
    assert harness.client.delete("/api/v1/admin/keys/nope", headers=ADMIN).status_code == 404
    bad = harness.client.post("/api/v1/admin/keys", headers=ADMIN,
                              json={"name": "x", "system": "CRM!", "scopes": ["events"]})
    assert bad.status_code == 400 and "invalid system" in bad.json()["error"]["message"]
    bad_scope = harness.client.post("/api/v1/admin/keys", headers=ADMIN,
                                    json={"name": "x", "system": "crm", "scopes": ["root"]})
    assert bad_scope.status_code == 400 and "invalid scopes" in bad_scope.json()["error"]["message"]
