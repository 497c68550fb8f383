"""CloudEvents 1.0 over HTTP -> rows of the events table (pure: bytes in, Arrow tables out).

Content modes (HTTP protocol binding, section 3):
- structured: Content-Type ``application/cloudevents+json``, one event in the JSON event format;
- batch: ``application/cloudevents-batch+json``, a JSON array of such events (may be empty);
- binary: attributes in ``ce-*`` headers (percent-encoded, binding 3.1.3.2), the data is the body
  and Content-Type is the event's ``datacontenttype``.

A request is refused whole (DecodeError, nothing stored) when any event is malformed; an event
whose data violates the JSON Schema registered for its type is quarantined and the rest stored.

Speed (the collector must take 200k events/s on two cores, a few microseconds per event): msgspec
decodes the body in C into typed ``Envelope`` structs that validate the column attributes. A batch
without extension attributes takes one strict pass; otherwise a second pass into ``dict[str, Raw]``
finds the extensions. A batch whose events are all in the common form is then checked and turned
into columns a column at a time, mostly in C (collector.event_columns); any other request event by
event, which is also what names the problem in a malformed one. ``data`` stays raw JSON text (stored
as sent); the registry parses, validates and keys the data of all events of one type in one call.
One Arrow table per request.
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote

import msgspec

from collector.decoded import (
    SMALL_BATCH_ROWS,
    DecodeContext,
    Decoded,
    DecodeError,
    SourceNotAllowed,
    UnsupportedMediaType,
    quarantine_rows,
)
from collector.event_columns import (
    MAX_YEAR,
    MIN_YEAR,
    SPECVERSION,
    Column,
    events_rows,
    events_table,
    judge,
    keep_rows,
    plain_columns,
)
from collector.event_columns import map_array as map_array  # re-exported: decode_records imports it from here
from collector.event_registry import EventRegistry
from syncwatch.model import EVENTS, EVENTS_SCHEMA, QUARANTINE

KIND = "event"  # the ingest kind: quarantine.kind and ingest_batches.kind
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,64}$")  # spec 3.1.1: lowercase ASCII letters and digits
JSON_MEDIA = re.compile(r"^(application|text)/([a-z0-9!#$&^_.+-]+\+)?json$")  # JSON format 3.1
BASE64_MARK = "data_base64"  # extensions entry: `data` holds base64 (cannot clash: not a legal extension name)
MAX_MESSAGES = 100
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class Envelope(msgspec.Struct, gc=False):  # gc=False: no cycles, and a batch of them no longer triggers GC passes
    """The context attributes stored in columns, as the JSON event format carries them."""

    id: NonEmpty
    source: NonEmpty
    specversion: NonEmpty
    type: NonEmpty
    time: datetime | None = None  # RFC 3339; msgspec parses it in C (offset checked in check_time)
    subject: NonEmpty | None = None
    datacontenttype: NonEmpty | None = None
    dataschema: NonEmpty | None = None
    traceparent: str | None = None
    data: msgspec.Raw = msgspec.Raw()  # empty when absent; a Raw cannot be in a union
    data_base64: str | None = None


class _StrictEnvelope(Envelope, forbid_unknown_fields=True):
    """An envelope without extension attributes: decoding into it fails if there are any."""


COLUMN_ATTRIBUTES = frozenset(Envelope.__struct_fields__)
_ANY = msgspec.json.Decoder()
_RAW_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_ONE = (msgspec.json.Decoder(_StrictEnvelope), msgspec.json.Decoder(Envelope),
        msgspec.json.Decoder(dict[str, msgspec.Raw]))
_MANY = (msgspec.json.Decoder(list[_StrictEnvelope]), msgspec.json.Decoder(list[Envelope]),
         msgspec.json.Decoder(list[dict[str, msgspec.Raw]]))
ROW = tuple(f.name for f in EVENTS_SCHEMA if f.name not in ("system", "keys", "received_at"))  # a Row's fields
Row = tuple[str, str, str, str, datetime, str, str, str, str, str, str, dict[str, str]]
_FIELDS = Envelope.__struct_fields__


def decode_events(
    body: bytes, content_type: str, headers: Mapping[str, str], ctx: DecodeContext, registry: EventRegistry
) -> Decoded:
    """Decode one POST /v1/events request; the mode follows Content-Type as the HTTP binding says."""
    media, charset = _media_type(content_type)
    builder = _Builder(ctx, registry, body)
    if media in (STRUCTURED, BATCH):
        if charset not in ("", "utf-8"):
            raise UnsupportedMediaType("unsupported_media_type", f"charset {charset!r} is not supported; use utf-8")
        envelopes, raws = _decode_structured(body, media == BATCH)
        builder.add_structured(envelopes, raws, media == BATCH)
    elif media.startswith("application/cloudevents"):
        raise UnsupportedMediaType("unsupported_media_type", f"event format {media!r} is not supported; "
                                   f"use {STRUCTURED} or {BATCH}")
    else:
        ce = {k.lower()[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")}
        if not ce:
            raise UnsupportedMediaType("unsupported_media_type", f"Content-Type {content_type!r} without ce-* "
                                       f"headers is not a CloudEvent: use {STRUCTURED}, {BATCH} or binary mode")
        builder.add_binary(ce, content_type.strip(), body)
    return builder.finish()


def _decode_structured(body: bytes, batch: bool) -> tuple[list[Envelope], list[dict[str, msgspec.Raw]] | None]:
    """Envelopes, and each event's members as raw JSON when some event has extension attributes.

    Fast path: one strict pass that succeeds when no event carries an extension (nor any error)."""
    strict, envelope_decoder, raw_decoder = _MANY if batch else _ONE
    try:
        envelopes = strict.decode(body)
        return (envelopes if batch else [envelopes]), None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        pass
    root = "body" if batch else "event"
    raws = decode_json(body, raw_decoder, "event", root)  # first, so syntax errors are reported as such
    envelopes = decode_json(body, envelope_decoder, "event", root)
    return (envelopes, raws) if batch else ([envelopes], [raws])


def _attribute_columns(envelopes: list[Envelope]) -> dict[str, list[Any]]:
    """Each attribute's values in event order. Transposed in C (a zip of the envelopes as tuples): an
    attrgetter per attribute took twice as long (190 against 85 us per 1,000 events)."""
    if not envelopes:
        return {name: [] for name in _FIELDS}
    return dict(zip(_FIELDS, map(list, zip(*map(msgspec.structs.astuple, envelopes), strict=True)), strict=True))


def _media_type(content_type: str) -> tuple[str, str]:
    media, _, params = content_type.partition(";")
    charset = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


@functools.lru_cache(maxsize=256)
def is_json_media(datacontenttype: str) -> bool:
    return bool(JSON_MEDIA.match(datacontenttype.partition(";")[0].strip().lower()))


def _where(index: int) -> str:
    """How messages name an event: by its index in a batch; -1 is the request's only event."""
    return "event" if index < 0 else f"event[{index}]"


class _Builder:
    """Columns of the events table and quarantined items of one request.

    Every event gets a row until finish(), which has the registry judge the data of all events of one
    type in one call (see event_columns.judge) and takes the quarantined ones out.
    """

    def __init__(self, ctx: DecodeContext, registry: EventRegistry, body: bytes) -> None:
        self.ctx = ctx
        self.registry = registry
        self.body = body
        self.columns: dict[str, Column] = {}  # or, event by event, rows:
        self.rows: list[Row] = []
        self.data: list[Any] = []  # per row: the data as JSON text (msgspec.Raw), or its parsed value
        self.parsed: set[int] = set()  # the rows whose data is a parsed value
        self.payload: bytes | None = None  # the JSON of a request's only event (batches: _event_json)
        self._items: list[msgspec.Raw] | None = None

    def add_structured(self, envelopes: list[Envelope], raws: list[dict[str, msgspec.Raw]] | None,
                       batch: bool) -> None:
        if not batch:
            self.payload = self.body
        if raws is None:  # no extension attributes: the common form, taken a column at a time, if all are in it
            attributes = _attribute_columns(envelopes)
            if (columns := plain_columns(attributes, self.ctx)) is not None:
                self.columns, self.data = columns, attributes["data"]
                return
        for i, env in enumerate(envelopes):
            index = i if batch else -1
            extensions = self._raw_extensions(index, raws[i]) if raws else {}
            if env.data_base64 is None:
                text, value, is_b64 = _json_data(index, env.data, env.datacontenttype, self.ctx)
            else:
                if env.data and bytes(env.data) != b"null":
                    raise DecodeError("invalid_data", f"{_where(index)}: has both data and data_base64; send one")
                payload = _base64(_where(index), env.data_base64)
                text, value, is_b64 = _bytes_data(f"{_where(index)}.data_base64", payload, env.datacontenttype,
                                                  self.ctx)
            self._add(index, env, extensions, text, value, is_b64)

    def _raw_extensions(self, index: int, raw: dict[str, msgspec.Raw]) -> dict[str, Any]:
        try:
            return {name: _ANY.decode(raw[name]) for name in raw.keys() - COLUMN_ATTRIBUTES}
        except UnicodeDecodeError as exc:
            raise DecodeError("invalid_utf8", f"{_where(index)}: an extension attribute is not valid UTF-8") from exc

    def add_binary(self, ce: dict[str, str], content_type: str, body: bytes) -> None:
        attrs: dict[str, Any] = {}
        for name, value in ce.items():
            if name in ("data", "data_base64", "datacontenttype"):
                raise DecodeError("invalid_attribute", f"header ce-{name}: not allowed in binary mode; the data is "
                                  "the body and its media type the Content-Type header")
            try:
                attrs[name] = unquote(value, errors="strict")
            except UnicodeDecodeError as exc:
                raise DecodeError("invalid_utf8", f"header ce-{name}: percent-encoded value is not UTF-8") from exc
        if content_type:
            attrs["datacontenttype"] = content_type
        try:
            env = msgspec.convert(attrs, Envelope)
        except msgspec.ValidationError as exc:
            problem, path = _split_validation(exc)
            field = f"header ce-{path[2:]}" if path.startswith("$.") else "headers"
            raise DecodeError("invalid_attribute", f"{field}: {problem}") from exc
        text, value, is_b64 = _bytes_data("body", body, content_type or None, self.ctx)
        extensions = {name: attrs[name] for name in attrs.keys() - COLUMN_ATTRIBUTES}
        self.payload = msgspec.json.encode({**attrs, "data": text})
        self._add(-1, env, extensions, text, value, is_b64)

    def _add(self, index: int, env: Envelope, ext: dict[str, Any], text: str, value: Any, is_b64: bool) -> None:
        if env.specversion != SPECVERSION:
            raise DecodeError("invalid_attribute", f"{_where(index)}.specversion: {env.specversion!r} is not "
                              "supported; use '1.0'")
        event_time = check_time(f"{_where(index)}.time", env.time) if env.time is not None else self.ctx.received_at
        tp = env.traceparent
        trace_id, span_id = parse_traceparent(tp, f"{_where(index)}.traceparent") if tp else ("", "")
        extensions = _extensions(_where(index), ext) if ext else {}
        if is_b64:
            extensions[BASE64_MARK] = "true"
        if not self.ctx.allows_source(env.source):
            raise SourceNotAllowed("source_not_allowed", f"{_where(index)}.source: API key {self.ctx.key_id!r} may "
                                   f"not send events with source {env.source!r}; allowed prefixes: "
                                   f"{', '.join(self.ctx.source_prefixes)}")
        if not isinstance(value, msgspec.Raw):
            self.parsed.add(len(self.rows))
        self.data.append(value)
        self.rows.append((env.type, env.source, env.id, env.specversion, event_time, env.subject or "",
                          env.datacontenttype or "", env.dataschema or "", trace_id, span_id, text, extensions))

    def _event_json(self, row: int) -> str:
        """The event's JSON exactly as sent: the body, or one element of the batch (error path only)."""
        if self.payload is None and self._items is None:
            self._items = _RAW_ITEMS.decode(self.body)
        payload = self.payload if self.payload is not None else bytes(self._items[row])  # type: ignore[index]
        return payload.decode("utf-8", "replace")

    def finish(self) -> Decoded:
        columns = self.columns or {name: [] for name in ROW}
        if self.rows:
            columns = {name: list(col) for name, col in zip(ROW, zip(*self.rows, strict=True), strict=True)}
        keys, reasons = judge(self.registry, columns["type"], self.data, self.parsed)
        quarantine = [(columns["source"][i], columns["id"][i], columns["type"][i], reason, self._event_json(i))
                      for i, reason in sorted(reasons.items())]
        if reasons:
            keep = [i for i in range(len(keys[0])) if i not in reasons]
            columns = keep_rows(columns, keep)
            keys = ([keys[0][i] for i in keep], [keys[1][i] for i in keep])
        n = len(keys[0])
        decoded = Decoded(accepted=n, quarantined=len(quarantine))
        decoded.add(EVENTS, events_rows(self.ctx, columns, keys) if n < SMALL_BATCH_ROWS
                    else events_table(self.ctx, columns, keys))
        if quarantine:
            decoded.add(QUARANTINE, quarantine_rows(self.ctx, KIND, quarantine))
        decoded.messages = [f"event {item_id!r} (type {event_type}, source {source}) quarantined: {reason}"
                            for source, item_id, event_type, reason, _ in quarantine[:MAX_MESSAGES]]
        if len(quarantine) > MAX_MESSAGES:
            decoded.messages.append(f"... and {len(quarantine) - MAX_MESSAGES} more quarantined")
        return decoded


# --- attributes ---------------------------------------------------------------------------------------

def check_time(where: str, value: datetime) -> datetime:
    """An RFC 3339 time as msgspec parsed it, refused without an offset or outside DateTime64's range."""
    if value.tzinfo is None:
        raise DecodeError("invalid_time", f"{where}: {value.isoformat()} has no UTC offset; RFC 3339 needs Z or +hh:mm")
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise DecodeError("invalid_time", f"{where}: {value.isoformat()} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return value


def _extensions(where: str, ext: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in ext.items():
        if not _extension_name_ok(name):
            raise DecodeError("invalid_attribute", f"{where}.{name}: invalid attribute name: extension names are "
                              "1-64 lowercase ASCII letters and digits")
        if isinstance(value, str):
            out[name] = value
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, int):
            out[name] = str(value)
        elif value is not None:  # JSON format: null is the same as absent
            raise DecodeError("invalid_attribute", f"{where}.{name}: an extension must be a string, integer or "
                              f"boolean, got {json_kind(value)}")
    return out


@functools.lru_cache(maxsize=1024)
def _extension_name_ok(name: str) -> bool:
    return bool(EXTENSION_NAME.match(name))


def json_kind(value: Any) -> str:
    return {dict: "an object", list: "an array", float: "a number", str: "a string", bool: "a boolean",
            int: "an integer", type(None): "null"}.get(type(value), type(value).__name__)


# --- data ---------------------------------------------------------------------------------------------

def _json_data(index: int, raw: msgspec.Raw, dct: str | None, ctx: DecodeContext) -> tuple[str, Any, bool]:
    """Structured-mode `data`: (text to store, value, stored as base64). The value of JSON data is the
    msgspec.Raw itself: only the registry parses it, and only for types it knows."""
    chunk = bytes(raw)
    if not chunk or chunk == b"null":
        return "", None, False
    if chunk[:1] == b'"' and dct is not None and not is_json_media(dct):
        value = _ANY.decode(chunk)  # non-JSON media type: the JSON string is the data (JSON format 3.1)
        return value, value, False
    check_depth(chunk, ctx.max_depth, f"{_where(index)}.data")
    try:
        return chunk.decode("utf-8"), raw, False
    except UnicodeDecodeError as exc:
        message = f"{_where(index)}.data: invalid UTF-8 at byte {exc.start} of the data"
        raise DecodeError("invalid_utf8", message) from exc


def _bytes_data(where: str, payload: bytes, dct: str | None, ctx: DecodeContext) -> tuple[str, Any, bool]:
    """A binary-mode body or decoded data_base64: (text to store, parsed value, stored as base64)."""
    if not payload:
        return "", None, False
    if dct is None or is_json_media(dct):
        value = decode_json(payload, _ANY, where)
        check_depth(payload, ctx.max_depth, where)
        return payload.decode("utf-8"), value, False
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return binascii.b2a_base64(payload, newline=False).decode("ascii"), payload, True
    return text, text, False


def _base64(where: str, value: str) -> bytes:
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error as exc:
        raise DecodeError("invalid_data", f"{where}.data_base64: not valid base64 ({exc})") from exc


# --- JSON checks shared with decode_records -------------------------------------------------------------

# W3C Trace Context 3.2: version-traceid-parentid-flags; versions after 00 may append fields
TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_MALFORMED_AT = re.compile(r"\(byte (\d+)\)")
_VALIDATION_AT = re.compile(r"^(.*) - at `(\$.*)`$")
LOCATE_LIMIT = 8 * 1024 * 1024  # bytes scanned to name the item of a syntax error


def parse_traceparent(value: str, where: str) -> tuple[str, str]:
    """(trace_id, span_id) as lowercase hex from a W3C traceparent (uppercase hex is forgiven)."""
    m = TRACEPARENT.match(value) or TRACEPARENT.match(value.strip().lower())
    if not m or m[1] == "ff" or (m[1] == "00" and m[5]) or m[2] == "0" * 32 or m[3] == "0" * 16:
        raise DecodeError("invalid_traceparent", f"{where}: {value!r} is not a W3C traceparent "
                          "(00-<32 hex trace id>-<16 hex span id, not all zero>-<2 hex flags>)")
    return m[2], m[3]


def json_depth(doc: bytes) -> int:
    """Deepest nesting of arrays/objects in a valid JSON document (a flat object is 1)."""
    depth = deepest = 0
    for b in _JSON_STRING.sub(b"", doc).translate(None, _NOT_BRACKET):
        depth += 1 if b in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def check_depth(doc: bytes, limit: int, where: str) -> None:
    if doc.count(b"{") + doc.count(b"[") <= limit:  # cheap bound: depth <= number of openers
        return
    if (depth := json_depth(doc)) > limit:
        raise DecodeError("too_deep", f"{where}: JSON nested {depth} levels deep; the limit is {limit}")


def decode_json(body: bytes, decoder: msgspec.json.Decoder, noun: str, root: str = "body") -> Any:
    """decoder.decode(body), with every failure turned into a DecodeError naming item and field.

    `noun` names an item (``event[3].source``), `root` the document as a whole."""
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        code, message = _describe(exc, body, noun, root)
        raise DecodeError(code, message) from exc


def _describe(exc: Exception, body: bytes, noun: str, root: str) -> tuple[str, str]:
    if isinstance(exc, RecursionError):
        return "too_deep", f"{noun}: JSON nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        try:
            body.decode("utf-8")
            offset = 0
        except UnicodeDecodeError as real:
            offset = real.start  # msgspec reports the position inside the string, not in the body
        return "invalid_utf8", f"{_locate(body, offset, noun)}: invalid UTF-8 at byte {offset}"
    if isinstance(exc, msgspec.ValidationError):
        problem, path = _split_validation(exc)
        return "invalid_attribute", f"{noun + path[1:] if path != '$' else root}: {problem}"
    m = _MALFORMED_AT.search(str(exc))
    offset = int(m[1]) if m else len(body)  # only "Input data was truncated" has no offset
    return "malformed_json", f"{_locate(body, offset, noun)}: {exc}"


def _split_validation(exc: msgspec.ValidationError) -> tuple[str, str]:
    m = _VALIDATION_AT.match(str(exc))
    problem, path = (m[1], m[2]) if m else (str(exc), "$")
    return problem.replace("`", "'"), path


def _locate(body: bytes, offset: int, noun: str) -> str:
    line = body.count(b"\n", 0, offset) + 1
    column = offset - (body.rfind(b"\n", 0, offset) + 1) + 1
    index = _array_item_at(body, offset) if body.lstrip()[:1] == b"[" else None
    position = f"line {line}, column {column}" if b"\n" in body else f"column {column}"
    return f"{noun if index is None else f'{noun}[{index}]'} ({position})"


def _array_item_at(body: bytes, offset: int) -> int | None:
    """Index of the top-level array element holding byte `offset` (error path only, bounded)."""
    if offset > LOCATE_LIMIT:
        return None
    depth = index = 0
    for token in _JSON_TOKEN.findall(body, 0, offset):
        if token in (b"[", b"{"):
            depth += 1
        elif token in (b"]", b"}"):
            depth -= 1
        elif token == b"," and depth == 1:
            index += 1
    return index
