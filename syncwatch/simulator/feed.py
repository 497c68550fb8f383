"""The demo feed: a consulting firm's business process, as its systems and integrations report it.

`generate(config)` yields the batches of a run without any server (deterministic for a seed and
start date); `run_feed(...)` sends them through the platform's real endpoints.

Which system says what (the firm's facts come from firm.py; delivery and faults from delivery.py):

- client onboarded: crm.account.created
- person onboarded (the opening headcount): hris/person; hris-to-psa-sync -> psa/person
- person hired: hris.person.hired, hris/person; hris-to-psa-sync -> psa.resource.created (the PSA's
  first sight of a person, whichever sync brings it), psa/person
- opportunity won (lost): crm.opportunity.won (only if won), crm/opportunity
- customer created: crm-to-erp-sync -> erp.customer.created, erp/customer
- project created: crm-to-psa-sync -> psa.project.created, psa/project; psa-to-erp-sync -> erp/project
- staffed, started, closed: psa.assignment.created, psa.project.staffed, psa/project;
  psa-to-erp-sync -> erp/project
- timesheet submitted: time.entry.submitted (one per entry); time-capture-sync -> psa/timesheet
- timesheet approved: psa.timesheet.approved, psa/timesheet
- invoice created: psa-to-billing-sync -> billing.invoice.created, billing/invoice;
  billing-to-erp-sync (end-of-day posting) -> erp.invoice.posted, erp/invoice
- cost rate changed: hris.cost_rate.changed, hris/person; hris-to-psa-sync -> psa/person
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from syncwatch.simulator import payloads as p
from syncwatch.simulator.delivery import SYSTEMS, Delivery, FeedConfig
from syncwatch.simulator.entities import LEGAL_ENTITIES, Consultant, Fact, Invoice, Project, money
from syncwatch.simulator.faults import (
    AMOUNT_MISMATCH,
    COST_RATE_MISMATCH,
    UNBILLED_TIMESHEET,
    WRONG_LEGAL_ENTITY,
    JsonlLog,
)
from syncwatch.simulator.firm import Firm
from syncwatch.simulator.spans import Context
from syncwatch.simulator.transport import Batch, FeedStats, Transport

__all__ = ["SYSTEMS", "Batch", "Feed", "FeedConfig", "FeedStats", "generate", "run_feed"]

MAX_LINKS = 32  # an invoice trace links to the approvals it bills, up to this many


class Feed(Delivery):
    """The firm's facts turned into what each system and integration sends."""

    def __init__(self, config: FeedConfig) -> None:
        super().__init__(config)
        self._documents = itertools.count(1)  # the ERP's own document numbers
        self._resources: set[str] = set()  # people the PSA has a resource for

    def handle(self, fact: Fact) -> None:
        getattr(self, "_on_" + fact.kind.replace(".", "_"))(fact)

    # -- clients and deals -----------------------------------------------------------------------------

    def _on_client_onboarded(self, f: Fact) -> None:
        client = f.obj
        ctx = self._publish("crm-to-erp-sync", "crm.account.created", f.at, {"client_id": client.client_id})
        self._event("crm", "crm.account.created", p.account_created(client, f.at), f.at, ctx)

    def _on_opportunity_lost(self, f: Fact) -> None:
        opp = f.obj
        self._record("crm", "opportunity", opp.opportunity_id, p.opportunity_record(opp), f.at, None)

    def _on_opportunity_won(self, f: Fact) -> None:
        opp = f.obj
        keys = {"opportunity_id": opp.opportunity_id, "client_id": opp.client_id}
        ctx = self._ctx[opp.opportunity_id] = self._publish("crm-to-psa-sync", "crm.opportunity.won", f.at, keys)
        self._event("crm", "crm.opportunity.won", p.opportunity_won(opp, f.at), f.at, ctx)
        self._record("crm", "opportunity", opp.opportunity_id, p.opportunity_record(opp), f.at, ctx)

    def _on_customer_created(self, f: Fact) -> None:
        client = f.obj
        data, fields = p.customer_created(client), p.customer_record(client)

        def write(at: datetime, ctx: Context) -> None:
            self._event("erp", "erp.customer.created", data, at, ctx)
            self._record("erp", "customer", client.client_id, fields, at, ctx)

        keys = {"client_id": client.client_id, "opportunity_id": f.extra["opportunity_id"]}
        self._sync("crm-to-erp-sync", "customer", keys, f.at, self._ctx.get(f.extra["opportunity_id"]), write)

    # -- projects --------------------------------------------------------------------------------------

    def _on_project_created(self, f: Fact) -> None:
        project: Project = f.obj
        data, fields = p.project_created(project), p.project_record(project)

        def write(at: datetime, ctx: Context) -> None:
            self._ctx[project.project_id] = ctx
            self._event("psa", "psa.project.created", data, at, ctx)
            self._record("psa", "project", project.project_id, fields, at, ctx)
            self._sync_erp_project(project, fields, at + self._latency(1, 60), ctx)

        keys = {"project_id": project.project_id, "opportunity_id": project.opportunity_id,
                "client_id": project.client_id}
        self._sync("crm-to-psa-sync", "project", keys, f.at, self._ctx.get(project.opportunity_id), write,
                   on_lost=lambda: Firm.lose(project))

    def _on_assignment_created(self, f: Fact) -> None:
        a = f.obj
        parent = self._ctx.get(a.project_id)
        ctx = self.tracer.child_of(parent) if parent else self.tracer.new_trace()  # the PSA's own, unseen span
        self._event("psa", "psa.assignment.created", p.assignment_created(a), f.at, ctx)

    def _on_project_staffed(self, f: Fact) -> None:
        project = f.obj
        ctx = self._publish("psa-to-erp-sync", "psa.project.staffed", f.at, self._project_keys(project),
                            self._ctx.get(project.project_id))
        self._event("psa", "psa.project.staffed", p.project_staffed(project, f.at), f.at, ctx)
        self._project_update(project, f.at, ctx)

    def _on_project_started(self, f: Fact) -> None:
        project = f.obj
        ctx = self._publish("psa-to-erp-sync", "psa/project", f.at, self._project_keys(project),
                            self._ctx.get(project.project_id))
        self._project_update(project, f.at, ctx)

    _on_project_closed = _on_project_started

    def _project_keys(self, project: Project) -> dict[str, str]:
        return {"project_id": project.project_id, "client_id": project.client_id}

    def _project_update(self, project: Project, at: datetime, ctx: Context) -> None:
        fields = p.project_record(project)
        self._record("psa", "project", project.project_id, fields, at, ctx)
        self._sync_erp_project(project, fields, at, ctx)

    def _sync_erp_project(self, project: Project, fields: dict[str, Any], at: datetime, parent: Context) -> None:
        pid = project.project_id

        def write(t: datetime, ctx: Context) -> None:
            if pid not in self._erp_entity:  # the ERP decides the booking entity once, at creation
                self._erp_entity[pid] = self._booking_entity(project, t)
            self._record("erp", "project", pid, {**fields, "legal_entity": self._erp_entity[pid]}, t, ctx)

        self._sync("psa-to-erp-sync", "project", self._project_keys(project), at, parent, write)

    def _booking_entity(self, project: Project, at: datetime) -> str:
        if not self.truth.roll(WRONG_LEGAL_ENTITY):
            return project.legal_entity
        others = [le for le in LEGAL_ENTITIES if le.code != project.legal_entity]
        near = [le for le in others if le.region == project.region] or others
        wrong = self.truth.rng.choice(near).code
        self.truth.record(WRONG_LEGAL_ENTITY, at.date(), ("psa", "erp"), self._project_keys(project),
                          psa=project.legal_entity, erp=wrong)
        return wrong

    # -- time ------------------------------------------------------------------------------------------

    def _on_timesheet_submitted(self, f: Fact) -> None:
        sheet = f.obj
        keys = {"timesheet_id": sheet.timesheet_id, "person_id": sheet.person_id, "project_id": sheet.project_id}
        ctx = self._publish("time-capture-sync", "time.entry.submitted", f.at, keys)
        for i, entry in enumerate(sheet.entries):
            self._event("time", "time.entry.submitted", p.entry_submitted(entry), f.at + timedelta(seconds=i), ctx)
        fields = p.timesheet_record(sheet, "submitted")

        def write(at: datetime, write_ctx: Context) -> None:
            self._ctx[sheet.timesheet_id] = write_ctx
            self._record("psa", "timesheet", sheet.timesheet_id, fields, at, write_ctx)

        self._sync("time-capture-sync", "timesheet", keys, f.at + timedelta(seconds=len(sheet.entries)), ctx, write,
                   on_lost=lambda: Firm.lose(sheet))

    def _on_timesheet_approved(self, f: Fact) -> None:
        sheet = f.obj
        keys = {"timesheet_id": sheet.timesheet_id, "person_id": sheet.person_id, "project_id": sheet.project_id}
        ctx = self._publish("psa-to-billing-sync", "psa.timesheet.approved", f.at, keys,
                            self._ctx.get(sheet.timesheet_id))
        self._ctx[sheet.timesheet_id] = ctx
        self._event("psa", "psa.timesheet.approved", p.timesheet_approved(sheet, f.at), f.at, ctx)
        self._record("psa", "timesheet", sheet.timesheet_id, p.timesheet_record(sheet, "approved"), f.at, ctx,
                     last=True)
        if sheet.billable and sheet.hours and self.truth.roll(UNBILLED_TIMESHEET):
            sheet.withheld = True
            self.truth.record(UNBILLED_TIMESHEET, f.at.date(), ("psa", "billing"), keys, amount=sheet.amount,
                              currency=sheet.currency, period=sheet.period)
        if not sheet.billable or sheet.withheld:  # no invoice will link to it: forget its context
            self._ctx.pop(sheet.timesheet_id, None)

    # -- money -----------------------------------------------------------------------------------------

    def _on_invoice_created(self, f: Fact) -> None:
        invoice: Invoice = f.obj
        links = tuple(self._ctx[t] for t in invoice.timesheet_ids if t in self._ctx)[:MAX_LINKS]
        data, fields = p.invoice_created(invoice), p.invoice_record(invoice)

        def write(at: datetime, ctx: Context) -> None:
            self._event("billing", "billing.invoice.created", data, at, ctx)
            self._record("billing", "invoice", invoice.invoice_id, fields, at, ctx, last=True)
            posting = datetime.combine(at.date(), datetime.min.time(), UTC) + timedelta(hours=22)
            self._post_invoice(invoice, max(posting, at) + self._latency(0, 5400), ctx)

        self._sync("psa-to-billing-sync", "invoice", self._invoice_keys(invoice), f.at, None, write, links=links,
                   about=self._invoice_about(invoice))
        for sheet_id in invoice.timesheet_ids:
            self._ctx.pop(sheet_id, None)

    def _invoice_keys(self, invoice: Invoice) -> dict[str, str]:
        return {"invoice_id": invoice.invoice_id, "project_id": invoice.project_id, "client_id": invoice.client_id}

    def _invoice_about(self, invoice: Invoice) -> dict[str, Any]:
        """What a fault on an invoice touches besides its keys: the time it bills, and its period."""
        return {"period": invoice.period, "timesheet_ids": list(invoice.timesheet_ids),
                "person_ids": sorted({line.person_id for line in invoice.lines})}

    def _post_invoice(self, invoice: Invoice, at: datetime, parent: Context) -> None:
        """The ERP's end-of-day posting run picks up the day's billing invoices."""

        def write(t: datetime, ctx: Context) -> None:
            amount, document = self._posted_amount(invoice, t), f"51{next(self._documents):08d}"
            self._event("erp", "erp.invoice.posted", p.invoice_posted(invoice, document, amount, t), t, ctx)
            fields = {**p.invoice_record(invoice, amount), "erp_document_id": document}
            self._record("erp", "invoice", invoice.invoice_id, fields, t, ctx, last=True)

        self._sync("billing-to-erp-sync", "invoice", self._invoice_keys(invoice), at, parent, write,
                   about=self._invoice_about(invoice))

    def _posted_amount(self, invoice: Invoice, at: datetime) -> float:
        if not self.truth.roll(AMOUNT_MISMATCH):
            return invoice.amount
        # big enough for any sane tolerance: 1-12 % of the invoice, and at least 25 in its currency
        delta = max(25.0, invoice.amount * self.truth.rng.uniform(0.01, 0.12))
        amount = money(invoice.amount + delta * self.truth.rng.choice((-1, 1)))
        if amount <= 0:
            amount = money(invoice.amount + delta)
        self.truth.record(AMOUNT_MISMATCH, at.date(), ("billing", "erp"), self._invoice_keys(invoice),
                          billing=invoice.amount, erp=amount, currency=invoice.currency, period=invoice.period)
        return amount

    # -- people ----------------------------------------------------------------------------------------

    def _on_person_onboarded(self, f: Fact) -> None:
        person = f.obj
        ctx = self._publish("hris-to-psa-sync", "hris/person", f.at, {"person_id": person.person_id})
        self._record("hris", "person", person.person_id, p.person_record(person), f.at, ctx)
        self._sync_person(person, f.at, ctx, None)

    def _on_person_hired(self, f: Fact) -> None:
        person = f.obj
        ctx = self._publish("hris-to-psa-sync", "hris.person.hired", f.at, {"person_id": person.person_id})
        self._event("hris", "hris.person.hired", p.person_hired(person), f.at, ctx)
        self._record("hris", "person", person.person_id, p.person_record(person), f.at, ctx)
        self._sync_person(person, f.at, ctx, None)

    def _on_cost_rate_changed(self, f: Fact) -> None:
        person, previous = f.obj, f.extra["previous_cost_rate"]
        ctx = self._publish("hris-to-psa-sync", "hris.cost_rate.changed", f.at, {"person_id": person.person_id})
        self._event("hris", "hris.cost_rate.changed", p.cost_rate_changed(person, previous), f.at, ctx)
        self._record("hris", "person", person.person_id, p.person_record(person), f.at, ctx)
        self._sync_person(person, f.at, ctx, previous)

    def _sync_person(self, person: Consultant, at: datetime, parent: Context, previous: float | None) -> None:
        fields = p.person_record(person)

        def write(t: datetime, ctx: Context) -> None:
            rate = fields["cost_rate"]
            if self.truth.roll(COST_RATE_MISMATCH):
                # a change that never took (the old rate stays), or a hire keyed in wrong
                wrong = previous if previous is not None else money(rate * self.truth.rng.choice((0.9, 1.1, 1.25)))
                self.truth.record(COST_RATE_MISMATCH, t.date(), ("hris", "psa"), {"person_id": person.person_id},
                                  hris=rate, psa=wrong, currency=person.currency)
                rate = wrong
            if person.person_id not in self._resources:
                self._resources.add(person.person_id)
                self._event("psa", "psa.resource.created", p.resource_created(person, rate, t), t, ctx)
            self._record("psa", "person", person.person_id, {**fields, "cost_rate": rate}, t, ctx)

        self._sync("hris-to-psa-sync", "person", {"person_id": person.person_id}, at + self._latency(5, 900),
                   parent, write)


def generate(config: FeedConfig) -> Iterator[Batch]:
    """The feed's batches, without a server: the same config (seed and start date) gives the same batches.

    To read the ground truth too, iterate `Feed(config).batches()` and look at its `truth`.
    """
    return Feed(config).batches()


def run_feed(base_url: str, tokens: dict[str, str], config: FeedConfig, stop: threading.Event | None = None,
             progress: Callable[[FeedStats], None] | None = None) -> FeedStats:
    """Send the feed to a running Syncwatch at `base_url` and return what was sent.

    `tokens` maps each of SYSTEMS, and "telemetry" for spans, to an API key ("*" may stand for one
    key that speaks for all). Runs `config.days` simulated days, or until `stop` is set when days is
    None, one day per `config.pace` seconds; `progress` is called with the stats after each day.
    Injected faults are appended to `config.ground_truth_path` as they happen.
    """
    stop = stop or threading.Event()
    feed, stats = Feed(config), FeedStats()
    truth_log = JsonlLog(config.ground_truth_path) if config.ground_truth_path else None
    if truth_log:
        feed.truth.listeners.append(truth_log)
    feed.truth.listeners.append(lambda fault: stats.count_fault(fault.fault))
    try:
        with Transport(base_url, tokens, stats, stop, config.max_retries, config.timeout,
                       systems=(*SYSTEMS, "telemetry")) as transport:
            for d in feed.days():
                if stop.is_set():
                    break
                began = time.monotonic()
                for batch in feed.run_day(d):
                    if stop.is_set():
                        break
                    transport.send(batch)
                stats.days += 1
                stats.simulated_day = d.isoformat()
                if progress:
                    progress(stats)
                if config.pace > 0:
                    stop.wait(max(0.0, config.pace - (time.monotonic() - began)))
            for batch in feed.drain() if not stop.is_set() else []:
                transport.send(batch)
    finally:
        if truth_log:
            truth_log.close()
    return stats
