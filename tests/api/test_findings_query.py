"""The findings query: every filter, both sorts, pagination, and no request value in the SQL text."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.api.findings_query import FindingFilter, count_sql, list_findings, list_sql
from reconciler import findings
from syncwatch.store import Store
from tests.api.seed import NOW, Seed, seed

SEEDS = [
    Seed("psa_vs_erp_projects", {"project_id": "P-1"}, severity="high", impact=900, age=timedelta(hours=1)),
    Seed("psa_vs_erp_projects", {"project_id": "P-2"}, kind="missing_right", field="", severity="high",
         impact=5000, age=timedelta(days=3)),
    Seed("hr_vs_psa_cost_rates", {"person_id": "E-7"}, systems=("hris", "psa"), severity="low", impact=10,
         age=timedelta(days=10)),
    Seed("quote_to_project", {"opportunity_id": "OPP-3"}, kind="stuck", field="project_created", systems=("crm",),
         severity="critical", impact=120000, age=timedelta(hours=30)),
    Seed("billing_leakage", {"project_id": "P-1", "period": "2026-02"}, kind="aggregate_mismatch",
         systems=("time", "billing"), impact=300, age=timedelta(minutes=10)),
]


@pytest.fixture
def seeded(store: Store) -> dict[str, str]:
    return seed(store, SEEDS)


def keys_of(store: Store, **filter_: object) -> list[str]:
    page = list_findings(store, FindingFilter.model_validate(filter_), now=NOW)
    return [next(iter(f.keys.values())) for f in page.items]


def test_no_filter_lists_everything_by_impact_descending(store: Store, seeded: dict[str, str]) -> None:
    page = list_findings(store, FindingFilter(), now=NOW)
    assert page.total == 5
    assert [f.impact_amount for f in page.items] == [120000, 5000, 900, 300, 10]
    first = page.items[0]
    assert (first.rule, first.kind, first.status, first.severity, first.systems) == (
        "quote_to_project", "stuck", "open", "critical", ["crm"])
    assert first.age_seconds == pytest.approx(30 * 3600)
    assert first.first_seen.tzinfo is not None


@pytest.mark.parametrize(("filter_", "expected"), [
    ({"rule": ["psa_vs_erp_projects"]}, ["P-2", "P-1"]),
    ({"rule": "psa_vs_erp_projects,hr_vs_psa_cost_rates"}, ["P-2", "P-1", "E-7"]),
    ({"kind": ["stuck", "missing_right"]}, ["OPP-3", "P-2"]),
    ({"system": ["hris"]}, ["E-7"]),
    ({"system": ["psa"]}, ["P-1", "P-2", "E-7"]),
    ({"severity": ["high", "critical"]}, ["OPP-3", "P-2", "P-1"]),
    ({"min_age": "1d"}, ["P-2", "E-7", "OPP-3"]),
    ({"max_age": "2h"}, ["P-1", "P-1"]),
    ({"min_age": "2d", "max_age": "5d"}, ["P-2"]),
    ({"key": "P-1"}, ["P-1", "P-1"]),
    ({"key": "2026-02"}, ["P-1"]),
    ({"key": "nobody"}, []),
    ({"status": ["open"], "severity": ["low"]}, ["E-7"]),
])
def test_each_filter(store: Store, seeded: dict[str, str], filter_: dict[str, object], expected: list[str]) -> None:
    assert sorted(keys_of(store, **filter_)) == sorted(expected)


def test_key_matches_any_key_of_the_map(store: Store, seeded: dict[str, str]) -> None:
    page = list_findings(store, FindingFilter(key="P-1"), now=NOW)
    assert {f.rule for f in page.items} == {"psa_vs_erp_projects", "billing_leakage"}


def test_status_filter_reads_the_latest_version_and_counts_expired_silences_as_open(
        store: Store, seeded: dict[str, str]) -> None:
    findings.acknowledge(store, seeded["P-2"], now=NOW)
    findings.silence(store, seeded["E-7"], NOW + timedelta(hours=1), now=NOW)
    assert set(keys_of(store, status=["acknowledged"])) == {"P-2"}
    assert set(keys_of(store, status=["silenced"])) == {"E-7"}
    assert "P-2" not in keys_of(store, status=["open"])
    later = list_findings(store, FindingFilter(status=["open"]), now=NOW + timedelta(hours=2))
    assert "E-7" in {next(iter(f.keys.values())) for f in later.items}


def test_assignee_filter(store: Store, seeded: dict[str, str]) -> None:
    findings.assign(store, seeded["OPP-3"], "team:billing", now=NOW)
    assert keys_of(store, assignee="team:billing") == ["OPP-3"]


@pytest.mark.parametrize(("sort", "order", "expected"), [
    ("impact", "desc", [120000, 5000, 900, 300, 10]),
    ("impact", "asc", [10, 300, 900, 5000, 120000]),
    ("age", "desc", [10, 5000, 120000, 900, 300]),  # oldest first
    ("age", "asc", [300, 900, 120000, 5000, 10]),
])
def test_sorts(store: Store, seeded: dict[str, str], sort: str, order: str, expected: list[float]) -> None:
    page = list_findings(store, FindingFilter(), sort, order, now=NOW)  # type: ignore[arg-type]
    assert [f.impact_amount for f in page.items] == expected


def test_pages_are_disjoint_and_total_counts_all(store: Store, seeded: dict[str, str]) -> None:
    pages = [list_findings(store, FindingFilter(), "age", "desc", 2, offset, now=NOW) for offset in (0, 2, 4)]
    assert [p.total for p in pages] == [5, 5, 5]
    seen = [f.fingerprint for p in pages for f in p.items]
    assert len(seen) == len(set(seen)) == 5
    assert list_findings(store, FindingFilter(), limit=2, offset=10, now=NOW).items == []


def test_bad_pages_are_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        list_sql(FindingFilter(), "impact", "desc", 0, 0, NOW)


hostile = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "" and "," not in s)
PLAIN = FindingFilter(key="k", rule=["r"], assignee="a", system=["s"])


@settings(max_examples=50, deadline=None)
@given(key=hostile, rule=hostile, assignee=hostile, system=hostile)
def test_no_request_value_reaches_the_sql_text(key: str, rule: str, assignee: str, system: str) -> None:
    f = FindingFilter(key=key, rule=[rule], assignee=assignee, system=[system])
    sql, params = list_sql(f, "impact", "desc", 10, 0, NOW)
    assert sql == list_sql(PLAIN, "impact", "desc", 10, 0, NOW)[0]  # the text does not depend on the values
    assert count_sql(f, NOW)[0] == count_sql(PLAIN, NOW)[0]
    assert (params["key"], params["rule"], params["assignee"], params["system"]) == (
        key, [rule.strip()], assignee, [system.strip()])
