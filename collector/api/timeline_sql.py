"""The end-to-end timeline of a business object as one ClickHouse query (pure functions, bound values).

A `Selector` names the object by business keys (`project_id` = `P-17`, or a value under any key
name) and/or trace ids. The query is a UNION ALL of five branches with the same columns
(`COLUMNS`), ordered by time:

    event    events whose keys hold the value (bloom index on mapValues(keys)); many keys (a JSON
             array such as timesheet_ids) are unnested for the event types that declare them, and
             a many key named like the asked one plus `s` counts too (timesheet_id finds an
             invoice's timesheet_ids); or whose trace id is asked for
    record   latest record versions whose key (or field of that name) is the value
    span     spans of the traces that carried those events, of the asked trace ids, or whose
             attributes carry the key (project_id is looked up as project_id, project.id and
             project; bloom index on mapValues(SpanAttributes))
    finding  findings whose keys hold the value, or that link one of the asked trace ids
    action   the audit entries about those findings

Each branch is capped at `limit` rows (earliest first), so one hot key cannot pull a whole table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.sql import Params

COLUMNS = ("kind", "system", "at", "start", "end", "title", "status", "ids", "detail")
KINDS = ("event", "record", "span", "finding", "action")
_T = "DateTime64(6, 'UTC')"
_NO_TIME = f"CAST(NULL AS Nullable({_T}))"
_DATA_PREVIEW = 4096  # bytes of an event's data shown in a timeline item (the evidence pack has it all)


@dataclass(frozen=True)
class Selector:
    """What the timeline is about. A pair's name '' matches the value under any key name."""

    pairs: tuple[tuple[str, str], ...] = ()
    trace_ids: tuple[str, ...] = ()
    # key name -> event types in which that key is a JSON array of values (collector registry)
    many_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def attribute_names(key: str) -> list[str]:
    """Span attribute names that may carry a business key: project_id, project.id, project."""
    names = [key]
    if key.endswith("_id"):
        names += [key.removesuffix("_id") + ".id", key.removesuffix("_id")]
    return names


def _any(parts: Sequence[str]) -> str:
    return "(" + " OR ".join(parts) + ")" if parts else "0"


def event_match(p: Params, s: Selector) -> str:
    parts = []
    for name, value in s.pairs:
        v = p(value)
        # has(mapValues(...)) lets the bloom filter skip granules before the exact check
        parts.append(f"(has(mapValues(keys), {v}) AND keys[{p(name)}] = {v})" if name else
                     f"has(mapValues(keys), {v})")
        many = {n: t for n, t in s.many_keys.items() if not name or n in (name, name + "s")}
        for key, types in sorted(many.items()):
            parts.append(f"(type IN {p(list(types), 'Array(String)')} AND "
                         f"has(JSONExtract(keys[{p(key)}], 'Array(String)'), {v}))")
    if s.trace_ids:
        parts.append(f"trace_id IN {p(list(s.trace_ids), 'Array(String)')}")
    return _any(parts)


def record_match(p: Params, s: Selector) -> str:
    parts = []
    for name, value in s.pairs:
        v = p(value)
        parts.append(f"(key = {v} OR fields[{p(name)}] = {v})" if name else f"key = {v}")
    if s.trace_ids:
        # records keep trace ids as bytes (migration 0011): compared as bytes, the bloom filter can skip
        traces = p(list(s.trace_ids), "Array(String)")
        parts.append(f"substring(ids, 1, 16) IN arrayMap(t -> unhex(t), {traces})")
    return _any(parts)


def span_match(p: Params, s: Selector, event_traces: str) -> str:
    parts = [f"TraceId IN {event_traces}"]
    for name, value in s.pairs:
        v = p(value)
        if name:
            names = p(attribute_names(name), "Array(String)")
            parts.append(f"(has(mapValues(SpanAttributes), {v}) AND "
                         f"arrayExists(a -> SpanAttributes[a] = {v}, {names}))")
        else:
            parts.append(f"has(mapValues(SpanAttributes), {v})")
    if s.trace_ids:
        parts.append(f"TraceId IN {p(list(s.trace_ids), 'Array(String)')}")
    return _any(parts)


def finding_match(p: Params, s: Selector) -> str:
    parts = []
    for name, value in s.pairs:
        v = p(value)
        parts.append(f"keys[{p(name)}] = {v}" if name else f"has(mapValues(keys), {v})")
    if s.trace_ids:
        traces = p(list(s.trace_ids), "Array(String)")
        parts.append(f"(left_trace_id IN {traces} OR right_trace_id IN {traces})")
    return _any(parts)


def matched_events_sql(p: Params, s: Selector) -> str:
    return f"SELECT * FROM events FINAL WHERE {event_match(p, s)}"


def matched_findings_sql(p: Params, s: Selector) -> str:
    return f"SELECT * FROM findings FINAL WHERE {finding_match(p, s)}"


def _branches(p: Params, s: Selector, limit: str) -> list[str]:
    preview = f"substring(data, 1, {_DATA_PREVIEW})"
    return [
        f"""SELECT 'event' AS kind, toString(system) AS system, time AS at, {_NO_TIME} AS start, {_NO_TIME} AS end,
           toString(type) AS title, '' AS status,
           map('event_id', id, 'source', source, 'subject', subject, 'trace_id', trace_id, 'span_id', span_id) AS ids,
           mapUpdate(CAST(keys, 'Map(String, String)'), map('data', {preview})) AS detail
    FROM events_matched ORDER BY at LIMIT {limit}""",
        f"""SELECT 'record', toString(system), updated_at, {_NO_TIME}, {_NO_TIME},
           concat(system, ' ', entity, ' ', key, ' v', toString(version)), if(deleted = 1, 'deleted', ''),
           map('key', key, 'entity', toString(entity), 'version', toString(version), 'trace_id', trace_id,
               'span_id', span_id),
           CAST(fields, 'Map(String, String)')
    FROM records FINAL WHERE {record_match(p, s)} ORDER BY updated_at LIMIT {limit}""",
        f"""SELECT 'span', toString(ServiceName), toDateTime64(Timestamp, 6, 'UTC') AS ts, ts,
           addMicroseconds(ts, intDiv(Duration, 1000)), concat(ServiceName, ': ', SpanName), toString(StatusCode),
           map('trace_id', TraceId, 'span_id', SpanId, 'parent_span_id', ParentSpanId),
           mapUpdate(CAST(SpanAttributes, 'Map(String, String)'), map('status_message', StatusMessage))
    FROM otel_traces WHERE {span_match(p, s, "(SELECT trace_id FROM events_matched WHERE trace_id != '')")}
    ORDER BY ts LIMIT {limit}""",
        f"""SELECT 'finding', arrayStringConcat(systems, ','), first_seen, first_seen,
           ifNull(resolved_at, last_seen), concat(rule, ': ', kind, if(field = '', '', concat(' ', field))),
           toString(status),
           map('fingerprint', fingerprint, 'rule', toString(rule), 'left_trace_id', left_trace_id,
               'right_trace_id', right_trace_id),
           mapUpdate(CAST(keys, 'Map(String, String)'),
                     map('left_value', left_value, 'right_value', right_value, 'severity', toString(severity),
                         'impact', concat(toString(impact_amount), ' ', impact_currency), 'detail', detail))
    FROM findings_matched ORDER BY first_seen LIMIT {limit}""",
        f"""SELECT 'action', 'syncwatch', at, {_NO_TIME}, {_NO_TIME}, concat(action, ' by ', actor), outcome,
           map('seq', toString(seq), 'fingerprint', finding_fingerprint, 'hash', hash),
           map('actor', actor, 'role', toString(role), 'parameters', parameters)
    FROM actions WHERE finding_fingerprint IN (SELECT fingerprint FROM findings_matched)
    ORDER BY seq LIMIT {limit}""",
    ]


def timeline_sql(s: Selector, limit: int) -> tuple[str, dict[str, object]]:
    """The query and its parameters; rows have COLUMNS, in time order."""
    p = Params()
    cap = p.named("limit", limit, "UInt32")
    ctes = (f"WITH events_matched AS ({matched_events_sql(p, s)}),\n"
            f"     findings_matched AS ({matched_findings_sql(p, s)})")
    union = "\n    UNION ALL\n    ".join(f"SELECT * FROM ({b})" for b in _branches(p, s, cap))
    sql = f"{ctes}\nSELECT * FROM (\n    {union}\n) ORDER BY at, kind"
    return sql, p.values
