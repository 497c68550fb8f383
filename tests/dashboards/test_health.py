"""Rules and integrations page: rule health from real rule runs, recent runs of one rule, integration
health and sync lag per source system."""

from __future__ import annotations

from tests.dashboards.apptest import assert_clean, element_types, signed_in
from tests.dashboards.conftest import SeededApi
from tests.dashboards.test_triage import api_get


def test_rule_health_lists_every_scheduled_rule(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "ops", "health")
    rules = [r for r in api_get(dashboard_env, "rules") if r["kind"] != "kpi"]
    table = at.dataframe[0].value
    assert sorted(table["rule"]) == sorted(r["name"] for r in rules)
    assert set(table["status"]) == {"ok"}  # every rule ran once, successfully, when the data was seeded
    assert at.metric[0].label.endswith("ok") and at.metric[0].value == str(len(rules))
    assert all(n >= 1 for n in table["runs 24h"])


def test_recent_runs_of_a_chosen_rule(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "auditor", "health")
    at.selectbox(key="health_rule").set_value("time_to_bill").run()
    assert_clean(at)
    runs = at.dataframe[1].value
    assert len(runs) >= 1 and list(runs["error"]) == [""] * len(runs)
    assert element_types(at)["vega_lite_chart"] >= 2  # runs and sync lag


def test_integration_health_and_sync_lag_per_system(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "admin", "health")
    at.segmented_control(key="health_window").set_value("7d").run()
    assert_clean(at)
    systems = at.dataframe[2].value
    assert {"crm", "psa", "erp", "time", "billing", "hris"} <= set(systems["system"])
    lag = [c for c in systems.columns if c.startswith("lag p95")]
    assert lag and systems[lag[0]].max() > 0
