-- Alerts, version 3: what each alert sink was last told about each finding.

-- One row version per (sink, finding) notification attempt. The notifier joins a run's findings
-- with the latest version here to deduplicate (same state and digest: not sent again until the
-- re-notify interval passes) and to know which firing alerts still owe a resolved one.
-- ReplacingMergeTree on `version` (nanoseconds of the writing clock): reads use FINAL. ORDER BY
-- (sink, rule, fingerprint) because the notifier reads one rule of one sink at a time.
-- `state` is what the sink was last told successfully: '' (never), 'firing' or 'resolved';
-- a failed delivery keeps it and records last_error, so the next run tries again.
CREATE TABLE IF NOT EXISTS alert_state (
    sink LowCardinality(String),
    rule LowCardinality(String),
    fingerprint String,
    state LowCardinality(String),
    digest String,
    fired_at Nullable(DateTime64(6, 'UTC')),
    last_sent_at Nullable(DateTime64(6, 'UTC')),
    last_attempt_at DateTime64(6, 'UTC'),
    attempts UInt32,
    last_status UInt16,
    last_error String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (sink, rule, fingerprint);
