"""The canonical model as Arrow schemas: the contract between decoders, spool, writer and store.

Each schema lists the columns the collector writes to one table (columns with a DEFAULT in
the migration may be left out). Decoders build `pa.Table`s with exactly these schemas; the
writer inserts them with insert_arrow. tests/syncwatch/test_model.py checks each schema
against the migrated table, so the two cannot drift apart.
"""

from __future__ import annotations

import pyarrow as pa

EVENTS = "events"
RECORDS = "records"
SPANS = "otel_traces"
LOGS = "otel_logs"
METRICS = "otel_metrics"
QUARANTINE = "quarantine"
INGEST_BATCHES = "ingest_batches"

STR = pa.string()
ATTRS = pa.map_(pa.string(), pa.string())
US = pa.timestamp("us", tz="UTC")
NS = pa.timestamp("ns")

EVENTS_SCHEMA = pa.schema([
    ("type", STR), ("source", STR), ("id", STR), ("system", STR), ("specversion", STR),
    ("time", US), ("subject", STR), ("datacontenttype", STR), ("dataschema", STR),
    ("trace_id", STR), ("span_id", STR), ("keys", ATTRS), ("data", STR), ("extensions", ATTRS),
    ("received_at", US),
])

RECORDS_SCHEMA = pa.schema([
    ("system", STR), ("entity", STR), ("key", STR), ("version", pa.uint64()), ("updated_at", US),
    ("deleted", pa.uint8()), ("fields", ATTRS), ("trace_id", STR), ("span_id", STR), ("received_at", US),
])

SPANS_SCHEMA = pa.schema([
    ("Timestamp", NS), ("TraceId", STR), ("SpanId", STR), ("ParentSpanId", STR), ("TraceState", STR),
    ("SpanName", STR), ("SpanKind", STR), ("ServiceName", STR), ("ResourceAttributes", ATTRS),
    ("ScopeName", STR), ("ScopeVersion", STR), ("SpanAttributes", ATTRS), ("Duration", pa.uint64()),
    ("StatusCode", STR), ("StatusMessage", STR),
    ("Events.Timestamp", pa.list_(NS)), ("Events.Name", pa.list_(STR)), ("Events.Attributes", pa.list_(ATTRS)),
    ("Links.TraceId", pa.list_(STR)), ("Links.SpanId", pa.list_(STR)), ("Links.TraceState", pa.list_(STR)),
    ("Links.Attributes", pa.list_(ATTRS)),
])

LOGS_SCHEMA = pa.schema([
    ("Timestamp", NS), ("TraceId", STR), ("SpanId", STR), ("TraceFlags", pa.uint8()),
    ("SeverityText", STR), ("SeverityNumber", pa.uint8()), ("ServiceName", STR), ("Body", STR),
    ("ResourceSchemaUrl", STR), ("ResourceAttributes", ATTRS), ("ScopeSchemaUrl", STR), ("ScopeName", STR),
    ("ScopeVersion", STR), ("ScopeAttributes", ATTRS), ("LogAttributes", ATTRS),
])

METRICS_SCHEMA = pa.schema([
    ("TimeUnix", NS), ("StartTimeUnix", NS), ("ServiceName", STR), ("MetricName", STR), ("MetricType", STR),
    ("MetricDescription", STR), ("MetricUnit", STR), ("ResourceAttributes", ATTRS), ("ScopeName", STR),
    ("ScopeVersion", STR), ("Attributes", ATTRS), ("Value", pa.float64()), ("Count", pa.uint64()),
    ("Sum", pa.float64()), ("Min", pa.float64()), ("Max", pa.float64()), ("BucketCounts", pa.list_(pa.uint64())),
    ("ExplicitBounds", pa.list_(pa.float64())), ("QuantileValues", pa.list_(pa.float64())),
    ("Quantiles", pa.list_(pa.float64())), ("IsMonotonic", pa.bool_()), ("AggregationTemporality", pa.int32()),
    ("Flags", pa.uint32()),
])

QUARANTINE_SCHEMA = pa.schema([
    ("received_at", US), ("kind", STR), ("system", STR), ("source", STR), ("item_id", STR), ("type", STR),
    ("reason", STR), ("payload", STR), ("batch_id", STR),
])

INGEST_BATCHES_SCHEMA = pa.schema([
    ("batch_id", STR), ("received_at", US), ("kind", STR), ("system", STR), ("key_id", STR),
    ("accepted", pa.uint32()), ("quarantined", pa.uint32()), ("rejected", pa.uint32()), ("bytes", pa.uint64()),
])

SCHEMAS: dict[str, pa.Schema] = {
    EVENTS: EVENTS_SCHEMA,
    RECORDS: RECORDS_SCHEMA,
    SPANS: SPANS_SCHEMA,
    LOGS: LOGS_SCHEMA,
    METRICS: METRICS_SCHEMA,
    QUARANTINE: QUARANTINE_SCHEMA,
    INGEST_BATCHES: INGEST_BATCHES_SCHEMA,
}


def table_from_columns(table: str, columns: dict[str, list]) -> pa.Table:
    """Build a table of `table`'s schema from Python column lists (all columns required)."""
    schema = SCHEMAS[table]
    return pa.Table.from_arrays([pa.array(columns[f.name], f.type) for f in schema], schema=schema)
