"""Rule health (statuses from real runs and recorded failures) and integration health per system."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.runner import RUN_COLUMNS
from tests.api.story import Story, bearer, write_story
from tests.conftest import ADMIN_TOKEN, Harness

ADMIN = bearer(ADMIN_TOKEN)


@pytest.fixture
def story(harness: Harness) -> Story:
    return write_story(harness.store)


def get(harness: Harness, path: str, **params: Any) -> Any:
    response = harness.client.get(path, params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def record_run(harness: Harness, rule: str, started: datetime, error: str = "", opened: int = 0) -> None:
    row = [uuid.uuid4().hex, rule, "v", started, 12.5, 1, None, opened, 0, 0, 0, error]
    harness.store.insert_rows("rule_runs", [row], RUN_COLUMNS)


def test_rule_statuses(harness: Harness, story: Story) -> None:
    now = datetime.now(UTC)
    record_run(harness, "hr_vs_psa_cost_rates", now - timedelta(hours=10))  # every 1h: stale after 3h
    record_run(harness, "billing_vs_erp_invoices", now - timedelta(minutes=30), opened=2)
    record_run(harness, "billing_vs_erp_invoices", now - timedelta(minutes=5), error="StoreError: timeout")
    rules = {r["name"]: r for r in get(harness, "/api/v1/rules")}
    assert rules["time_to_bill"]["status"] == "ok" and rules["crm_vs_erp_contract_value"]["status"] == "ok"
    assert rules["hr_vs_psa_cost_rates"]["status"] == "stale"
    assert rules["psa_vs_erp_projects"]["status"] == "never_run" and rules["psa_vs_erp_projects"]["last_run"] is None
    assert rules["time_to_bill_hours"]["status"] == "not_scheduled"
    assert rules["time_to_bill_hours"]["schedule"] == "on request (not scheduled)"
    failing = rules["billing_vs_erp_invoices"]
    assert failing["status"] == "failing" and failing["last_error"] == "StoreError: timeout"
    assert failing["last_success_at"] is not None and failing["last_error_at"] > failing["last_success_at"]
    assert (failing["runs_24h"], failing["failures_24h"], failing["opened_24h"]) == (2, 1, 2)


def test_a_rule_with_its_last_run_and_findings(harness: Harness, story: Story) -> None:
    rule = next(r for r in get(harness, "/api/v1/rules") if r["name"] == "time_to_bill")
    assert (rule["kind"], rule["severity"], rule["schedule"]) == ("workflow", "high", "every 900s")
    assert rule["last_run"]["opened"] == 1 and rule["last_run"]["full"] is True
    assert rule["last_run"]["rule_version"] == rule["version"]
    assert rule["open_findings"] == 1 and rule["opened_24h"] == 1 and rule["p95_duration_ms_24h"] > 0


def test_the_schedule_override_shows_and_counts(harness: Harness, story: Story) -> None:
    harness.app.state.settings = harness.app.state.settings.model_copy(update={"reconcile_every": "20s"})
    record_run(harness, "psa_vs_erp_projects", datetime.now(UTC) - timedelta(minutes=5))
    rules = {r["name"]: r for r in get(harness, "/api/v1/rules")}
    assert rules["psa_vs_erp_projects"]["schedule"] == "every 20s (SYNCWATCH_RECONCILE_EVERY)"
    assert rules["psa_vs_erp_projects"]["status"] == "stale"


def test_runs_of_one_rule(harness: Harness, story: Story) -> None:
    now = datetime.now(UTC)
    for minutes in (30, 20, 10):
        record_run(harness, "time_to_bill", now - timedelta(minutes=minutes))
    runs = get(harness, "/api/v1/rules/time_to_bill/runs", limit=2)
    assert len(runs) == 2 and runs[0]["started_at"] > runs[1]["started_at"]
    assert len(get(harness, "/api/v1/rules/time_to_bill/runs")) == 4


BAD_REQUESTS = [
    ("/api/v1/rules/no_such_rule/runs", 404, "rule: no rule named 'no_such_rule'"),
    ("/api/v1/rules/time_to_bill/runs?limit=0", 400, "limit"),
    ("/api/v1/integrations/health?window=soon", 400, "window: 'soon' is not a duration"),
    ("/api/v1/integrations/health?window=30s", 400, "window: must be between 1m and 90d"),
    ("/api/v1/integrations/health?window=91d", 400, "window: must be between"),
]


def test_bad_parameters(harness: Harness) -> None:
    for path, status, message in BAD_REQUESTS:
        response = harness.client.get(path, headers=ADMIN)
        assert response.status_code == status and message in response.json()["error"]["message"], path


def test_integration_health_per_system(harness: Harness, story: Story) -> None:
    body = get(harness, "/api/v1/integrations/health", window="60d")  # the story's oldest event is 50 days old
    assert body["window_seconds"] == 60 * 86400
    systems = {s["system"]: s for s in body["systems"]}
    psa = systems["psa"]
    assert (psa["accepted"], psa["batches"], psa["quarantine_count"]) == (40, 1, 1)
    assert psa["quarantine_rate"] == pytest.approx(1 / 41) and psa["error_rate"] == pytest.approx(1 / 41)
    assert psa["ingest_rate_per_s"] == pytest.approx(40 / (60 * 86400))
    assert psa["events"] == 3 and psa["sync_lag_p50_s"] == pytest.approx(30, abs=0.01)
    billing = systems["billing"]  # the spans that called it: two, one failed
    assert (billing["spans"], billing["error_spans"], billing["error_rate"]) == (2, 1, 0.5)
    erp = systems["erp"]
    assert erp["sync_lag_p95_s"] == pytest.approx(300, abs=0.01) and erp["spans"] == 1
    integrations = {i["integration"]: i for i in body["integrations"]}
    assert integrations["psa-to-billing-sync"]["error_rate"] == 0.5
    assert integrations["psa-to-billing-sync"]["p95_duration_ms"] > 80


def test_a_short_window_sees_only_recent_ingest(harness: Harness, story: Story) -> None:
    systems = {s["system"]: s for s in get(harness, "/api/v1/integrations/health", window="3m")["systems"]}
    assert set(systems) == {"crm"} and systems["crm"]["accepted"] == 20
    assert systems["crm"]["sync_lag_p50_s"] is None and systems["crm"]["error_rate"] == 0.0
