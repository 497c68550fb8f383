"""OTLP decoders: protobuf and JSON bodies of every signal -> rows, refusals -> quarantine."""

from __future__ import annotations

import base64
import gzip
import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from google.rpc.status_pb2 import Status
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2 as m
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.proto.trace.v1.trace_pb2 import Status as SpanStatus
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from collector.decode_otlp import (
    decode_logs,
    decode_metrics,
    decode_traces,
    encode_export_response,
    encode_status,
    response_media_type,
)
from collector.decode_otlp_metrics import exponential_buckets
from collector.decoded import DecodeContext, DecodeError, UnsupportedMediaType, as_arrow
from syncwatch.model import LOGS, LOGS_SCHEMA, METRICS, METRICS_SCHEMA, QUARANTINE, SPANS, SPANS_SCHEMA

PB = "application/x-protobuf"
JS = "application/json"
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_ID = bytes.fromhex("eee19b7ec3c1b173")
T0 = 1_700_000_000_123_456_789


@pytest.fixture
def ctx() -> DecodeContext:
    return DecodeContext("crm", "key1", (), datetime(2026, 1, 2, tzinfo=UTC), "batch1")


def kv(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def resource(**attrs: str) -> Resource:
    return Resource(attributes=[kv(k.replace("_", "."), string_value=v) for k, v in attrs.items()])


def rows(decoded: Any, table: str) -> list[dict[str, Any]]:
    return decoded.tables[table].to_pylist() if table in decoded.tables else []


def to_otlp_json(message: Any) -> bytes:
    """The OTLP/JSON form of a protobuf message: the JSON mapping with hex ids (the spec's deviation)."""

    def fix(node: Any) -> Any:
        if isinstance(node, list):
            return [fix(v) for v in node]
        if isinstance(node, dict):
            ids = ("traceId", "spanId", "parentSpanId")
            return {k: base64.b64decode(v).hex() if k in ids else fix(v) for k, v in node.items()}
        return node

    return json.dumps(fix(MessageToDict(message, use_integers_for_enums=True))).encode()


# ------------------------------------------------------------------------------------------ traces


def rich_span(**overrides: Any) -> Span:
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "parent_span_id": PARENT_ID,
        "trace_state": "vendor=1",
        "name": "POST /invoices",
        "kind": Span.SPAN_KIND_SERVER,
        "start_time_unix_nano": T0,
        "end_time_unix_nano": T0 + 1_500_000,
        "attributes": [
            kv("http.method", string_value="POST"),
            kv("http.status_code", int_value=201),
            kv("ratio", double_value=1.5),
            kv("retry", bool_value=False),
            kv("tags", array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=2)])),
            kv("customer", kvlist_value=KeyValueList(values=[kv("id", string_value="c-1")])),
            kv("blob", bytes_value=b"\x00\x01"),
            kv("empty"),
        ],
        "events": [Span.Event(time_unix_nano=T0 + 10, name="exception", attributes=[kv("x", int_value=1)])],
        "links": [
            Span.Link(trace_id=TRACE_ID, span_id=PARENT_ID, trace_state="k=v", attributes=[kv("l", bool_value=True)])
        ],
        "status": SpanStatus(code=SpanStatus.STATUS_CODE_ERROR, message="boom"),
    }
    fields.update(overrides)
    return Span(**fields)


def trace_request(*spans: Span) -> ExportTraceServiceRequest:
    scope = InstrumentationScope(name="billing", version="2.1")
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=resource(service_name="billing-api", host_name="h1"),
                scope_spans=[ScopeSpans(scope=scope, spans=list(spans))],
            )
        ]
    )


EXPECTED_SPAN = {
    "Timestamp": T0,
    "TraceId": "5b8efff798038103d269b633813fc60c",
    "SpanId": "eee19b7ec3c1b174",
    "ParentSpanId": "eee19b7ec3c1b173",
    "TraceState": "vendor=1",
    "SpanName": "POST /invoices",
    "SpanKind": "Server",
    "ServiceName": "billing-api",
    "ResourceAttributes": [("service.name", "billing-api"), ("host.name", "h1")],
    "ScopeName": "billing",
    "ScopeVersion": "2.1",
    "SpanAttributes": [
        ("http.method", "POST"),
        ("http.status_code", "201"),
        ("ratio", "1.5"),
        ("retry", "false"),
        ("tags", '["a",2]'),
        ("customer", '{"id":"c-1"}'),
        ("blob", "AAE="),
        ("empty", ""),
    ],
    "Duration": 1_500_000,
    "StatusCode": "Error",
    "StatusMessage": "boom",
    "Events.Name": ["exception"],
    "Events.Attributes": [[("x", "1")]],
    "Links.TraceId": ["5b8efff798038103d269b633813fc60c"],
    "Links.SpanId": ["eee19b7ec3c1b173"],
    "Links.TraceState": ["k=v"],
    "Links.Attributes": [[("l", "true")]],
}


def span_row(decoded: Any) -> dict[str, Any]:
    (row,) = rows(decoded, SPANS)
    row["Timestamp"] = int(row["Timestamp"].value)  # pandas-free: pyarrow gives Timestamp/ datetime
    row["Events.Timestamp"] = [int(t.value) for t in row["Events.Timestamp"]]
    return row


def test_protobuf_span_fills_every_column(ctx: DecodeContext) -> None:
    decoded = decode_traces(trace_request(rich_span()).SerializeToString(), PB, ctx)
    assert decoded.accepted == 1 and decoded.rejected == 0 and not decoded.messages
    assert decoded.tables[SPANS].schema == SPANS_SCHEMA
    row = span_row(decoded)
    assert row["Events.Timestamp"] == [T0 + 10]
    assert {k: row[k] for k in EXPECTED_SPAN} == EXPECTED_SPAN


def test_json_span_equals_protobuf_span(ctx: DecodeContext) -> None:
    body = to_otlp_json(trace_request(rich_span()))
    assert b'"startTimeUnixNano": "1700000000123456789"' in body  # 64-bit ints as strings
    decoded = decode_traces(body, "application/json; charset=utf-8", ctx)
    assert decoded.accepted == 1 and decoded.rejected == 0
    assert span_row(decoded) == span_row(decode_traces(trace_request(rich_span()).SerializeToString(), PB, ctx))


OTLP_JSON_TRACE = b"""{
  "resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
    "scopeSpans": [{
      "scope": {"name": "my.library", "version": "1.0.0",
                "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173", "name": "I'm a server span",
        "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
        "kind": "SPAN_KIND_CLIENT", "futureField": {"ignored": true},
        "attributes": [
          {"key": "my.span.attr", "value": {"stringValue": "some value"}},
          {"key": "count", "value": {"intValue": "42"}},
          {"key": "nan", "value": {"doubleValue": "NaN"}}
        ],
        "status": {"code": 1}
      }]
    }]
  }]
}"""


def test_otlp_json_with_strings_for_ints_enum_names_and_unknown_fields(ctx: DecodeContext) -> None:
    row = span_row(decode_traces(OTLP_JSON_TRACE, JS, ctx))
    assert row["TraceId"] == "5b8efff798038103d269b633813fc60c"  # hex is case-insensitive; stored lowercase
    assert row["SpanKind"] == "Client"
    assert row["StatusCode"] == "Ok"
    assert row["Duration"] == 1_000_000_000
    assert row["ServiceName"] == "my.service"
    assert row["SpanAttributes"] == [("my.span.attr", "some value"), ("count", "42"), ("nan", "nan")]
    assert row["Events.Name"] == [] and row["Links.TraceId"] == []


def test_sdk_spans_encoded_by_the_otlp_exporter(ctx: DecodeContext) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=SdkResource.create({"service.name": "sdk-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("sdk.test", "0.1")
    with (
        tracer.start_as_current_span("parent", kind=SpanKind.CONSUMER) as parent,
        tracer.start_as_current_span("child", attributes={"n": 3}) as child,
    ):
        child.set_status(StatusCode.ERROR, "bad")
    decoded = decode_traces(encode_spans(exporter.get_finished_spans()).SerializeToString(), PB, ctx)
    by_name = {r["SpanName"]: r for r in rows(decoded, SPANS)}
    assert by_name["parent"]["SpanKind"] == "Consumer" and by_name["parent"]["ParentSpanId"] == ""
    assert by_name["child"]["ParentSpanId"] == format(parent.get_span_context().span_id, "016x")
    assert by_name["child"]["TraceId"] == format(child.get_span_context().trace_id, "032x")
    assert by_name["child"]["StatusCode"] == "Error" and ("n", "3") in by_name["child"]["SpanAttributes"]
    assert by_name["child"]["ServiceName"] == "sdk-svc" and by_name["child"]["ScopeName"] == "sdk.test"


scalars = st.one_of(
    st.builds(lambda v: AnyValue(string_value=v), st.text(max_size=20)),
    st.builds(lambda v: AnyValue(int_value=v), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: AnyValue(double_value=v), st.floats()),
    st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
    st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=8)),
)
any_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
        st.builds(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])),
            st.lists(st.tuples(st.text(max_size=5), inner), max_size=3),
        ),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    attrs=st.lists(st.tuples(st.text(max_size=10), any_values), max_size=5),
    kind=st.integers(0, 5),
    times=st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1)),
)
def test_protobuf_and_json_encodings_give_the_same_rows(attrs: list, kind: int, times: tuple[int, int]) -> None:
    ctx = DecodeContext("crm", "key1", (), datetime(2026, 1, 2, tzinfo=UTC), "batch1")
    span = rich_span(
        attributes=[KeyValue(key=k, value=v) for k, v in attrs],
        kind=kind,
        start_time_unix_nano=times[0],
        end_time_unix_nano=times[1],
    )
    request = trace_request(span)
    from_protobuf = decode_traces(request.SerializeToString(), PB, ctx).tables[SPANS]
    from_json = decode_traces(to_otlp_json(request), JS, ctx).tables[SPANS]
    assert from_protobuf.equals(from_json)


BAD_SPANS = [
    ({"trace_id": TRACE_ID[:15]}, "traceId must be 16 bytes, got 15"),
    ({"trace_id": bytes(16)}, "traceId is all zeros"),
    ({"trace_id": b""}, "traceId is missing"),
    ({"span_id": SPAN_ID[:7]}, "spanId must be 8 bytes, got 7"),
    ({"span_id": bytes(8)}, "spanId is all zeros"),
    ({"parent_span_id": b"\x01"}, "parentSpanId must be 8 bytes, got 1"),
    ({"links": [Span.Link(trace_id=b"x", span_id=SPAN_ID)]}, "links[0].traceId must be 16 bytes"),
    ({"start_time_unix_nano": 2**64 - 1}, "startTimeUnixNano/endTimeUnixNano is beyond"),
]


@pytest.mark.parametrize(("override", "reason"), BAD_SPANS)
def test_invalid_span_is_refused_alone_and_quarantined(ctx: DecodeContext, override: dict, reason: str) -> None:
    body = trace_request(rich_span(), rich_span(**override), rich_span(name="third")).SerializeToString()
    decoded = decode_traces(body, PB, ctx)
    assert (decoded.accepted, decoded.rejected) == (2, 1)
    assert [r["SpanName"] for r in rows(decoded, SPANS)] == ["POST /invoices", "third"]
    assert decoded.messages[0].startswith("resourceSpans[0].scopeSpans[0].spans[1]: ")
    assert reason in decoded.messages[0]
    (q,) = rows(decoded, QUARANTINE)
    assert (q["kind"], q["system"], q["source"], q["type"], q["batch_id"]) == (
        "span",
        "crm",
        "billing-api",
        "POST /invoices",
        "batch1",
    )
    assert reason in q["reason"]
    payload = json.loads(q["payload"])
    assert payload["name"] == "POST /invoices" and payload["kind"] == 2
    if "trace_id" not in override:
        assert payload["traceId"] == TRACE_ID.hex()  # OTLP/JSON form: hex ids, not base64


@pytest.mark.parametrize(
    ("trace_id", "reason"),
    [
        (base64.b64encode(TRACE_ID).decode(), "must be 32 hex characters (OTLP/JSON ids are hex, not base64)"),
        ("zz" * 16, "must be 32 hex characters"),
        ("0" * 32, "is all zeros"),
        ("", "is missing"),
    ],
)
def test_invalid_json_ids_are_refused_alone(ctx: DecodeContext, trace_id: str, reason: str) -> None:
    good = {"traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex(), "name": "good"}
    bad = {"traceId": trace_id, "spanId": SPAN_ID.hex(), "name": "bad"}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [good, bad]}]}]}).encode()
    decoded = decode_traces(body, JS, ctx)
    assert (decoded.accepted, decoded.rejected) == (1, 1)
    assert reason in decoded.messages[0]
    (q,) = rows(decoded, QUARANTINE)
    payload = json.loads(q["payload"])
    assert {k: payload.get(k, "") for k in bad} == bad  # defaults (empty values) are left out
    assert q["item_id"] == SPAN_ID.hex()


def test_many_refusals_list_a_few_reasons_and_quarantine_all(ctx: DecodeContext) -> None:
    spans = [rich_span(trace_id=b"short") for _ in range(50)]
    decoded = decode_traces(trace_request(*spans).SerializeToString(), PB, ctx)
    assert decoded.rejected == 50 and decoded.accepted == 0
    assert len(decoded.messages) == 21 and "30 more" in decoded.messages[-1]
    assert decoded.tables[QUARANTINE].num_rows == 50


# -------------------------------------------------------------------------------------------- logs


def log_request(*records: LogRecord) -> ExportLogsServiceRequest:
    scope = InstrumentationScope(name="app.logger", version="3", attributes=[kv("scope.attr", int_value=7)])
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=resource(service_name="worker"),
                schema_url="https://opentelemetry.io/schemas/1.21.0",
                scope_logs=[ScopeLogs(scope=scope, schema_url="https://scope/schema", log_records=list(records))],
            )
        ]
    )


def rich_log(**overrides: Any) -> LogRecord:
    fields: dict[str, Any] = {
        "time_unix_nano": T0,
        "observed_time_unix_nano": T0 + 5,
        "severity_number": 17,
        "severity_text": "ERROR",
        "body": AnyValue(string_value="invoice 7 failed"),
        "attributes": [kv("invoice", int_value=7)],
        "flags": 0x101,
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
    }
    fields.update(overrides)
    return LogRecord(**fields)


def log_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "Timestamp": int(row["Timestamp"].value)}


EXPECTED_LOG = {
    "Timestamp": T0,
    "TraceId": TRACE_ID.hex(),
    "SpanId": SPAN_ID.hex(),
    "TraceFlags": 1,
    "SeverityText": "ERROR",
    "SeverityNumber": 17,
    "ServiceName": "worker",
    "Body": "invoice 7 failed",
    "ResourceSchemaUrl": "https://opentelemetry.io/schemas/1.21.0",
    "ResourceAttributes": [("service.name", "worker")],
    "ScopeSchemaUrl": "https://scope/schema",
    "ScopeName": "app.logger",
    "ScopeVersion": "3",
    "ScopeAttributes": [("scope.attr", "7")],
    "LogAttributes": [("invoice", "7")],
}


@pytest.mark.parametrize("encoding", [PB, JS])
def test_log_record_fills_every_column(ctx: DecodeContext, encoding: str) -> None:
    request = log_request(rich_log())
    body = request.SerializeToString() if encoding == PB else to_otlp_json(request)
    decoded = decode_logs(body, encoding, ctx)
    assert decoded.tables[LOGS].schema == LOGS_SCHEMA
    assert [log_row(r) for r in rows(decoded, LOGS)] == [EXPECTED_LOG]


@pytest.mark.parametrize("encoding", [PB, JS])
def test_log_without_ids_or_time_and_with_a_structured_body(ctx: DecodeContext, encoding: str) -> None:
    body_value = AnyValue(
        kvlist_value=KeyValueList(values=[kv("event", string_value="login"), kv("ok", bool_value=True)])
    )
    request = log_request(rich_log(trace_id=b"", span_id=b"", time_unix_nano=0, body=body_value))
    body = request.SerializeToString() if encoding == PB else to_otlp_json(request)
    (row,) = rows(decode_logs(body, encoding, ctx), LOGS)
    assert (row["TraceId"], row["SpanId"]) == ("", "")
    assert int(row["Timestamp"].value) == T0 + 5  # observed time when the time is unset
    assert orjson.loads(row["Body"]) == {"event": "login", "ok": True}


def test_json_log_with_severity_name(ctx: DecodeContext) -> None:
    body = (
        b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"SEVERITY_NUMBER_WARN",'
        b'"body":{"stringValue":"careful"},"timeUnixNano":"1"}]}]}]}'
    )
    (row,) = rows(decode_logs(body, JS, ctx), LOGS)
    assert (row["SeverityNumber"], row["Body"], row["ServiceName"]) == (13, "careful", "")


def test_log_with_malformed_ids_is_quarantined(ctx: DecodeContext) -> None:
    request = log_request(rich_log(), rich_log(span_id=b"\x01\x02"), rich_log(severity_number=300))
    decoded = decode_logs(request.SerializeToString(), PB, ctx)
    assert (decoded.accepted, decoded.rejected) == (1, 2)
    assert "logRecords[1]: spanId must be 8 bytes, got 2" in decoded.messages[0]
    assert "logRecords[2]: severityNumber 300" in decoded.messages[1]
    assert [q["kind"] for q in rows(decoded, QUARANTINE)] == ["log", "log"]


def test_sdk_logs_encoded_by_the_otlp_exporter(ctx: DecodeContext) -> None:
    exporter = InMemoryLogExporter()
    provider = LoggerProvider(resource=SdkResource.create({"service.name": "sdk-logs"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    provider.get_logger("sdk.logger").emit(body="hello", severity_text="INFO", attributes={"k": "v"})
    request = encode_logs(exporter.get_finished_logs())
    (row,) = rows(decode_logs(request.SerializeToString(), PB, ctx), LOGS)
    assert (row["Body"], row["ServiceName"], row["ScopeName"]) == ("hello", "sdk-logs", "sdk.logger")
    assert row["TraceId"] == "" and ("k", "v") in row["LogAttributes"]


# ----------------------------------------------------------------------------------------- metrics


def metrics_request(*metrics: m.Metric) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            m.ResourceMetrics(
                resource=resource(service_name="meter"),
                scope_metrics=[m.ScopeMetrics(scope=InstrumentationScope(name="meter.lib"), metrics=list(metrics))],
            )
        ]
    )


def point_fields(**extra: Any) -> dict[str, Any]:
    return {
        "attributes": [kv("route", string_value="/a")],
        "start_time_unix_nano": T0,
        "time_unix_nano": T0 + 1,
        **extra,
    }


ALL_TYPES = [
    m.Metric(
        name="temp",
        unit="C",
        description="t",
        gauge=m.Gauge(data_points=[m.NumberDataPoint(**point_fields(as_double=21.5))]),
    ),
    m.Metric(
        name="requests",
        sum=m.Sum(
            data_points=[m.NumberDataPoint(**point_fields(as_int=7))],
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_CUMULATIVE,
            is_monotonic=True,
        ),
    ),
    m.Metric(
        name="latency",
        histogram=m.Histogram(
            data_points=[
                m.HistogramDataPoint(
                    **point_fields(
                        count=6, sum=12.5, min=0.5, max=9.0, bucket_counts=[1, 2, 3], explicit_bounds=[1.0, 5.0]
                    )
                )
            ],
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA,
        ),
    ),
    m.Metric(
        name="sizes",
        exponential_histogram=m.ExponentialHistogram(
            data_points=[
                m.ExponentialHistogramDataPoint(
                    **point_fields(count=10, sum=40.0, scale=0, zero_count=1, min=-3.0, max=7.0),
                    positive=m.ExponentialHistogramDataPoint.Buckets(offset=1, bucket_counts=[4, 3]),
                    negative=m.ExponentialHistogramDataPoint.Buckets(offset=0, bucket_counts=[2]),
                )
            ],
            aggregation_temporality=m.AGGREGATION_TEMPORALITY_DELTA,
        ),
    ),
    m.Metric(
        name="rpc",
        summary=m.Summary(
            data_points=[
                m.SummaryDataPoint(
                    **point_fields(count=4, sum=8.0),
                    quantile_values=[
                        m.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=1.5),
                        m.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=4.0),
                    ],
                )
            ]
        ),
    ),
]

EXPECTED_METRICS = {
    "temp": {"MetricType": "gauge", "Value": 21.5, "MetricUnit": "C", "MetricDescription": "t"},
    "requests": {"MetricType": "sum", "Value": 7.0, "IsMonotonic": True, "AggregationTemporality": 2},
    "latency": {
        "MetricType": "histogram",
        "Count": 6,
        "Sum": 12.5,
        "Min": 0.5,
        "Max": 9.0,
        "BucketCounts": [1, 2, 3],
        "ExplicitBounds": [1.0, 5.0],
        "AggregationTemporality": 1,
    },
    "sizes": {
        "MetricType": "exponential_histogram",
        "Count": 10,
        "Sum": 40.0,
        "Min": -3.0,
        "Max": 7.0,
        "BucketCounts": [2, 1, 4, 3],
        "ExplicitBounds": [-1.0, 2.0, 4.0],
    },
    "rpc": {"MetricType": "summary", "Count": 4, "Sum": 8.0, "Quantiles": [0.5, 0.99], "QuantileValues": [1.5, 4.0]},
}


@pytest.mark.parametrize("encoding", [PB, JS])
def test_every_metric_type_is_stored(ctx: DecodeContext, encoding: str) -> None:
    request = metrics_request(*ALL_TYPES)
    body = request.SerializeToString() if encoding == PB else to_otlp_json(request)
    decoded = decode_metrics(body, encoding, ctx)
    assert decoded.tables[METRICS].schema == METRICS_SCHEMA
    assert decoded.accepted == 5 and decoded.rejected == 0
    by_name = {r["MetricName"]: r for r in rows(decoded, METRICS)}
    for name, expected in EXPECTED_METRICS.items():
        assert {k: by_name[name][k] for k in expected} == expected, name
    row = by_name["latency"]
    assert (row["ServiceName"], row["ScopeName"], row["Attributes"]) == ("meter", "meter.lib", [("route", "/a")])
    assert int(row["TimeUnix"].value) == T0 + 1 and int(row["StartTimeUnix"].value) == T0
    assert by_name["temp"]["Count"] == 0 and by_name["latency"]["Value"] == 0.0  # columns that do not apply


def test_histogram_without_optional_sum_min_max_stores_nan(ctx: DecodeContext) -> None:
    point = m.HistogramDataPoint(**point_fields(count=1, bucket_counts=[1], explicit_bounds=[]))
    metric = m.Metric(name="h", histogram=m.Histogram(data_points=[point]))
    for body, encoding in (
        (metrics_request(metric).SerializeToString(), PB),
        (to_otlp_json(metrics_request(metric)), JS),
    ):
        (row,) = rows(decode_metrics(body, encoding, ctx), METRICS)
        assert all(math.isnan(row[c]) for c in ("Sum", "Min", "Max")), encoding


def test_invalid_metrics_and_points_are_quarantined(ctx: DecodeContext) -> None:
    no_data = m.Metric(name="nothing")
    no_name = m.Metric(gauge=m.Gauge(data_points=[m.NumberDataPoint(as_int=1), m.NumberDataPoint(as_int=2)]))
    bad_buckets = m.HistogramDataPoint(**point_fields(count=1, bucket_counts=[1, 2, 3], explicit_bounds=[1.0]))
    no_value = m.NumberDataPoint(**point_fields())
    stale = m.NumberDataPoint(**point_fields(flags=1))  # NO_RECORDED_VALUE: a staleness marker, no value
    request = metrics_request(
        no_data,
        no_name,
        m.Metric(name="h", histogram=m.Histogram(data_points=[bad_buckets])),
        m.Metric(name="g", gauge=m.Gauge(data_points=[no_value, stale])),
    )
    decoded = decode_metrics(request.SerializeToString(), PB, ctx)
    assert (decoded.accepted, decoded.rejected) == (1, 5)  # data points: 1 + 2 + 1 + 1
    (stored,) = rows(decoded, METRICS)
    assert stored["MetricName"] == "g" and math.isnan(stored["Value"]) and stored["Flags"] == 1
    reasons = decoded.messages
    assert "metrics[0]: has no data; set one of gauge, sum" in reasons[0]
    assert "metrics[1]: has no name" in reasons[1]
    assert "metrics[2].histogram.dataPoints[0]: has 3 bucketCounts for 1 explicitBounds" in reasons[2]
    assert "metrics[3].gauge.dataPoints[0]: has neither asDouble nor asInt" in reasons[3]
    quarantined = rows(decoded, QUARANTINE)
    assert [(q["kind"], q["item_id"], q["type"]) for q in quarantined] == [
        ("metric", "nothing", ""),
        ("metric", "", "gauge"),
        ("metric", "h", "histogram"),
        ("metric", "g", "gauge"),
    ]


def test_exponential_buckets_become_ascending_explicit_buckets() -> None:
    assert exponential_buckets(0, 5, (0, []), (0, [])) == ([5], [])
    # scale 1: base sqrt(2); positive bucket i covers (2**(i/2), 2**((i+1)/2)]
    counts, bounds = exponential_buckets(1, 0, (2, [1, 1]), (0, []))
    assert counts == [0, 1, 1] and bounds == pytest.approx([2.0, 2**1.5])
    counts, bounds = exponential_buckets(-1, 0, (0, [1]), (1, [3, 2]))  # base 4
    assert counts == [2, 3, 0, 1] and bounds == [-16.0, -4.0, 1.0]
    assert exponential_buckets(0, 0, (5000, [1]), (0, []))[1] == [math.inf]


# ------------------------------------------------------------------------ malformed bodies, encodings


@pytest.mark.parametrize(
    ("decode", "body", "content_type", "code", "text"),
    [
        (decode_traces, b"\x0a\xff\xff", PB, "bad_protobuf", "not a valid ExportTraceServiceRequest"),
        (decode_logs, b"hello, world", PB, "bad_protobuf", "ExportLogsServiceRequest"),
        (decode_metrics, gzip.compress(b"{}"), PB, "bad_protobuf", "ExportMetricsServiceRequest"),
        (decode_traces, b'{"resourceSpans": [', JS, "bad_json", "not valid JSON"),
        (decode_traces, b'{"resourceSpans": 5}', JS, "bad_json", "$.resourceSpans"),
        (decode_logs, b"[1, 2]", JS, "bad_json", "ExportLogsServiceRequest"),
        (
            decode_metrics,
            b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"gauge": {"dataPoints": '
            b'[{"timeUnixNano": -1}]}}]}]}]}',
            JS,
            "bad_json",
            "timeUnixNano",
        ),
        (  # an sfixed64 beyond its range: refused, not stored as a rounded float
            decode_metrics,
            b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": '
            b'[{"asInt": "99999999999999999999999"}]}}]}]}]}',
            JS,
            "bad_json",
            "asInt",
        ),
    ],
)
def test_unreadable_bodies_raise_decode_error(
    ctx: DecodeContext, decode: Any, body: bytes, content_type: str, code: str, text: str
) -> None:
    with pytest.raises(DecodeError) as err:
        decode(body, content_type, ctx)
    assert err.value.code == code and text in err.value.message
    assert not isinstance(err.value, UnsupportedMediaType)


def test_deeply_nested_json_attribute_is_refused(ctx: DecodeContext) -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(100):
        value = {"arrayValue": {"values": [value]}}
    span = {"traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex(), "attributes": [{"key": "deep", "value": value}]}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    with pytest.raises(DecodeError) as err:
        decode_traces(body, JS, ctx)
    assert err.value.code == "too_deep"


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/grpc", "application/xml; charset=utf-8"])
def test_other_content_types_are_unsupported(ctx: DecodeContext, content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as err:
        decode_traces(b"{}", content_type, ctx)
    assert "application/x-protobuf or application/json" in err.value.message


@pytest.mark.parametrize(("body", "content_type"), [(b"", PB), (b"{}", JS), (b'{"resourceSpans": []}', JS)])
def test_empty_requests_are_fine(ctx: DecodeContext, body: bytes, content_type: str) -> None:
    decoded = decode_traces(body, content_type, ctx)
    assert (decoded.accepted, decoded.rejected) == (0, 0)


def test_snake_case_json_keys_store_nothing_but_say_why(ctx: DecodeContext) -> None:
    decoded = decode_traces(b'{"resource_spans": [{"scope_spans": []}]}', JS, ctx)
    assert (decoded.accepted, decoded.rejected) == (0, 0)
    assert decoded.messages == [
        "nothing stored: OTLP/JSON keys are lowerCamelCase ('resourceSpans', not 'resource_spans')"
    ]


# ------------------------------------------------------------------------------------------ responses


@pytest.mark.parametrize(
    ("kind", "response", "field"),
    [
        ("span", ExportTraceServiceResponse, "rejected_spans"),
        ("log", ExportLogsServiceResponse, "rejected_log_records"),
        ("metric", ExportMetricsServiceResponse, "rejected_data_points"),
    ],
)
def test_export_response_in_protobuf(kind: str, response: Any, field: str) -> None:
    full = response.FromString(encode_export_response(kind, 0, "", PB))
    assert not full.HasField("partial_success")
    partial = response.FromString(encode_export_response(kind, 3, "bad ids", PB)).partial_success
    assert (getattr(partial, field), partial.error_message) == (3, "bad ids")


def test_export_response_in_json() -> None:
    assert json.loads(encode_export_response("span", 0, "", JS)) == {}
    assert json.loads(encode_export_response("log", 0, "a warning", JS)) == {
        "partialSuccess": {"rejectedLogRecords": "0", "errorMessage": "a warning"}
    }
    assert json.loads(encode_export_response("metric", 2, "why", JS)) == {
        "partialSuccess": {"rejectedDataPoints": "2", "errorMessage": "why"}
    }


def test_status_bodies() -> None:
    status = Status.FromString(encode_status(16, "missing key", PB))
    assert (status.code, status.message) == (16, "missing key")
    assert json.loads(encode_status(3, "bad", JS)) == {"code": 3, "message": "bad"}
    assert response_media_type("application/x-protobuf") == PB
    assert response_media_type("text/plain") == JS and response_media_type("") == JS


# ------------------------------------------------------------------- round trip through the store


def test_decoded_tables_insert_into_the_migrated_store(store: Any, ctx: DecodeContext) -> None:
    """decode -> insert_arrow -> query on real chDB: the Arrow columns fit the ClickHouse tables."""
    spans = decode_traces(trace_request(rich_span(), rich_span(trace_id=b"bad")).SerializeToString(), PB, ctx)
    logs = decode_logs(log_request(rich_log()).SerializeToString(), PB, ctx)
    metrics = decode_metrics(metrics_request(*ALL_TYPES).SerializeToString(), PB, ctx)
    for decoded in (spans, logs, metrics):
        for table, data in decoded.tables.items():
            store.insert_arrow(table, as_arrow(table, data))
    ((span_attrs, events, links, duration, ts),) = store.query(
        "SELECT SpanAttributes, Events.Name, Links.SpanId, Duration, toUnixTimestamp64Nano(Timestamp) FROM otel_traces"
    )
    assert span_attrs["tags"] == '["a",2]' and events == ["exception"] and links == [PARENT_ID.hex()]
    assert (duration, ts) == (1_500_000, T0)
    assert store.query("SELECT kind, reason FROM quarantine")[0][0] == "span"
    assert store.query("SELECT Body, ScopeAttributes FROM otel_logs") == [("invoice 7 failed", {"scope.attr": "7"})]
    stored = store.query("SELECT MetricName, MetricType, BucketCounts, ExplicitBounds FROM otel_metrics ORDER BY 1")
    assert [(r[0], r[1]) for r in stored] == [
        ("latency", "histogram"),
        ("requests", "sum"),
        ("rpc", "summary"),
        ("sizes", "exponential_histogram"),
        ("temp", "gauge"),
    ]
    assert stored[3][2:] == ([2, 1, 4, 3], [-1.0, 2.0, 4.0])
