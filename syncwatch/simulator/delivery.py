"""Delivery: how the systems' outputs reach the platform, and where faults intervene.

An integration connector publishes a source system's change (a PRODUCER span, whose context is the
source event's traceparent), then syncs it to the target (a CONSUMER span with CLIENT calls: read
the source, write the target, retried on failure). The target's own event and record carry the
write call's context, so one trace follows a deal from the CRM into the ERP and the PSA. Faults
intervene at the sync (lost, delayed, failed calls) and at each sent event (duplicate, reordered,
schema-breaking); faults.GroundTruth logs each one. Output is boxed per simulated day and cut
into batches of `events_per_batch`.
"""

from __future__ import annotations

import itertools
import random
import uuid
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from syncwatch.simulator import payloads as p
from syncwatch.simulator.entities import Fact
from syncwatch.simulator.faults import (
    DELAYED_SYNC,
    DUPLICATE,
    FAILED_CALL,
    LOST_MESSAGE,
    REORDERED,
    SCHEMA_BREAK,
    FaultKnobs,
    GroundTruth,
    break_payload,
)
from syncwatch.simulator.firm import Firm
from syncwatch.simulator.spans import CLIENT, CONSUMER, PRODUCER, Context, SpanSpec, Tracer
from syncwatch.simulator.transport import Batch

SYSTEMS = ("crm", "psa", "erp", "hris", "time", "billing")
# integration -> (source system, target system, whether later business steps depend on its target)
INTEGRATIONS = {
    "crm-to-erp-sync": ("crm", "erp", False),
    "crm-to-psa-sync": ("crm", "psa", True),
    "psa-to-erp-sync": ("psa", "erp", False),
    "time-capture-sync": ("time", "psa", True),
    "psa-to-billing-sync": ("psa", "billing", False),
    "billing-to-erp-sync": ("billing", "erp", False),
    "hris-to-psa-sync": ("hris", "psa", False),
}
CALL_ERRORS = (("HTTPStatusError", "503 Service Unavailable"), ("TimeoutError", "read timed out after 30 s"),
               ("HTTPStatusError", "502 Bad Gateway"), ("ConnectionResetError", "connection reset by peer"))
SPANS_PER_BATCH = 512


@dataclass
class FeedConfig:
    """What to simulate and how fast. Faults: `faults` if given, else FaultKnobs.uniform(fault_rate)."""

    seed: int = 7
    consultants: int = 60
    clients: int = 20
    days: int | None = 60  # simulated days to run; None: until stopped
    fault_rate: float = 0.03  # share of each kind of step that goes wrong (FaultKnobs.uniform)
    faults: FaultKnobs | None = None
    events_per_batch: int = 200  # events (or records) per request
    start_date: date | None = None  # first simulated day; default: `days` (or 90) days before today
    # no fault is injected from this simulated day on: a clean tail lets every fault come due (be
    # overdue, past its grace period) before the feed ends, so an end-of-run check sees them all
    faults_until: date | None = None
    pace: float = 0.0  # wall-clock seconds per simulated day; 0 sends as fast as the server takes it
    ground_truth_path: Path | str | None = None  # JSON Lines, one injected fault a line
    max_retries: int = 8
    timeout: float = 10.0

    def knobs(self) -> FaultKnobs:
        return self.faults if self.faults is not None else FaultKnobs.uniform(self.fault_rate)

    def first_day(self) -> date:
        return self.start_date or date.today() - timedelta(days=self.days or 90)


@dataclass
class Outbox:
    """Everything to send on one simulated day, in send order."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    records: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    spans: list[SpanSpec] = field(default_factory=list)


Write = Callable[[datetime, Context], None]


def _attrs(keys: dict[str, str]) -> dict[str, str]:
    """Business keys as span attributes: project_id -> project.id."""
    return {k.removesuffix("_id") + ".id" if k.endswith("_id") else k: v for k, v in keys.items()}


class Delivery(ABC):
    """How outputs reach the platform: events, records and spans with faults, boxed per simulated day.

    Subclasses (feed.Feed) turn each business fact into calls of these primitives. `truth` holds
    the faults injected so far.
    """

    def __init__(self, config: FeedConfig) -> None:
        self.config = config
        self.start = config.first_day()
        self.firm = Firm(config.seed, config.consultants, config.clients, self.start)
        self.truth = GroundTruth(config.knobs(), config.seed, config.faults_until)
        self.rng = random.Random(f"syncwatch-feed-{config.seed}")  # ids and latencies
        self.tracer = Tracer(self.rng)
        self._boxes: dict[date, Outbox] = defaultdict(Outbox)
        self._ctx: dict[str, Context] = {}  # business key -> the context its trace continues from
        self._versions: dict[tuple[str, str, str], int] = defaultdict(int)
        self._erp_entity: dict[str, str] = {}  # project -> legal entity the ERP booked it on
        self._today = self.start

    def days(self) -> Iterator[date]:
        count = itertools.count() if self.config.days is None else range(self.config.days)
        return (self.start + timedelta(days=i) for i in count)

    def batches(self) -> Iterator[Batch]:
        for d in self.days():
            yield from self.run_day(d)
        yield from self.drain()

    def drain(self) -> list[Batch]:
        """What is still in flight after the last day (delayed syncs, held-back and resent events)."""
        return [b for d in sorted(self._boxes) for b in self._batches(d, self._boxes.pop(d))]

    def run_day(self, d: date) -> list[Batch]:
        self._today = self.truth.today = d
        for fact in self.firm.day(d):
            self.handle(fact)
            for span in self.tracer.drain():
                self._box(span.start).spans.append(span)
        return self._batches(d, self._boxes.pop(d, Outbox()))

    @abstractmethod
    def handle(self, fact: Fact) -> None:
        """Turn one business fact into what the systems send (Feed implements the integrations)."""

    # -- output primitives ---------------------------------------------------------------------------

    def _box(self, at: datetime | date) -> Outbox:
        d = at.date() if isinstance(at, datetime) else at
        return self._boxes[max(d, self._today)]

    def _latency(self, low: float, high: float) -> timedelta:
        return timedelta(seconds=self.rng.uniform(low, high))

    def _event(self, system: str, etype: str, data: dict[str, Any], at: datetime, ctx: Context,
               source: str | None = None) -> None:
        keys = p.event_keys(etype, data)
        event = {"specversion": "1.0", "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                 "source": source or f"/{system}", "type": etype, "time": p.rfc3339(at),
                 "subject": next(iter(keys.values()), ""), "datacontenttype": "application/json", "data": data,
                 "traceparent": ctx.traceparent}
        keys = {"event_id": event["id"], "event_type": etype, **keys}
        box = self._box(at)
        if self.truth.roll(SCHEMA_BREAK):
            event["data"], how = break_payload(data, p.EVENT_KEYS[etype][0], self.truth.rng)
            self.truth.record(SCHEMA_BREAK, at.date(), (system,), keys, how=how)
        elif self.truth.roll(DUPLICATE):
            resent = self._box(at + timedelta(days=self.truth.rng.randint(0, 1)))
            resent.events.append((system, event))
            self.truth.record(DUPLICATE, at.date(), (system,), keys)
        elif self.truth.roll(REORDERED):
            box = self._box(at + timedelta(days=1))
            self.truth.record(REORDERED, at.date(), (system,), keys)
        box.events.append((system, event))

    def _record(self, system: str, entity: str, key: str, fields: dict[str, Any], at: datetime,
                ctx: Context | None, last: bool = False) -> None:
        """A record snapshot; `last` when the key never changes again, so its version counter can go
        (the counters of weekly timesheets and monthly invoices would otherwise grow with the run)."""
        at_key = (system, entity, key)
        version = self._versions.pop(at_key, 0) + 1 if last else self._versions[at_key] + 1
        if not last:
            self._versions[at_key] = version
        record: dict[str, Any] = {"key": key, "version": version, "updated_at": p.rfc3339(at), "fields": fields}
        if ctx is not None:
            record["traceparent"] = ctx.traceparent
        self._box(at).records.append((system, entity, record))

    def _publish(self, integration: str, change: str, at: datetime, keys: dict[str, str],
                 parent: Context | None = None) -> Context:
        """The connector publishing a source system's `change` (an event type, or system/entity for a
        record-only change): the span the source event and record point at."""
        source, _, _ = INTEGRATIONS[integration]
        attrs = {"syncwatch.integration": integration, "syncwatch.system.source": source,
                 "messaging.operation.type": "send", "syncwatch.change": change, **_attrs(keys)}
        return self.tracer.span(integration, f"publish {change}", PRODUCER, parent, at,
                                self.rng.uniform(2, 20), attrs).context

    def _sync(self, integration: str, entity: str, keys: dict[str, str], at: datetime, parent: Context | None,
              write: Write, links: tuple[Context, ...] = (), on_lost: Callable[[], None] | None = None,
              about: dict[str, Any] | None = None) -> None:
        """One integration run: read the source, write the target (with retries), or fail quietly.
        A fault's detail names the integration, the entity, when the run began, and `about`."""
        source, target, drives = INTEGRATIONS[integration]
        systems = (source, target)
        detail = {"integration": integration, "entity": entity, "at": p.rfc3339(at), **(about or {})}
        if self.truth.roll(LOST_MESSAGE):
            self.truth.record(LOST_MESSAGE, at.date(), systems, keys, **detail)
            if on_lost:
                on_lost()
            return
        failures, gave_up, delay = 0, False, timedelta()
        if self.truth.roll(FAILED_CALL):
            failures = self.truth.rng.randint(1, 3)
            gave_up = self.truth.rng.random() < 0.25
            self.truth.record(FAILED_CALL, at.date(), systems, keys, attempts=failures + (not gave_up),
                              gave_up=gave_up, **detail)
        elif not drives and self.truth.roll(DELAYED_SYNC):
            delay = timedelta(days=self.truth.rng.randint(2, 6))
            self.truth.record(DELAYED_SYNC, at.date(), systems, keys, days=delay.days, **detail)
        base = {"syncwatch.integration": integration, "syncwatch.system.source": source,
                "syncwatch.system.target": target, "syncwatch.entity": entity, **_attrs(keys)}
        root = self.tracer.child_of(parent) if parent else self.tracer.new_trace()
        t0 = at + delay + self._latency(0.5, 20)
        t = self._call(integration, source, "GET", entity, root, t0, base, 1, None)
        error = CALL_ERRORS[0]
        for attempt in range(1, failures + 1):
            error = self.rng.choice(CALL_ERRORS)
            t = self._call(integration, target, "POST", entity, root, t, base, attempt, error)
            t += timedelta(seconds=2**attempt)  # the connector's backoff
        if gave_up:
            self.tracer.span(integration, f"sync {entity}", CONSUMER, parent, t0, _ms(t - t0) + 5, base,
                             error=f"gave up after {failures} attempts: {error[1]}", error_type="SyncFailed",
                             links=links, context=root)
            data = p.sync_failed(integration, source, target, entity, next(iter(keys.values())), error, failures, t)
            self._event(source, "integration.sync.failed", data, t, root, f"/{source}/integrations/{integration}")
            if on_lost:
                on_lost()
            return
        write_ctx = self.tracer.child_of(root)
        t_done = self._call(integration, target, "POST", entity, root, t, base, failures + 1, None, write_ctx)
        self.tracer.span(integration, f"sync {entity}", CONSUMER, parent, t0, _ms(t_done - t0) + 3,
                         {**base, "syncwatch.sync.lag_s": round((t0 - at).total_seconds(), 3)},
                         links=links, context=root)
        write(t_done, write_ctx)

    def _call(self, integration: str, system: str, method: str, entity: str, root: Context, at: datetime,
              base: dict[str, Any], attempt: int, error: tuple[str, str] | None,
              context: Context | None = None) -> datetime:
        millis = self.rng.uniform(15, 250) if not error else self.rng.uniform(200, 3000)
        status = 200 if method == "GET" else 201
        if error:
            status = int(error[1][:3]) if error[1][:3].isdigit() else 0
        attrs = {**base, "http.request.method": method, "server.address": f"{system}.firm.example",
                 "peer.service": system, "url.path": f"/api/v1/{entity}s", "syncwatch.retry.attempt": attempt}
        if status:
            attrs["http.response.status_code"] = status
        err_type, err_msg = error or ("", "")
        span = self.tracer.span(integration, f"{method} /api/v1/{entity}s", CLIENT, root, at, millis, attrs,
                                error=err_msg, error_type=err_type, context=context)
        return span.end

    # -- batching ------------------------------------------------------------------------------------

    def _batches(self, d: date, box: Outbox) -> list[Batch]:
        size = max(1, self.config.events_per_batch)
        batches: list[Batch] = []
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for system, event in box.events:
            events[system].append(event)
        for system, items in events.items():
            batches += [Batch("events", system, items[i:i + size], d) for i in range(0, len(items), size)]
        records: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for system, entity, record in box.records:
            records[(system, entity)].append(record)
        for (system, entity), items in records.items():
            batches += [Batch("records", system, items[i:i + size], d, entity) for i in range(0, len(items), size)]
        spans = box.spans
        batches += [Batch("spans", "telemetry", spans[i:i + SPANS_PER_BATCH], d)
                    for i in range(0, len(spans), SPANS_PER_BATCH)]
        return batches


def _ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000
