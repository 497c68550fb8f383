-- Reconciler, version 2: the finding lifecycle's extra columns and the record of every rule run.

-- Which run wrote this version of a finding and what that version did to it (opened, updated,
-- reopened, unsilenced, resolved, or a lifecycle action such as acknowledged): the run's counts
-- and the alerts read the transitions of one run instead of diffing whole states.
ALTER TABLE findings ADD COLUMN IF NOT EXISTS run_id String;
ALTER TABLE findings ADD COLUMN IF NOT EXISTS transition LowCardinality(String);
-- 'auto' when the reconciler no longer sees the drift, 'manual' when a person resolved it.
ALTER TABLE findings ADD COLUMN IF NOT EXISTS resolution LowCardinality(String);
ALTER TABLE findings ADD COLUMN IF NOT EXISTS resolution_reason String;
ALTER TABLE findings ADD COLUMN IF NOT EXISTS reopened_count UInt32;
ALTER TABLE findings ADD COLUMN IF NOT EXISTS acknowledged_at Nullable(DateTime64(6, 'UTC'));

-- One row per rule run, never updated: rule health pages read the recent runs of one rule,
-- hence ORDER BY (rule, started_at). Monthly partitions make retention a partition drop; no TTL,
-- because the last successful run is the watermark of incremental runs and must not expire.
CREATE TABLE IF NOT EXISTS rule_runs (
    run_id String,
    rule LowCardinality(String),
    rule_version String,
    started_at DateTime64(6, 'UTC'),
    duration_ms Float64,
    full UInt8,
    rows_scanned Nullable(UInt64),
    opened UInt32,
    updated UInt32,
    resolved UInt32,
    reopened UInt32,
    error String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (rule, started_at);
