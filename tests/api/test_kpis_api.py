"""KPI endpoints on the seeded story: exact values, trend buckets, breakdowns, period-over-period
tiles, revenue at risk, and every bad parameter answered 400/404 naming it."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler import findings
from tests.api.story import EVENT_COLUMNS, Story, bearer, event, write_story
from tests.conftest import ADMIN_TOKEN, REPO, Harness

ADMIN = bearer(ADMIN_TOKEN)
DAY = timedelta(days=1)


@pytest.fixture
def story(harness: Harness) -> Story:
    return write_story(harness.store)


def get(harness: Harness, path: str, **params: Any) -> Any:
    response = harness.client.get(path, params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def iso(moment: datetime) -> str:
    return moment.isoformat()


def test_catalogue_lists_each_kpi_with_stats_and_dimensions(harness: Harness) -> None:
    kpis = {k["name"]: k for k in get(harness, "/api/v1/kpis")}
    assert set(kpis) == {"time_to_bill_hours", "project_activation_time", "invoice_timeliness",
                         "quote_to_project_completion", "integration_failure_rate", "invoice_accuracy",
                         "straight_through_billing", "straight_through_project_setup",
                         "project_setup_sla_compliance", "time_to_first_revenue"}
    ttb = kpis["time_to_bill_hours"]
    assert (ttb["metric"], ttb["workflow"], ttb["stats"], ttb["unit"], ttb["better"]) == (
        "duration", "time_to_bill", ["p50", "p90"], "hours", "lower")
    assert ttb["dimensions"] == ["project_id", "person_id"]
    assert kpis["invoice_timeliness"]["stats"] == ["sla_compliance"]
    assert kpis["invoice_timeliness"]["better"] == "higher"
    assert kpis["integration_failure_rate"]["better"] is None


def test_values_trend_and_breakdown(harness: Harness, story: Story) -> None:
    body = get(harness, "/api/v1/kpis/time_to_bill_hours", bucket="day", dimension="project_id")
    # TS-1: approved -> invoiced 4 h; TS-2: 3 h; TS-3 never invoiced (not measured)
    assert {p["stat"]: (p["value"], p["count"]) for p in body["values"]} == {"p50": (3.5, 2), "p90": (3.9, 2)}
    day = (story.now - 5 * DAY).strftime("%Y-%m-%dT00:00:00Z")
    assert [(p["stat"], p["bucket"], p["value"]) for p in body["trend"]] == [("p50", day, 3.5), ("p90", day, 3.9)]
    assert {(p["stat"], p["dimension"]) for p in body["breakdown"]} == {("p50", "P-17"), ("p90", "P-17")}
    assert (body["bucket"], body["dimension"]) == ("day", "project_id")


def test_without_bucket_or_dimension_only_the_overall_values(harness: Harness, story: Story) -> None:
    body = get(harness, "/api/v1/kpis/invoice_timeliness")
    assert body["trend"] == [] and body["breakdown"] == []
    [point] = body["values"]
    assert point["stat"] == "sla_compliance" and point["count"] > 0


def test_ratio_kpi_by_integration(harness: Harness, story: Story) -> None:
    body = get(harness, "/api/v1/kpis/integration_failure_rate", dimension="ServiceName",
               start=iso(story.now - 30 * DAY), end=iso(story.now))
    by = {p["dimension"]: p["value"] for p in body["breakdown"]}
    assert by == {"psa-to-billing-sync": 0.5, "billing-to-erp-sync": 0.0, "crm-to-erp-sync": 0.0}
    assert body["values"][0]["value"] == 0.25


def test_summary_compares_with_the_previous_period(harness: Harness, story: Story) -> None:
    # an earlier timesheet, in the previous week: approved -> invoiced after 10 h
    earlier = story.now - 10 * DAY
    harness.store.insert_rows("events", [
        event("psa.timesheet.approved", earlier, {"timesheet_id": "TS-9", "project_id": "P-17"},
              {"billable_amount": 100.0, "currency": "EUR"}),
        event("billing.invoice.created", earlier + timedelta(hours=10),
              {"invoice_id": "INV-9", "project_id": "P-17", "timesheet_ids": ["TS-9"]}, {}),
    ], EVENT_COLUMNS)
    body = get(harness, "/api/v1/kpis/summary", start=iso(story.now - 7 * DAY), end=iso(story.now))
    assert body["previous_end"] == body["start"].replace("+00:00", "Z")
    tile = next(t for t in body["tiles"] if t["name"] == "time_to_bill_hours")
    assert (tile["stat"], tile["value"], tile["previous"], tile["count"], tile["previous_count"]) == (
        "p50", 3.5, 10.0, 2, 1)
    assert tile["change"] == -6.5 and tile["change_ratio"] == pytest.approx(-0.65)
    activation = next(t for t in body["tiles"] if t["name"] == "project_activation_time")
    assert activation["value"] is None and activation["change"] is None


def test_revenue_at_risk_sums_active_findings_per_currency(harness: Harness, story: Story) -> None:
    # open: the 1,000 EUR contract mismatch and the 500 EUR stuck timesheet
    assert get(harness, "/api/v1/kpis/summary")["revenue_at_risk"] == [
        {"currency": "EUR", "amount": 1500.0, "findings": 2}]
    findings.acknowledge(harness.store, story.breach)  # acknowledged is still at risk
    assert get(harness, "/api/v1/kpis/summary")["revenue_at_risk"][0]["amount"] == 1500.0
    findings.resolve(harness.store, story.mismatch, "budget corrected")
    assert get(harness, "/api/v1/kpis/summary")["revenue_at_risk"] == [
        {"currency": "EUR", "amount": 500.0, "findings": 1}]


# (path, params, status, what the message says): each bad parameter is named
BAD_REQUESTS = [
    ("/api/v1/kpis/no_such_kpi", {}, 404, "no KPI named 'no_such_kpi'"),
    ("/api/v1/kpis/time_to_bill_hours", {"dimension": "region"}, 400, "dimension: 'region' is not a dimension"),
    ("/api/v1/kpis/time_to_bill_hours", {"bucket": "year"}, 400, "bucket"),
    ("/api/v1/kpis/time_to_bill_hours", {"start": "2026-02-01", "end": "2026-01-01"}, 400, "start: must be before"),
    ("/api/v1/kpis/time_to_bill_hours", {"start": "yesterday"}, 400, "start: 'yesterday' is not an ISO 8601"),
    ("/api/v1/kpis/time_to_bill_hours", {"end": "2026-13-01"}, 400, "end:"),
    ("/api/v1/kpis/time_to_bill_hours", {"start": "2000-01-01", "end": "2026-01-01"}, 400, "start: the range"),
    ("/api/v1/kpis/summary", {"start": "2026-01-01T00:00:00+01:00", "end": "2025-12-31T23:00:00Z"}, 400, "start"),
    ("/api/v1/kpis/summary", {"end": "0001-01-02"}, 400, "end: '0001-01-02' is outside 1970..2199"),
    ("/api/v1/kpis/time_to_bill_hours", {"start": "9999-12-31T23:59:59"}, 400, "start: '9999-12-31T23:59:59' is"),
]


def test_bad_parameters_are_named(harness: Harness) -> None:
    for path, params, status, names in BAD_REQUESTS:
        response = harness.client.get(path, params=params, headers=ADMIN)
        assert response.status_code == status, (path, params)
        assert names in response.json()["error"]["message"], (path, params)


def test_offsets_in_times_are_honoured(harness: Harness) -> None:
    body = get(harness, "/api/v1/kpis/time_to_bill_hours", start="2026-01-01T01:00:00+01:00",
               end="2026-01-02T00:00:00Z")
    assert body["start"] == "2026-01-01T00:00:00Z" and body["values"] == []


def test_a_rule_pack_that_does_not_load_is_503_with_its_problems(harness: Harness, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from collector.app import create_app

    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules_dir)
    (rules_dir / "packs" / "broken.yaml").write_text("name: broken\nkind: kpi\nratio: {}\n")
    settings = harness.app.state.settings.model_copy(update={"rules_dir": rules_dir})
    with TestClient(create_app(settings, store=harness.store)) as client:
        response = client.get("/api/v1/kpis", headers=ADMIN)
    assert response.status_code == 503 and "broken.yaml" in response.json()["error"]["message"]
