-- Reconciler replicas, version 7: a run lease per rule, so that two reconciler processes never run
-- one rule at once even when their shares overlap (docs/decisions/0010-cluster-schema.md).

-- One row version per state of a claim (claimed, renewed, released); ReplacingMergeTree(version),
-- read with FINAL. claimed_at comes from the server's clock (DEFAULT now64), never the client's:
-- the earliest live claim of a rule wins. ORDER BY (rule, claim_id): a rule's claims are read
-- together. The TTL drops claims a day after they expired; they no longer matter.
CREATE TABLE IF NOT EXISTS rule_leases (
    rule LowCardinality(String),
    claim_id String,
    holder String,
    claimed_at DateTime64(6, 'UTC') DEFAULT now64(6),
    expires_at DateTime64(6, 'UTC'),
    released UInt8,
    version UInt32
) ENGINE = ReplacingMergeTree(version)
ORDER BY (rule, claim_id)
TTL toDateTime(expires_at) + INTERVAL 1 DAY;
