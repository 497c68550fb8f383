"""GET /api/v1/findings and /api/v1/findings/{fingerprint} over HTTP: filters, sorts, pages, context, bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.people import RULE, People, people_of, project_findings
from tests.api.seed import Seed, seed
from tests.conftest import Harness
from tests.reconciler.records import span_of, trace_of


@pytest.fixture
def people(harness: Harness) -> People:
    return people_of(harness)


@pytest.fixture
def projects(harness: Harness) -> dict[str, str]:
    return project_findings(harness)


def test_list_returns_total_and_items_sorted_by_impact(people: People, projects: dict[str, str]) -> None:
    response = people.get("ana", "/findings")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2
    assert [(i["keys"]["project_id"], i["kind"], i["impact_amount"]) for i in body["items"]] == [
        ("P-17", "missing_right", 50000.0), ("P-18", "mismatch", 20000.0)]
    item = body["items"][1]
    assert (item["rule"], item["field"], item["left_value"], item["right_value"], item["status"]) == (
        RULE, "budget", "20000", "25000", "open")
    assert item["systems"] == ["psa", "erp"] and item["left_trace_id"] == trace_of("psa-P-18")


@pytest.mark.parametrize(("params", "expected"), [
    ({"status": "open"}, ["P-17", "P-18"]),
    ({"status": "acknowledged"}, []),
    ({"rule": RULE}, ["P-17", "P-18"]),
    ({"rule": "other_rule"}, []),
    ({"kind": "mismatch"}, ["P-18"]),
    ({"kind": ["missing_right", "mismatch"]}, ["P-17", "P-18"]),
    ({"system": "erp"}, ["P-17", "P-18"]),
    ({"system": "hris"}, []),
    ({"severity": "high"}, ["P-17", "P-18"]),
    ({"severity": "low,medium"}, []),
    ({"min_age": "1h"}, []),
    ({"max_age": "1h"}, ["P-17", "P-18"]),
    ({"key": "P-18"}, ["P-18"]),
    ({"sort": "impact", "order": "asc"}, ["P-18", "P-17"]),
    ({"limit": 1}, ["P-17"]),
    ({"limit": 1, "offset": 1}, ["P-18"]),
])
def test_filters_sorts_and_pages_over_http(people: People, projects: dict[str, str], params: dict[str, object],
                                           expected: list[str]) -> None:
    response = people.get("cleo", "/findings", **params)
    assert response.status_code == 200, response.text
    assert [i["keys"]["project_id"] for i in response.json()["items"]] == expected


def test_age_filters_over_http(people: People, harness: Harness) -> None:
    seed(harness.store, [Seed("r_old", {"id": "OLD"}, age=timedelta(days=4)),
                         Seed("r_new", {"id": "NEW"}, age=timedelta(minutes=5))])
    # seeded findings are "now"-relative to tests.api.seed.NOW, far in the past: compare relatively
    old = people.get("ana", "/findings", sort="age", order="desc").json()["items"]
    assert [i["keys"]["id"] for i in old] == ["OLD", "NEW"]
    assert old[0]["age_seconds"] - old[1]["age_seconds"] == pytest.approx(4 * 86400 - 300, abs=1)
    assert people.get("ana", "/findings", min_age="1d").json()["total"] == 2
    assert people.get("ana", "/findings", max_age="1d").json()["total"] == 0


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "bogus"}, "status"),
    ({"kind": "weird"}, "kind"),
    ({"severity": "urgent"}, "severity"),
    ({"min_age": "2 fortnights"}, "min_age"),
    ({"min_age": "3d", "max_age": "1h"}, "min_age"),
    ({"sort": "size"}, "sort"),
    ({"order": "sideways"}, "order"),
    ({"limit": 0}, "limit"),
    ({"limit": 100000}, "limit"),
    ({"offset": -1}, "offset"),
    ({"staus": "open"}, "staus"),
])
def test_bad_query_parameters_are_400_naming_the_parameter(people: People, params: dict[str, object],
                                                            field: str) -> None:
    response = people.get("ana", "/findings", **params)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]


def test_detail_shows_the_rule_the_two_sides_and_the_trail(people: People, projects: dict[str, str]) -> None:
    fp = projects["P-18"]
    note = {"note": "ERP budget was raised by finance"}
    assert people.post("ana", f"/findings/{fp}/annotate", note).status_code == 200
    assert people.post("ana", f"/findings/{fp}/acknowledge").status_code == 200

    response = people.get("cleo", f"/findings/{fp}")
    assert response.status_code == 200
    body = response.json()
    assert body["finding"]["fingerprint"] == fp and body["finding"]["status"] == "acknowledged"
    rule = body["rule"]
    assert (rule["name"], rule["kind"], rule["severity"], rule["version_matches"]) == (RULE, "reconcile", "high", True)
    assert "PSA projects and their ERP counterparts" in rule["description"]
    assert "budget as decimal, tolerance 1%" in rule["explanation"]
    assert rule["defined_at"].endswith("psa_vs_erp_projects.yaml:3")
    comparison = body["comparison"]
    assert comparison["field"] == "budget"
    assert comparison["left"] == {"label": "psa project", "system": "psa", "value": "20000",
                                  "trace_id": trace_of("psa-P-18"), "span_id": span_of("psa")}
    assert (comparison["right"]["label"], comparison["right"]["value"]) == ("erp project", "25000")
    assert "budget differs by" in comparison["detail"]
    assert [(a["actor"], a["role"], a["action"], a["outcome"]) for a in body["audit"]] == [
        ("ana", "ops", "annotated", "ok"), ("ana", "ops", "acknowledged", "ok")]
    assert [(n["author"], n["note"]) for n in body["annotations"]] == [("ana", "ERP budget was raised by finance")]


def test_detail_of_a_finding_whose_rule_is_gone_still_answers(people: People, harness: Harness) -> None:
    fps = seed(harness.store, [Seed("retired_rule", {"project_id": "P-1"})])
    body = people.get("ana", f"/findings/{fps['P-1']}").json()
    assert body["rule"] is None and "retired_rule" in body["rule_problem"]
    assert (body["comparison"]["left"]["system"], body["comparison"]["right"]["system"]) == ("psa", "erp")


def test_detail_unknown_is_404_and_malformed_is_400(people: People) -> None:
    assert people.get("ana", f"/findings/{'0' * 64}").status_code == 404
    response = people.get("ana", "/findings/not-a-fingerprint")
    assert response.status_code == 400 and "fingerprint" in response.json()["error"]["message"]
