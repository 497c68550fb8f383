-- Replays, version 6: every re-delivery of a finding's source events to a target system.
-- (0005 is taken by the query API's tables.)

-- One row version per state of a replay: dry_run, pending_approval (four-eyes), delivering,
-- delivered, failed, rejected. ReplacingMergeTree(updated_at), read with FINAL. The plan (exactly
-- the requests, secrets redacted) and the per-event results are JSON text. ORDER BY
-- (fingerprint, replay_id): a finding's replays are read together (the repeat check, its history);
-- a lookup by replay_id alone scans a table that holds one row per human decision, which stays small.
CREATE TABLE IF NOT EXISTS replays (
    replay_id String,
    fingerprint String,
    rule LowCardinality(String),
    target LowCardinality(String),
    url String,
    source_systems Array(LowCardinality(String)),
    state LowCardinality(String),
    dry_run UInt8,
    force UInt8,
    requested_by String,
    requested_by_id String,
    requested_role LowCardinality(String),
    requested_at DateTime64(6, 'UTC'),
    approved_by String,
    approved_by_id String,
    approved_at Nullable(DateTime64(6, 'UTC')),
    impact_amount Decimal(18, 2),
    impact_currency LowCardinality(String),
    plan String CODEC(ZSTD(3)),
    results String,
    message String,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (fingerprint, replay_id);
