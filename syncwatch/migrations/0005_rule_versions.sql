-- Query and action API, version 5: the text of every rule version that ran, so that a finding's
-- rule_version resolves to the rule exactly as it was when the finding was made (evidence packs).

-- One row per (rule, version), written the first time that version runs. `canonical` is the JSON
-- whose SHA-256 (first 12 hex digits) is the version (reconciler.loader.rule_version), so anyone can
-- check that the text belongs to the version; `source` is the rule's YAML as written in its file,
-- comments included. ReplacingMergeTree collapses the rows of two processes that recorded the same
-- version at once (same content by construction); ORDER BY (rule, version): looked up by exactly that.
CREATE TABLE IF NOT EXISTS rule_versions (
    rule LowCardinality(String),
    version String,
    canonical String,
    source String CODEC(ZSTD(3)),
    path String,
    line UInt32,
    first_seen DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (rule, version);
