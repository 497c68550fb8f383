-- Records keep their trace and span ids as 24 raw bytes (16 + 8) instead of 48 hex characters.
-- Hex ids were 47 of the 100 bytes a record takes and barely compress; the reconcile's second pass
-- reads them in every granule holding a candidate key (every granule at 10M x 10M records), and
-- decompressing them took 1.14 CPU-s against 0.13 for raw bytes (docs/decisions/0005). No codec:
-- random bytes do not compress, and reading them is then a copy.
-- `trace_id` and `span_id` stay readable under their names as ALIAS columns (lowercase hex, '' for
-- none: the collector refuses all-zero W3C ids, so zeros mean none). Writers keep sending hex;
-- syncwatch.record_ids turns it into `ids` at insert.
--
-- Every statement may run again (a crash before the ledger row, or two collectors starting at
-- once): the UPDATE reads `trace_id`, which after the last steps is the ALIAS of `ids`, so a second
-- run rewrites each id with itself. Between the drop and the ALIAS a concurrent run fails instead.
ALTER TABLE records ADD COLUMN IF NOT EXISTS ids FixedString(24)
    DEFAULT if(length(trace_id) = 32 AND length(span_id) = 16, unhex(concat(trace_id, span_id)), '')
    CODEC(NONE) AFTER span_id;
ALTER TABLE records UPDATE ids = if(length(trace_id) = 32 AND length(span_id) = 16,
    unhex(concat(trace_id, span_id)), '') WHERE 1 SETTINGS mutations_sync = 2;
ALTER TABLE records DROP INDEX IF EXISTS idx_trace_id;
-- The default stops reading the hex columns so that they can go: zeros, which read as no ids.
-- (ClickHouse refuses to drop a column a default reads in the same ALTER, hence two. A writer of
-- the previous version inserting between them would store no ids; after them, its inserts fail and
-- stay in its spool until it is upgraded.)
ALTER TABLE records MODIFY COLUMN ids DEFAULT '';
ALTER TABLE records DROP COLUMN IF EXISTS trace_id, DROP COLUMN IF EXISTS span_id;
ALTER TABLE records ADD COLUMN IF NOT EXISTS trace_id String
    ALIAS if(substring(ids, 1, 16) = repeat('\0', 16), '', lower(hex(substring(ids, 1, 16)))) AFTER ids;
ALTER TABLE records ADD COLUMN IF NOT EXISTS span_id String
    ALIAS if(substring(ids, 17, 8) = repeat('\0', 8), '', lower(hex(substring(ids, 17, 8)))) AFTER trace_id;
-- Records by trace id (the timeline) probe the bytes: collector/api/timeline_sql.record_match.
ALTER TABLE records ADD INDEX IF NOT EXISTS idx_trace_bytes substring(ids, 1, 16) TYPE bloom_filter(0.001) GRANULARITY 1;
ALTER TABLE records MATERIALIZE INDEX idx_trace_bytes;
