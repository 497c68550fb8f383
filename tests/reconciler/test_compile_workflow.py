"""Workflow rules compiled to SQL and run on the real embedded ClickHouse.

Each test writes events (and error spans) with known stuck instances, SLA breaches and failed steps,
and asserts the EXACT set of (kind, field, keys) rows: every injected problem and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler import compile_workflow, workflow_progress
from reconciler.compile_reconcile import COLUMNS, explain
from reconciler.errors import RuleError
from reconciler.loader import load_rules, load_text
from reconciler.model import Filter, WorkflowRule
from reconciler.runner import run_rule
from syncwatch.store import Store
from tests.reconciler.records import NOW, k
from tests.reconciler.test_compile_reconcile import HOSTILE, _golden

REPO = Path(__file__).resolve().parents[2]
PACK = {r.name: r.rule for r in load_rules(REPO / "rules") if r.rule.kind == "workflow"}
EVENT_COLUMNS = ["type", "source", "id", "system", "time", "trace_id", "span_id", "keys", "data", "received_at"]
SPAN_COLUMNS = ["Timestamp", "TraceId", "SpanId", "SpanName", "ServiceName", "StatusCode", "StatusMessage"]
Found = set[tuple[str, str, tuple[tuple[str, str], ...]]]


def days(n: float) -> datetime:
    return NOW - timedelta(days=n)


@dataclass
class Events:
    """Events to insert; `add` returns self so a test reads as a timeline."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    spans: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, type_: str, at: datetime, keys: dict[str, Any], data: dict[str, Any] | None = None, *,
            trace: str = "", received: datetime | None = None) -> Events:
        text = {name: json.dumps(v) if isinstance(v, list) else v for name, v in keys.items()}
        n = len(self.rows)
        self.rows.append((type_, f"/{type_.split('.')[0]}", f"ev-{n}", type_.split(".")[0], at,
                          trace or f"trace-{n}", f"span-{n}", text, json.dumps(data or {}), received or at))
        return self

    def error_span(self, trace: str, at: datetime, name: str, message: str = "503 Service Unavailable") -> Events:
        self.spans.append((at, trace, f"err-{len(self.spans)}", name, "crm-to-psa-sync", "Error", message))
        return self

    def write(self, store: Store) -> None:
        store.insert_rows("events", self.rows, EVENT_COLUMNS)
        if self.spans:
            store.insert_rows("otel_traces", self.spans, SPAN_COLUMNS)


# Every test runs twice: on the events (the rule's query as `rules check` shows it without state)
# and on the progress rows a scheduled run keeps (workflow_progress, rebuilt here before each query).
_PATH = {"state": False}


@pytest.fixture(autouse=True, params=["events", "progress"])
def _path(request: pytest.FixtureRequest) -> Iterator[None]:
    _PATH["state"] = request.param == "progress"
    yield
    _PATH["state"] = False


def _prepare(store: Store, rule: WorkflowRule) -> bool:
    if _PATH["state"]:
        workflow_progress.update(store, rule, full=True, now=NOW)
    return _PATH["state"]


def run(store: Store, rule: WorkflowRule, since: datetime | None = None) -> list[dict[str, Any]]:
    compiled = compile_workflow.compile(rule, since, now=NOW, state=_prepare(store, rule))
    names, rows = store.query_columns(compiled.sql, compiled.parameters)
    return [dict(zip(names, row, strict=True)) for row in rows]


def found(store: Store, rule: WorkflowRule, since: datetime | None = None) -> Found:
    return {(r["kind"], r["field"], tuple(sorted(r["keys"].items()))) for r in run(store, rule, since)}


# -- time to bill: a many-key step, a step reached via another, a failure event -------------------------

def _timesheets(store: Store) -> None:
    timesheet_events().write(store)


def timesheet_events() -> Events:
    approved, invoiced, posted = "psa.timesheet.approved", "billing.invoice.created", "erp.invoice.posted"
    sheet = {"billable_amount": 1200.0, "currency": "EUR"}
    return (Events()
     .add(approved, days(45), {"timesheet_id": "TS-1"}, sheet)
     .add(approved, days(60), {"timesheet_id": "TS-2"}, sheet)                    # invoiced 50 days later
     .add(invoiced, days(10), {"invoice_id": "INV-1", "timesheet_ids": ["TS-1", "TS-2"]}, received=days(10))
     .add(posted, days(9), {"invoice_id": "INV-1"})
     .add(approved, days(45), {"timesheet_id": "TS-3"}, sheet)                    # never invoiced
     .add(approved, days(50), {"timesheet_id": "TS-7"}, {"billable_amount": 0.0})  # non-billable: not followed
     .add(approved, days(5), {"timesheet_id": "TS-4"}, sheet)                     # not due yet
     .add(approved, days(10), {"timesheet_id": "TS-5"}, sheet)
     .add(invoiced, days(8), {"invoice_id": "INV-2", "timesheet_ids": ["TS-5"]})  # never posted
     .add("integration.sync.failed", days(7), {"object_id": "INV-2", "integration": "billing-to-erp-sync"},
          {"error_message": "502 Bad Gateway"},
          trace="trace-failed")
     .add(approved, days(10), {"timesheet_id": "TS-6"}, sheet)
     .add(invoiced, days(9), {"invoice_id": "INV-3", "timesheet_ids": ["TS-6"]})
     .add(posted, days(5), {"invoice_id": "INV-3"})                               # 4 days after invoicing
     .add(approved, days(45), {"timesheet_id": HOSTILE}, {"billable_amount": 1, "currency": HOSTILE})
     .add("integration.sync.failed", days(7), {"object_id": "INV-UNKNOWN"}))     # links to no instance


TIME_TO_BILL: Found = {
    ("sla_breach", "invoiced", k(timesheet_id="TS-2")),
    ("stuck", "invoiced", k(timesheet_id="TS-3")),
    ("stuck", "posted", k(timesheet_id="TS-5")),
    ("failed_step", "invoice_sync_failed", k(timesheet_id="TS-5")),
    ("sla_breach", "posted", k(timesheet_id="TS-6")),
    ("stuck", "invoiced", k(timesheet_id=HOSTILE)),
}


def test_time_to_bill_finds_exactly_the_injected_problems(store: Store) -> None:
    _timesheets(store)
    assert found(store, PACK["time_to_bill"]) == TIME_TO_BILL


def test_values_traces_and_impact_of_findings(store: Store) -> None:
    _timesheets(store)
    rows = {(r["kind"], r["keys"]["timesheet_id"], r["field"]): r for r in run(store, PACK["time_to_bill"])}
    late = rows[("sla_breach", "TS-2", "invoiced")]
    assert (late["left_value"], late["right_value"]) == (str(days(18))[:19] + ".000000", str(days(10))[:19] + ".000000")
    assert (late["impact_amount"], late["impact_currency"]) == (1200.0, "EUR")
    assert late["systems"] == ["billing", "erp", "psa"]  # the systems of the instance's steps
    failed = rows[("failed_step", "TS-5", "invoice_sync_failed")]
    assert (failed["right_value"], failed["right_trace_id"]) == ("502 Bad Gateway", "trace-failed")
    assert failed["left_trace_id"] == "trace-8"  # INV-2 created: the last step that arrived
    assert rows[("stuck", HOSTILE, "invoiced")]["impact_currency"] == HOSTILE
    assert list(next(iter(rows.values()))) == list(COLUMNS)


def test_timesheet_approval_starts_with_the_first_submitted_entry(store: Store) -> None:
    entry, approved = "time.entry.submitted", "psa.timesheet.approved"
    (Events()
     .add(entry, days(10), {"timesheet_id": "TS-1"}).add(entry, days(9), {"timesheet_id": "TS-1"})
     .add(approved, days(7), {"timesheet_id": "TS-1"}, {"billable_amount": 0.0})  # non-billable time counts too
     .add(entry, days(10), {"timesheet_id": "TS-2"})                              # never reached the PSA
     .add("integration.sync.failed", days(10), {"object_id": "TS-2", "integration": "time-capture-sync"})
     .add(entry, days(20), {"timesheet_id": "TS-3"}).add(entry, days(12), {"timesheet_id": "TS-3"})
     .add(approved, days(10), {"timesheet_id": "TS-3"})                           # 10 days after the first entry
     .add(entry, days(3), {"timesheet_id": "TS-4"})                               # not due yet
     .write(store))
    assert found(store, PACK["timesheet_approval"]) == {
        ("stuck", "approved", k(timesheet_id="TS-2")),
        ("failed_step", "timesheet_sync_failed", k(timesheet_id="TS-2")),
        ("sla_breach", "approved", k(timesheet_id="TS-3")),
    }


# -- quote to project: links through two steps, error spans ------------------------------------------------

def quote_events() -> Events:
    won, customer, failed = "crm.opportunity.won", "erp.customer.created", "integration.sync.failed"
    project, staffed = "psa.project.created", "psa.project.staffed"
    return (Events()
     .add(won, days(20), {"opportunity_id": "OPP-1", "client_id": "C1"}, {"amount": 5e4, "currency": "EUR"},
          trace="T1")
     .add(customer, days(20) + timedelta(hours=1), {"client_id": "C1"}, trace="T1")
     .add(project, days(19), {"project_id": "P1", "opportunity_id": "OPP-1"}, trace="T1")
     .add(staffed, days(15), {"project_id": "P1"}, trace="T1")
     .error_span("T1", days(19), "POST /api/v1/projects")                 # the instance completed since
     .add(won, days(20), {"opportunity_id": "OPP-2", "client_id": "C2"}, trace="T2")
     .add(customer, days(19) - timedelta(hours=1), {"client_id": "C2"}, trace="T2")
     .add(project, days(18), {"project_id": "P2", "opportunity_id": "OPP-2"}, trace="T2")
     .error_span("T2", days(18), "POST /api/v1/projects")                 # and never staffed
     .add(won, days(10), {"opportunity_id": "OPP-3", "client_id": "C3"}, trace="T3")
     .add(failed, days(10) + timedelta(hours=1), {"object_id": "C3", "integration": "crm-to-erp-sync"}, trace="T3")
     .add(failed, days(10), {"object_id": "C2", "integration": "psa-to-erp-sync"})  # not the customer sync
     .add(project, days(9), {"project_id": "P3", "opportunity_id": "OPP-3"}, trace="T3")
     .add(staffed, days(5), {"project_id": "P3"}, trace="T3")
     .add(won, days(10), {"opportunity_id": "OPP-4", "client_id": "C1"}, trace="T4")  # an existing client
     .add(project, days(2), {"project_id": "P4", "opportunity_id": "OPP-4"}, trace="T4")
     .error_span("T1", days(3), "POST /api/v1/customers")  # C1's customer trace is OPP-1's, not OPP-4's
     .add(staffed, days(1), {"project_id": "P-ORPHAN"}))                 # no instance


def test_quote_to_project_with_failure_events_and_error_spans(store: Store) -> None:
    quote_events().write(store)
    assert found(store, PACK["quote_to_project"]) == {
        ("stuck", "staffed", k(opportunity_id="OPP-2")),
        ("failed_step", "POST /api/v1/projects", k(opportunity_id="OPP-2")),
        ("stuck", "client_in_erp", k(opportunity_id="OPP-3")),
        ("failed_step", "customer_sync_failed", k(opportunity_id="OPP-3")),
        ("sla_breach", "project_created", k(opportunity_id="OPP-4")),
    }
    span = next(r for r in run(store, PACK["quote_to_project"]) if r["field"].startswith("POST"))
    assert (span["left_value"], span["right_value"], span["right_trace_id"]) == ("won", "503 Service Unavailable",
                                                                                 "T2")


# -- resource to revenue: a many key (person_ids), a via through it, step and failure filters -------------

def _hire(events: Events, person: str, at: datetime, *, resource: timedelta | None = timedelta(hours=1),
          billable: float = 900.0) -> Events:
    events.add("hris.person.hired", at, {"person_id": person})
    if resource is not None:
        events.add("psa.resource.created", at + resource, {"person_id": person})
    return (events.add("psa.assignment.created", at + timedelta(days=2), {"person_id": person})
            .add("psa.timesheet.approved", at + timedelta(days=10), {"person_id": person},
                 {"billable_amount": billable}))


def test_resource_to_revenue_follows_a_hire_to_first_revenue(store: Store) -> None:
    hired, invoiced, posted, failed = "hris.person.hired", "billing.invoice.created", "erp.invoice.posted", \
        "integration.sync.failed"
    events = Events()
    _hire(events, "E1", days(30))                                                   # first revenue on time
    events.add(invoiced, days(10), {"invoice_id": "INV-A", "person_ids": ["E1", "E-OLD"]})
    events.add(posted, days(9), {"invoice_id": "INV-A"})
    events.add(hired, days(30), {"person_id": "E2"})                                # never reached the PSA
    events.add(failed, days(30) + timedelta(hours=1), {"object_id": "E2", "integration": "hris-to-psa-sync"},
               {"error_message": "503 Service Unavailable"})
    _hire(events, "E3", days(30), resource=timedelta(days=3))                       # set up 3 days late
    _hire(events, "E4", days(30), billable=0.0)                                     # non-billable work only
    _hire(events, "E5", days(30))                                                   # invoice never posted
    events.add(invoiced, days(10), {"invoice_id": "INV-B", "person_ids": ["E5"]})
    events.add(failed, days(9), {"object_id": "INV-B", "integration": "billing-to-erp-sync"})
    events.add(hired, days(30), {"person_id": "E6"})                                # not in the PSA; a failure
    events.add(failed, days(29), {"object_id": "E6", "integration": "crm-to-erp-sync"})  # ... of another sync
    _hire(events, "E7", days(30))                                                   # posted 5 days after invoicing
    events.add(invoiced, days(10), {"invoice_id": "INV-C", "person_ids": ["E7"]})
    events.add(posted, days(5), {"invoice_id": "INV-C"})
    events.add(hired, days(0.5), {"person_id": "E8"})                               # not due yet
    events.add("psa.resource.created", days(20), {"person_id": "E99"})              # no hire: no instance
    events.write(store)
    assert found(store, PACK["resource_to_revenue"]) == {
        ("stuck", "in_psa", k(person_id="E2")),
        ("failed_step", "resource_sync_failed", k(person_id="E2")),
        ("sla_breach", "in_psa", k(person_id="E3")),
        ("stuck", "posted", k(person_id="E5")),
        ("failed_step", "invoice_sync_failed", k(person_id="E5")),
        ("stuck", "in_psa", k(person_id="E6")),
        ("sla_breach", "posted", k(person_id="E7")),
    }


def test_a_step_filter_reads_keys_then_data_and_binds_its_values(store: Store) -> None:
    rule = PACK["resource_to_revenue"]
    steps = list(rule.steps)
    steps[0] = steps[0].model_copy(update={"filter": (Filter(field="grade.level", op="in", value=("3", "4")),
                                                       Filter(field="region", value=HOSTILE))})
    rule = rule.model_copy(update={"steps": tuple(steps)})
    (Events()
     .add("hris.person.hired", days(5), {"person_id": "E1", "region": HOSTILE}, {"grade": {"level": 3}})
     .add("hris.person.hired", days(5), {"person_id": "E2", "region": HOSTILE}, {"grade": {"level": 5}})
     .add("hris.person.hired", days(5), {"person_id": "E3"}, {"grade": {"level": 4}, "region": HOSTILE})
     .add("hris.person.hired", days(5), {"person_id": "E4"}, {"grade": {"level": 4}, "region": None})
     .write(store))
    compiled = compile_workflow.compile(rule, now=NOW)
    assert HOSTILE not in compiled.sql
    assert found(store, rule) == {("stuck", "in_psa", k(person_id="E1")), ("stuck", "in_psa", k(person_id="E3"))}


def test_steps_of_one_event_type_told_apart_by_filters(store: Store) -> None:
    """Two steps read the same event type (a status change, filtered by its new status): an event's
    type alone does not tell its step, so they are not read in the one pass the others share."""
    rule = load_text("""\
name: approvals
kind: workflow
severity: high
key_name: request_id
steps:
  - {name: opened, event_type: crm.request.opened, key: request_id}
  - {name: reviewed, event_type: crm.request.status, key: request_id, filter: [{field: status, value: reviewed}],
     sla: {within: 2d}}
  - {name: approved, event_type: crm.request.status, key: request_id, filter: [{field: status, value: approved}],
     sla: {within: 2d}}
  - {name: filed, event_type: erp.request.filed, key: request_id, sla: {within: 2d}}
""", "approvals.yaml")[0].rule
    sql = compile_workflow.compile(rule, now=NOW).sql
    # opened + filed together, reviewed and approved alone: three reads in each of the two passes
    assert sql.count("FROM events FINAL") == 2 * 3
    (Events()
     .add("crm.request.opened", days(10), {"request_id": "R1"})
     .add("crm.request.status", days(9), {"request_id": "R1"}, {"status": "reviewed"})
     .add("crm.request.status", days(8), {"request_id": "R1"}, {"status": "approved"})
     .add("erp.request.filed", days(7), {"request_id": "R1"})
     .add("crm.request.opened", days(10), {"request_id": "R2"})
     .add("crm.request.status", days(9), {"request_id": "R2"}, {"status": "reviewed"})    # never approved
     .add("crm.request.opened", days(10), {"request_id": "R3"})
     .add("crm.request.status", days(9), {"request_id": "R3"}, {"status": "approved"})    # never reviewed
     .write(store))
    assert found(store, rule) == {("stuck", "approved", k(request_id="R2")),
                                  ("stuck", "reviewed", k(request_id="R3"))}


# -- optional and repeatable steps ------------------------------------------------------------------------

def test_project_to_cash_optional_and_repeatable_steps(store: Store) -> None:
    created, approved = "psa.project.created", "psa.timesheet.approved"
    invoiced, posted = "billing.invoice.created", "erp.invoice.posted"
    billable, unbillable = {"billable_amount": 800.0}, {"billable_amount": 0.0}
    (Events()
     .add(created, days(90), {"project_id": "P1"})
     .add(approved, days(50), {"project_id": "P1"}, billable).add(approved, days(20), {"project_id": "P1"}, billable)
     .add(invoiced, days(40), {"project_id": "P1"}).add(posted, days(39), {"project_id": "P1"})  # next one not due
     .add(created, days(90), {"project_id": "P2"})
     .add(approved, days(50), {"project_id": "P2"}, billable)                         # never invoiced
     .add(created, days(90), {"project_id": "P3"})
     .add(approved, days(60), {"project_id": "P3"}, billable).add(invoiced, days(59), {"project_id": "P3"})
     .add(posted, days(58), {"project_id": "P3"})
     .add(approved, days(55), {"project_id": "P3"}, billable)                         # not invoiced
     .add(created, days(5), {"project_id": "P4"})                           # no time yet: nothing is due
     .add(created, days(90), {"project_id": "P5"})
     .add(approved, days(50), {"project_id": "P5"}, billable).add(invoiced, days(45), {"project_id": "P5"})
     .add(posted, days(30), {"project_id": "P5"})                                   # 15 days after invoicing
     .add(created, days(90), {"project_id": "P6"})
     .add(approved, days(80), {"project_id": "P6"}, unbillable)            # non-billable: never invoiced
     .write(store))
    assert found(store, PACK["project_to_cash"]) == {
        ("stuck", "invoiced", k(project_id="P2")),
        ("stuck", "invoiced", k(project_id="P3")),
        ("sla_breach", "posted", k(project_id="P5")),
    }


def test_an_optional_step_is_never_stuck_but_can_be_late(store: Store) -> None:
    rule = PACK["order_to_cash"]
    (Events()
     .add("shop.order.placed", days(20), {"order_id": "O1"}, {"total": {"amount": 99.5, "currency": "EUR"}})
     .add("payments.payment.captured", days(20), {"order_id": "O1"})
     .add("wms.shipment.dispatched", days(19), {"shipment_id": "S1", "order_ids": ["O1", "O2"]})
     .add("carrier.parcel.delivered", days(17), {"shipment_id": "S1"})              # O1: never invoiced
     .add("shop.order.placed", days(20), {"order_id": "O2"})
     .add("payments.payment.captured", days(20), {"order_id": "O2"})
     .add("erp.invoice.posted", days(10), {"order_id": "O2"})                     # 7 days after delivery
     .add("shop.order.placed", days(3), {"order_id": "O3"})
     .add("payments.payment.failed", days(3), {"order_id": "O3"}, {"reason": "card declined"})
     .write(store))
    assert found(store, rule) == {
        ("sla_breach", "invoiced", k(order_id="O2")),
        ("stuck", "paid", k(order_id="O3")),
        ("failed_step", "payment_failed", k(order_id="O3")),
    }
    impact = {r["keys"]["order_id"]: (r["impact_amount"], r["impact_currency"]) for r in run(store, rule)}
    assert impact["O2"] == (0.0, "")  # the placed event of O2 has no total


# -- incremental runs ------------------------------------------------------------------------------------

def test_incremental_run_finds_what_a_full_run_finds_for_the_keys_in_scope(store: Store) -> None:
    _timesheets(store)
    rule, since = PACK["time_to_bill"], days(7)
    scope = compile_workflow.scope(rule, since, NOW, state=_prepare(store, rule))
    _, rows = store.query_columns(scope.sql, dict(scope.parameters))
    in_scope = {row[0]["timesheet_id"] for row in rows}
    # a deadline passed since (TS-1 met it; TS-3, TS-5 and the hostile one did not); TS-4 approved and
    # TS-6 posted since; TS-2 (a breach) settled before, so an incremental run does not look at it
    assert in_scope == {"TS-1", "TS-3", "TS-4", "TS-5", "TS-6", HOSTILE}
    full = {f for f in found(store, rule) if dict(f[2])["timesheet_id"] in in_scope}
    assert found(store, rule, since) == full


def test_runner_applies_workflow_findings_and_resolves_in_scope(store: Store) -> None:
    _timesheets(store)
    rule = PACK["time_to_bill"]
    first = run_rule(store, "time_to_bill", "v1", "high", compile_workflow.compile(rule, now=NOW), True, now=NOW)
    assert (first.error, first.opened) == ("", len(TIME_TO_BILL))
    Events().add("erp.invoice.posted", days(1), {"invoice_id": "INV-2"}, received=NOW).write(store)
    since = NOW - timedelta(hours=1)
    later = NOW + timedelta(minutes=5)
    compiled = compile_workflow.compile(rule, since, now=later)
    second = run_rule(store, "time_to_bill", "v1", "high", compiled, False,
                      scope=compile_workflow.scope(rule, since, later), now=later)
    # TS-5 posted at last, but late: stuck and failed_step resolve, sla_breach opens
    assert (second.error, second.opened, second.resolved) == ("", 1, 2)


# -- rules: validation, safety, golden SQL, explain ------------------------------------------------------

WORKFLOW = """\
name: w
kind: workflow
key_name: order_id
steps:
  - {name: placed, event_type: shop.order.placed, key: order_id}
  - name: paid
    event_type: shop.order.paid
    key: order_id
    sla: {within: 1h, after: shipped}
"""


def test_validation_errors_name_file_line_and_field() -> None:
    with pytest.raises(RuleError) as info:
        load_text(WORKFLOW, "w.yaml")
    assert info.value.problems == ["w.yaml:9:30: steps[1].sla.after: 'shipped' is not an earlier step"]
    with pytest.raises(RuleError) as info:
        load_text(WORKFLOW.replace("shop.order.paid", HOSTILE), "w.yaml")
    assert any(m.startswith("w.yaml:7:17: steps[1].event_type: ") for m in info.value.problems)
    with pytest.raises(RuleError) as info:
        load_text(WORKFLOW.replace("after: shipped", "after: placed").replace("key: order_id\n", "kee: x\n"), "w.yaml")
    assert info.value.problems == ["w.yaml:6:5: steps[1].key: required field is missing",
                                   "w.yaml:8:5: steps[1].kee: unknown field 'kee' (did you mean 'key'?)"]


def test_hostile_strings_are_rejected_or_bound() -> None:
    rule = PACK["time_to_bill"].model_copy(update={"description": HOSTILE})
    compiled = compile_workflow.compile(rule, NOW, now=NOW)
    assert HOSTILE not in compiled.sql
    with pytest.raises(RuleError):
        load_text(WORKFLOW.replace("key: order_id\n", f"key: \"{HOSTILE}\"\n"), "w.yaml")


@pytest.mark.parametrize("name", sorted(PACK))
def test_golden_sql_of_the_shipped_workflows(name: str, store: Store) -> None:
    compiled = compile_workflow.compile(PACK[name], now=NOW)
    _golden(name, compiled.sql, compiled.parameters)
    assert store.query(compiled.sql, compiled.parameters) == []


def test_golden_sql_of_an_incremental_workflow_run(store: Store) -> None:
    compiled = compile_workflow.compile(PACK["quote_to_project"], days(1), now=NOW)
    _golden("quote_to_project.incremental", compiled.sql, compiled.parameters)
    assert store.query(compiled.sql, compiled.parameters) == []


def test_golden_sql_of_a_run_on_kept_progress(store: Store) -> None:
    rule = PACK["quote_to_project"]
    compiled = compile_workflow.compile(rule, days(1), now=NOW, state=True)
    _golden("quote_to_project.progress", compiled.sql, compiled.parameters)
    update = compile_workflow.progress_sql(rule, 7, days(1))
    _golden("quote_to_project.progress_update", update.sql, update.parameters)
    store.command(update.sql, update.parameters)
    assert store.query(compiled.sql, compiled.parameters) == []


def test_explain_says_what_a_workflow_tracks() -> None:
    text = explain(PACK["time_to_bill"])
    assert "2. invoiced: billing.invoice.created events, by the JSON array in key 'timesheet_ids'" in text
    assert "due within 2d after invoiced" in text
