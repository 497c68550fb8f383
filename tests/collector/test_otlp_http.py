"""OTLP/HTTP through the real app: the OpenTelemetry SDK's exporters against a live server,
protobuf and JSON bodies, gzip, partial success, and failures answered with google.rpc.Status."""

from __future__ import annotations

import gzip
import json

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import Harness, LiveServer

PB = "application/x-protobuf"
JS = "application/json"
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
T0 = 1_700_000_000_000_000_000


def sdk_spans() -> tuple:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=SdkResource.create({"service.name": "invoicing"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("invoicing.http", "1.2.3")
    with (
        tracer.start_as_current_span("POST /invoices", kind=SpanKind.SERVER, attributes={"http.status_code": 500}),
        tracer.start_as_current_span("INSERT invoices", kind=SpanKind.CLIENT) as child,
    ):
        child.set_status(StatusCode.ERROR, "deadlock")
    return exporter.get_finished_spans()


def span(name: str, trace_id: bytes = TRACE_ID, span_id: bytes = b"\x01" * 8) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 1000,
    )


def trace_body(*spans: Span) -> bytes:
    attrs = [KeyValue(key="service.name", value=AnyValue(string_value="batch-svc"))]
    scope_spans = ScopeSpans(scope=InstrumentationScope(name="lib"), spans=list(spans))
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=Resource(attributes=attrs), scope_spans=[scope_spans])]
    )
    return request.SerializeToString()


# -------------------------------------------------------------------------- the SDK's own exporters


def test_sdk_span_exporter_with_gzip_stores_spans(live_server: LiveServer) -> None:
    key = live_server.key("billing", "telemetry")
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.base_url}/v1/traces",
        headers={"Authorization": f"Bearer {key}"},
        compression=Compression.Gzip,
        timeout=30,
    )
    spans = sdk_spans()
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    live_server.flush()
    stored = live_server.store.query(
        "SELECT SpanName, SpanKind, StatusCode, StatusMessage, ServiceName, ScopeName, ScopeVersion, TraceId, "
        "SpanId, ParentSpanId, SpanAttributes FROM otel_traces ORDER BY SpanName"
    )
    child, parent = (s for s in sorted(spans, key=lambda s: s.name))
    assert [row[:7] for row in stored] == [
        ("INSERT invoices", "Client", "Error", "deadlock", "invoicing", "invoicing.http", "1.2.3"),
        ("POST /invoices", "Server", "Unset", "", "invoicing", "invoicing.http", "1.2.3"),
    ]
    assert stored[0][7] == format(child.context.trace_id, "032x")
    assert stored[0][9] == stored[1][8] == format(parent.context.span_id, "016x")
    assert stored[1][10] == {"http.status_code": "500"}
    batches = live_server.store.query("SELECT kind, system, accepted, rejected FROM ingest_batches")
    assert batches == [("span", "billing", 2, 0)]


def test_sdk_log_exporter_stores_logs(live_server: LiveServer) -> None:
    key = live_server.key("billing", "telemetry")
    memory = InMemoryLogExporter()
    provider = LoggerProvider(resource=SdkResource.create({"service.name": "invoicing"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("invoicing.log").emit(body="invoice 42 sent", severity_text="INFO", attributes={"n": 42})
    exporter = OTLPLogExporter(
        endpoint=f"{live_server.base_url}/v1/logs", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert exporter.export(memory.get_finished_logs()) == LogRecordExportResult.SUCCESS
    live_server.flush()
    stored = live_server.store.query(
        "SELECT Body, SeverityText, ServiceName, ScopeName, LogAttributes, TraceId FROM otel_logs"
    )
    assert stored == [("invoice 42 sent", "INFO", "invoicing", "invoicing.log", {"n": "42"}, "")]


def test_sdk_exporter_with_a_bad_key_fails_without_storing(live_server: LiveServer) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.base_url}/v1/traces", headers={"Authorization": "Bearer sw_nope"}, timeout=30
    )
    assert exporter.export(sdk_spans()) == SpanExportResult.FAILURE
    assert live_server.store.query("SELECT count() FROM otel_traces") == [(0,)]


# ---------------------------------------------------------------------------------- raw OTLP/HTTP


def test_protobuf_gzip_request_gets_a_protobuf_response(harness: Harness) -> None:
    headers = {**harness.auth(harness.key("crm", "telemetry")), "Content-Type": PB, "Content-Encoding": "gzip"}
    response = harness.client.post("/v1/traces", content=gzip.compress(trace_body(span("a"))), headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == PB
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    assert harness.count("SELECT count() FROM otel_traces WHERE SpanName = 'a' AND ServiceName = 'batch-svc'") == 1


def test_json_request_gets_a_json_response(harness: Harness) -> None:
    body = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {"name": "queue.depth", "gauge": {"dataPoints": [{"asInt": "12", "timeUnixNano": "1"}]}},
                            {
                                "name": "jobs",
                                "sum": {
                                    "dataPoints": [{"asDouble": 3.5, "timeUnixNano": "2"}],
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                },
                            },
                        ]
                    }
                ]
            }
        ]
    }
    headers = {**harness.auth(harness.key("crm", "telemetry")), "Content-Type": JS}
    response = harness.client.post("/v1/metrics", content=json.dumps(body), headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == JS
    assert response.json() == {}
    harness.flush()
    stored = harness.store.query("SELECT MetricName, MetricType, Value, IsMonotonic FROM otel_metrics ORDER BY 1")
    assert stored == [("jobs", "sum", 3.5, True), ("queue.depth", "gauge", 12.0, False)]


def test_partial_success_stores_the_rest_and_quarantines_the_refused(harness: Harness) -> None:
    headers = {**harness.auth(harness.key("crm", "telemetry")), "Content-Type": PB}
    body = trace_body(span("good"), span("bad", trace_id=bytes(16)), span("short", span_id=b"\x01"))
    response = harness.client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "spans[1]: traceId is all zeros" in partial.error_message
    assert "spans[2]: spanId must be 8 bytes, got 1" in partial.error_message
    assert harness.count("SELECT count() FROM otel_traces") == 1
    quarantined = harness.store.query("SELECT kind, system, type FROM quarantine ORDER BY type")
    assert quarantined == [("span", "crm", "bad"), ("span", "crm", "short")]
    assert harness.store.query("SELECT accepted, rejected FROM ingest_batches") == [(1, 2)]


def test_partial_success_in_json(harness: Harness) -> None:
    log = {"body": {"stringValue": "x"}, "traceId": "not-hex"}
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [log, {"body": {"stringValue": "y"}}]}]}]}
    headers = {**harness.auth(harness.key("crm", "telemetry")), "Content-Type": JS}
    response = harness.client.post("/v1/logs", content=json.dumps(body), headers=headers)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1" and "traceId must be 32 hex characters" in partial["errorMessage"]
    assert harness.count("SELECT count() FROM otel_logs WHERE Body = 'y'") == 1


@pytest.mark.parametrize(
    ("content_type", "body", "status", "text"),
    [
        ("text/plain", b"hello", 415, "is not an OTLP/HTTP encoding"),
        (PB, b"\x0a\xff\xff", 400, "not a valid ExportTraceServiceRequest"),
        (JS, b'{"resourceSpans": [', 400, "not valid JSON"),
    ],
)
def test_unreadable_requests_get_a_status_in_the_request_encoding(
    harness: Harness, content_type: str, body: bytes, status: int, text: str
) -> None:
    headers = {**harness.auth(harness.key("crm", "telemetry")), "Content-Type": content_type}
    response = harness.client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == status
    if content_type == PB:
        assert response.headers["content-type"] == PB
        error = Status.FromString(response.content)
        code, message = error.code, error.message
    else:
        assert response.headers["content-type"] == JS  # JSON also when the request's type is not OTLP
        code, message = response.json()["code"], response.json()["message"]
    assert code == 3 and text in message  # INVALID_ARGUMENT


@pytest.mark.parametrize("content_type", [PB, JS])
def test_missing_credentials_get_401_with_a_status(harness: Harness, content_type: str) -> None:
    response = harness.client.post("/v1/traces", content=trace_body(span("a")), headers={"Content-Type": content_type})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == content_type
    error = Status.FromString(response.content) if content_type == PB else Status(**response.json())
    assert error.code == 16 and "Authorization" in error.message  # UNAUTHENTICATED


def test_bad_key_gets_401_and_a_key_without_the_scope_gets_403(harness: Harness) -> None:
    bad = {"Authorization": "Bearer sw_000000000000_" + "0" * 48, "Content-Type": PB}
    assert harness.client.post("/v1/logs", content=b"", headers=bad).status_code == 401
    events_only = {**harness.auth(harness.key("crm", "events")), "Content-Type": PB}
    response = harness.client.post("/v1/metrics", content=b"", headers=events_only)
    assert response.status_code == 403
    assert Status.FromString(response.content).code == 7  # PERMISSION_DENIED
    assert harness.count("SELECT count() FROM ingest_batches") == 0


def test_empty_request_is_a_success(harness: Harness) -> None:
    headers = {**harness.auth(harness.key("crm", "telemetry")), "Content-Type": PB}
    response = harness.client.post("/v1/traces", content=b"", headers=headers)
    assert response.status_code == 200 and response.content == b""
