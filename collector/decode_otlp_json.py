"""Reading OTLP/JSON: msgspec structs mirroring the OTLP protobuf messages, and the JSON `Dialect`.

OTLP/JSON is protobuf's JSON mapping with the deviations of the OTLP specification
(https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): keys are lowerCamelCase,
trace and span ids are hex, enums are integers (names are accepted too), 64-bit integers may be
strings, unknown fields are ignored. The structs keep the protobuf field names as attributes so
the row builders read both encodings alike; absent messages decode to empty ones, as in protobuf.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import msgspec
from msgspec import Meta, field

from collector.decode_otlp_rows import Dialect, json_text
from collector.decoded import DecodeError

U32 = Annotated[int, Meta(ge=0, lt=2**32)]
U64 = Annotated[int, Meta(ge=0, le=2**63 - 1)]  # bounds beyond int64 are not supported by msgspec
I32 = Annotated[int, Meta(ge=-(2**31), lt=2**31)]
I64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]  # sfixed64: a bigger asInt was stored as a rounded float
Enum = I32 | str  # an enum's number or, leniently, its name


class _Message(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    """gc=False: these structs never form reference cycles, and tracking ~10 objects per span
    would make the garbage collector a large share of decoding time."""


class AnyValue(_Message):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | None = None
    double_value: float | None = None
    array_value: ArrayValue | None = None
    kvlist_value: KeyValueList | None = None
    bytes_value: bytes | None = None  # base64, as in protobuf's JSON mapping


class ArrayValue(_Message):
    values: list[AnyValue] = []


class KeyValue(_Message):
    key: str = ""
    value: AnyValue = field(default_factory=AnyValue)


class KeyValueList(_Message):
    values: list[KeyValue] = []


class Resource(_Message):
    attributes: list[KeyValue] = []
    dropped_attributes_count: U32 = 0


class Scope(_Message):
    name: str = ""
    version: str = ""
    attributes: list[KeyValue] = []
    dropped_attributes_count: U32 = 0


class Status(_Message):
    message: str = ""
    code: Enum = 0


class Event(_Message):
    time_unix_nano: U64 = 0
    name: str = ""
    attributes: list[KeyValue] = []
    dropped_attributes_count: U32 = 0


class Link(_Message):
    trace_id: str = ""
    span_id: str = ""
    trace_state: str = ""
    attributes: list[KeyValue] = []
    dropped_attributes_count: U32 = 0
    flags: U32 = 0


class Span(_Message):
    trace_id: str = ""
    span_id: str = ""
    trace_state: str = ""
    parent_span_id: str = ""
    flags: U32 = 0
    name: str = ""
    kind: Enum = 0
    start_time_unix_nano: U64 = 0
    end_time_unix_nano: U64 = 0
    attributes: list[KeyValue] = []
    dropped_attributes_count: U32 = 0
    events: list[Event] = []
    dropped_events_count: U32 = 0
    links: list[Link] = []
    dropped_links_count: U32 = 0
    status: Status = field(default_factory=Status)


class ScopeSpans(_Message):
    scope: Scope = field(default_factory=Scope)
    spans: list[Span] = []
    schema_url: str = ""


class ResourceSpans(_Message):
    resource: Resource = field(default_factory=Resource)
    scope_spans: list[ScopeSpans] = []
    schema_url: str = ""


class ExportTraceServiceRequest(_Message):
    resource_spans: list[ResourceSpans] = []


class LogRecord(_Message):
    time_unix_nano: U64 = 0
    observed_time_unix_nano: U64 = 0
    severity_number: Enum = 0
    severity_text: str = ""
    body: AnyValue = field(default_factory=AnyValue)
    attributes: list[KeyValue] = []
    dropped_attributes_count: U32 = 0
    flags: U32 = 0
    trace_id: str = ""
    span_id: str = ""
    event_name: str = ""


class ScopeLogs(_Message):
    scope: Scope = field(default_factory=Scope)
    log_records: list[LogRecord] = []
    schema_url: str = ""


class ResourceLogs(_Message):
    resource: Resource = field(default_factory=Resource)
    scope_logs: list[ScopeLogs] = []
    schema_url: str = ""


class ExportLogsServiceRequest(_Message):
    resource_logs: list[ResourceLogs] = []


class NumberDataPoint(_Message):
    attributes: list[KeyValue] = []
    start_time_unix_nano: U64 = 0
    time_unix_nano: U64 = 0
    as_double: float | None = None
    as_int: I64 | None = None
    flags: U32 = 0


class HistogramDataPoint(_Message):
    attributes: list[KeyValue] = []
    start_time_unix_nano: U64 = 0
    time_unix_nano: U64 = 0
    count: U64 = 0
    sum: float | None = None
    bucket_counts: list[U64] = []
    explicit_bounds: list[float] = []
    flags: U32 = 0
    min: float | None = None
    max: float | None = None


class Buckets(_Message):
    offset: I32 = 0
    bucket_counts: list[U64] = []


class ExponentialHistogramDataPoint(_Message):
    attributes: list[KeyValue] = []
    start_time_unix_nano: U64 = 0
    time_unix_nano: U64 = 0
    count: U64 = 0
    sum: float | None = None
    scale: I32 = 0
    zero_count: U64 = 0
    positive: Buckets = field(default_factory=Buckets)
    negative: Buckets = field(default_factory=Buckets)
    flags: U32 = 0
    min: float | None = None
    max: float | None = None
    zero_threshold: float = 0.0


class ValueAtQuantile(_Message):
    quantile: float = 0.0
    value: float = 0.0


class SummaryDataPoint(_Message):
    attributes: list[KeyValue] = []
    start_time_unix_nano: U64 = 0
    time_unix_nano: U64 = 0
    count: U64 = 0
    sum: float = 0.0
    quantile_values: list[ValueAtQuantile] = []
    flags: U32 = 0


class Gauge(_Message):
    data_points: list[NumberDataPoint] = []


class Sum(_Message):
    data_points: list[NumberDataPoint] = []
    aggregation_temporality: Enum = 0
    is_monotonic: bool = False


class Histogram(_Message):
    data_points: list[HistogramDataPoint] = []
    aggregation_temporality: Enum = 0


class ExponentialHistogram(_Message):
    data_points: list[ExponentialHistogramDataPoint] = []
    aggregation_temporality: Enum = 0


class Summary(_Message):
    data_points: list[SummaryDataPoint] = []


class Metric(_Message):
    name: str = ""
    description: str = ""
    unit: str = ""
    gauge: Gauge | None = None
    sum: Sum | None = None
    histogram: Histogram | None = None
    exponential_histogram: ExponentialHistogram | None = None
    summary: Summary | None = None
    metadata: list[KeyValue] = []


class ScopeMetrics(_Message):
    scope: Scope = field(default_factory=Scope)
    metrics: list[Metric] = []
    schema_url: str = ""


class ResourceMetrics(_Message):
    resource: Resource = field(default_factory=Resource)
    scope_metrics: list[ScopeMetrics] = []
    schema_url: str = ""


class ExportMetricsServiceRequest(_Message):
    resource_metrics: list[ResourceMetrics] = []


REQUESTS: dict[str, type[_Message]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}
_DECODERS = {signal: msgspec.json.Decoder(cls, strict=False) for signal, cls in REQUESTS.items()}
_ONEOFS = {
    "data": ("gauge", "sum", "histogram", "exponential_histogram", "summary"),
    "value": ("as_double", "as_int"),
}


def parse(body: bytes, signal: str) -> Any:
    """The OTLP/JSON request of `signal` ("traces", "logs", "metrics") in `body`, or DecodeError.

    strict=False is what lets 64-bit integers and "NaN"/"Infinity" arrive as strings.
    """
    try:
        return _DECODERS[signal].decode(body)
    except msgspec.ValidationError as exc:
        raise DecodeError("bad_json", f"body is not a valid OTLP/JSON {REQUESTS[signal].__name__}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise DecodeError("bad_json", f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise DecodeError("too_deep", "body is nested too deeply") from exc


def _id(text: str, size: int) -> str | None:
    if len(text) != 2 * size:
        return None if text else ""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    if len(raw) != size:  # fromhex skips whitespace
        return None
    return text.lower() if any(raw) else ""


def _id_problem(text: str, size: int) -> str:
    if not text:
        return "is missing"
    if _id(text, size) is None:
        return f"must be {2 * size} hex characters (OTLP/JSON ids are hex, not base64), got {text[:64]!r}"
    return "is all zeros, which is not a valid id"


def _value(value: AnyValue, max_depth: int) -> str:
    if value.string_value is not None:
        return value.string_value
    if value.bool_value is not None:
        return "true" if value.bool_value else "false"
    if value.int_value is not None:
        return str(value.int_value)
    if value.double_value is not None:
        return repr(value.double_value)
    if value.bytes_value is not None:
        return base64.b64encode(value.bytes_value).decode()
    if value.array_value is None and value.kvlist_value is None:
        return ""
    return json_text(_raw(value, max_depth))


def _raw(value: AnyValue, depth: int) -> Any:
    """An AnyValue as a plain Python value (bytes as base64), for JSON rendering."""
    if depth <= 0:
        raise DecodeError("too_deep", "an attribute value is nested too deeply (arrays/kvlists within each other)")
    if value.array_value is not None:
        return [_raw(v, depth - 1) for v in value.array_value.values]
    if value.kvlist_value is not None:
        return {kv.key: _raw(kv.value, depth - 1) for kv in value.kvlist_value.values}
    if value.bytes_value is not None:
        return base64.b64encode(value.bytes_value).decode()
    for v in (value.string_value, value.bool_value, value.int_value, value.double_value):
        if v is not None:
            return v
    return None


def _which(message: Any, group: str) -> str | None:
    return next((name for name in _ONEOFS[group] if getattr(message, name) is not None), None)


def dialect(max_depth: int) -> Dialect:
    """The JSON dialect; `max_depth` bounds how deeply attribute values may nest."""

    def value(v: AnyValue) -> str:
        return _value(v, max_depth)

    def attrs(kvs: list[KeyValue], keys: list[str], values: list[str]) -> None:
        for kv in kvs:
            keys.append(kv.key)
            v = kv.value
            text = v.string_value
            values.append(text if text is not None else _value(v, max_depth))

    return Dialect(
        name="json",
        trace_id=lambda text: _id(text, 16),
        span_id=lambda text: _id(text, 8),
        id_problem=_id_problem,
        id_text=str,
        attrs=attrs,
        value=value,
        which=_which,
        has=lambda message, name: getattr(message, name) is not None,
        render=lambda item: msgspec.json.encode(item).decode(),
    )
