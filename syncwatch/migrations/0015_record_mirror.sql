-- Record mirrors (decision 13): for each reconcile rule definition, side and normalized key, every
-- record of that side whose key normalizes to it, as (key, version, live, ts, ids, the values of
-- the fields the rule reads). An incremental run looks up its ~10k changed keys here, a point
-- lookup each, where finding them in `records` reads every granule of both sides.
-- mirror_key = the definition (16 hex digits), 'l' or 'r', the normalized key; the definition's key '#'
-- holds its watermark and build time (reconciler/record_mirror.py).
-- EmbeddedRocksDB: a key-value store (a MergeTree finds a key through granules of 8,192 rows).
-- Entries expire 14 days after they were written (RocksDB TTL, in seconds): each definition is
-- rebuilt weekly, so live entries are always rewritten in time, and an edited rule's old
-- definition goes away by itself. On a cluster each node keeps its own (nothing to replicate:
-- a node without a mirror builds one from `records`).
CREATE TABLE IF NOT EXISTS record_mirror (
    mirror_key String,
    entries Array(Tuple(key String, version UInt64, live UInt8, ts DateTime64(6, 'UTC'), ids FixedString(24),
                  f Array(String)))
) ENGINE = EmbeddedRocksDB(1209600) PRIMARY KEY mirror_key;
