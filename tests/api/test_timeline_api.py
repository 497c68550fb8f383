"""The timeline of one business object: events from every system, records, the spans that carried
them (by trace and by key attribute), findings and actions, in time order."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.story import TRACE_INV1, TRACE_OPP1, TRACE_TS1, Story, act, bearer, write_story
from tests.conftest import ADMIN_TOKEN, Harness

ADMIN = bearer(ADMIN_TOKEN)


@pytest.fixture
def story(harness: Harness) -> Story:
    return write_story(harness.store)


def timeline(harness: Harness, **params: Any) -> dict[str, Any]:
    response = harness.client.get("/api/v1/timeline", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def kinds(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(item["kind"], item["title"]) for item in body["items"]]


def test_a_timesheet_end_to_end(harness: Harness, story: Story) -> None:
    body = timeline(harness, key="timesheet_id:TS-1")
    # its approval, the invoice that lists it among timesheet_ids (a many key), and the spans of the
    # sync that carried it: one by trace id, its failed call by the timesheet.id attribute too
    assert kinds(body) == [("event", "psa.timesheet.approved"), ("span", "psa-to-billing-sync: sync timesheet"),
                           ("span", "psa-to-billing-sync: POST /api/v1/timesheets"),
                           ("event", "billing.invoice.created"), ("span", "billing-to-erp-sync: sync invoice")]
    approved, sync, call = body["items"][:3]
    assert approved["system"] == "psa" and approved["ids"]["trace_id"] == TRACE_TS1
    assert approved["detail"]["project_id"] == "P-17" and "billable_amount" in approved["detail"]["data"]
    assert sync["start"] == sync["at"] and sync["end"] > sync["start"]
    assert call["status"] == "Error" and call["detail"]["status_message"] == "503 Service Unavailable"
    assert call["ids"]["parent_span_id"] == sync["ids"]["span_id"]
    assert body["counts"] == {"event": 2, "record": 0, "span": 3, "finding": 0, "action": 0}
    assert [item["at"] for item in body["items"]] == sorted(item["at"] for item in body["items"])


def test_a_stuck_timesheet_shows_its_finding_and_the_actions_taken(harness: Harness, story: Story) -> None:
    act(harness.store, story.breach, "acknowledged", "assigned")
    body = timeline(harness, key=":TS-3")  # the value under any key name
    assert [i["kind"] for i in body["items"]] == ["event", "finding", "action", "action"]
    finding = body["items"][1]
    assert finding["ids"]["fingerprint"] == story.breach and finding["status"] == "open"
    assert finding["title"] == "time_to_bill: stuck invoiced" and finding["detail"]["impact"] == "500 EUR"
    assert [i["title"] for i in body["items"][2:]] == ["acknowledged by olga", "assigned by olga"]
    assert body["items"][2]["ids"]["seq"] == "1"


def test_a_deal_with_its_records_from_two_systems(harness: Harness, story: Story) -> None:
    body = timeline(harness, key="opportunity_id:OPP-1")
    records = [i for i in body["items"] if i["kind"] == "record"]
    # the CRM's opportunity (its key) and the ERP project pointing back at it (its opportunity_id field)
    assert sorted(r["title"] for r in records) == ["crm opportunity OPP-1 v1", "erp project PRJ-1 v1"]
    assert {i["kind"] for i in body["items"]} == {"event", "record", "finding"}
    assert next(i for i in body["items"] if i["kind"] == "finding")["ids"]["fingerprint"] == story.mismatch


def test_by_trace_id(harness: Harness, story: Story) -> None:
    body = timeline(harness, trace_id=TRACE_INV1.upper())
    assert kinds(body) == [("event", "billing.invoice.created"), ("span", "billing-to-erp-sync: sync invoice"),
                           ("event", "erp.invoice.posted")]
    assert body["trace_ids"] == [TRACE_INV1.upper()]
    # a finding linked by its trace ids, with the deal's record
    deal = timeline(harness, trace_id=TRACE_OPP1)
    assert {i["kind"] for i in deal["items"]} == {"event", "record", "finding"}


def test_several_selectors_and_the_limit(harness: Harness, story: Story) -> None:
    both = timeline(harness, key=["timesheet_id:TS-1", "timesheet_id:TS-2"])
    assert both["counts"]["event"] == 3
    capped = timeline(harness, key="project_id:P-17", limit=1)
    assert capped["counts"]["event"] == 1 and "event" in capped["truncated"]


def test_nothing_found_is_an_empty_timeline(harness: Harness) -> None:
    body = timeline(harness, key="project_id:P-404")
    assert body["items"] == [] and body["truncated"] == []


@pytest.mark.parametrize(("params", "message"), [
    ({}, "key: give key"),
    ({"trace_id": "xyz"}, "trace_id: 'xyz' is not a W3C trace id"),
    ({"key": "bad name:1"}, "key: 'bad name' is not a key name"),
    ({"key": "project_id:"}, "key: 'project_id:' needs a value"),
    ({"key": ":" + "x" * 300}, "needs a value of 1 to 256"),
    ({"key": [f"k:{i}" for i in range(11)]}, "key: at most 10"),
    ({"key": "project_id:P-17", "limit": 0}, "limit"),
    ({"key": "project_id:P-17", "limit": 10_001}, "limit"),
])
def test_bad_parameters_are_400_naming_them(harness: Harness, params: dict[str, Any], message: str) -> None:
    response = harness.client.get("/api/v1/timeline", params=params, headers=ADMIN)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_hostile_values_are_only_data(harness: Harness, story: Story) -> None:
    for value in ["' OR 1=1 --", "x') UNION ALL SELECT * FROM actions --", "{p0:String}", "\\'; DROP TABLE events"]:
        assert timeline(harness, key=f"project_id:{value}")["items"] == []
        assert timeline(harness, key=f":{value}")["items"] == []
    assert harness.count("SELECT count() FROM events") == 6
