"""A reconcile rule's record mirror: the values it compares, where a key finds them without a scan.

An incremental run compares the keys stored since its last run (~10k of 10M per side in the
benchmark). Finding those keys' records in `records` reads every granule of both sides, because
random keys spread over all of them: 0.3-0.4 s at 10M x 10M by any route (decision 5). The mirror
(`record_mirror`, an EmbeddedRocksDB table, migration 0015) keeps for each rule definition, side and
normalized key every record of that side whose key normalizes to it, as an entry (key, version,
live, ts, ids, values of the fields the rule reads): the run looks each changed key up (decision 13).

- A definition's first incremental run builds its mirror from every record (FINAL); so does the
  first run a week after the last build, which also rewrites every entry long before the 14-day
  TTL of the table expires it, and a run with more than FOLD_LIMIT records to fold in.
- Every incremental run first folds in the records stored since the last update (`stored_at`, less
  INGEST_LAG for inserts still committing while it read): per raw key the highest version wins, and
  of equal versions the later stored, as ReplacingMergeTree keeps them.
- `live` is what the records path filters on: not deleted and inside the side's filters. A deleted
  record keeps its entry (not live), so an older version cannot come back.
- Only rules keyed by `key` with two distinct sources use it (`applies`): a key taken from a field can
  move a record to another normalized key between versions, which entries stored per key cannot see.
  And only rules whose sides hold MIN_RECORDS or more (`worth_it`): below, reading `records` is as
  fast.

The definition's key '#' holds (watermark, build time); it is written after the entries, so a
build or fold that fails half-way leaves the previous watermark and the next run folds again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.compile_candidates import pairs_cte, referenced_fields, same_source
from reconciler.model import ReconcileRule
from reconciler.runner import INGEST_LAG
from reconciler.sql import DATETIME, Params, field_of, key_expr, side_filters
from syncwatch.store import Store

TABLE = "record_mirror"
# Bump when the entries' contents change meaning, so that every rule builds afresh.
FORMAT = 1
PREFIX_LENGTH = 16  # hex digits of the definition
META = "#"  # after the prefix; the sides are 'l' and 'r'
REBUILD_EVERY = timedelta(days=7)  # well inside the table's 14-day TTL
# An update with more records than this to fold in builds afresh instead: a build streams every
# record (~30 s at 10M x 10M with its compaction), while a fold looks each record's key up and
# groups (a bulk load of 20M records took minutes). Its next updates reach back INGEST_LAG and may
# build again.
FOLD_LIMIT = 1_000_000
# Below this many records on both sides together, incremental runs read `records`: at 1M x 1M both
# ways took 0.24 s in `bench reconcile`, and a small rule is not worth a build and a copy (at
# 10M x 10M the mirror took 0.28 s against 0.61 s).
MIN_RECORDS = 5_000_000
ENTRY = ("Tuple(key String, version UInt64, live UInt8, ts DateTime64(6, 'UTC'), ids FixedString(24), "
         "f Array(String))")
# Records whose key normalization changes are grouped per normalized key this many at a time:
# grouping holds every entry of a bucket in memory.
BUILD_ROWS_PER_BUCKET = 2_000_000


@dataclass(frozen=True)
class Meta:
    watermark: datetime  # rows stored from here on (less INGEST_LAG) are not folded in yet
    built_at: datetime


def applies(rule: object) -> bool:
    """Record-level rules keyed by `key` (normalized or not) whose sides are different sources."""
    return (isinstance(rule, ReconcileRule) and not same_source(rule)
            and rule.left.key_field is None and rule.right.key_field is None)


def worth_it(store: Store, rule: ReconcileRule) -> bool:
    """Whether the rule's sides hold enough records for the mirror to pay (a count from the primary
    index: ~3 ms at 10M x 10M)."""
    p = Params()
    return int(store.query(f"SELECT count() FROM records PREWHERE {_sides(p, rule)}", p.values)[0][0]) >= MIN_RECORDS


def definition(rule: ReconcileRule) -> str:
    """What decides the entries: the sides, the key normalization, the fields read, the time basis."""
    spec = {"format": FORMAT, "left": rule.left.model_dump(mode="json"), "right": rule.right.model_dump(mode="json"),
            "key_normalize": list(rule.key_normalize), "fields": referenced_fields(rule), "ts": rule.grace_basis}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:PREFIX_LENGTH]


# -- SQL (pure) --------------------------------------------------------------------------------------

def _entries(p: Params, rule: ReconcileRule, prefix: str, *, final: bool, where: str) -> str:
    """(mirror_key, entry, stored_at) for every record version of either side that `where` selects."""
    left, right = rule.left, rule.right
    is_left = f"(system = {p(left.system)} AND entity = {p(left.entity)})"
    lwhere = " AND ".join(side_filters(p, left)) or "1"
    rwhere = " AND ".join(side_filters(p, right)) or "1"
    values = ", ".join(field_of(p, "fields", name) for name in referenced_fields(rule))
    # A filter on a field the record lacks is NULL, which the records path's WHERE takes as false.
    live = f"ifNull(deleted = 0 AND if({is_left}, {lwhere}, {rwhere}), 0)"
    entry = f"CAST(tuple(key, version, {live}, {rule.grace_basis}, ids, CAST([{values}] AS Array(String))) AS {ENTRY})"
    return (f"SELECT concat({p(prefix)}, if({is_left}, 'l', 'r'), nk) AS mirror_key, {entry} AS entry, stored_at\n"
            f"FROM records{' FINAL' if final else ''}\nPREWHERE {_sides(p, rule)}\n"
            f"WHERE ({key_expr(p, left, rule)} AS nk) != '' AND {where}")


def _sides(p: Params, rule: ReconcileRule) -> str:
    return (f"(system = {p(rule.left.system)} AND entity = {p(rule.left.entity)}) OR "
            f"(system = {p(rule.right.system)} AND entity = {p(rule.right.entity)})")


def build_sql(p: Params, rule: ReconcileRule, prefix: str) -> str:
    """Every current record whose key normalization leaves unchanged, one entry per mirror row.

    Streamed, without grouping: 8-11 s at 10M x 10M against ~30 s grouping every key into its row.
    One thread reads in key order, so the files RocksDB ingests hardly overlap (runs after a build
    without the compaction that follows were no faster for it: 0.31-0.34 s either way)."""
    return (f"INSERT INTO {TABLE} (mirror_key, entries)\nSELECT mirror_key, [entry]\nFROM (\n"
            f"{_entries(p, rule, prefix, final=True, where='key = nk')}\n)\nSETTINGS max_threads = 1")


def abnormal_count_sql(p: Params, rule: ReconcileRule) -> str:
    """How many records have a key that normalization changes (`p-1 ` for P-1)."""
    return f"SELECT count() FROM records PREWHERE {_sides(p, rule)} WHERE key != {key_expr(p, rule.left, rule)}"


def build_abnormal_sql(p: Params, rule: ReconcileRule, prefix: str, buckets: int, bucket: int) -> str:
    """The rows of every normalized key that a changed key (`p-1 `) normalizes to, grouped: written after
    build_sql's, they replace its rows of those keys (`P-1` alone). One bucket of keys at a time, since
    grouping holds every entry of the bucket in memory."""
    nk = key_expr(p, rule.left, rule)
    in_bucket = f"cityHash64(nk) % {p(buckets, 'UInt64')} = {p(bucket, 'UInt64')}"
    keys = f"SELECT {nk} AS nk FROM records PREWHERE {_sides(p, rule)} WHERE key != nk AND {in_bucket}"
    where = f"{in_bucket} AND nk IN ({keys})"
    return (f"INSERT INTO {TABLE} (mirror_key, entries)\nSELECT mirror_key, groupArray(entry)\nFROM (\n"
            f"{_entries(p, rule, prefix, final=True, where=where)}\n)\nGROUP BY mirror_key")


def fresh_count_sql(p: Params, rule: ReconcileRule, since: datetime) -> str:
    """How many record versions of either side were stored since `since`."""
    return (f"SELECT count() FROM records PREWHERE {_sides(p, rule)} "
            f"WHERE stored_at >= {p.named('since', since, DATETIME)}")


def fold_sql(p: Params, rule: ReconcileRule, prefix: str, since: datetime) -> str:
    """The mirror rows of every key with records stored since `since`, those records merged in."""
    fresh = _entries(p, rule, prefix, final=False, where=f"stored_at >= {p.named('since', since, DATETIME)}")
    # Per raw key the highest version; of equal versions the later stored (an entry already in the
    # mirror ranks as stored at the epoch), as ReplacingMergeTree keeps the last inserted.
    return (
        f"INSERT INTO {TABLE} (mirror_key, entries)\nWITH fresh AS (\n{fresh}\n)\n"
        "SELECT mirror_key, groupArray(latest)\nFROM (\n"
        "    SELECT mirror_key, e.key AS raw_key, argMax(e, (e.version, stored)) AS latest\n"
        "    FROM (\n"
        f"        SELECT mirror_key, arrayJoin(entries) AS e, toDateTime64(0, 6, 'UTC') AS stored FROM {TABLE}\n"
        "        WHERE mirror_key IN (SELECT mirror_key FROM fresh)\n"
        "        UNION ALL\n"
        "        SELECT mirror_key, entry AS e, stored_at AS stored FROM fresh\n"
        "    )\n"
        "    GROUP BY mirror_key, raw_key\n"
        ")\nGROUP BY mirror_key"
    )


def lookup_sql(p: Params, prefix: str, keys: str) -> str:
    """The live entries of both sides of the normalized keys in column `k` of the relation `keys`:
    (is_l, k, ts, ids, f), one row per entry."""
    return (
        f"SELECT substring(mirror_key, {PREFIX_LENGTH + 1}, 1) = 'l' AS is_l, "
        f"substring(mirror_key, {PREFIX_LENGTH + 2}) AS k,\n"
        "               entry.ts AS ts, entry.ids AS ids, entry.f AS f\n"
        f"        FROM {TABLE} ARRAY JOIN arrayFilter(x -> x.live = 1, entries) AS entry\n"
        f"        WHERE mirror_key IN (SELECT concat({p(prefix)}, side, k) FROM {keys} ARRAY JOIN ['l', 'r'] AS side"
        " WHERE k != '')"
    )


def pairs_ctes(p: Params, rule: ReconcileRule, prefix: str) -> list[str]:
    """`candidate_rows` and `pairs` (compile_candidates.pairs_cte) for the keys in `candidates`, from the
    mirror: the same columns the records path gives, each side's latest live record by ts."""
    position = {name: i for i, name in enumerate(referenced_fields(rule), start=1)}
    rows = f"candidate_rows AS (\n        {lookup_sql(p, prefix, 'candidates')}\n    )"
    return [rows, pairs_cte(p, rule, lambda name: f"f[{position[name]}]")]


# -- I/O -------------------------------------------------------------------------------------------

def meta(store: Store, prefix: str) -> Meta | None:
    rows = store.query(f"SELECT entry.key, entry.ts FROM {TABLE} ARRAY JOIN entries AS entry "
                       "WHERE mirror_key = {k:String}", {"k": prefix + META})
    by_name = {name: at.replace(tzinfo=UTC) for name, at in rows}
    if not {"watermark", "built"} <= by_name.keys():
        return None
    return Meta(by_name["watermark"], by_name["built"])


def _write_meta(store: Store, prefix: str, value: Meta) -> None:
    zero = bytes(24)
    store.insert_rows(TABLE, [[prefix + META, [("watermark", 0, 1, value.watermark, zero, []),
                                               ("built", 0, 1, value.built_at, zero, [])]]],
                      ["mirror_key", "entries"])


def _server_now(store: Store) -> datetime:
    """The store's clock, which also sets `stored_at`."""
    return store.query("SELECT now64(6, 'UTC')")[0][0].replace(tzinfo=UTC)


def build(store: Store, rule: ReconcileRule, prefix: str, started: datetime) -> None:
    p = Params()
    store.command(build_sql(p, rule, prefix), p.values)
    p = Params()
    abnormal = store.query(abnormal_count_sql(p, rule), p.values)[0][0]
    buckets = -(-abnormal // BUILD_ROWS_PER_BUCKET)
    for bucket in range(buckets):
        p = Params()
        store.command(build_abnormal_sql(p, rule, prefix, buckets, bucket), p.values)
    # Compact what the build wrote: until RocksDB has, each lookup searches the files the build
    # ingested, and runs right after a build took 0.34-0.36 s against 0.27-0.29 s (at 10M x 10M,
    # for 21 s of compaction a week). OPTIMIZE of an EmbeddedRocksDB table is a manual compaction.
    store.command(f"OPTIMIZE TABLE {TABLE}")
    _write_meta(store, prefix, Meta(started, started))


def fold(store: Store, rule: ReconcileRule, prefix: str, since: datetime) -> None:
    p = Params()
    store.command(fold_sql(p, rule, prefix, since), p.values)


def update(store: Store, rule: ReconcileRule) -> str:
    """Bring the rule's mirror up to date (building it when missing or a week old); its prefix."""
    prefix = definition(rule)
    started = _server_now(store)
    known = meta(store, prefix)
    if known is None or started - known.built_at >= REBUILD_EVERY or _fresh(store, rule, known) > FOLD_LIMIT:
        build(store, rule, prefix, started)
    else:
        fold(store, rule, prefix, known.watermark - INGEST_LAG)
        _write_meta(store, prefix, Meta(started, known.built_at))
    return prefix


def _fresh(store: Store, rule: ReconcileRule, known: Meta) -> int:
    p = Params()
    return int(store.query(fresh_count_sql(p, rule, known.watermark - INGEST_LAG), p.values)[0][0])
