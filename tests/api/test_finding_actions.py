"""Actions on findings over HTTP: side effects on the finding, audit entries, 404/409/400/503, bulk outcomes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler import findings, rule_locks
from tests.api.people import RULE, People, erp_project, people_of, project_findings, psa_project, write_records
from tests.api.seed import Seed, seed
from tests.conftest import Harness


@pytest.fixture
def people(harness: Harness) -> People:
    return people_of(harness)


@pytest.fixture
def projects(harness: Harness) -> dict[str, str]:
    return project_findings(harness)


def stored(harness: Harness, fp: str) -> dict[str, Any]:
    found = findings.get(harness.store, fp)
    assert found is not None
    return found


def last_audit(harness: Harness) -> tuple[str, str, str, str, dict[str, Any], str]:
    import json

    entry = harness.app.state.audit.entries()[-1]
    return (entry.actor, entry.role, entry.action, entry.finding_fingerprint, json.loads(entry.parameters),
            entry.outcome)


def test_acknowledge_then_again_is_409_and_both_are_audited(people: People, projects: dict[str, str]) -> None:
    fp = projects["P-17"]
    response = people.post("ana", f"/findings/{fp}/acknowledge")
    assert response.status_code == 200
    body = response.json()
    assert (body["action"], body["outcome"], body["status"], body["finding"]["status"]) == (
        "acknowledged", "ok", "acknowledged", "acknowledged")
    assert stored(people.harness, fp)["acknowledged_at"] is not None
    assert last_audit(people.harness) == ("ana", "ops", "acknowledged", fp, {}, "ok")
    assert body["audit_seq"] == people.harness.app.state.audit.entries()[-1].seq

    again = people.post("ben", f"/findings/{fp}/acknowledge")
    assert again.status_code == 409
    assert again.json()["error"] == {"code": "conflict", "message": f"cannot mark finding {fp} acknowledged: it is "
                                                                    "acknowledged (allowed from open, silenced)"}
    actor, role, action, _, _, outcome = last_audit(people.harness)
    assert (actor, role, action) == ("ben", "ops", "acknowledged") and outcome.startswith("409 refused: cannot mark")
    assert people.harness.app.state.audit.verify().ok


@pytest.mark.parametrize(("body", "assignee"), [({"assignee": "ana@firm.example"}, "ana@firm.example"),
                                                ({"team": "erp-integration"}, "team:erp-integration")])
def test_assign_to_a_person_or_a_team(people: People, projects: dict[str, str], body: dict[str, str],
                                      assignee: str) -> None:
    fp = projects["P-18"]
    response = people.post("ana", f"/findings/{fp}/assign", body)
    assert response.status_code == 200 and response.json()["finding"]["assignee"] == assignee
    assert stored(people.harness, fp)["assignee"] == assignee
    assert last_audit(people.harness) == ("ana", "ops", "assigned", fp, {"assignee": assignee}, "ok")
    assert people.get("ana", "/findings", assignee=assignee).json()["total"] == 1


def test_annotate_adds_a_note_and_changes_nothing_else(people: People, projects: dict[str, str]) -> None:
    fp = projects["P-18"]
    before = stored(people.harness, fp)
    response = people.post("ana", f"/findings/{fp}/annotate", {"note": "  waiting for finance  "})
    assert response.status_code == 200 and response.json()["status"] == "open"
    assert stored(people.harness, fp)["updated_at"] == before["updated_at"]
    assert last_audit(people.harness) == ("ana", "ops", "annotated", fp, {"note": "waiting for finance"}, "ok")
    lines = people.post("ana", f"/findings/{fp}/annotate", {"note": "step 1\tdone\r\nstep 2"})
    assert lines.status_code == 200  # tabs and line breaks are text


@pytest.mark.parametrize("who", ["ana", "eve"])  # ops and admin hold findings:silence
def test_silence_until(people: People, projects: dict[str, str], who: str) -> None:
    fp = projects["P-17"]
    until = datetime.now(UTC) + timedelta(days=2)
    response = people.post(who, f"/findings/{fp}/silence", {"until": until.isoformat(), "reason": "ERP freeze"})
    assert response.status_code == 200 and response.json()["status"] == "silenced"
    silenced = stored(people.harness, fp)["silenced_until"]
    assert abs(silenced.replace(tzinfo=UTC) - until) < timedelta(milliseconds=2)
    _, _, action, _, params, outcome = last_audit(people.harness)
    assert (action, params["reason"], outcome) == ("silenced", "ERP freeze", "ok")
    assert people.get("ana", "/findings", status="silenced").json()["total"] == 1


def test_resolve_with_a_reason_then_reopen(people: People, projects: dict[str, str]) -> None:
    fp = projects["P-18"]
    response = people.post("ana", f"/findings/{fp}/resolve", {"reason": "ERP budget corrected"})
    assert response.status_code == 200
    finding = response.json()["finding"]
    assert (finding["status"], finding["resolution"], finding["resolution_reason"]) == (
        "resolved", "manual", "ERP budget corrected")
    refused = people.post("ana", f"/findings/{fp}/acknowledge")
    assert refused.status_code == 409 and "it is resolved" in refused.json()["error"]["message"]
    assert people.post("ana", f"/findings/{fp}/resolve", {"reason": "twice"}).status_code == 409
    reopened = people.post("ben", f"/findings/{fp}/reopen")
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"
    assert reopened.json()["finding"]["reopened_count"] == 1


def test_recheck_resolves_a_fixed_finding_and_touches_no_other_key(people: People, projects: dict[str, str]) -> None:
    harness = people.harness
    other = stored(harness, projects["P-18"])
    runs_before = harness.store.query("SELECT count() FROM rule_runs")[0][0]

    still = people.post("ana", f"/findings/{projects['P-17']}/recheck")
    assert still.status_code == 200 and (still.json()["outcome"], still.json()["status"]) == ("updated", "open")

    write_records(harness, [erp_project("P-17"), erp_project("P-18", "20000", version=2)])  # both fixed in the ERP
    fixed = people.post("ana", f"/findings/{projects['P-17']}/recheck")
    assert fixed.status_code == 200
    assert (fixed.json()["outcome"], fixed.json()["status"]) == ("resolved", "resolved")
    assert fixed.json()["finding"]["resolution"] == "auto"
    _, _, action, _, params, outcome = last_audit(harness)
    assert (action, params["result"], outcome) == ("rechecked", "resolved", "ok")

    # P-18 was fixed too, but only P-17 was re-checked: P-18 waits for the next run
    assert stored(harness, projects["P-18"])["updated_at"] == other["updated_at"]
    # a re-check is not a rule run: the next incremental run's watermark did not move
    assert harness.store.query("SELECT count() FROM rule_runs")[0][0] == runs_before

    later = people.post("ana", "/findings/bulk/recheck", {"fingerprints": [projects["P-18"]]})
    assert later.json()["results"][0]["message"] == "resolved"


def test_recheck_of_a_finding_whose_rule_is_gone_is_409(people: People, harness: Harness) -> None:
    fps = seed(harness.store, [Seed("retired_rule", {"project_id": "P-1"})])
    response = people.post("ana", f"/findings/{fps['P-1']}/recheck")
    assert response.status_code == 409 and "retired_rule" in response.json()["error"]["message"]


ACTIONS = [("acknowledge", None), ("assign", {"team": "x"}), ("annotate", {"note": "n"}),
           ("silence", {"until": "2999-01-01T00:00:00Z"}), ("resolve", {"reason": "r"}), ("reopen", None),
           ("recheck", None)]


@pytest.mark.parametrize(("action", "body"), ACTIONS)
def test_unknown_fingerprint_is_404_and_a_malformed_one_400(people: People, action: str,
                                                             body: dict[str, str] | None) -> None:
    if action == "silence":
        body = {"until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    missing = people.post("ana", f"/findings/{'ab' * 32}/{action}", body)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    malformed = people.post("ana", f"/findings/XYZ/{action}", body)
    assert malformed.status_code == 400 and "fingerprint" in malformed.json()["error"]["message"]


@pytest.mark.parametrize(("action", "body", "field"), [
    ("assign", {}, "exactly one of assignee"),
    ("assign", {"assignee": "a", "team": "b"}, "exactly one of assignee"),
    ("assign", {"assignee": ""}, "assignee"),
    ("assign", {"assignee": "line\nbreak"}, "assignee"),
    ("annotate", {}, "note"),
    ("annotate", {"note": "   "}, "note"),
    ("annotate", {"note": "x" * 4001}, "note"),
    ("annotate", {"note": "a\u0000b"}, "note"),
    ("annotate", {"note": "\u001b[31mred"}, "note"),
    ("resolve", {"reason": "bell\u0007"}, "reason"),
    ("assign", {"assignee": "team:billing"}, "give it as team"),
    ("assign", {"assignee": "TEAM:billing"}, "give it as team"),
    ("silence", {}, "until"),
    ("silence", {"until": "2001-01-01T00:00:00Z"}, "until"),
    ("silence", {"until": "2999-01-01T00:00:00Z"}, "until"),
    ("silence", {"until": "tomorrow"}, "until"),
    ("resolve", {}, "reason"),
    ("resolve", {"reason": ""}, "reason"),
    ("acknowledge", {"please": True}, "please"),
    ("resolve", [1, 2], "body"),
])
def test_bad_bodies_are_400_naming_the_field(people: People, projects: dict[str, str], action: str, body: Any,
                                             field: str) -> None:
    response = people.post("ana", f"/findings/{projects['P-17']}/{action}", body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize(("content", "why"), [
    (b'{"note": "caf\xe9"}', "the body is not UTF-8 text (byte 13, counting from 0)"),
    (b"[" * 10_000 + b"]" * 10_000, "the JSON is nested too deeply"),
])
def test_an_unparsable_body_says_why(people: People, projects: dict[str, str], content: bytes, why: str) -> None:
    response = people.harness.client.post(f"/api/v1/findings/{projects['P-17']}/annotate", content=content,
                                          headers={**people.as_("ana"), "Content-Type": "application/json"})
    assert response.status_code == 400 and why in response.json()["error"]["message"], response.text


def test_a_body_that_is_not_json_is_400(people: People, projects: dict[str, str]) -> None:
    response = people.harness.client.post(f"/api/v1/findings/{projects['P-17']}/resolve", content=b"{not json",
                                          headers={**people.as_("ana"), "Content-Type": "application/json"})
    assert response.status_code == 400


def test_an_action_while_a_run_holds_the_rule_is_503_with_retry_after(
        people: People, projects: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(findings, "ACTION_LOCK_TIMEOUT_SECONDS", 0.05)
    lock = rule_locks.lock_for(people.harness.store, RULE)
    held, release = threading.Event(), threading.Event()

    def run_in_progress() -> None:
        with lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=run_in_progress)
    holder.start()
    held.wait(30)
    try:
        response = people.post("ana", f"/findings/{projects['P-17']}/acknowledge")
    finally:
        release.set()
        holder.join(30)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "rule run" in response.json()["error"]["message"]


# -- bulk ---------------------------------------------------------------------------------------------------

def test_bulk_by_fingerprints_reports_each_outcome(people: People, projects: dict[str, str]) -> None:
    fp17, fp18 = projects["P-17"], projects["P-18"]
    people.post("ana", f"/findings/{fp18}/acknowledge")
    unknown = "cd" * 32
    response = people.post("ana", "/findings/bulk/acknowledge", {"fingerprints": [fp17, fp18, unknown, fp17]})
    assert response.status_code == 200
    body = response.json()
    assert (body["action"], body["selected"], body["succeeded"], body["failed"]) == ("acknowledged", 3, 1, 2)
    assert [(r["fingerprint"], r["status_code"], r["status"]) for r in body["results"]] == [
        (fp17, 200, "acknowledged"), (fp18, 409, None), (unknown, 404, None)]
    entries = [e for e in people.harness.app.state.audit.entries() if body["batch"] in e.parameters]
    assert [(e.finding_fingerprint, e.outcome[:3]) for e in entries] == [(fp17, "ok"), (fp18, "409")]


def test_bulk_by_filter(people: People, projects: dict[str, str]) -> None:
    response = people.post("ben", "/findings/bulk/resolve",
                           {"filter": {"rule": [RULE], "kind": ["mismatch"]}, "reason": "budgets aligned"})
    assert response.status_code == 200
    assert [(r["fingerprint"], r["status"]) for r in response.json()["results"]] == [(projects["P-18"], "resolved")]
    assert stored(people.harness, projects["P-17"])["status"] == "open"


@pytest.mark.parametrize(("action", "body"), [
    ("assign", {"team": "billing"}), ("annotate", {"note": "seen"}), ("reopen", {}),
    ("silence", {"until": "SOON"}), ("acknowledge", {}), ("resolve", {"reason": "done"}), ("recheck", {})])
def test_every_bulk_action(people: People, projects: dict[str, str], action: str, body: dict[str, str]) -> None:
    if action == "reopen":
        people.post("ana", f"/findings/{projects['P-17']}/resolve", {"reason": "first"})
    if action == "silence":
        body = {"until": (datetime.now(UTC) + timedelta(hours=3)).isoformat()}
    response = people.post("ana", f"/findings/bulk/{action}", {**body, "fingerprints": [projects["P-17"]]})
    assert response.status_code == 200, response.text
    assert response.json()["succeeded"] == 1, response.json()


@pytest.mark.parametrize(("body", "message"), [
    ({"reason": "r"}, "exactly one of fingerprints"),
    ({"fingerprints": [], "reason": "r"}, "fingerprints"),
    ({"fingerprints": ["ab" * 32], "filter": {}, "reason": "r"}, "exactly one of fingerprints"),
    ({"fingerprints": ["nope"], "reason": "r"}, "fingerprints.0"),
    ({"filter": {"status": ["gone"]}, "reason": "r"}, "filter.status"),
    ({"fingerprints": ["ab" * 32]}, "reason"),
    ({"fingerprints": ["ab" * 32] * 501, "reason": "r"}, "fingerprints"),
])
def test_bad_bulk_bodies_are_400(people: People, body: dict[str, Any], message: str) -> None:
    response = people.post("ana", "/findings/bulk/resolve", body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_a_bulk_filter_matching_too_many_is_refused(people: People, harness: Harness) -> None:
    seed(harness.store, [Seed("wide", {"id": f"K-{i}"}) for i in range(501)])
    response = people.post("ana", "/findings/bulk/acknowledge", {"filter": {"rule": ["wide"]}})
    assert response.status_code == 400 and "narrow the filter" in response.json()["error"]["message"]
    assert not [e for e in harness.app.state.audit.entries() if e.action == "acknowledged"]


def test_recheck_of_psa_project_keys_written_after_the_run(people: People, projects: dict[str, str]) -> None:
    # a new PSA project since the last run is not a finding yet: a re-check of P-17 does not create it
    write_records(people.harness, [psa_project("P-99")])
    people.post("ana", f"/findings/{projects['P-17']}/recheck")
    assert "P-99" not in {i["keys"]["project_id"] for i in people.get("ana", "/findings").json()["items"]}


def test_recheck_of_a_workflow_finding(people: People, harness: Harness) -> None:
    from reconciler import service
    from tests.api.people import loaded_rule
    from tests.api.test_replay import EVENT_COLUMNS, event

    won = datetime.now(UTC) - timedelta(days=5)
    harness.store.insert_rows("events", [event("crm.opportunity.won", "crm", "won-1",
                                               {"opportunity_id": "OPP-1", "client_id": "C-1"}, won,
                                               {"opportunity_id": "OPP-1", "amount": 1000, "currency": "EUR"})],
                              EVENT_COLUMNS)
    assert service.run_one(harness.store, loaded_rule("quote_to_project"), full=True).ok
    stuck = harness.store.query("SELECT fingerprint FROM findings FINAL WHERE kind = 'stuck'")
    assert stuck
    response = people.post("ana", f"/findings/{stuck[0][0]}/recheck")
    assert response.status_code == 200 and response.json()["outcome"] == "updated"
    # the customer arrives after the run: a re-check folds it into the rule's kept progress first
    customer = event("erp.customer.created", "erp", "customer-1", {"client_id": "C-1"}, won + timedelta(hours=2),
                     {"client_id": "C-1"})
    customer[-1] = datetime.now(UTC)  # received now
    harness.store.insert_rows("events", [customer], EVENT_COLUMNS)
    response = people.post("ana", f"/findings/{stuck[0][0]}/recheck")
    assert response.status_code == 200 and response.json()["outcome"] == "resolved"
