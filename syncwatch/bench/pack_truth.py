"""What the professional-services pack must find in a simulated firm, from the simulator's ground truth.

Shared by `syncwatch bench accuracy` and tests/reconciler/test_pack_accuracy.py.

Each injected fault names the business objects it touched (`touched`). For each object a rule
watches, `EXPECT[rule]` states in plain Python, from what the systems delivered (delivered.py), the
findings the rule's business statement implies for it: "an approved billable timesheet that no
invoice covers 6 weeks later is stuck at invoiced". The test compares the union over every fault
with what the reconciler found: a finding on an object no fault touched is a false positive, an
expected one not found a miss. A fault that leaves nothing to find says why (`unseen`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from syncwatch.bench.delivered import Delivered, Event, first, last
from syncwatch.simulator.faults import (
    AMOUNT_MISMATCH,
    COST_RATE_MISMATCH,
    DELAYED_SYNC,
    DUPLICATE,
    FAILED_CALL,
    LOST_MESSAGE,
    REORDERED,
    SCHEMA_BREAK,
    UNBILLED_TIMESHEET,
    WRONG_LEGAL_ENTITY,
    Fault,
)

Keys = tuple[tuple[str, str], ...]
Finding = tuple[str, str, str, Keys]  # rule, kind, field, keys
Object = tuple[str, Any]  # rule, the object's key (a (project, month) pair for billing_leakage)
ERROR_SPAN = "<error span>"  # the field of a failed_step found from an error span is the span's name
DAY = timedelta(days=1)
LEAKAGE_FIELD = "sum(hours * bill_rate)"
# fault types no rule can see, and why: the collector absorbs them before any rule looks
UNCOVERED = {
    DUPLICATE: "absorbed by the collector: an event delivered twice is stored once",
    REORDERED: "absorbed by the collector: rules order steps by event time, not arrival",
}


def finding(rule: str, kind: str, field: str, **keys: str) -> Finding:
    return rule, kind, field, tuple(sorted(keys.items()))


# -- workflows: the first occurrence of each step, SLAs after an anchor -----------------------------

def _deadline(rule: str, key: dict[str, str], step: str, arrived: datetime | None, due: datetime, now: datetime,
              ready: bool = True) -> set[Finding]:
    """stuck: not arrived, the steps before it done (`ready`), the deadline passed; late: arrived after it."""
    if arrived is None:
        return {finding(rule, "stuck", step, **key)} if ready and due < now else set()
    return {finding(rule, "sla_breach", step, **key)} if arrived > due else set()


def _failed(rule: str, key: dict[str, str], name: str, failures: list[Event], start: datetime,
            complete: bool) -> set[Finding]:
    """A failure since the instance started, while it is not complete."""
    latest = last(failures)
    return {finding(rule, "failed_step", name, **key)} if latest and latest >= start and not complete else set()


def quote_to_project(d: Delivered, opp: str, now: datetime) -> set[Finding]:
    if opp not in d.won:
        return set()
    key, won = {"opportunity_id": opp}, first(d.won[opp])
    assert won is not None
    client = str(d.won[opp][0].data["account_id"])
    customer, projects = first(d.customers.get(client, [])), d.projects_of_opp.get(opp, [])
    created = first(projects)
    staffed = first(e for p in projects for e in d.staffed.get(str(p.data["project_id"]), []))
    out = _deadline("quote_to_project", key, "client_in_erp", customer, won + DAY, now)
    out |= _deadline("quote_to_project", key, "project_created", created, won + 5 * DAY, now, customer is not None)
    if created:
        out |= _deadline("quote_to_project", key, "staffed", staffed, created + 10 * DAY, now, customer is not None)
    complete = None not in (customer, created, staffed)
    out |= _failed("quote_to_project", key, "customer_sync_failed", d.failures("crm-to-erp-sync", [client]), won,
                   complete)
    traces = {e.trace for e in (*d.won[opp], *projects)}  # the steps keyed by the deal itself
    spans = [t for trace in traces for t in d.error_spans.get(trace, [])]
    if spans and max(spans) >= won and not complete:
        out.add(finding("quote_to_project", "failed_step", ERROR_SPAN, **key))
    return out


def time_to_bill(d: Delivered, sheet: str, now: datetime) -> set[Finding]:
    approved = first(d.billable(d.approvals.get(sheet, [])))
    if approved is None:
        return set()
    key, invoices = {"timesheet_id": sheet}, d.invoices_of_timesheet.get(sheet, [])
    invoice_ids = {str(e.data["invoice_id"]) for e in invoices}
    invoiced, posted = first(invoices), first(e for i in invoice_ids for e in d.postings.get(i, []))
    out = _deadline("time_to_bill", key, "invoiced", invoiced, approved + 42 * DAY, now)
    if invoiced:
        out |= _deadline("time_to_bill", key, "posted", posted, invoiced + 2 * DAY, now)
    out |= _failed("time_to_bill", key, "invoice_sync_failed", d.failures("billing-to-erp-sync", invoice_ids),
                   approved, None not in (invoiced, posted))
    return out


def timesheet_approval(d: Delivered, sheet: str, now: datetime) -> set[Finding]:
    submitted = first(d.entries.get(sheet, []))
    if submitted is None:
        return set()
    key, approved = {"timesheet_id": sheet}, first(d.approvals.get(sheet, []))
    out = _deadline("timesheet_approval", key, "approved", approved, submitted + 6 * DAY, now)
    return out | _failed("timesheet_approval", key, "timesheet_sync_failed",
                         d.failures("time-capture-sync", [sheet]), submitted, approved is not None)


def project_to_cash(d: Delivered, project: str, now: datetime) -> set[Finding]:
    """Repeating cycles: each step is due after the latest occurrence of its anchor and done only
    when it came at or after it."""
    if project not in d.projects:
        return set()
    key, out = {"project_id": project}, set()
    approved = last(d.approvals_of_project.get(project, []))
    invoiced = last(d.invoices_of_project.get(project, []))
    posted = last(d.postings_of_project.get(project, []))
    caught_up = invoiced is not None and (approved is None or invoiced >= approved)
    if approved is not None:
        out |= _deadline("project_to_cash", key, "invoiced", invoiced if caught_up else None,
                         approved + 42 * DAY, now)
    if caught_up and invoiced is not None:
        done = posted is not None and posted >= invoiced
        out |= _deadline("project_to_cash", key, "posted", posted if done else None, invoiced + 2 * DAY, now)
    return out


def resource_to_revenue(d: Delivered, person: str, now: datetime) -> set[Finding]:
    hired = first(d.hires.get(person, []))
    if hired is None:
        return set()
    key, invoices = {"person_id": person}, d.invoices_of_person.get(person, [])
    invoice_ids = {str(e.data["invoice_id"]) for e in invoices}
    steps = (first(d.resources.get(person, [])), first(d.assignments_of_person.get(person, [])),
             first(d.approvals_of_person.get(person, [])), first(invoices))
    in_psa, invoiced = steps[0], steps[3]
    posted = first(e for i in invoice_ids for e in d.postings.get(i, []))
    out = _deadline("resource_to_revenue", key, "in_psa", in_psa, hired + DAY, now)
    if invoiced:
        out |= _deadline("resource_to_revenue", key, "posted", posted, invoiced + 2 * DAY, now, None not in steps)
    complete = None not in (*steps, posted)
    out |= _failed("resource_to_revenue", key, "resource_sync_failed", d.failures("hris-to-psa-sync", [person]),
                   hired, complete)
    return out | _failed("resource_to_revenue", key, "invoice_sync_failed",
                         d.failures("billing-to-erp-sync", invoice_ids), hired, complete)


# -- reconcile rules: the latest records of both systems, field by field -----------------------------

def _sides(rule: str, key: dict[str, str], left: dict[str, Any] | None, right: dict[str, Any] | None,
           missing: str = "both") -> set[Finding] | None:
    """The missing_* finding when a side is absent (None when both are there: compare fields)."""
    if left is not None and right is not None:
        return None
    if left is not None and missing in ("both", "left_only"):
        return {finding(rule, "missing_right", "", **key)}
    if right is not None and missing in ("both", "right_only"):
        return {finding(rule, "missing_left", "", **key)}
    return set()


def _mismatches(rule: str, key: dict[str, str], differs: dict[str, bool]) -> set[Finding]:
    return {finding(rule, "mismatch", field, **key) for field, bad in differs.items() if bad}


def _text(value: Any) -> str:
    return " ".join(str(value).lower().split())


def psa_vs_erp_projects(d: Delivered, project: str, now: datetime) -> set[Finding]:
    psa, erp = d.records[("psa", "project")].get(project), d.records[("erp", "project")].get(project)
    key = {"project_id": project}
    one_sided = _sides("psa_vs_erp_projects", key, psa, erp)
    if one_sided is not None:
        return one_sided
    assert psa is not None and erp is not None
    status = {"lost": "cancelled"}.get(psa["status"], psa["status"])
    return _mismatches("psa_vs_erp_projects", key, {
        "status": _text(status) != _text(erp["status"]),
        "budget": abs(float(psa["budget"]) - float(erp["budget"])) > 0.01 * abs(float(psa["budget"])),
        "legal_entity": _text(psa["legal_entity"]) != _text(erp["legal_entity"])})


def crm_vs_erp_contract_value(d: Delivered, opp: str, now: datetime) -> set[Finding]:
    crm = d.records[("crm", "opportunity")].get(opp)
    if crm is None or crm["stage"] != "Closed Won":
        return set()
    key = {"opportunity_id": opp}
    erp = next((r for r in d.records[("erp", "project")].values() if r["opportunity_id"] == opp), None)
    one_sided = _sides("crm_vs_erp_contract_value", key, crm, erp, "left_only")
    if one_sided is not None:
        return one_sided
    assert erp is not None
    return _mismatches("crm_vs_erp_contract_value", key, {
        "amount": abs(float(crm["amount"]) - float(erp["budget"])) > 0.01,
        "currency": crm["currency"] != erp["currency"]})


def hr_vs_psa_cost_rates(d: Delivered, person: str, now: datetime) -> set[Finding]:
    hris, psa = d.records[("hris", "person")].get(person), d.records[("psa", "person")].get(person)
    key = {"person_id": person}
    one_sided = _sides("hr_vs_psa_cost_rates", key, hris, psa, "left_only")
    if one_sided is not None:
        return one_sided
    assert hris is not None and psa is not None
    days = abs((datetime.fromisoformat(hris["effective_date"]) - datetime.fromisoformat(psa["effective_date"])).days)
    return _mismatches("hr_vs_psa_cost_rates", key, {
        "cost_rate": abs(float(hris["cost_rate"]) - float(psa["cost_rate"])) > 0.01, "effective_date": days > 1,
        "currency": hris["currency"] != psa["currency"]})


def billing_vs_erp_invoices(d: Delivered, invoice: str, now: datetime) -> set[Finding]:
    billing, erp = d.records[("billing", "invoice")].get(invoice), d.records[("erp", "invoice")].get(invoice)
    key = {"invoice_id": invoice}
    one_sided = _sides("billing_vs_erp_invoices", key, billing, erp)
    if one_sided is not None:
        return one_sided
    assert billing is not None and erp is not None
    return _mismatches("billing_vs_erp_invoices", key, {
        "amount": abs(float(billing["amount"]) - float(erp["amount"])) > 0.01,
        "currency": billing["currency"] != erp["currency"]})


def billing_leakage(d: Delivered, group: tuple[str, str], now: datetime) -> set[Finding]:
    """Approved billable time (hours x bill rate) of a project and month against what the ERP invoiced."""
    project, month = group
    time = [t for t in d.records[("psa", "timesheet")].values()
            if t["project_id"] == project and t["status"] in ("approved", "invoiced") and t["billable"]
            and t["week_start"][:7] == month]
    invoiced = [i for i in d.records[("erp", "invoice")].values()
                if i["project_id"] == project and i["period"] == month]
    key = {"project_id": project, "period": month}
    if not time:
        return set()
    if not invoiced:
        return {finding("billing_leakage", "missing_right", "", **key)}
    left = sum(float(t["hours"]) * float(t["bill_rate"]) for t in time)
    right = sum(float(i["amount"]) for i in invoiced)
    return {finding("billing_leakage", "aggregate_mismatch", LEAKAGE_FIELD, **key)} if abs(left - right) > 1 else set()


EXPECT: dict[str, Callable[[Delivered, Any, datetime], set[Finding]]] = {
    f.__name__: f for f in (quote_to_project, time_to_bill, timesheet_approval, project_to_cash,
                            resource_to_revenue, psa_vs_erp_projects, crm_vs_erp_contract_value,
                            hr_vs_psa_cost_rates, billing_vs_erp_invoices, billing_leakage)}


# -- which objects each fault touched ---------------------------------------------------------------

def _deals_of_client(d: Delivered, client: str) -> set[Object]:
    return {("quote_to_project", opp) for opp in d.deals_of_client.get(client, [])}


def _project(d: Delivered, project: str) -> set[Object]:
    """A project's deal-level objects (its opportunity, from the PSA's record of it) and itself."""
    opp = (d.records[("psa", "project")].get(project) or {}).get("opportunity_id")
    deal = {("quote_to_project", opp), ("crm_vs_erp_contract_value", opp)} if opp else set()
    return deal | {("psa_vs_erp_projects", project), ("project_to_cash", project)}


def _invoice(project: str, sheets: list[str], people: list[str], period: str | None = None) -> set[Object]:
    """What an invoice that never arrived (or arrived wrong) touches: the time it bills, its project,
    and with a `period` the ERP's invoiced total of that project and month."""
    leakage = {("billing_leakage", (project, period))} if period else set()
    return ({("time_to_bill", s) for s in sheets} | {("resource_to_revenue", p) for p in people}
            | {("project_to_cash", project)} | leakage)


def _stored_invoice(d: Delivered, invoice: str) -> tuple[list[str], list[str]]:
    events = [e for e in d.of("billing.invoice.created") if e.data["invoice_id"] == invoice]
    lines = [line for e in events for line in e.data["lines"]]
    return [str(x["timesheet_id"]) for x in lines], [str(x["person_id"]) for x in lines]


def _sync(f: Fault, d: Delivered) -> set[Object]:
    k, integration = f.keys, f.detail["integration"]
    if integration == "crm-to-erp-sync":
        return _deals_of_client(d, k["client_id"])
    if integration == "crm-to-psa-sync":
        return {("quote_to_project", k["opportunity_id"]), ("crm_vs_erp_contract_value", k["opportunity_id"])}
    if integration == "psa-to-erp-sync":
        return _project(d, k["project_id"])
    if integration == "time-capture-sync":
        return {("timesheet_approval", k["timesheet_id"])}
    if integration in ("psa-to-billing-sync", "billing-to-erp-sync"):
        invoice = _invoice(k["project_id"], f.detail["timesheet_ids"], f.detail["person_ids"], f.detail["period"])
        return invoice | {("billing_vs_erp_invoices", k["invoice_id"])}
    assert integration == "hris-to-psa-sync", integration
    return {("hr_vs_psa_cost_rates", k["person_id"]), ("resource_to_revenue", k["person_id"])}


def _broken(f: Fault, d: Delivered) -> set[Object]:
    """A quarantined event: the objects whose workflow step or failure signal it was."""
    k, kind = f.keys, f.keys["event_type"]
    data = d.sent(k["event_id"])["data"]
    if kind == "erp.customer.created":
        return _deals_of_client(d, k["client_id"])
    if kind in ("psa.project.created", "psa.project.staffed"):
        return _project(d, k["project_id"])
    if kind in ("time.entry.submitted", "psa.timesheet.approved"):
        return {("timesheet_approval", k["timesheet_id"]), ("time_to_bill", k["timesheet_id"]),
                ("project_to_cash", k["project_id"]), ("resource_to_revenue", k["person_id"])}
    if kind == "billing.invoice.created":  # records are not events: the ERP's totals are unaffected
        lines = data.get("lines", [])
        return _invoice(k["project_id"], [x["timesheet_id"] for x in lines], [x["person_id"] for x in lines])
    if kind == "erp.invoice.posted":
        return _invoice(k["project_id"], *_stored_invoice(d, k["invoice_id"]))
    if kind in ("hris.person.hired", "psa.resource.created", "psa.assignment.created"):
        return {("resource_to_revenue", k["person_id"])}
    if kind == "integration.sync.failed":
        return _failure(d, data)
    return {("quote_to_project", k["opportunity_id"])} if kind == "crm.opportunity.won" else set()


def _failure(d: Delivered, data: dict[str, Any]) -> set[Object]:
    target, integration = str(data.get("object_id")), data.get("integration")
    if integration == "crm-to-erp-sync":
        return _deals_of_client(d, target)
    if integration == "billing-to-erp-sync":
        sheets, people = _stored_invoice(d, target)
        return {("time_to_bill", s) for s in sheets} | {("resource_to_revenue", p) for p in people}
    if integration == "time-capture-sync":
        return {("timesheet_approval", target)}
    return {("resource_to_revenue", target)} if integration == "hris-to-psa-sync" else set()


def touched(f: Fault, d: Delivered) -> set[Object]:
    """The objects a rule watches that fault `f` touched (none for faults the collector absorbs)."""
    k = f.keys
    if f.fault in UNCOVERED:
        return set()
    if f.fault == SCHEMA_BREAK:
        return _broken(f, d)
    if f.fault in (LOST_MESSAGE, FAILED_CALL, DELAYED_SYNC):
        return _sync(f, d)
    if f.fault == AMOUNT_MISMATCH:
        return {("billing_vs_erp_invoices", k["invoice_id"]),
                ("billing_leakage", (k["project_id"], f.detail["period"]))}
    if f.fault == COST_RATE_MISMATCH:
        return {("hr_vs_psa_cost_rates", k["person_id"])}
    if f.fault == WRONG_LEGAL_ENTITY:
        return {("psa_vs_erp_projects", k["project_id"])}
    assert f.fault == UNBILLED_TIMESHEET, f.fault
    return ({("time_to_bill", k["timesheet_id"]), ("resource_to_revenue", k["person_id"])}
            | {("project_to_cash", k["project_id"]), ("billing_leakage", (k["project_id"], f.detail["period"]))})


def expected(faults: list[Fault], d: Delivered, now: datetime) -> dict[Finding, list[Fault]]:
    """Every finding the pack must make, with the faults behind it."""
    out: dict[Finding, list[Fault]] = {}
    for f in faults:
        for rule, obj in touched(f, d):
            for found in EXPECT[rule](d, obj, now):
                out.setdefault(found, []).append(f)
    return out


# -- why a fault leaves nothing to find ------------------------------------------------------------

# event types whose loss no rule can notice: no rule step waits for them (staffing a person has no
# SLA), or they start an instance that then never exists (the quarantine reports them)
_UNWATCHED_EVENTS = {"crm.account.created", "hris.cost_rate.changed", "psa.assignment.created",
                     "crm.opportunity.won", "hris.person.hired"}


def unseen(f: Fault, d: Delivered) -> str | None:
    """Why fault `f` may leave no finding at the end of the feed, checked; None when it must leave one."""
    k, integration = f.keys, f.detail.get("integration")
    if f.fault in UNCOVERED:
        return UNCOVERED[f.fault]
    if f.fault == FAILED_CALL and not f.detail["gave_up"]:
        return "retried until it succeeded"
    if f.fault == DELAYED_SYNC and integration == "psa-to-billing-sync":
        return "the invoice was at most 6 days late, within the 6-week invoicing SLA"
    if f.fault == DELAYED_SYNC and integration in ("psa-to-erp-sync", "hris-to-psa-sync"):
        return "caught up before the run; no SLA times this sync and the latest states agree"
    target = {"psa-to-erp-sync": ("erp", "project", "project_id"), "hris-to-psa-sync": ("psa", "person", "person_id")}
    if f.fault in (LOST_MESSAGE, FAILED_CALL) and integration in target:
        system, entity, name = target[integration]
        later = d.updated[(system, entity)].get(k[name])
        return "a later sync of the same object caught the target up" if later and later > _at(f) else None
    if f.fault == COST_RATE_MISMATCH:
        later = d.updated[("psa", "person")].get(k["person_id"])
        return "a later rate change synced the right rate" if later and later.date().isoformat() > f.day else None
    if f.fault == SCHEMA_BREAK:
        return _unseen_event(f, d)
    return None


def _unseen_event(f: Fault, d: Delivered) -> str | None:
    kind = f.keys["event_type"]
    if kind in _UNWATCHED_EVENTS:
        return f"quarantined; no rule waits for a {kind} event (the quarantine table reports it)"
    if kind == "time.entry.submitted" and d.entries.get(f.keys["timesheet_id"]):
        return "quarantined; the timesheet's other entries started its approval"
    if kind == "integration.sync.failed":
        return "quarantined; the step whose sync failed is reported stuck"
    if kind == "psa.resource.created" and not d.hires.get(f.keys["person_id"]):
        return "quarantined; the person was on the opening headcount: no hire started a resource-to-revenue instance"
    return None


def _at(f: Fault) -> datetime:
    return datetime.fromisoformat(f.detail["at"].replace("Z", "+00:00"))
