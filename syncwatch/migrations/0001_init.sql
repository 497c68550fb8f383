-- Syncwatch schema, version 1. Every statement is idempotent (IF NOT EXISTS) so that several
-- collectors starting at once against one server cannot trip over each other.
-- non_replicated_deduplication_window lets the spool replay a batch after a crash with the same
-- insert_deduplication_token and have ClickHouse drop the repeat (Replicated engines do this by default).

-- Business events (CloudEvents). ReplacingMergeTree on the CloudEvents identity: a redelivered
-- event collapses to one row at merge time and every read uses FINAL, so it counts once.
-- type leads the key because workflows and KPIs select by event type; one (source, id) never changes type.
CREATE TABLE IF NOT EXISTS events (
    type LowCardinality(String),
    source String,
    id String,
    system LowCardinality(String),
    specversion LowCardinality(String),
    time DateTime64(6, 'UTC'),
    subject String,
    datacontenttype LowCardinality(String),
    dataschema String,
    trace_id String,
    span_id String,
    keys Map(LowCardinality(String), String),
    data String CODEC(ZSTD(3)),
    extensions Map(LowCardinality(String), String),
    received_at DateTime64(6, 'UTC'),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_key_values mapValues(keys) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_time time TYPE minmax GRANULARITY 1,
    INDEX idx_received received_at TYPE minmax GRANULARITY 1
) ENGINE = ReplacingMergeTree
ORDER BY (type, source, id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Record snapshots: the latest state of one entity in one system. ReplacingMergeTree(version)
-- keeps the highest version per (system, entity, key), which is the reconciler's join key.
CREATE TABLE IF NOT EXISTS records (
    system LowCardinality(String),
    entity LowCardinality(String),
    key String,
    version UInt64,
    updated_at DateTime64(6, 'UTC'),
    deleted UInt8,
    fields Map(LowCardinality(String), String),
    trace_id String,
    span_id String,
    received_at DateTime64(6, 'UTC'),
    INDEX idx_received received_at TYPE minmax GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = ReplacingMergeTree(version)
ORDER BY (system, entity, key)
SETTINGS non_replicated_deduplication_window = 1000;

-- Spans, in the column layout of the OpenTelemetry Collector contrib ClickHouse exporter so that
-- an existing collector or Grafana datasource works on the same table. Daily partitions make
-- retention a cheap partition drop.
CREATE TABLE IF NOT EXISTS otel_traces (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

-- Logs, in the exporter's layout (see otel_traces).
CREATE TABLE IF NOT EXISTS otel_logs (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

-- Metrics of every OTLP type in one table (the exporter splits them in five): integration
-- health needs counts and rates, not a full metrics backend. MetricType says which columns apply.
CREATE TABLE IF NOT EXISTS otel_metrics (
    TimeUnix DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    StartTimeUnix DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    ServiceName LowCardinality(String),
    MetricName LowCardinality(String),
    MetricType LowCardinality(String),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit LowCardinality(String),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Value Float64,
    Count UInt64,
    Sum Float64,
    Min Float64,
    Max Float64,
    BucketCounts Array(UInt64),
    ExplicitBounds Array(Float64),
    QuantileValues Array(Float64),
    Quantiles Array(Float64),
    IsMonotonic Bool,
    AggregationTemporality Int32,
    Flags UInt32
) ENGINE = MergeTree
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, toDateTime(TimeUnix))
SETTINGS non_replicated_deduplication_window = 1000;

-- Dead letters: anything refused after it was readable (schema violations, invalid spans),
-- kept with the reason so nothing is lost silently. Ordered for "what broke in system X lately".
CREATE TABLE IF NOT EXISTS quarantine (
    received_at DateTime64(6, 'UTC'),
    kind LowCardinality(String),
    system LowCardinality(String),
    source String,
    item_id String,
    type LowCardinality(String),
    reason String,
    payload String CODEC(ZSTD(3)),
    batch_id String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (system, kind, received_at)
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per acknowledged ingest request: the raw material of integration health
-- (ingest rate, quarantine share) per source system.
CREATE TABLE IF NOT EXISTS ingest_batches (
    batch_id String,
    received_at DateTime64(6, 'UTC'),
    kind LowCardinality(String),
    system LowCardinality(String),
    key_id String,
    accepted UInt32,
    quarantined UInt32,
    rejected UInt32,
    bytes UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (system, kind, received_at)
SETTINGS non_replicated_deduplication_window = 1000;

-- API keys, hashed. ReplacingMergeTree(updated_at): a revocation is a newer row for the same key_id.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id String,
    name String,
    system LowCardinality(String),
    scopes Array(LowCardinality(String)),
    source_prefixes Array(String),
    secret_sha256 String,
    created_at DateTime64(3, 'UTC'),
    expires_at Nullable(DateTime64(3, 'UTC')),
    revoked_at Nullable(DateTime64(3, 'UTC')),
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key_id;

-- Findings: one row per fingerprint (rule + keys + kind + field), newest state wins; the
-- reconciler and the triage queue both look findings up by rule first.
CREATE TABLE IF NOT EXISTS findings (
    fingerprint String,
    rule LowCardinality(String),
    rule_version String,
    kind LowCardinality(String),
    field String,
    keys Map(LowCardinality(String), String),
    systems Array(LowCardinality(String)),
    left_value String,
    right_value String,
    severity LowCardinality(String),
    impact_amount Decimal(18, 2),
    impact_currency LowCardinality(String),
    status LowCardinality(String),
    assignee String,
    silenced_until Nullable(DateTime64(3, 'UTC')),
    first_seen DateTime64(6, 'UTC'),
    last_seen DateTime64(6, 'UTC'),
    resolved_at Nullable(DateTime64(6, 'UTC')),
    left_trace_id String,
    left_span_id String,
    right_trace_id String,
    right_span_id String,
    detail String,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (rule, fingerprint);

-- The audit log: append-only, hash-chained by seq; MergeTree ordered by seq so verification
-- reads it in chain order.
CREATE TABLE IF NOT EXISTS actions (
    seq UInt64,
    at DateTime64(6, 'UTC'),
    actor String,
    role LowCardinality(String),
    action LowCardinality(String),
    finding_fingerprint String,
    parameters String,
    outcome String,
    prev_hash String,
    hash String
) ENGINE = MergeTree
ORDER BY seq;
