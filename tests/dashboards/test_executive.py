"""Executive page: KPI tiles with period-over-period change, revenue at risk, charts, role scope."""

from __future__ import annotations

import httpx
import pytest

from tests.dashboards.apptest import PAGES, assert_clean, element_types, signed_in, texts
from tests.dashboards.conftest import APP, SeededApi


def summary(api: SeededApi, role: str = "executive") -> dict:
    from dashboards.views.executive import period_params

    response = httpx.get(f"{api.base_url}/api/v1/kpis/summary", params=period_params(30),
                         headers={"Authorization": f"Bearer {api.tokens[role]}"})
    response.raise_for_status()
    return response.json()


def test_tiles_show_every_kpi_with_its_change_and_revenue_at_risk(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "executive")
    assert texts(at.title) == ["Executive"]
    expected = summary(dashboard_env)
    labels = [m.label for m in at.metric]
    assert labels[0] == "Revenue at risk"
    top = max(expected["revenue_at_risk"], key=lambda r: r["amount"])
    assert at.metric[0].value == f"{top['currency']} {top['amount']:,.0f}"
    from dashboards.views.executive import title_of

    tiles = {m.label: m for m in at.metric[1:len(expected["tiles"]) + 1]}
    assert "Time to bill" in tiles
    for tile in expected["tiles"]:
        shown = tiles[title_of(tile["name"], tile["unit"])]
        assert shown.value != "no data" or tile["value"] is None
        if tile["change"] is not None:
            assert shown.delta, f"{tile['name']} shows no change against the previous period"


def test_charts_cover_trends_sla_distributions_and_breakdowns(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "executive")
    assert texts(at.subheader) == ["Trends", "SLA compliance and completion", "Distributions", "Breakdowns"]
    assert element_types(at)["vega_lite_chart"] >= 8


@pytest.mark.parametrize("dimension", ["legal_entity", "service_line"])
def test_period_and_breakdown_filters(dashboard_env: SeededApi, dimension: str) -> None:
    at = signed_in(dashboard_env, "executive")
    at.segmented_control(key="exec_period").set_value("90 days").run()
    assert_clean(at)
    assert "against the 90 days before" in at.caption[0].value
    at.segmented_control(key="exec_dimension").set_value(dimension).run()
    assert_clean(at)
    label = dimension.replace("_", " ")
    assert any(f"by {label}" in m for m in texts(at.markdown))


def test_an_executive_is_offered_only_the_executive_page(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "executive")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(str(APP.parent / PAGES["triage"]))


def test_every_role_sees_the_executive_page(dashboard_env: SeededApi) -> None:
    for role in ("ops", "auditor", "admin"):
        at = signed_in(dashboard_env, role, "executive")
        assert at.metric[0].label == "Revenue at risk"
