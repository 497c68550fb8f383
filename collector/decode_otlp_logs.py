"""otel_logs rows from an ExportLogsServiceRequest (either encoding, see decode_otlp_rows).

As in the ClickHouse exporter, Timestamp is the record's time, or its observed time when the
time is unset; TraceFlags are the low 8 bits of `flags`; Body is the body rendered as text.
Trace and span ids may be empty (a log outside any span); a record is refused (and quarantined)
when an id is malformed, its severity number is not 0..255 or its time is out of range.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from collector.decode_otlp_rows import MAX_NS, TOO_LATE, Dialect, MapColumn, Rejects, Resource, ScopeColumns
from collector.decoded import DecodeContext, Decoded
from syncwatch.model import LOGS, LOGS_SCHEMA, NS, STR

SEVERITY_BY_NAME: dict[str, int] = dict(SeverityNumber.items())


def log_rows(request: Any, d: Dialect, ctx: DecodeContext) -> Decoded:
    """otel_logs rows of an ExportLogsServiceRequest; invalid records go to quarantine."""
    cols, rejects = LogColumns(d), Rejects("log", d.render)
    for i, rl in enumerate(request.resource_logs):
        res = Resource.read(d, rl.resource)
        for j, sl in enumerate(rl.scope_logs):
            cols.open_scope(res, rl.schema_url, sl)
            cols.scopes.close(cols.add(sl.log_records, f"resourceLogs[{i}].scopeLogs[{j}]", rejects, res.service))
    decoded = Decoded(accepted=len(cols.ts))
    decoded.add(LOGS, cols.table())
    return rejects.apply(decoded, ctx)


class LogColumns:
    """Every otel_logs column of the accepted records of one request."""

    def __init__(self, d: Dialect) -> None:
        self.d = d
        self.scopes = ScopeColumns(
            ("ServiceName", "ResourceSchemaUrl", "ScopeSchemaUrl", "ScopeName", "ScopeVersion"),
            ("ResourceAttributes", "ScopeAttributes"),
        )
        self.ts: list[int] = []
        self.ids: tuple[list[str], list[str]] = ([], [])
        self.flags: list[int] = []
        self.severity: tuple[list[str], list[int]] = ([], [])
        self.bodies: list[str] = []
        self.attrs = MapColumn()

    def open_scope(self, res: Resource, resource_schema_url: str, sl: Any) -> None:
        scope = sl.scope
        values = {
            "ServiceName": res.service,
            "ResourceSchemaUrl": resource_schema_url,
            "ScopeSchemaUrl": sl.schema_url,
            "ScopeName": scope.name,
            "ScopeVersion": scope.version,
        }
        scope_attrs: tuple[list[str], list[str]] = ([], [])
        self.d.attrs(scope.attributes, *scope_attrs)
        self.scopes.open(values, {"ResourceAttributes": (res.keys, res.values), "ScopeAttributes": scope_attrs})

    def add(self, records: Any, where: str, rejects: Rejects, service: str) -> int:
        """Append the valid records of one scope and refuse the others; returns how many were kept."""
        d = self.d
        trace_id, span_id, attrs, value = d.trace_id, d.span_id, d.attrs, d.value
        ts, (tids, sids), flags, (texts, numbers) = self.ts, self.ids, self.flags, self.severity
        keys, values, offsets = self.attrs.keys, self.attrs.values, self.attrs.offsets
        kept = len(ts)
        for k, record in enumerate(records):
            tid, sid = trace_id(record.trace_id), span_id(record.span_id)
            time = record.time_unix_nano or record.observed_time_unix_nano
            severity = record.severity_number
            if severity.__class__ is str:
                severity = SEVERITY_BY_NAME.get(severity, -1)
            if tid is None or sid is None or time > MAX_NS or not 0 <= severity <= 255:
                ids = (service, d.id_text(record.span_id), record.severity_text)
                rejects.add(f"{where}.logRecords[{k}]", record, self.problem(record, severity), ids)
                continue
            ts.append(time)
            tids.append(tid)
            sids.append(sid)
            flags.append(record.flags & 0xFF)
            texts.append(record.severity_text)
            numbers.append(severity)
            body = record.body
            self.bodies.append(body.string_value or value(body))
            attrs(record.attributes, keys, values)
            offsets.append(len(keys))
        return len(ts) - kept

    def problem(self, record: Any, severity: int) -> str:
        d = self.d
        if d.trace_id(record.trace_id) is None:
            return f"traceId {d.id_problem(record.trace_id, 16)}"
        if d.span_id(record.span_id) is None:
            return f"spanId {d.id_problem(record.span_id, 8)}"
        if not 0 <= severity <= 255:
            return f"severityNumber {record.severity_number!r} is not a SeverityNumber (0..24)"
        return f"timeUnixNano/observedTimeUnixNano {TOO_LATE}"

    def table(self) -> pa.Table:
        tids, sids = self.ids
        texts, numbers = self.severity
        columns = {
            "Timestamp": pa.array(self.ts, NS),
            "TraceId": pa.array(tids, STR),
            "SpanId": pa.array(sids, STR),
            "TraceFlags": pa.array(self.flags, pa.uint8()),
            "SeverityText": pa.array(texts, STR),
            "SeverityNumber": pa.array(numbers, pa.uint8()),
            "Body": pa.array(self.bodies, STR),
            "LogAttributes": self.attrs.array(),
            **self.scopes.arrays(),
        }
        return pa.Table.from_arrays([columns[f.name] for f in LOGS_SCHEMA], schema=LOGS_SCHEMA)
