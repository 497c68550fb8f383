"""What each system says about a firm entity: CloudEvent `data` per event type, record fields per entity.

Pure functions of the model's entities. Event data follow rules/schemas/<type>.json (field names,
required members, formats) and carry what rules/mappings/*.yaml map to keys and dimensions;
record fields are the flat values the reconciler compares.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from syncwatch.simulator.entities import (
    ENTITY_BY_CODE,
    Assignment,
    Client,
    Consultant,
    Invoice,
    Opportunity,
    Project,
    TimeEntry,
    Timesheet,
)

JSON = dict[str, Any]

# event type -> (a business-key member its schema requires, canonical key name -> data member).
# The required member is what a schema-breaking fault removes or mangles; the first canonical key
# is the event's CloudEvents subject and, with the others, the fault's ground-truth keys.
EVENT_KEYS: dict[str, tuple[str, dict[str, str]]] = {
    "crm.account.created": ("account_id", {"client_id": "account_id"}),
    "crm.opportunity.won": ("opportunity_id", {"opportunity_id": "opportunity_id", "client_id": "account_id"}),
    "erp.customer.created": ("customer_id", {"customer_id": "customer_id", "client_id": "crm_account_id"}),
    "psa.project.created": ("project_id", {"project_id": "project_id", "opportunity_id": "opportunity_id",
                                           "client_id": "client_id"}),
    "psa.project.staffed": ("project_id", {"project_id": "project_id"}),
    "psa.assignment.created": ("assignment_id", {"assignment_id": "assignment_id", "project_id": "project_id",
                                                 "person_id": "person_id"}),
    "time.entry.submitted": ("entry_id", {"time_entry_id": "entry_id", "timesheet_id": "timesheet_id",
                                          "person_id": "person_id", "project_id": "project_id"}),
    "psa.timesheet.approved": ("timesheet_id", {"timesheet_id": "timesheet_id", "project_id": "project_id",
                                                "person_id": "person_id"}),
    "billing.invoice.created": ("invoice_id", {"invoice_id": "invoice_id", "project_id": "project_id",
                                               "client_id": "client_id"}),
    "erp.invoice.posted": ("invoice_id", {"invoice_id": "invoice_id", "erp_document_id": "erp_document_id",
                                          "project_id": "project_id", "client_id": "client_id"}),
    "hris.cost_rate.changed": ("person_id", {"person_id": "person_id"}),
    "hris.person.hired": ("person_id", {"person_id": "person_id"}),
    "psa.resource.created": ("person_id", {"person_id": "person_id"}),
    "integration.sync.failed": ("object_type", {"object_id": "object_id", "integration": "integration"}),
}
ERROR_CODES = {"HTTPStatusError": "HTTP_{status}", "TimeoutError": "TIMEOUT", "ConnectionResetError": "CONN_RESET"}


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day(d: date) -> str:
    return d.isoformat()


def event_keys(event_type: str, data: JSON) -> dict[str, str]:
    """The canonical business keys present in an event's data (for the ground truth and the subject)."""
    _, keys = EVENT_KEYS[event_type]
    return {name: str(data[member]) for name, member in keys.items() if member in data}


# -- event data ------------------------------------------------------------------------------------

def account_created(c: Client, at: datetime) -> JSON:
    return {"account_id": c.client_id, "name": c.name, "industry": c.industry, "country": c.country,
            "region": c.region, "legal_entity": c.legal_entity, "owner_id": c.owner_id, "created_at": rfc3339(at)}


def opportunity_won(o: Opportunity, at: datetime) -> JSON:
    return {"opportunity_id": o.opportunity_id, "account_id": o.client_id, "name": o.name, "amount": o.amount,
            "currency": o.currency, "won_at": rfc3339(at), "expected_start": day(o.expected_start),
            "billing_type": "time_and_materials", "service_line": o.service_line, "region": o.region,
            "legal_entity": o.legal_entity, "owner_id": o.owner_id}


def customer_created(c: Client) -> JSON:
    return {"customer_id": c.customer_id, "crm_account_id": c.client_id, "name": c.name, "country": c.country,
            "currency": c.currency, "legal_entity": c.legal_entity, "region": c.region, "payment_terms_days": 30}


def project_created(p: Project) -> JSON:
    return {"project_id": p.project_id, "opportunity_id": p.opportunity_id, "client_id": p.client_id,
            "name": p.name, "billing_type": "time_and_materials", "budget_amount": p.budget, "currency": p.currency,
            "start_date": day(p.start_date), "end_date": day(p.end_date), "service_line": p.service_line,
            "region": p.region, "legal_entity": p.legal_entity}


def project_staffed(p: Project, at: datetime) -> JSON:
    return {"project_id": p.project_id, "assignment_ids": [a.assignment_id for a in p.assignments],
            "headcount": len(p.assignments), "staffed_at": rfc3339(at), "service_line": p.service_line,
            "region": p.region}


def assignment_created(a: Assignment) -> JSON:
    return {"assignment_id": a.assignment_id, "project_id": a.project_id, "person_id": a.person_id,
            "role": a.role, "allocation_percent": round(a.hours_per_week / 40 * 100, 1), "bill_rate": a.bill_rate,
            "currency": a.currency, "rate_unit": "hour", "start_date": day(a.start_date),
            "end_date": day(a.end_date), "region": a.region, "legal_entity": a.legal_entity}


def entry_submitted(e: TimeEntry) -> JSON:
    return {"entry_id": e.entry_id, "person_id": e.person_id, "project_id": e.project_id,
            "assignment_id": e.assignment_id, "timesheet_id": e.timesheet_id, "work_date": day(e.day),
            "hours": e.hours, "billable": e.billable}


def timesheet_approved(s: Timesheet, at: datetime) -> JSON:
    return {"timesheet_id": s.timesheet_id, "person_id": s.person_id, "project_id": s.project_id,
            "period_start": day(s.week_start), "period_end": day(s.week_end), "hours": s.hours,
            "billable_hours": s.hours if s.billable else 0.0, "billable_amount": s.amount, "currency": s.currency,
            "entry_ids": [e.entry_id for e in s.entries], "approved_at": rfc3339(at), "approver_id": s.approver_id,
            "region": s.region, "legal_entity": s.legal_entity, "service_line": s.service_line}


def invoice_created(i: Invoice) -> JSON:
    lines = [{"timesheet_id": line.timesheet_id, "project_id": i.project_id, "person_id": line.person_id,
              "description": f"Professional services {line.person_id} {line.week}", "quantity": line.hours,
              "unit_price": line.unit_price, "amount": line.amount} for line in i.lines]
    return {"invoice_id": i.invoice_id, "client_id": i.client_id, "project_id": i.project_id, "amount": i.amount,
            "tax_amount": i.tax_amount, "currency": i.currency, "issued_on": day(i.issue_date),
            "due_on": day(i.due_date), "lines": lines, "legal_entity": i.legal_entity, "region": i.region,
            "service_line": i.service_line}


def invoice_posted(i: Invoice, document_id: str, amount: float, at: datetime) -> JSON:
    tax = round(amount * ENTITY_BY_CODE[i.legal_entity].tax_rate, 2)
    return {"invoice_id": i.invoice_id, "erp_document_id": document_id, "customer_id": i.customer_id,
            "client_id": i.client_id, "project_id": i.project_id, "amount": amount, "tax_amount": tax,
            "currency": i.currency, "posted_at": rfc3339(at), "period": i.period, "legal_entity": i.legal_entity,
            "region": i.region}


def cost_rate_changed(p: Consultant, previous: float) -> JSON:
    return {"person_id": p.person_id, "cost_rate": p.cost_rate, "previous_cost_rate": previous,
            "currency": p.currency, "unit": "hour", "effective_from": day(p.effective_date), "grade": p.grade,
            "legal_entity": p.legal_entity, "region": p.region, "changed_by": "hr-comp-review"}


def person_hired(p: Consultant) -> JSON:
    return {"person_id": p.person_id, "name": p.name, "grade": p.grade, "hire_date": day(p.effective_date),
            "cost_rate": p.cost_rate, "currency": p.currency, "unit": "hour", "region": p.region,
            "legal_entity": p.legal_entity, "service_line": p.service_line}


def resource_created(p: Consultant, cost_rate: float, at: datetime) -> JSON:
    """The PSA's resource for a person, costed at `cost_rate` (what the sync delivered, maybe wrong)."""
    return {"person_id": p.person_id, "grade": p.grade, "cost_rate": cost_rate, "currency": p.currency,
            "effective_date": day(p.effective_date), "created_at": rfc3339(at), "region": p.region,
            "legal_entity": p.legal_entity, "service_line": p.service_line}


def sync_failed(integration: str, source: str, target: str, entity: str, key: str, error: tuple[str, str],
                attempts: int, at: datetime) -> JSON:
    kind, message = error
    code = ERROR_CODES.get(kind, kind.upper()).format(status=message[:3])
    return {"integration": integration, "source_system": source, "target_system": target, "object_type": entity,
            "object_id": key, "error_code": code, "error_message": message, "attempt": attempts, "retryable": True,
            "failed_at": rfc3339(at)}


# -- record fields ---------------------------------------------------------------------------------

def opportunity_record(o: Opportunity) -> JSON:
    return {"opportunity_id": o.opportunity_id, "amount": o.amount, "currency": o.currency, "stage": o.stage,
            "client_id": o.client_id, "legal_entity": o.legal_entity, "region": o.region,
            "close_date": day(o.close_date), "service_line": o.service_line, "owner_id": o.owner_id}


def customer_record(c: Client) -> JSON:
    return {"client_id": c.client_id, "customer_id": c.customer_id, "name": c.name, "country": c.country,
            "legal_entity": c.legal_entity, "region": c.region, "currency": c.currency}


def project_record(p: Project, legal_entity: str | None = None) -> JSON:
    return {"project_id": p.project_id, "client_id": p.client_id, "opportunity_id": p.opportunity_id,
            "status": p.status, "budget": p.budget, "currency": p.currency,
            "legal_entity": legal_entity or p.legal_entity, "region": p.region, "service_line": p.service_line,
            "start_date": day(p.start_date), "end_date": day(p.end_date)}


def timesheet_record(s: Timesheet, status: str) -> JSON:
    return {"timesheet_id": s.timesheet_id, "person_id": s.person_id, "project_id": s.project_id,
            "week": s.week, "week_start": day(s.week_start), "period": s.period, "hours": s.hours,
            "billable": s.billable, "bill_rate": s.bill_rate, "amount": s.amount, "currency": s.currency,
            "status": status, "legal_entity": s.legal_entity, "region": s.region}


def invoice_record(i: Invoice, amount: float | None = None) -> JSON:
    return {"invoice_id": i.invoice_id, "project_id": i.project_id, "client_id": i.client_id,
            "amount": i.amount if amount is None else amount, "currency": i.currency, "period": i.period,
            "timesheet_ids": list(i.timesheet_ids), "legal_entity": i.legal_entity, "issue_date": day(i.issue_date)}


def person_record(p: Consultant, cost_rate: float | None = None) -> JSON:
    return {"person_id": p.person_id, "cost_rate": p.cost_rate if cost_rate is None else cost_rate,
            "currency": p.currency, "effective_date": day(p.effective_date),
            "region": p.region, "legal_entity": p.legal_entity, "grade": p.grade}
