"""otel_traces rows from an ExportTraceServiceRequest (either encoding, see decode_otlp_rows).

Conventions of the OpenTelemetry Collector contrib ClickHouse exporter: SpanKind and StatusCode
are pdata's names ('Server', 'Error'), ids are lowercase hex, Timestamp is the span's start and
Duration is end - start in nanoseconds (0 when the end precedes the start).
A span is refused (and quarantined) when its trace id is not 16 bytes or all zero, its span id
not 8 bytes or all zero, its parent span id or a link's ids malformed, or a time out of range.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from collector.decode_otlp_rows import (
    MAX_NS,
    TOO_LATE,
    Dialect,
    MapColumn,
    Rejects,
    Resource,
    ScopeColumns,
    camel,
    list_array,
)
from collector.decoded import DecodeContext, Decoded
from syncwatch.model import NS, SPANS, SPANS_SCHEMA, STR

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
# OTLP/JSON sends enums as integers; the names of the protobuf JSON mapping are accepted as well.
SPAN_KIND: dict[int | str, str] = {**dict(enumerate(SPAN_KINDS)), **{f"SPAN_KIND_{k.upper()}": k for k in SPAN_KINDS}}
STATUS_CODE: dict[int | str, str] = {
    **dict(enumerate(STATUS_CODES)),
    **{f"STATUS_CODE_{c.upper()}": c for c in STATUS_CODES},
}
IDS = (("trace_id", 16, True), ("span_id", 8, True), ("parent_span_id", 8, False))


def span_rows(request: Any, d: Dialect, ctx: DecodeContext) -> Decoded:
    """otel_traces rows of an ExportTraceServiceRequest; invalid spans go to quarantine."""
    cols, rejects = SpanColumns(d), Rejects("span", d.render)
    for i, rs in enumerate(request.resource_spans):
        res = Resource.read(d, rs.resource)
        for j, ss in enumerate(rs.scope_spans):
            scope = ss.scope
            values = {"ServiceName": res.service, "ScopeName": scope.name, "ScopeVersion": scope.version}
            cols.scopes.open(values, {"ResourceAttributes": (res.keys, res.values)})
            where = f"resourceSpans[{i}].scopeSpans[{j}]"
            cols.scopes.close(cols.add(ss.spans, where, rejects, res.service))
    decoded = Decoded(accepted=len(cols.ts))
    decoded.add(SPANS, cols.table())
    return rejects.apply(decoded, ctx)


class SpanColumns:
    """Every otel_traces column of the accepted spans of one request."""

    def __init__(self, d: Dialect) -> None:
        self.d = d
        self.scopes = ScopeColumns(("ServiceName", "ScopeName", "ScopeVersion"), ("ResourceAttributes",))
        self.ts: list[int] = []
        self.ids: tuple[list[str], list[str], list[str]] = ([], [], [])  # trace, span, parent span
        self.text: tuple[list[str], list[str], list[str], list[str], list[str]] = ([], [], [], [], [])
        self.durations: list[int] = []
        self.attrs = MapColumn()
        self.events = _Events()
        self.links = _Links()

    def add(self, spans: Any, where: str, rejects: Rejects, service: str) -> int:
        """Append the valid spans of one scope and refuse the others; returns how many were kept.

        The hot loop of the collector: everything it touches per span is bound to a local name.
        """
        d = self.d
        trace_id, span_id, attrs = d.trace_id, d.span_id, d.attrs
        ts, durations, (tids, sids, pids) = self.ts, self.durations, self.ids
        states, names, kinds, codes, messages = self.text
        keys, values, offsets = self.attrs.keys, self.attrs.values, self.attrs.offsets
        kind_of, code_of = SPAN_KIND.get, STATUS_CODE.get
        ev_offsets, ln_offsets = self.events.offsets, self.links.offsets
        kept = len(ts)
        for k, span in enumerate(spans):
            tid, sid, pid = trace_id(span.trace_id), span_id(span.span_id), span_id(span.parent_span_id)
            start, end = span.start_time_unix_nano, span.end_time_unix_nano
            events, links = span.events, span.links
            if not tid or not sid or pid is None or start > MAX_NS or end > MAX_NS or events or links:
                problem = self.problem(span, events, links)
                if problem:
                    ids = (service, d.id_text(span.span_id), span.name)
                    rejects.add(f"{where}.spans[{k}]", span, problem, ids)
                    continue
            ts.append(start)
            durations.append(end - start if end > start else 0)
            tids.append(tid)
            sids.append(sid)
            pids.append(pid)
            states.append(span.trace_state)
            names.append(span.name)
            kinds.append(kind_of(span.kind, "Unspecified"))
            status = span.status
            codes.append(code_of(status.code, "Unset"))
            messages.append(status.message)
            attrs(span.attributes, keys, values)
            offsets.append(len(keys))
            if events or links:
                self.events.add(events, d)
                self.links.add(links, d)
            else:  # most spans carry neither
                ev_offsets.append(ev_offsets[-1])
                ln_offsets.append(ln_offsets[-1])
        return len(ts) - kept

    def problem(self, span: Any, events: Any, links: Any) -> str | None:
        """Why `span` cannot be stored, or None when it can."""
        d = self.d
        for field, size, required in IDS:
            raw = getattr(span, field)
            hexed = d.trace_id(raw) if size == 16 else d.span_id(raw)
            if hexed is None or (required and not hexed):
                return f"{camel(field)} {d.id_problem(raw, size)}"
        if span.start_time_unix_nano > MAX_NS or span.end_time_unix_nano > MAX_NS:
            return f"startTimeUnixNano/endTimeUnixNano {TOO_LATE}"
        return _Events.problem(events) or _Links.problem(links, d)

    def table(self) -> pa.Table:
        tids, sids, pids = self.ids
        states, names, kinds, codes, messages = self.text
        columns = {
            "Timestamp": pa.array(self.ts, NS),
            "TraceId": pa.array(tids, STR),
            "SpanId": pa.array(sids, STR),
            "ParentSpanId": pa.array(pids, STR),
            "TraceState": pa.array(states, STR),
            "SpanName": pa.array(names, STR),
            "SpanKind": pa.array(kinds, STR),
            "SpanAttributes": self.attrs.array(),
            "Duration": pa.array(self.durations, pa.uint64()),
            "StatusCode": pa.array(codes, STR),
            "StatusMessage": pa.array(messages, STR),
            **self.scopes.arrays(),
            **self.events.arrays(),
            **self.links.arrays(),
        }
        return pa.Table.from_arrays([columns[f.name] for f in SPANS_SCHEMA], schema=SPANS_SCHEMA)


class _Events:
    def __init__(self) -> None:
        self.offsets = [0]
        self.times: list[int] = []
        self.names: list[str] = []
        self.attrs = MapColumn()

    @staticmethod
    def problem(events: Any) -> str | None:
        for i, event in enumerate(events):
            if event.time_unix_nano > MAX_NS:
                return f"events[{i}].timeUnixNano {TOO_LATE}"
        return None

    def add(self, events: Any, d: Dialect) -> None:
        for event in events:
            self.times.append(event.time_unix_nano)
            self.names.append(event.name)
            self.attrs.add_attrs(d, event.attributes)
        self.offsets.append(len(self.names))

    def arrays(self) -> dict[str, pa.Array]:
        return {
            "Events.Timestamp": list_array(self.offsets, pa.array(self.times, NS)),
            "Events.Name": list_array(self.offsets, pa.array(self.names, STR)),
            "Events.Attributes": list_array(self.offsets, self.attrs.array()),
        }


class _Links:
    def __init__(self) -> None:
        self.offsets = [0]
        self.trace_ids: list[str] = []
        self.span_ids: list[str] = []
        self.states: list[str] = []
        self.attrs = MapColumn()

    @staticmethod
    def problem(links: Any, d: Dialect) -> str | None:
        for i, link in enumerate(links):
            if not d.trace_id(link.trace_id):
                return f"links[{i}].traceId {d.id_problem(link.trace_id, 16)}"
            if not d.span_id(link.span_id):
                return f"links[{i}].spanId {d.id_problem(link.span_id, 8)}"
        return None

    def add(self, links: Any, d: Dialect) -> None:
        for link in links:
            self.trace_ids.append(d.trace_id(link.trace_id) or "")
            self.span_ids.append(d.span_id(link.span_id) or "")
            self.states.append(link.trace_state)
            self.attrs.add_attrs(d, link.attributes)
        self.offsets.append(len(self.trace_ids))

    def arrays(self) -> dict[str, pa.Array]:
        return {
            "Links.TraceId": list_array(self.offsets, pa.array(self.trace_ids, STR)),
            "Links.SpanId": list_array(self.offsets, pa.array(self.span_ids, STR)),
            "Links.TraceState": list_array(self.offsets, pa.array(self.states, STR)),
            "Links.Attributes": list_array(self.offsets, self.attrs.array()),
        }
