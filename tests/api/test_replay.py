"""Replay over HTTP to a real local receiver: dry run, delivery with idempotency keys, four-eyes,
refusal of a repeated replay, failures, and what is recorded (replays table, audit log)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from reconciler import replay, service
from reconciler.replay import idempotency_key
from reconciler.replay_config import Target
from tests.api.people import People, loaded_rule, people_of, psa_project, write_records
from tests.api.receiver import Receiver, receiver
from tests.conftest import Harness, LiveServer

T = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EVENT_COLUMNS = ["type", "source", "id", "system", "specversion", "time", "subject", "datacontenttype", "dataschema",
                 "trace_id", "span_id", "keys", "data", "extensions", "received_at"]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def event(type_: str, system: str, id_: str, keys: dict[str, str], at: datetime, data: dict[str, Any]) -> list[Any]:
    return [type_, f"/{system}/app", id_, system, "1.0", at, "", "application/json", "", TRACE, "00f067aa0ba902b7",
            keys, json.dumps(data), {}, at]


def write_events(store: Any) -> None:
    rows = [
        event("psa.project.created", "psa", "ev-p5-created", {"project_id": "P-5", "client_id": "C-1"}, T,
              {"project_id": "P-5", "budget": 5000}),
        event("psa.assignment.created", "psa", "ev-p5-assign", {"project_id": "P-5", "assignment_id": "A-1"},
              T + timedelta(hours=1), {"assignment_id": "A-1", "project_id": "P-5"}),
        event("psa.project.created", "psa", "ev-p17-created", {"project_id": "P-17"}, T, {"project_id": "P-17"}),
        event("psa.project.created", "psa", "ev-p6-created", {"project_id": "P-6"}, T, {"project_id": "P-6"}),
        # P-5 in another system than the one that has the record: not replayed
        event("crm.opportunity.won", "crm", "ev-crm", {"project_id": "P-5"}, T, {"x": 1}),
    ]
    store.insert_rows("events", rows, EVENT_COLUMNS)


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with receiver() as got:
        monkeypatch.setenv("SYNCWATCH_REPLAY_ERP_URL", f"{got.url}/inbound/cloudevents")
        monkeypatch.setenv("SYNCWATCH_REPLAY_ERP_TOKEN", "s3cret")
        yield got


@pytest.fixture
def people(harness: Harness) -> People:
    return people_of(harness)


@pytest.fixture
def fps(harness: Harness) -> dict[str, str]:
    """P-5 (impact 5,000 EUR: below the four-eyes amount) and P-17 (50,000 EUR) missing in the ERP."""
    write_records(harness, [psa_project("P-5", "5000"), psa_project("P-17", "50000")])
    write_events(harness.store)
    assert service.run_one(harness.store, loaded_rule(), full=True).ok
    return dict(harness.store.query("SELECT keys['project_id'], fingerprint FROM findings FINAL"))


def audit_tail(harness: Harness) -> tuple[str, str, dict[str, Any], str]:
    entry = harness.app.state.audit.entries()[-1]
    return entry.actor, entry.action, json.loads(entry.parameters), entry.outcome


def test_a_dry_run_is_the_default_and_sends_nothing(people: People, fps: dict[str, str], target: Receiver) -> None:
    fp = fps["P-5"]
    response = people.post("ana", f"/findings/{fp}/replay")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["dry_run"], body["target"], body["source_systems"]) == ("dry_run", True, "erp", ["psa"])
    assert [r["event_id"] for r in body["requests"]] == ["ev-p5-created", "ev-p5-assign"]
    first = body["requests"][0]
    assert (first["method"], first["url"]) == ("POST", f"{target.url}/inbound/cloudevents")
    assert first["headers"]["Authorization"].startswith("<redacted")
    assert first["headers"]["Idempotency-Key"] == idempotency_key(fp, "/psa/app", "ev-p5-created")
    assert first["headers"]["Content-Type"] == "application/cloudevents+json"
    assert first["body"] == {"specversion": "1.0", "id": "ev-p5-created", "source": "/psa/app",
                             "type": "psa.project.created", "time": "2026-03-01T09:00:00Z",
                             "datacontenttype": "application/json",
                             "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
                             "data": {"project_id": "P-5", "budget": 5000}}
    assert "s3cret" not in response.text
    assert target.requests == []
    actor, action, params, outcome = audit_tail(people.harness)
    assert (actor, action, params["dry_run"], params["replay_id"]) == ("ana", "replay", True, body["replay_id"])
    assert outcome.startswith("dry run: 2 request(s) to erp")
    assert people.get("cleo", f"/replays/{body['replay_id']}").json()["state"] == "dry_run"


def test_delivery_with_idempotency_keys_then_a_repeat_is_refused_unless_forced(
        people: People, fps: dict[str, str], target: Receiver) -> None:
    fp = fps["P-5"]
    response = people.post("ana", f"/findings/{fp}/replay", {"dry_run": False})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["message"]) == ("delivered", "delivered 2/2")
    assert [(r["event_id"], r["status_code"]) for r in body["results"]] == [("ev-p5-created", 202),
                                                                            ("ev-p5-assign", 202)]
    assert [r.path for r in target.requests] == ["/inbound/cloudevents"] * 2
    sent = target.requests[0]
    assert sent.headers["idempotency-key"] == idempotency_key(fp, "/psa/app", "ev-p5-created")
    assert sent.headers["authorization"] == "Bearer s3cret"
    assert sent.headers["content-type"] == "application/cloudevents+json"
    assert sent.headers["x-syncwatch-replay-id"] == body["replay_id"]
    assert sent.body["id"] == "ev-p5-created" and sent.body["data"] == {"project_id": "P-5", "budget": 5000}
    assert audit_tail(people.harness)[3] == "delivered 2/2"

    again = people.post("ben", f"/findings/{fp}/replay", {"dry_run": False})
    assert again.status_code == 409
    assert "already replayed and delivered" in again.json()["error"]["message"]
    assert "force" in again.json()["error"]["message"]
    assert audit_tail(people.harness)[3].startswith("409 refused: this finding was already replayed")
    assert len(target.requests) == 2
    assert people.post("ben", f"/findings/{fp}/replay").status_code == 200  # a dry run is always allowed

    forced = people.post("ben", f"/findings/{fp}/replay", {"dry_run": False, "force": True})
    assert forced.status_code == 200 and forced.json()["state"] == "delivered"
    keys = [r.headers["idempotency-key"] for r in target.requests]
    assert keys[:2] == keys[2:] and keys[0] != keys[1]  # the same event keeps its key across replays

    stored = people.get("cleo", "/replays", fingerprint=fp).json()
    assert [r["state"] for r in stored] == ["delivered", "dry_run", "delivered"]


def test_four_eyes_above_the_configured_impact(people: People, fps: dict[str, str], target: Receiver) -> None:
    fp = fps["P-17"]
    response = people.post("ana", f"/findings/{fp}/replay", {"dry_run": False})
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["state"] == "pending_approval" and "above 10000" in pending["message"]
    assert target.requests == []
    replay_id = pending["replay_id"]
    assert [r["replay_id"] for r in people.get("ben", "/replays", state="pending_approval").json()] == [replay_id]

    second = people.post("ben", f"/findings/{fp}/replay", {"dry_run": False, "force": True})
    assert second.status_code == 409 and "awaits approval" in second.json()["error"]["message"]

    self_approval = people.post("ana", f"/replays/{replay_id}/approve")
    assert self_approval.status_code == 403 and "four-eyes" in self_approval.json()["error"]["message"]
    assert audit_tail(people.harness)[1:] == ("replay_approved", {"replay_id": replay_id},
                                              "403 refused: " + self_approval.json()["error"]["message"])
    assert people.post("eve", f"/replays/{replay_id}/approve").status_code == 403  # admin: not an ops user
    assert target.requests == []

    approved = people.post("ben", f"/replays/{replay_id}/approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["state"], body["requested_by"], body["approved_by"]) == ("delivered", "ana", "ben")
    assert [r.body["id"] for r in target.requests] == ["ev-p17-created"]
    assert audit_tail(people.harness)[:2] == ("ben", "replay_approved")
    assert people.post("ben", f"/replays/{replay_id}/approve").status_code == 409  # not pending any more


def test_a_pending_replay_can_be_rejected(people: People, fps: dict[str, str], target: Receiver) -> None:
    replay_id = people.post("ana", f"/findings/{fps['P-17']}/replay", {"dry_run": False}).json()["replay_id"]
    assert people.post("ben", f"/replays/{replay_id}/reject", {}).status_code == 400
    rejected = people.post("ben", f"/replays/{replay_id}/reject", {"reason": "ERP is being migrated"})
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    assert people.post("cleo", f"/replays/{replay_id}/approve").status_code == 403  # auditors do not act
    refused = people.post("ben", f"/replays/{replay_id}/approve")
    assert refused.status_code == 409 and "is rejected" in refused.json()["error"]["message"]
    assert target.requests == []
    # rejecting frees the finding for a new request
    assert people.post("ana", f"/findings/{fps['P-17']}/replay", {"dry_run": False}).status_code == 202


def test_an_approval_for_an_endpoint_that_changed_is_refused(people: People, fps: dict[str, str], target: Receiver,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    replay_id = people.post("ana", f"/findings/{fps['P-17']}/replay", {"dry_run": False}).json()["replay_id"]
    monkeypatch.setenv("SYNCWATCH_REPLAY_ERP_URL", "http://127.0.0.1:9/elsewhere")
    refused = people.post("ben", f"/replays/{replay_id}/approve")
    assert refused.status_code == 409 and "changed" in refused.json()["error"]["message"]


def test_a_failing_receiver_stops_the_replay_and_the_failure_is_recorded(
        people: People, fps: dict[str, str], target: Receiver) -> None:
    target.statuses = [500]
    response = people.post("ana", f"/findings/{fps['P-5']}/replay", {"dry_run": False})
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "failed" and body["message"].startswith("failed: delivered 0/2; event ev-p5-created")
    assert [(r["event_id"], r["status_code"]) for r in body["results"]] == [("ev-p5-created", 500)]
    assert len(target.requests) == 1  # the second event depends on the first: not sent
    assert audit_tail(people.harness)[3] == body["message"]
    # a failed replay is not "already delivered": it may be tried again without force
    assert people.post("ana", f"/findings/{fps['P-5']}/replay", {"dry_run": False}).json()["state"] == "delivered"


def test_an_unreachable_endpoint_fails_with_the_error(people: People, fps: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("SYNCWATCH_REPLAY_ERP_URL", f"http://127.0.0.1:{free_port()}/in")
    body = people.post("ana", f"/findings/{fps['P-5']}/replay", {"dry_run": False}).json()
    assert body["state"] == "failed" and body["results"][0]["status_code"] is None
    assert "ConnectError" in body["results"][0]["error"]


@pytest.mark.parametrize(("setup", "body", "status", "message"), [
    ("no_endpoint", {}, 409, "no replay endpoint is configured for 'erp'"),
    ("resolved", {}, 409, "is resolved"),
    (None, {"target": "hris"}, 400, "not a side of this finding"),
    (None, {"dry_run": "maybe"}, 400, "dry_run"),
    (None, {"target": "erp", "extra": 1}, 400, "extra"),
])
def test_refused_replays(people: People, fps: dict[str, str], target: Receiver, monkeypatch: pytest.MonkeyPatch,
                         setup: str | None, body: dict[str, Any], status: int, message: str) -> None:
    if setup == "no_endpoint":
        monkeypatch.delenv("SYNCWATCH_REPLAY_ERP_URL")
    if setup == "resolved":
        people.post("ana", f"/findings/{fps['P-5']}/resolve", {"reason": "fixed"})
    response = people.post("ana", f"/findings/{fps['P-5']}/replay", body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert target.requests == []


def test_nothing_to_replay_is_409(people: People, harness: Harness, target: Receiver) -> None:
    write_records(harness, [psa_project("P-404", "100")])
    assert service.run_one(harness.store, loaded_rule(), full=True).ok
    [(fp,)] = harness.store.query("SELECT fingerprint FROM findings FINAL")
    response = people.post("ana", f"/findings/{fp}/replay")
    assert response.status_code == 409 and "nothing to replay" in response.json()["error"]["message"]


def test_unknown_finding_and_replay_are_404(people: People) -> None:
    assert people.post("ana", f"/findings/{'ab' * 32}/replay").status_code == 404
    assert people.post("ben", f"/replays/{'0' * 20}/approve").status_code == 404
    assert people.get("ben", f"/replays/{'0' * 20}").status_code == 404
    assert people.get("ben", "/replays/not-an-id").status_code == 400
    assert people.get("ben", "/replays", state="lost").status_code == 400


def test_bulk_replay_reports_each_finding(people: People, fps: dict[str, str], target: Receiver) -> None:
    response = people.post("ana", "/findings/bulk/replay", {"filter": {"kind": ["missing_right"]}, "dry_run": False})
    assert response.status_code == 200, response.text
    results = {r["fingerprint"]: r for r in response.json()["results"]}
    assert (results[fps["P-5"]]["status_code"], results[fps["P-5"]]["status"]) == (200, "delivered")
    assert (results[fps["P-17"]]["status_code"], results[fps["P-17"]]["status"]) == (202, "pending_approval")
    assert all(r["replay_id"] for r in results.values())
    assert [r.body["id"] for r in target.requests] == ["ev-p5-created", "ev-p5-assign"]


def test_delivery_does_not_block_the_api(live_server: LiveServer, target: Receiver) -> None:
    """While a replay waits on a slow receiver, the same server answers other requests."""
    harness_like = live_server
    write_records(harness_like, [psa_project("P-5", "5000")])  # type: ignore[arg-type]
    write_events(live_server.store)
    assert service.run_one(live_server.store, loaded_rule(), full=True).ok
    [(fp,)] = live_server.store.query("SELECT fingerprint FROM findings FINAL WHERE keys['project_id'] = 'P-5'")
    token = live_server.app.state.users.create("ana", "ops")[1]
    auth = {"Authorization": f"Bearer {token}"}
    target.hold = threading.Event()
    outcome: list[httpx.Response] = []
    replaying = threading.Thread(target=lambda: outcome.append(httpx.post(
        f"{live_server.base_url}/api/v1/findings/{fp}/replay", json={"dry_run": False}, headers=auth, timeout=60)))
    replaying.start()
    assert target.arrived.wait(30)
    meanwhile = httpx.get(f"{live_server.base_url}/api/v1/me", headers=auth, timeout=10)
    assert meanwhile.status_code == 200 and not outcome  # answered while the replay still waits
    target.hold.set()
    replaying.join(30)
    assert outcome[0].json()["state"] == "delivered"


def test_each_request_has_a_timeout() -> None:
    with receiver() as slow:
        slow.hold = threading.Event()  # never released before the client gives up
        request = replay.PlannedRequest("e1", "/psa/app", "psa.project.created", "t", "POST", slow.url, {}, {}, "k1")
        target = Target(url=slow.url, timeout=timedelta(milliseconds=300))
        [result] = replay.deliver([request], target)
        slow.hold.set()
    assert result.status_code is None and "Timeout" in result.error


@pytest.mark.parametrize(("kind", "field", "systems", "requested", "expected"), [
    ("missing_right", "", ["psa", "erp"], None, ("erp", ["psa"])),
    ("missing_left", "", ["psa", "erp"], None, ("psa", ["erp"])),
    ("mismatch", "budget", ["psa", "erp"], None, ("erp", ["psa"])),
    ("mismatch", "budget", ["psa", "erp"], "psa", ("psa", ["erp"])),
    ("aggregate_mismatch", "sum(hours)", ["time", "billing"], None, ("billing", ["time"])),
    ("stuck", "project_created", ["crm"], None, ("psa", ["crm"])),
    ("sla_breach", "client_in_erp", ["crm", "erp", "psa"], None, ("erp", ["crm", "psa"])),
    ("failed_step", "customer_sync_failed", ["crm", "integration"], "erp", ("erp", ["crm", "integration"])),
])
def test_route_picks_the_target_and_the_sources(kind: str, field: str, systems: list[str], requested: str | None,
                                                expected: tuple[str, list[str]]) -> None:
    workflow = loaded_rule("quote_to_project").rule
    rule = workflow if kind in ("stuck", "sla_breach", "failed_step") else None
    assert replay.route(kind, field, systems, rule, requested) == expected


def test_route_needs_a_target_for_a_failed_step() -> None:
    with pytest.raises(replay.ReplayRefusedError, match="give target"):
        replay.route("failed_step", "customer_sync_failed", ["crm"], loaded_rule("quote_to_project").rule, None)


def test_events_match_the_primary_key_and_every_other_key_they_carry(store: Any) -> None:
    store.insert_rows("events", [
        event("time.entry.submitted", "time", "a", {"project_id": "P-5"}, T, {}),
        event("time.entry.submitted", "time", "b", {"project_id": "P-5", "period": "2026-02"}, T, {}),
        event("time.entry.submitted", "time", "c", {"project_id": "P-5", "period": "2026-03"}, T, {}),
        event("time.entry.submitted", "time", "d", {"period": "2026-02"}, T, {}),
        event("time.entry.submitted", "time", "e", {"project_id": "P-6"}, T, {}),
    ], EVENT_COLUMNS)
    sql, params = replay.events_sql(["time"], {"project_id": "P-5", "period": "2026-02"}, "project_id", [], 10)
    assert [row[2] for row in store.query(sql, params)] == ["a", "b"]
    only_entries = Target(url="http://x", event_types=["time.entry.*"]).like_patterns()
    assert len(store.query(*replay.events_sql(["time"], {"project_id": "P-5"}, "project_id", only_entries, 10))) == 3
    none = Target(url="http://x", event_types=["time_entry*"]).like_patterns()  # '_' is literal, not any character
    assert store.query(*replay.events_sql(["time"], {"project_id": "P-5"}, "project_id", none, 10)) == []


def test_a_delivery_cut_short_blocks_new_replays_only_for_a_while() -> None:
    from reconciler.replay_store import STALE_DELIVERY, ReplayRecord, repeat_refusal

    now = datetime.now(UTC)
    stuck = ReplayRecord("r1", "fp", "rule", "erp", "http://x", ["psa"], "delivering", False, False, "ana", "u1",
                         "ops", now, "", "", None, 0, "EUR", "[]", "[]", "", now)  # type: ignore[arg-type]
    assert "is being delivered" in repeat_refusal([stuck], force=False, now=now)
    assert repeat_refusal([stuck], force=False, now=now + STALE_DELIVERY) == ""
