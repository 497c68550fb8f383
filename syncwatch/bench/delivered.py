"""What a simulated firm's systems delivered to Syncwatch, indexed by business object.

Built from the feed's batches: the events that passed their schema (a schema-breaking fault's event
is quarantined, so the reconciler never sees it), each record's latest version, and the start
times of error spans per trace. pack_truth.py reads it to say what each rule should find.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from syncwatch.simulator.transport import Batch


@dataclass(frozen=True)
class Event:
    type: str
    time: datetime
    data: dict[str, Any]
    trace: str  # W3C trace id, lowercase hex


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _index(events: Iterable[Event], *members: str) -> dict[str, list[Event]]:
    """Events by the value of a data member (a list member, e.g. lines, yields each element's)."""
    out: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        for value in _values(e.data, members):
            out[value].append(e)
    return out


def _values(data: Any, members: tuple[str, ...]) -> set[str]:
    if not members:
        return {str(data)} if isinstance(data, str | int | float) and not isinstance(data, bool) else set()
    head, rest = members[0], members[1:]
    value = data.get(head) if isinstance(data, dict) else None
    if isinstance(value, list):
        return {v for item in value for v in _values(item, rest)}
    return _values(value, rest) if value is not None else set()


class Delivered:
    """The stored view of a feed: events minus the quarantined ones, latest records, error spans."""

    def __init__(self, batches: list[Batch], quarantined: set[str]) -> None:
        self.events: dict[str, list[Event]] = defaultdict(list)
        self.broken: dict[str, dict[str, Any]] = {}  # event id -> the event as sent
        self.records: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
        self.updated: dict[tuple[str, str], dict[str, datetime]] = defaultdict(dict)  # of the latest version
        self.error_spans: dict[str, list[datetime]] = defaultdict(list)
        seen: set[tuple[str, str]] = set()
        versions: dict[tuple[str, str, str], int] = {}
        for batch in batches:
            for item in batch.items:
                if batch.kind == "spans":
                    if item.error:
                        self.error_spans[f"{item.context.trace_id:032x}"].append(item.start)
                elif batch.kind == "records":
                    at = (batch.system, batch.entity, item["key"])
                    if item["version"] > versions.get(at, 0):
                        versions[at] = item["version"]
                        self.records[(batch.system, batch.entity)][item["key"]] = item["fields"]
                        self.updated[(batch.system, batch.entity)][item["key"]] = instant(item["updated_at"])
                elif item["id"] in quarantined:
                    self.broken[item["id"]] = item
                elif (item["source"], item["id"]) not in seen:  # a duplicate delivery is stored once
                    seen.add((item["source"], item["id"]))
                    trace = item["traceparent"].split("-")[1]
                    self.events[item["type"]].append(Event(item["type"], instant(item["time"]), item["data"], trace))

    def of(self, event_type: str) -> list[Event]:
        return self.events.get(event_type, [])

    # -- indexes by business key (the data members rules/mappings map to keys) -----------------------

    @cached_property
    def won(self) -> dict[str, list[Event]]:
        return _index(self.of("crm.opportunity.won"), "opportunity_id")

    @cached_property
    def deals_of_client(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for opp, events in self.won.items():
            out[str(events[0].data["account_id"])].append(opp)
        return out

    @cached_property
    def customers(self) -> dict[str, list[Event]]:
        return _index(self.of("erp.customer.created"), "crm_account_id")

    @cached_property
    def projects_of_opp(self) -> dict[str, list[Event]]:
        return _index(self.of("psa.project.created"), "opportunity_id")

    @cached_property
    def projects(self) -> dict[str, list[Event]]:
        return _index(self.of("psa.project.created"), "project_id")

    @cached_property
    def staffed(self) -> dict[str, list[Event]]:
        return _index(self.of("psa.project.staffed"), "project_id")

    @cached_property
    def entries(self) -> dict[str, list[Event]]:
        return _index(self.of("time.entry.submitted"), "timesheet_id")

    @cached_property
    def approvals(self) -> dict[str, list[Event]]:
        return _index(self.of("psa.timesheet.approved"), "timesheet_id")

    def billable(self, events: list[Event]) -> list[Event]:
        return [e for e in events if float(e.data.get("billable_amount", 0)) > 0]

    @cached_property
    def approvals_of_project(self) -> dict[str, list[Event]]:
        return _index(self.billable(self.of("psa.timesheet.approved")), "project_id")

    @cached_property
    def approvals_of_person(self) -> dict[str, list[Event]]:
        return _index(self.billable(self.of("psa.timesheet.approved")), "person_id")

    @cached_property
    def invoices_of_timesheet(self) -> dict[str, list[Event]]:
        return _index(self.of("billing.invoice.created"), "lines", "timesheet_id")

    @cached_property
    def invoices_of_person(self) -> dict[str, list[Event]]:
        return _index(self.of("billing.invoice.created"), "lines", "person_id")

    @cached_property
    def invoices_of_project(self) -> dict[str, list[Event]]:
        return _index(self.of("billing.invoice.created"), "project_id")

    @cached_property
    def postings(self) -> dict[str, list[Event]]:
        return _index(self.of("erp.invoice.posted"), "invoice_id")

    @cached_property
    def postings_of_project(self) -> dict[str, list[Event]]:
        return _index(self.of("erp.invoice.posted"), "project_id")

    @cached_property
    def hires(self) -> dict[str, list[Event]]:
        return _index(self.of("hris.person.hired"), "person_id")

    @cached_property
    def resources(self) -> dict[str, list[Event]]:
        return _index(self.of("psa.resource.created"), "person_id")

    @cached_property
    def assignments_of_person(self) -> dict[str, list[Event]]:
        return _index(self.of("psa.assignment.created"), "person_id")

    def failures(self, integration: str, objects: Iterable[str]) -> list[Event]:
        """Failure events of one integration about any of `objects`."""
        wanted = set(objects)
        return [e for e in self.of("integration.sync.failed")
                if e.data.get("integration") == integration and str(e.data.get("object_id")) in wanted]

    def sent(self, event_id: str) -> dict[str, Any]:
        """A quarantined event as it was sent (its data may lack the key the fault broke)."""
        return self.broken[event_id]


def first(events: Iterable[Event]) -> datetime | None:
    return min((e.time for e in events), default=None)


def last(events: Iterable[Event]) -> datetime | None:
    return max((e.time for e in events), default=None)
