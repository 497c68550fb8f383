"""OTLP/HTTP payloads -> rows: traces, logs and metrics, protobuf or JSON. Pure: bytes in, Decoded out.

Follows the OTLP specification's OTLP/HTTP section (https://opentelemetry.io/docs/specs/otlp/#otlphttp):
`application/x-protobuf` bodies are the Export*ServiceRequest messages, `application/json` bodies
their OTLP/JSON form. An item that cannot be stored (a span with a malformed or all-zero id, say)
is refused on its own: counted in `rejected`, explained in `messages` and kept in the quarantine
table, while the rest is stored; the response then carries `partial_success`
(see encode_export_response). A body that cannot be read at all raises DecodeError (400).

>>> from datetime import UTC, datetime
>>> ctx = DecodeContext("crm", "k1", (), datetime.now(UTC), "b1")
>>> body = b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c",'
>>> body += b' "spanId": "eee19b7ec3c1b174", "name": "GET /", "kind": 2}]}]}]}'
>>> decode_traces(body, "application/json", ctx).tables["otel_traces"]["SpanKind"].to_pylist()
['Server']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from collector import decode_otlp_json, decode_otlp_proto
from collector.decode_otlp_logs import log_rows
from collector.decode_otlp_metrics import metric_rows
from collector.decode_otlp_rows import Dialect, camel, json_text
from collector.decode_otlp_spans import span_rows
from collector.decoded import DecodeContext, Decoded, DecodeError, UnsupportedMediaType

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
PROTOBUF_TYPES = (PROTOBUF, "application/protobuf")


class Signal:
    """One OTLP signal: its protobuf messages, the list its request holds, its row builder."""

    def __init__(
        self,
        name: str,
        request: type[Message],
        response: type[Message],
        partial: type[Message],
        items: str,
        rejected: str,
        rows: Callable[[Any, Dialect, DecodeContext], Decoded],
    ) -> None:
        self.name, self.request, self.response, self.partial = name, request, response, partial
        self.items, self.rejected, self.rows = items, rejected, rows


TRACES = Signal(
    "traces",
    trace_pb.ExportTraceServiceRequest,
    trace_pb.ExportTraceServiceResponse,
    trace_pb.ExportTracePartialSuccess,
    "resource_spans",
    "rejected_spans",
    span_rows,
)
LOGS = Signal(
    "logs",
    logs_pb.ExportLogsServiceRequest,
    logs_pb.ExportLogsServiceResponse,
    logs_pb.ExportLogsPartialSuccess,
    "resource_logs",
    "rejected_log_records",
    log_rows,
)
METRICS = Signal(
    "metrics",
    metrics_pb.ExportMetricsServiceRequest,
    metrics_pb.ExportMetricsServiceResponse,
    metrics_pb.ExportMetricsPartialSuccess,
    "resource_metrics",
    "rejected_data_points",
    metric_rows,
)
SIGNALS_BY_KIND = {"span": TRACES, "log": LOGS, "metric": METRICS}


def decode_traces(body: bytes, content_type: str, ctx: DecodeContext) -> Decoded:
    """otel_traces rows (and quarantine rows) of an OTLP/HTTP traces request body."""
    return _decode(TRACES, body, content_type, ctx)


def decode_logs(body: bytes, content_type: str, ctx: DecodeContext) -> Decoded:
    """otel_logs rows (and quarantine rows) of an OTLP/HTTP logs request body."""
    return _decode(LOGS, body, content_type, ctx)


def decode_metrics(body: bytes, content_type: str, ctx: DecodeContext) -> Decoded:
    """otel_metrics rows (and quarantine rows) of an OTLP/HTTP metrics request body."""
    return _decode(METRICS, body, content_type, ctx)


def media_type(content_type: str) -> str:
    """The media type of a Content-Type header, lowercase, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def response_media_type(content_type: str) -> str:
    """The Content-Type to answer with: the request's (the spec says so), JSON when it is not OTLP."""
    media = media_type(content_type)
    return media if media in PROTOBUF_TYPES else JSON


def _decode(signal: Signal, body: bytes, content_type: str, ctx: DecodeContext) -> Decoded:
    media = media_type(content_type)
    if media in PROTOBUF_TYPES:
        request, dialect = decode_otlp_proto.parse(body, signal.request, signal.items), decode_otlp_proto.PROTO
    elif media == JSON:
        request, dialect = decode_otlp_json.parse(body, signal.name), decode_otlp_json.dialect(ctx.max_depth)
    else:
        raise UnsupportedMediaType(
            "unsupported_media_type",
            f"Content-Type {content_type!r} is not an OTLP/HTTP encoding; use {PROTOBUF} or {JSON}",
        )
    try:
        decoded = signal.rows(request, dialect, ctx)
    except RecursionError as exc:
        raise DecodeError("too_deep", f"an attribute value of this {signal.name} request nests too deeply") from exc
    if media == JSON and not decoded.accepted and not decoded.rejected:
        decoded.messages += _snake_case_warning(signal, body)
    return decoded


def _snake_case_warning(signal: Signal, body: bytes) -> list[str]:
    """A hint for an OTLP/JSON body that stored nothing because it used protobuf field names.

    The spec makes receivers ignore unknown keys, so such a body is not an error; the hint goes
    back in partial_success with nothing rejected, which the spec allows for warnings.
    """
    if f'"{signal.items}"'.encode() not in body:
        return []
    return [f"nothing stored: OTLP/JSON keys are lowerCamelCase ({camel(signal.items)!r}, not {signal.items!r})"]


def encode_export_response(kind: str, rejected: int, message: str, content_type: str) -> bytes:
    """The Export{Trace,Logs,Metrics}ServiceResponse body for a request of `kind` ('span', 'log',
    'metric'), encoded as the request was. partial_success is set when items were rejected, or
    to carry a warning in `message` (https://opentelemetry.io/docs/specs/otlp/#partial-success-1)."""
    signal = SIGNALS_BY_KIND[kind]
    partial_success = rejected > 0 or bool(message)  # a message alone is a warning (rejected stays 0)
    if media_type(content_type) in PROTOBUF_TYPES:
        if not partial_success:
            return signal.response().SerializeToString()
        partial = signal.partial(**{signal.rejected: rejected, "error_message": message})
        return signal.response(partial_success=partial).SerializeToString()
    if not partial_success:
        return b"{}"
    # protobuf's JSON mapping writes 64-bit integers as decimal strings
    partial_json = {camel(signal.rejected): str(rejected), "errorMessage": message}
    return json_text({"partialSuccess": partial_json}).encode()


def encode_status(code: int, message: str, content_type: str) -> bytes:
    """A google.rpc.Status body (the OTLP/HTTP failure response), encoded as the request was."""
    if media_type(content_type) in PROTOBUF_TYPES:
        return Status(code=code, message=message).SerializeToString()
    return json_text({"code": code, "message": message}).encode()
