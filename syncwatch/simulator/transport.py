"""Sending the feed through the platform's real endpoints: CloudEvents batches, record snapshots, OTLP spans.

Events and records go over httpx with the source system's API key; 429 and 503 are retried
after their Retry-After (bounded), connection errors with exponential backoff. Spans are replayed
through the OpenTelemetry SDK (one TracerProvider per integration, so `service.name` is right) and
exported by its real OTLP/HTTP exporter, with the simulator's own trace and span ids.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from syncwatch.simulator.spans import SCOPE, Context, SpanSpec

log = logging.getLogger("syncwatch.simulator")

EVENTS_CONTENT_TYPE = "application/cloudevents-batch+json"
RETRY_AFTER_CAP_S = 30.0  # never sleep longer than this on one Retry-After, whatever the server says
BACKOFF_BASE_S = 0.5
SPAN_QUEUE = 65_536  # a simulated day's spans fit; the feed flushes after every batch anyway


@dataclass(frozen=True)
class Batch:
    """One request's worth of the feed: events or records of one system, or spans.

    kind "events": items are CloudEvent dicts, sent with `system`'s key to /v1/events.
    kind "records": items are record dicts for /v1/records/{system}/{entity}.
    kind "spans": items are SpanSpecs, exported over OTLP with the "telemetry" key.
    """

    kind: str
    system: str
    items: Sequence[Any]
    day: date
    entity: str = ""


@dataclass
class FeedStats:
    """What a feed run did so far; `progress` callbacks get the live object."""

    days: int = 0
    simulated_day: str = ""
    batches: int = 0
    events_sent: int = 0
    records_sent: int = 0
    spans_sent: int = 0
    spans_failed: int = 0  # spans the OTLP exporter could not deliver (see its log for why)
    accepted: int = 0
    quarantined: int = 0
    rejected: int = 0
    retries: int = 0
    failed_requests: int = 0
    faults_injected: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def count_fault(self, kind: str) -> None:
        self.faults_injected += 1
        self.faults[kind] = self.faults.get(kind, 0) + 1


class Transport:
    """Posts batches to one Syncwatch collector; a context manager that flushes spans on exit."""

    def __init__(self, base_url: str, tokens: dict[str, str], stats: FeedStats,
                 stop: threading.Event | None = None, max_retries: int = 8, timeout: float = 10.0,
                 systems: Sequence[str] = (), http: httpx.Client | None = None) -> None:
        """`systems` are checked for a token up front, so a missing key fails before anything is sent."""
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        for system in systems:
            self._token(system)
        self.stats = stats
        self.stop = stop or threading.Event()
        self.max_retries = max_retries
        self.http = http or httpx.Client(base_url=self.base_url, timeout=timeout)
        self.spans = SpanReplayer(self.base_url, self._token("telemetry"), timeout)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.spans.shutdown()
        self.stats.spans_sent, self.stats.spans_failed = self.spans.exported, self.spans.failed
        self.http.close()

    def _token(self, system: str) -> str:
        token = self.tokens.get(system) or self.tokens.get("*")
        if not token:
            raise KeyError(f"no API key for system {system!r}: pass tokens[{system!r}] (or tokens['*'])")
        return token

    def send(self, batch: Batch) -> None:
        if batch.kind == "spans":
            self.spans.replay(batch.items)
            self.spans.flush()
            self.stats.spans_sent, self.stats.spans_failed = self.spans.exported, self.spans.failed
            self.stats.batches += 1
            return
        if batch.kind == "events":
            path, content_type = "/v1/events", EVENTS_CONTENT_TYPE
        else:
            path, content_type = f"/v1/records/{batch.system}/{batch.entity}", "application/json"
        result = self._post(path, self._token(batch.system), orjson.dumps(list(batch.items)), content_type)
        if result is None:
            return
        self.stats.batches += 1
        if batch.kind == "events":
            self.stats.events_sent += len(batch.items)
        else:
            self.stats.records_sent += len(batch.items)
        for name in ("accepted", "quarantined", "rejected"):
            setattr(self.stats, name, getattr(self.stats, name) + int(result.get(name, 0)))

    def _post(self, path: str, token: str, body: bytes, content_type: str) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        for attempt in range(self.max_retries + 1):
            if self.stop.is_set() and attempt:
                break
            try:
                response = self.http.post(path, content=body, headers=headers)
            except httpx.TransportError as exc:
                log.warning("POST %s failed (%s); retrying", path, exc)
                self._wait(BACKOFF_BASE_S * 2**attempt)
                continue
            if response.status_code in (429, 503) or response.status_code >= 500:
                self._wait(retry_after(response.headers.get("retry-after"), BACKOFF_BASE_S * 2**attempt))
                continue
            if response.is_success:
                return response.json()
            log.error("POST %s refused with %s: %s", path, response.status_code, response.text[:500])
            self.stats.failed_requests += 1
            return None
        log.error("POST %s gave up after %d attempts", path, self.max_retries + 1)
        self.stats.failed_requests += 1
        return None

    def _wait(self, seconds: float) -> None:
        self.stats.retries += 1
        self.stop.wait(min(seconds, RETRY_AFTER_CAP_S))


def retry_after(header: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP-date, RFC 9110 10.2.3)."""
    if not header:
        return default
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(header) - datetime.now(parsedate_to_datetime(header).tzinfo))
                   .total_seconds())
    except (TypeError, ValueError):
        return default


# -- spans --------------------------------------------------------------------------------------------

class PlannedIds(IdGenerator):
    """Hands the SDK the ids the simulator planned for the span it is about to start."""

    def __init__(self) -> None:
        self.next = Context(1, 1)

    def generate_span_id(self) -> int:
        return self.next.span_id

    def generate_trace_id(self) -> int:
        return self.next.trace_id


class CountingExporter(SpanExporter):
    """Delegates to the real exporter and counts the spans it got through."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.exported = 0
        self.failed = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        with self._lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class SpanReplayer:
    """One TracerProvider per integration service, all exporting to base_url/v1/traces."""

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self.endpoint = base_url + "/v1/traces"
        self.token = token
        self.timeout = timeout
        self.ids = PlannedIds()
        self.providers: dict[str, tuple[TracerProvider, CountingExporter]] = {}

    def _provider(self, service: str) -> TracerProvider:
        if service not in self.providers:
            exporter = CountingExporter(OTLPSpanExporter(
                endpoint=self.endpoint, headers={"Authorization": f"Bearer {self.token}"}, timeout=self.timeout))
            resource = Resource.create({"service.name": service, "service.namespace": "demo-firm",
                                        "deployment.environment.name": "demo"})
            provider = TracerProvider(resource=resource, id_generator=self.ids)
            provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=SPAN_QUEUE,
                                                           max_export_batch_size=512))
            self.providers[service] = (provider, exporter)
        return self.providers[service][0]

    def replay(self, specs: Sequence[SpanSpec]) -> None:
        for spec in specs:
            self._replay(spec)

    def _replay(self, spec: SpanSpec) -> None:
        tracer = self._provider(spec.service).get_tracer(SCOPE)
        parent = otel_context.Context()  # empty: never inherit whatever span happens to be current
        if spec.parent_id:
            parent = trace.set_span_in_context(NonRecordingSpan(_span_context(spec.context.trace_id,
                                                                              spec.parent_id)), parent)
        self.ids.next = spec.context
        span = tracer.start_span(spec.name, context=parent, kind=SpanKind[spec.kind], attributes=spec.attributes,
                                 links=[Link(_span_context(c.trace_id, c.span_id)) for c in spec.links],
                                 start_time=_ns(spec.start))
        if spec.error:
            span.record_exception(IntegrationError(spec.error), attributes={"exception.type": spec.error_type},
                                  timestamp=_ns(spec.end))
            span.set_status(Status(StatusCode.ERROR, spec.error))
        span.end(end_time=_ns(spec.end))

    @property
    def exported(self) -> int:
        return sum(exporter.exported for _, exporter in self.providers.values())

    @property
    def failed(self) -> int:
        return sum(exporter.failed for _, exporter in self.providers.values())

    def flush(self) -> None:
        for provider, _ in self.providers.values():
            provider.force_flush()

    def shutdown(self) -> None:
        for provider, _ in self.providers.values():
            provider.shutdown()


class IntegrationError(Exception):
    """The error a simulated integration call failed with (its type name travels as exception.type)."""


def _span_context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000) * 1000
