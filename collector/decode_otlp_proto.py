"""Reading OTLP protobuf messages (opentelemetry-proto classes): the protobuf `Dialect`."""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import unknown_fields
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

from collector.decode_otlp_rows import Dialect, json_text
from collector.decoded import DecodeError

_ZERO = {16: bytes(16), 8: bytes(8)}
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def parse(body: bytes, message: type[Message], items: str) -> Any:
    """`body` as a `message`, or DecodeError saying why it is not one."""
    try:
        request = message.FromString(body)
    except (ProtobufDecodeError, RecursionError) as exc:
        raise DecodeError("bad_protobuf", f"body is not a valid {message.__name__} protobuf message: {exc}") from exc
    # Random bytes often parse as unknown fields only; a request with nothing we know is not OTLP.
    if body and not getattr(request, items) and len(unknown_fields.UnknownFieldSet(request)):
        raise DecodeError(
            "bad_protobuf",
            f"body is not a {message.__name__}: it holds only unknown fields; "
            "is the Content-Type right and the body OTLP for this endpoint?",
        )
    return request


def _trace_id(raw: bytes) -> str | None:
    if len(raw) == 16:
        return raw.hex() if raw != _ZERO[16] else ""
    return None if raw else ""


def _span_id(raw: bytes) -> str | None:
    if len(raw) == 8:
        return raw.hex() if raw != _ZERO[8] else ""
    return None if raw else ""


def _id_problem(raw: bytes, size: int) -> str:
    if not raw:
        return "is missing"
    if len(raw) != size:
        return f"must be {size} bytes, got {len(raw)}"
    return "is all zeros, which is not a valid id"


def _attrs(kvs: Any, keys: list[str], values: list[str]) -> None:
    for kv in kvs:
        keys.append(kv.key)
        value = kv.value
        values.append(value.string_value or _value(value))  # strings first: by far the most common


def _value(value: Any) -> str:
    which = value.WhichOneof("value")
    if which is None or which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return repr(value.double_value)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return json_text(_raw(value))


def _raw(value: Any) -> Any:
    """An AnyValue as a plain Python value (bytes as base64), for JSON rendering."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_raw(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which) if which else None


def _render(message: Message) -> str:
    """OTLP/JSON text of a message: protobuf's JSON mapping with ids in hex, as OTLP/JSON has them.

    json_format is slow, but this only runs for refused items.
    """
    return json_text(_hex_ids(MessageToDict(message, use_integers_for_enums=True)))


def _hex_ids(node: Any) -> Any:
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    if not isinstance(node, dict):
        return node
    return {k: base64.b64decode(v).hex() if k in _ID_FIELDS else _hex_ids(v) for k, v in node.items()}


PROTO = Dialect(
    name="protobuf",
    trace_id=_trace_id,
    span_id=_span_id,
    id_problem=_id_problem,
    id_text=lambda raw: raw.hex(),
    attrs=_attrs,
    value=_value,
    which=lambda message, group: message.WhichOneof(group),
    has=lambda message, field: message.HasField(field),
    render=_render,
)
