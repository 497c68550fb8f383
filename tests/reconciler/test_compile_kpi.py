"""KPI rules compiled to SQL and evaluated on the real embedded ClickHouse, with exact values.

The pack's time_to_bill workflow over three May instances: approved -> invoiced after 2 h, 4 h and
10 h; the first two posted (complete), the second posted late, the third never posted (overdue).
One April instance (6 h) lies outside May and shows in monthly buckets over April and May.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler import compile_kpi
from reconciler.errors import RuleError
from reconciler.loader import load_rules, load_text
from reconciler.model_kpi import KpiRule
from syncwatch.store import Store
from tests.reconciler.records import NOW
from tests.reconciler.test_compile_reconcile import HOSTILE
from tests.reconciler.test_compile_workflow import Events

REPO = Path(__file__).resolve().parents[2]
LOADED = load_rules(REPO / "rules")
WORKFLOWS = {r.name: r.rule for r in LOADED if r.rule.kind == "workflow"}
KPIS = {r.name: r.rule for r in LOADED if r.rule.kind == "kpi"}
MAY, JUNE, APRIL = (datetime(2024, m, 1, tzinfo=UTC) for m in (5, 6, 4))
H = timedelta(hours=1)
SPAN_COLUMNS = ["Timestamp", "TraceId", "SpanId", "SpanName", "ServiceName", "StatusCode", "StatusMessage"]


def kpi(text: str) -> KpiRule:
    (loaded,) = load_text(text)
    assert isinstance(loaded.rule, KpiRule)
    return loaded.rule


DURATION = kpi("""
name: ttb
kind: kpi
unit: hours
duration: {workflow: time_to_bill, from_step: approved, to_step: invoiced, stats: [p50, p90, mean]}
dimensions: [region]
""")
COMPLETION = kpi("{name: ttb_done, kind: kpi, completion_rate: {workflow: time_to_bill}, dimensions: [region]}")


def _instance(events: Events, n: int, approved: datetime, invoiced_after: timedelta, region: str,
              posted_after: timedelta | None) -> None:
    sheet, invoice = f"TS-{n}", f"INV-{n}"
    events.add("psa.timesheet.approved", approved, {"timesheet_id": sheet, "region": region},
               {"billable_amount": 100.0, "currency": "EUR"})
    events.add("billing.invoice.created", approved + invoiced_after, {"invoice_id": invoice, "timesheet_ids": [sheet]})
    if posted_after is not None:
        events.add("erp.invoice.posted", approved + invoiced_after + posted_after, {"invoice_id": invoice})


@pytest.fixture
def timesheets(store: Store) -> Store:
    events = Events()
    _instance(events, 1, MAY, 2 * H, "EU", H)
    _instance(events, 2, MAY + 24 * H, 4 * H, "EU", 72 * H)  # posted 3 days after the invoice: SLA 2d
    _instance(events, 3, MAY + 48 * H, 10 * H, "US", None)  # never posted: overdue at NOW
    _instance(events, 4, datetime(2024, 4, 20, tzinfo=UTC), 6 * H, "EU", H)
    events.write(store)
    return store


def values(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[float, int]]:
    return {(r["stat"], r["bucket"], r["dimension"]): (round(r["value"], 6), r["count"]) for r in rows}


def evaluate(store: Store, rule: KpiRule, start: datetime = MAY, end: datetime = JUNE, **kw: Any) -> dict:
    return values(compile_kpi.evaluate(store, rule, WORKFLOWS, start, end, now=NOW, **kw))


def test_duration_stats_over_the_range(timesheets: Store) -> None:
    assert evaluate(timesheets, DURATION) == {
        ("mean", None, ""): (round(16 / 3, 6), 3), ("p50", None, ""): (4.0, 3), ("p90", None, ""): (8.8, 3)}


def test_duration_by_region(timesheets: Store) -> None:
    found = evaluate(timesheets, DURATION, dimension="region")
    assert {k: v for k, v in found.items() if k[0] == "p50"} == {("p50", None, "EU"): (3.0, 2),
                                                                 ("p50", None, "US"): (10.0, 1)}


def test_monthly_buckets_and_the_range_filter(timesheets: Store) -> None:
    found = evaluate(timesheets, DURATION, APRIL, JUNE, bucket="month")
    april, may = (datetime(2024, m, 1) for m in (4, 5))
    assert {k: v for k, v in found.items() if k[0] == "p50"} == {("p50", april, ""): (6.0, 1),
                                                                 ("p50", may, ""): (4.0, 3)}
    assert evaluate(timesheets, DURATION, MAY + 12 * H, JUNE)[("p50", None, "")] == (7.0, 2)


def test_daily_buckets(timesheets: Store) -> None:
    found = evaluate(timesheets, COMPLETION, bucket="day")
    assert found == {("completion_rate", datetime(2024, 5, d), ""): (v, 1) for d, v in ((1, 1.0), (2, 1.0), (3, 0.0))}


def test_completion_rate_overall_and_by_region(timesheets: Store) -> None:
    assert evaluate(timesheets, COMPLETION) == {("completion_rate", None, ""): (round(2 / 3, 6), 3)}
    assert evaluate(timesheets, COMPLETION, dimension="region") == {
        ("completion_rate", None, "EU"): (1.0, 2), ("completion_rate", None, "US"): (0.0, 1)}


def test_sla_compliance_counts_late_and_overdue_steps(timesheets: Store) -> None:
    # 6 SLA steps: all 3 invoices within 14d; posting on time, 3 days late, and overdue
    assert evaluate(timesheets, KPIS["invoice_timeliness"]) == {("sla_compliance", None, ""): (round(4 / 6, 6), 6)}
    # before the third posting fell due, it is neither on time nor late: not counted
    early = values(compile_kpi.evaluate(timesheets, KPIS["invoice_timeliness"], WORKFLOWS, MAY, JUNE,
                                        now=MAY + 60 * H))
    assert early == {("sla_compliance", None, ""): (round(4 / 5, 6), 5)}


def _spans(store: Store) -> None:
    rows = [(MAY + i * H, f"t{i}", f"s{i}", "sync", service, status, "")
            for i, (service, status) in enumerate([("crm-to-erp", "Ok"), ("crm-to-erp", "Error"),
                                                   ("crm-to-erp", "Unset"), ("psa-to-billing", "Error")])]
    rows.append((APRIL, "old", "old", "sync", "psa-to-billing", "Ok", ""))  # outside the range
    store.insert_rows("otel_traces", rows, SPAN_COLUMNS)


def test_integration_failure_rate_by_service(store: Store) -> None:
    _spans(store)
    rule = KPIS["integration_failure_rate"]
    assert evaluate(store, rule) == {("ratio", None, ""): (0.5, 4)}
    assert evaluate(store, rule, dimension="ServiceName") == {
        ("ratio", None, "crm-to-erp"): (round(1 / 3, 6), 3), ("ratio", None, "psa-to-billing"): (1.0, 1)}


def test_a_hostile_filter_value_is_bound_not_pasted(store: Store) -> None:
    _spans(store)
    rule = kpi(f"""
name: hostile
kind: kpi
ratio:
  numerator: {{table: spans, filter: [{{field: StatusCode, value: "{HOSTILE}"}}]}}
  denominator: {{table: spans, filter: [{{field: ServiceName, op: in, value: ["{HOSTILE}", crm-to-erp]}}]}}
""")
    compiled = compile_kpi.compile(rule, WORKFLOWS, MAY, JUNE)
    assert HOSTILE not in compiled.sql and HOSTILE in compiled.parameters.values()
    assert evaluate(store, rule) == {("ratio", None, ""): (0.0, 3)}
    assert store.query_columns("SELECT count() FROM events", {})[1][0][0] == 0  # the table is still there


def test_a_dimension_outside_the_rule_is_rejected() -> None:
    for dimension in (HOSTILE, "client_id"):
        with pytest.raises(RuleError, match="is not one of the KPI's dimensions"):
            compile_kpi.compile(DURATION, WORKFLOWS, MAY, JUNE, dimension)
    with pytest.raises(RuleError, match="bucket"):
        compile_kpi.compile(DURATION, WORKFLOWS, MAY, JUNE, bucket="year")  # type: ignore[arg-type]
    with pytest.raises(RuleError, match="start < end"):
        compile_kpi.compile(DURATION, WORKFLOWS, JUNE, MAY)


def test_hostile_names_in_a_kpi_are_rejected_at_load() -> None:
    for text in (f'{{name: k, kind: kpi, completion_rate: {{workflow: w}}, dimensions: ["{HOSTILE}"]}}',
                 f'{{name: k, kind: kpi, ratio: {{numerator: {{table: spans, filter: [{{field: "{HOSTILE}", '
                 'value: x}]}, denominator: {table: spans}}}',
                 '{name: k, kind: kpi, ratio: {numerator: {table: "system.users"}, denominator: {table: spans}}}'):
        with pytest.raises(RuleError):
            load_text(text)


def test_exactly_one_metric() -> None:
    with pytest.raises(RuleError, match="give exactly one metric"):
        load_text("{name: k, kind: kpi, completion_rate: {workflow: w}, sla_compliance: {workflow: w}}")


def test_unknown_workflow_or_step_is_a_positioned_error(tmp_path: Path) -> None:
    pack = tmp_path / "packs"
    pack.mkdir()
    (pack / "flow.yaml").write_text((REPO / "rules/packs/professional_services/time_to_bill.yaml").read_text())
    (pack / "kpis.yaml").write_text(
        "- name: a\n  kind: kpi\n  completion_rate: {workflow: time_to_bil}\n"
        "- name: b\n  kind: kpi\n  duration: {workflow: time_to_bill, from_step: approved, to_step: billed}\n")
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    where = pack / "kpis.yaml"
    assert info.value.problems == [
        f"{where}:3:31: completion_rate.workflow: 'time_to_bil' is not a workflow rule (known: time_to_bill)",
        f"{where}:6:68: duration.to_step: 'billed' is not a step of workflow 'time_to_bill' "
        "(approved, invoiced, posted)"]


def test_compile_names_an_unknown_workflow() -> None:
    rule = kpi("{name: k, kind: kpi, completion_rate: {workflow: nowhere}}")
    with pytest.raises(RuleError, match="'nowhere' is not a workflow rule"):
        compile_kpi.compile(rule, WORKFLOWS, MAY, JUNE)


@pytest.mark.parametrize("name", sorted(KPIS))
def test_every_pack_kpi_runs_with_every_dimension(store: Store, name: str) -> None:
    rule = KPIS[name]
    for dimension in (None, *rule.dimensions):
        assert compile_kpi.evaluate(store, rule, WORKFLOWS, MAY, JUNE, dimension, "week") == []
