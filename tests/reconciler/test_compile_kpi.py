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

from reconciler import compile_kpi, compile_reconcile, compile_workflow
from reconciler.audit import AuditLog
from reconciler.errors import RuleError
from reconciler.loader import load_rules, load_text
from reconciler.model_kpi import KpiRule
from reconciler.runner import run_rule
from syncwatch.store import Store
from tests.reconciler.records import NOW, Records
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


def _four(events: Events) -> Events:
    _instance(events, 1, MAY, 2 * H, "EU", H)
    _instance(events, 2, MAY + 24 * H, 4 * H, "EU", 72 * H)  # posted 3 days after the invoice: SLA 2d
    _instance(events, 3, MAY + 48 * H, 10 * H, "US", None)  # never posted: overdue at NOW
    _instance(events, 4, datetime(2024, 4, 20, tzinfo=UTC), 6 * H, "EU", H)
    return events


@pytest.fixture
def timesheets(store: Store) -> Store:
    _four(Events()).write(store)
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


# -- straight-through processing: findings and actions on an instance ---------------------------------

def _findings_on(store: Store, rule: str, sheets: list[str]) -> None:
    """Findings of a rule other than the workflow's, naming the timesheets (through the real runner)."""
    sql = ("SELECT 'mismatch' AS kind, 'hours' AS field, map('timesheet_id', t) AS keys, ['psa'] AS systems, "
           "'' AS left_value, '' AS right_value, 0 AS impact_amount, '' AS impact_currency, '' AS left_trace_id, "
           "'' AS left_span_id, '' AS right_trace_id, '' AS right_span_id, '' AS detail "
           "FROM (SELECT arrayJoin({sheets:Array(String)}) AS t)")
    assert run_rule(store, rule, "v1", "low", (sql, {"sheets": sheets}), True, now=NOW).ok


@pytest.fixture
def settled(store: Store) -> Store:
    timesheets, events = store, _four(Events())  # one Events: its ids must not repeat (FINAL keeps one)
    _instance(events, 5, MAY + 100 * H, H, "US", H)   # complete; a finding of another rule
    _instance(events, 6, MAY + 110 * H, H, "US", H)   # complete; another rule's finding, acted on
    _instance(events, 8, MAY + 120 * H, H, "EU", H)   # complete, nothing wrong
    events.add("psa.timesheet.approved", datetime(2024, 5, 30, tzinfo=UTC), {"timesheet_id": "TS-7", "region": "EU"},
               {"billable_amount": 100.0})           # in flight: not due, not settled
    events.write(timesheets)
    # the workflow's own findings: TS-2 posted late, TS-3 never posted
    compiled = compile_workflow.compile(WORKFLOWS["time_to_bill"], now=NOW)
    assert run_rule(timesheets, "time_to_bill", "v1", "high", compiled, True, now=NOW).opened == 2
    _findings_on(timesheets, "hours_check", ["TS-5", "TS-6"])
    fingerprint = timesheets.query("SELECT fingerprint FROM findings FINAL WHERE keys['timesheet_id'] = 'TS-6'")[0][0]
    AuditLog(timesheets).append("ana", "ops", "acknowledged", fingerprint)
    return timesheets


STP = kpi("{name: stp, kind: kpi, straight_through: {workflow: time_to_bill}, dimensions: [region]}")


def test_straight_through_counts_settled_instances_without_findings_or_actions(settled: Store) -> None:
    # settled: TS-1, 2, 3, 5, 6, 8 (TS-7 is in flight); straight through: TS-1 and TS-8
    assert evaluate(settled, STP) == {("straight_through", None, ""): (round(2 / 6, 6), 6)}
    assert evaluate(settled, STP, dimension="region") == {  # EU: TS-1, 2, 8; US: TS-3, 5, 6
        ("straight_through", None, "EU"): (round(2 / 3, 6), 3), ("straight_through", None, "US"): (0.0, 3)}


def test_straight_through_limited_to_some_rules_still_counts_actions(settled: Store) -> None:
    own = kpi("{name: stp_own, kind: kpi, straight_through: {workflow: time_to_bill, rules: [time_to_bill]}}")
    # hours_check's finding on TS-5 no longer counts; the action on TS-6's still does
    assert evaluate(settled, own) == {("straight_through", None, ""): (0.5, 6)}
    assert evaluate(settled, own, APRIL, MAY) == {("straight_through", None, ""): (1.0, 1)}  # TS-4


# -- invoice accuracy: a ratio over rows no finding names ---------------------------------------------

def test_invoice_accuracy_counts_postings_without_a_mismatch_ever(store: Store) -> None:
    records, events = Records(), Events()
    for invoice, entity, billed, posted in (("INV-1", "DE", 100, 100), ("INV-2", "DE", 100, 90),
                                            ("INV-3", "DE", 100, 80), ("INV-4", "FR", 100, 100)):
        records.add("billing", "invoice", invoice, {"amount": billed, "currency": "EUR"})
        records.add("erp", "invoice", invoice, {"amount": posted, "currency": "EUR"})
        events.add("erp.invoice.posted", MAY + 24 * H, {"invoice_id": invoice, "legal_entity": entity})
    records.add("erp", "invoice", "INV-5", {"amount": 50, "currency": "EUR"})  # missing in billing: not a mismatch
    events.add("erp.invoice.posted", MAY + 48 * H, {"invoice_id": "INV-5", "legal_entity": "FR"})
    events.add("erp.invoice.posted", APRIL, {"invoice_id": "INV-2", "legal_entity": "DE"})  # outside the range
    records.write(store)
    events.write(store)
    rule = next(r.rule for r in LOADED if r.name == "billing_vs_erp_invoices")
    assert run_rule(store, rule.name, "v1", "high", compile_reconcile.compile(rule, now=NOW), True, now=NOW).opened == 3
    # INV-3's ERP amount is corrected: its finding resolves, and the posting still was inaccurate
    Records().add("erp", "invoice", "INV-3", {"amount": 100, "currency": "EUR"}, version=2).write(store)
    later = NOW + H
    assert run_rule(store, rule.name, "v1", "high", compile_reconcile.compile(rule, now=later), True,
                    now=later).resolved == 1
    accuracy = KPIS["invoice_accuracy"]
    # accurate: INV-1, INV-4, INV-5 (missing in billing is not a mismatch); not: INV-2, INV-3
    assert evaluate(store, accuracy) == {("ratio", None, ""): (round(3 / 5, 6), 5)}
    assert evaluate(store, accuracy, dimension="legal_entity") == {
        ("ratio", None, "DE"): (round(1 / 3, 6), 3), ("ratio", None, "FR"): (1.0, 2)}


# -- validation of the rules a KPI reads findings of ---------------------------------------------------

def test_a_kpi_naming_an_unknown_rule_is_a_positioned_error(tmp_path: Path) -> None:
    pack = tmp_path / "packs"
    pack.mkdir()
    (pack / "flow.yaml").write_text((REPO / "rules/packs/professional_services/time_to_bill.yaml").read_text())
    (pack / "kpis.yaml").write_text(
        "- name: a\n  kind: kpi\n  straight_through: {workflow: time_to_bill, rules: [time_to_bill, tim_to_bill]}\n"
        "- name: b\n  kind: kpi\n  ratio:\n    numerator:\n      table: events\n"
        "      without_findings: {key: invoice_id, rules: [invoices]}\n    denominator: {table: events}\n")
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    where = pack / "kpis.yaml"
    assert info.value.problems == [
        f"{where}:3:68: straight_through.rules[1]: 'tim_to_bill' is not a rule that makes findings "
        "(known: time_to_bill)",
        f"{where}:9:51: ratio.numerator.without_findings.rules[0]: 'invoices' is not a rule that makes findings "
        "(known: time_to_bill)"]


def test_without_findings_and_straight_through_are_validated_at_load() -> None:
    bad_kind = ("{name: k, kind: kpi, ratio: {numerator: {table: events, without_findings: {key: invoice_id, "
                "kinds: [drift]}}, denominator: {table: events}}}")
    with pytest.raises(RuleError, match="kinds"):
        load_text(bad_kind)
    hostile = (f'{{name: k, kind: kpi, ratio: {{numerator: {{table: events, without_findings: {{key: "{HOSTILE}"}}}}, '
               'denominator: {table: events}}}')
    with pytest.raises(RuleError, match=r"without_findings\.key"):
        load_text(hostile)
    with pytest.raises(RuleError, match=r"straight_through\.rules"):
        load_text(f'{{name: k, kind: kpi, straight_through: {{workflow: w, rules: ["{HOSTILE}"]}}}}')
    with pytest.raises(RuleError, match=r"give exactly one metric: .*straight_through"):
        load_text("{name: k, kind: kpi, straight_through: {workflow: w}, completion_rate: {workflow: w}}")


def test_hostile_rule_and_kind_values_are_bound_not_pasted() -> None:
    rule = STP.model_copy(update={"straight_through": STP.straight_through.model_copy(  # type: ignore[union-attr]
        update={"rules": (HOSTILE,)})})
    compiled = compile_kpi.compile(rule, WORKFLOWS, MAY, JUNE, now=NOW)
    assert HOSTILE not in compiled.sql and [HOSTILE] in compiled.parameters.values()
