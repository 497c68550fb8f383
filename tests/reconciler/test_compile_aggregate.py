"""Aggregate reconcile (billing leakage) compiled to SQL and run on the real embedded ClickHouse."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.loader import load_rules
from reconciler.model import AggregateRule
from syncwatch.store import Store
from tests.reconciler.records import NOW, OLD, Records, found, k, run, trace_of

REPO = Path(__file__).resolve().parents[2]
LEAKAGE = next(r.rule for r in load_rules(REPO / "rules") if r.name == "billing_leakage")
FIELD = "sum(hours * bill_rate)"


def sheet(records: Records, key: str, project: str, week: str, hours: float, rate: float = 100.0,
          status: str = "approved", billable: bool = True, **kw: Any) -> Records:
    return records.add("psa", "timesheet", key, {"project_id": project, "week_start": week, "hours": hours,
                                                 "bill_rate": rate, "status": status, "billable": billable,
                                                 "currency": "EUR"}, **kw)


def invoice(records: Records, key: str, project: str, period: str, amount: float, **kw: Any) -> Records:
    return records.add("erp", "invoice", key, {"project_id": project, "period": period, "amount": amount,
                                               "currency": "EUR"}, **kw)


def aggregate(**overrides: Any) -> AggregateRule:
    base = LEAKAGE.model_dump()
    base.update({"grace": "0s", **overrides})
    return AggregateRule.model_validate(base)


def leaky_firm(store: Store) -> None:
    """P1 March: fully invoiced over two sheets; P1 April: under-invoiced by 100 (leakage); P2 March:
    never invoiced (missing_right); P3 March: an invoice without time (ignored: missing is left_only);
    P4 March: non-billable and submitted sheets do not count, so its 50.50 invoice is over-billing;
    P5 March: within tolerance (0.60)."""
    r = Records()
    sheet(r, "T1", "P1", "2024-03-04", 10)
    sheet(r, "T2", "P1", "2024-03-25", 5, status="invoiced")
    invoice(r, "I1", "P1", "2024-03", 1500.0)
    sheet(r, "T3", "P1", "2024-04-01", 8)
    invoice(r, "I2", "P1", "2024-04", 700)
    sheet(r, "T4", "P2", "2024-03-11", 7.5, rate=120)
    invoice(r, "I3", "P3", "2024-03", 10)
    sheet(r, "T5", "P4", "2024-03-04", 8, billable=False)
    sheet(r, "T6", "P4", "2024-03-11", 8, status="submitted")
    invoice(r, "I4", "P4", "2024-03", 50.5)
    sheet(r, "T7", "P5", "2024-03-04", 1, rate=99.4)
    invoice(r, "I5", "P5", "2024-03", 100)
    r.write(store)


def test_billing_leakage_finds_exactly_the_injected_leaks(store: Store) -> None:
    leaky_firm(store)
    assert found(store, aggregate()) == {
        ("aggregate_mismatch", FIELD, k(project_id="P1", period="2024-04")),
        ("missing_right", "", k(project_id="P2", period="2024-03")),
    }
    rows = {r["keys"]["project_id"]: r for r in run(store, aggregate())}
    p1, p2 = rows["P1"], rows["P2"]
    assert (p1["left_value"], p1["right_value"], p1["impact_amount"], p1["impact_currency"]) == ("800", "700", 100.0,
                                                                                                 "EUR")
    assert p1["detail"] == ("approved billable time 800 vs invoiced 700: differs by 100 (12.5%); tolerance 1")
    assert (p1["left_trace_id"], p1["right_trace_id"]) == (trace_of("psa-T3-1"), trace_of("erp-I2-1"))
    assert (p2["left_value"], p2["right_value"], p2["impact_amount"]) == ("900", "", 900.0)
    assert p2["systems"] == ["psa", "erp"]


def test_missing_groups_on_both_sides(store: Store) -> None:
    leaky_firm(store)
    rule = aggregate(missing="both", left={**LEAKAGE.left.model_dump(), "filter": []})  # every sheet counts now
    assert found(store, rule) == {
        ("aggregate_mismatch", FIELD, k(project_id="P1", period="2024-04")),
        ("missing_right", "", k(project_id="P2", period="2024-03")),
        ("missing_left", "", k(project_id="P3", period="2024-03")),
        ("aggregate_mismatch", FIELD, k(project_id="P4", period="2024-03")),  # 1600 of time vs 50.50
    }


def test_relative_tolerance_and_other_measures(store: Store) -> None:
    leaky_firm(store)
    rule = aggregate(tolerance={"relative": "15%"}, missing="none")
    assert found(store, rule) == set()  # P1 April is 12.5% off
    count = aggregate(left={**LEAKAGE.left.model_dump(), "measure": {"op": "count"}},
                      right={**LEAKAGE.right.model_dump(), "measure": {"op": "count"}}, tolerance=None,
                      missing="none")
    assert found(store, count) == {("aggregate_mismatch", "count()", k(project_id="P1", period="2024-03"))}
    biggest = aggregate(left={**LEAKAGE.left.model_dump(), "measure": {"op": "max", "field": "hours"}},
                        right={**LEAKAGE.right.model_dump(), "measure": {"op": "min", "field": "amount"}},
                        tolerance={"absolute": 1000}, missing="none")
    assert found(store, biggest) == {("aggregate_mismatch", "max(hours)", k(project_id="P1", period="2024-03"))}


@pytest.mark.parametrize(("grain", "periods"), [
    ("month", {"2024-03"}), ("quarter", {"2024-Q1"}), ("year", {"2024"}), ("week", {"2024-03-04", "2024-03-11"}),
])
def test_period_grains(store: Store, grain: str, periods: set[str]) -> None:
    r = Records()
    sheet(r, "T1", "P1", "2024-03-04", 1)
    sheet(r, "T2", "P1", "2024-03-12", 1)
    r.write(store)
    rule = aggregate(period=grain, left={**LEAKAGE.left.model_dump(), "period_field": "week_start"})
    assert found(store, rule) == {("missing_right", "", k(project_id="P1", period=p)) for p in periods}


def test_grace_period_and_incremental_run(store: Store) -> None:
    leaky_firm(store)
    r = Records()
    sheet(r, "T9", "P9", "2024-05-27", 1, at=NOW - timedelta(hours=1))  # approved an hour ago
    r.write(store)
    rule = aggregate(grace="1d")
    assert ("missing_right", "", k(project_id="P9", period="2024-05")) not in found(store, rule)
    assert ("missing_right", "", k(project_id="P9", period="2024-05")) in found(store, aggregate())
    since = OLD + timedelta(days=1)
    r = Records()
    invoice(r, "I2", "P1", "2024-04", 800, version=2, at=NOW - timedelta(hours=2))  # P1 April corrected
    r.write(store)
    assert found(store, aggregate(), since) == {("missing_right", "", k(project_id="P9", period="2024-05"))}
    assert found(store, aggregate()) == {("missing_right", "", k(project_id="P2", period="2024-03")),
                                         ("missing_right", "", k(project_id="P9", period="2024-05"))}
