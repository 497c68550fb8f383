"""Single-node DDL -> cluster DDL: one pure function, so the .sql migrations stay the one schema.

With ``SYNCWATCH_CLICKHOUSE_CLUSTER`` set, each ``CREATE TABLE t (...) ENGINE = X(args) ...`` becomes

    CREATE TABLE t_local ON CLUSTER 'c' (...) ENGINE = ReplicatedX('/clickhouse/tables/{shard}/{database}/t_local',
                                                                   '{replica}', args) ...
    CREATE TABLE t ON CLUSTER 'c' AS t_local ENGINE = Distributed('c', '<database>', 't_local', <sharding key>)

so every query keeps reading and writing the plain name `t` (now the Distributed table). Column
ALTERs reach both tables; data and maintenance statements (mutations, OPTIMIZE, TRUNCATE, index
changes) reach the local tables, where the data is. ``render`` also serves statements issued at
run time (``syncwatch.schema.apply_ddl``), and with no cluster returns its input unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from syncwatch.errors import SyncwatchError

LOCAL_SUFFIX = "_local"
KEEPER_PATH = "/clickhouse/tables/{{shard}}/{{database}}/{table}"
# The ledger is not sharded: every node of every shard holds all of it (one Keeper path without
# {shard}), so a migration recorded anywhere is seen everywhere. {replica} alone may repeat across
# shards (r1, r2 in each), hence the shard in the replica's name.
LEDGER_KEEPER_PATH = "/clickhouse/tables/all/{database}/schema_migrations"
LEDGER_REPLICA = "{shard}-{replica}"

# Table -> (sharding key of its Distributed table, why). Each key is a deterministic function of the
# table's ORDER BY (dedup) columns, so every version of one row lands on one shard and FINAL /
# ReplacingMergeTree merges stay correct per shard; a retried insert (same deduplication token)
# splits into the same per-shard blocks, so the shards drop the repeat. Plain MergeTree tables,
# which never merge rows away, may instead keep one object together. A new table must be added
# here: rendering refuses a CREATE TABLE without a key. A hash of a LowCardinality column alone is
# LowCardinality(UInt64), not the plain integer a sharding key must be: hence the CASTs.
SHARDING_KEYS: dict[str, tuple[str, str]] = {
    "events": ("cityHash64(source, id)",
               "dedup key is (type, source, id) and one (source, id) never changes type; the business object "
               "lives in `keys`, outside the ORDER BY, so redeliveries are what must meet"),
    "records": ("cityHash64(key)",
                "every system's record of one business key (project P-17 in PSA and ERP) on one shard; key is "
                "part of the ReplacingMergeTree key (system, entity, key), so versions of a record meet"),
    "otel_traces": ("cityHash64(TraceId)",
                    "plain MergeTree (no merge-time dedup): one trace's spans together, as the exporter shards"),
    "otel_logs": ("cityHash64(if(TraceId = '', toString(Timestamp), TraceId))",
                  "plain MergeTree: a trace's logs with its spans; logs without a trace spread by time "
                  "instead of piling onto the shard of ''"),
    "otel_metrics": ("cityHash64(ServiceName, MetricName, Attributes)",
                     "plain MergeTree: one time series (service, metric, attributes) on one shard"),
    "quarantine": ("cityHash64(system, kind, received_at)", "plain MergeTree: its ORDER BY, spread by time"),
    "ingest_batches": ("cityHash64(system, kind, received_at)", "plain MergeTree: its ORDER BY, spread by time"),
    "api_keys": ("cityHash64(key_id)", "ReplacingMergeTree(updated_at) ORDER BY key_id: a revocation meets its key"),
    "findings": ("cityHash64(fingerprint)",
                 "versions of one finding (rule, fingerprint) meet; a fingerprint names one rule, so it "
                 "alone is a function of the key; alert_state and replays of the finding share the shard"),
    "actions": ("cityHash64(seq)", "plain MergeTree ORDER BY seq: the audit chain spread evenly, read in seq order"),
    "rule_runs": ("cityHash64(CAST(rule, 'String'))",
                  "a rule's runs together: last_success reads one rule's recent runs"),
    "alert_state": ("cityHash64(fingerprint)",
                    "versions of (sink, rule, fingerprint) meet, next to their finding"),
    "users": ("cityHash64(user_id)", "ReplacingMergeTree ORDER BY user_id: a revocation meets its user"),
    "rule_versions": ("cityHash64(CAST(rule, 'String'))",
                      "ReplacingMergeTree ORDER BY (rule, version): a rule's versions together"),
    "rule_leases": ("cityHash64(CAST(rule, 'String'))",
                    "a rule's claims on one shard, so the claimants of one rule read one replica's view"),
    "replays": ("cityHash64(fingerprint)",
                "versions of (fingerprint, replay_id) meet, next to their finding"),
    "workflow_instances": ("cityHash64(ck)",
                           "refreshed versions of one instance (workflow, definition, ck) meet; a business key's "
                           "instances of every workflow on one shard"),
    "workflow_state_refreshes": ("cityHash64(CAST(workflow, 'String'))",
                                 "a workflow's refresh ledger rows meet (ReplacingMergeTree by workflow)"),
    "workflow_progress": ("cityHash64(ck)",
                          "every row of one instance (workflow, definition, generation, ck) on one shard, so "
                          "AggregatingMergeTree merges them there; a business key's instances together"),
    "workflow_progress_updates": ("cityHash64(CAST(workflow, 'String'))",
                                  "a workflow's update ledger rows meet (ReplacingMergeTree by workflow)"),
}

# Tables each node keeps for itself: created on every node, neither replicated nor sharded.
NODE_LOCAL_TABLES: dict[str, str] = {
    "record_mirror": "EmbeddedRocksDB has no Replicated variant; a reconciler's mirror is rebuilt from `records` "
                     "on a node that lacks it (reconciler/record_mirror.py)",
}

_NAME = r"`?([A-Za-z_][A-Za-z0-9_]*)`?"
_CREATE_TABLE = re.compile(rf"^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?{_NAME}\s*\(", re.I)
_ENGINE = re.compile(r"\s*ENGINE\s*=\s*([A-Za-z]+)\s*", re.I)
_MERGE_TREE = re.compile(r"^(Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing)?MergeTree$")
_ALTER = re.compile(rf"^ALTER\s+TABLE\s+{_NAME}\s+(?!ON\s+CLUSTER\b)(.+)$", re.I | re.S)
_COLUMN_OP = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
_OPTIMIZE = re.compile(rf"^OPTIMIZE\s+TABLE\s+{_NAME}(\s+(?!ON\s+CLUSTER\b).*)?$", re.I | re.S)
_TRUNCATE = re.compile(rf"^TRUNCATE\s+(?:TABLE\s+)?(IF\s+EXISTS\s+)?{_NAME}\s*$", re.I)
_DROP_TABLE = re.compile(rf"^DROP\s+TABLE\s+(IF\s+EXISTS\s+)?{_NAME}(\s+SYNC)?\s*$", re.I)
_DATABASE = re.compile(rf"^(CREATE|DROP)\s+DATABASE\s+(IF\s+(?:NOT\s+)?EXISTS\s+)?{_NAME}(\s+SYNC)?\s*$", re.I)
_INSERT = re.compile(r"^INSERT\s+INTO\s", re.I)


class ClusterDDLError(SyncwatchError):
    """A statement has no cluster rendering; the message names the statement and why."""


def local_name(table: str) -> str:
    return table + LOCAL_SUFFIX


def render(statement: str, cluster: str, database: str) -> list[str]:
    """The statements that do on ``cluster`` what ``statement`` does on one node (itself when no cluster)."""
    sql = statement.strip().rstrip(";").strip()
    if not cluster:
        return [sql]
    if re.search(r"\bON\s+CLUSTER\b", sql, re.I):
        raise ClusterDDLError(f"cannot render {_head(sql)!r}: it already names a cluster; write migrations "
                              "for one node and let SYNCWATCH_CLICKHOUSE_CLUSTER add ON CLUSTER")
    for pattern, renderer in _RENDERERS:
        match = pattern.match(sql)
        if match:
            return renderer(match, sql, cluster, database)
    raise ClusterDDLError(f"cannot render for cluster {cluster!r}: {_head(sql)!r} is not a CREATE TABLE, "
                          "ALTER TABLE, OPTIMIZE, TRUNCATE, DROP TABLE, CREATE/DROP DATABASE or INSERT statement")


def render_ledger(ddl: str, cluster: str) -> str:
    """The migrations ledger: replicated to every node of the cluster, never sharded (see LEDGER_KEEPER_PATH)."""
    if not cluster:
        return ddl.strip()
    table = _parse_create(_CREATE_TABLE.match(ddl.strip()), ddl.strip(), cluster)
    engine = _replicated(table.engine, table.engine_args, LEDGER_KEEPER_PATH, LEDGER_REPLICA)
    return f"CREATE TABLE {table.if_not_exists}{table.name} ON CLUSTER {_quote(cluster)} {table.columns} " \
           f"ENGINE = {engine}{table.tail}"


@dataclass(frozen=True)
class _Create:
    """A CREATE TABLE cut into the parts the renderer rearranges; ``columns`` keeps its parentheses."""

    if_not_exists: str
    name: str
    columns: str
    engine: str
    engine_args: str
    tail: str  # ORDER BY, PARTITION BY, TTL, SETTINGS ... as written


def _create_table(match: re.Match[str], sql: str, cluster: str, database: str) -> list[str]:
    if match.group(2) in NODE_LOCAL_TABLES:
        columns = match.end() - 1
        return [f"{sql[:columns].rstrip()} ON CLUSTER {_quote(cluster)} {sql[columns:]}"]
    table = _parse_create(match, sql, cluster)
    if table.name not in SHARDING_KEYS:
        raise ClusterDDLError(f"cannot render {_head(sql)!r} for cluster {cluster!r}: table {table.name!r} has no "
                              "sharding key; add it to syncwatch.cluster_ddl.SHARDING_KEYS with the reason")
    local = local_name(table.name)
    engine = _replicated(table.engine, table.engine_args, KEEPER_PATH.format(table=local), "{replica}")
    on = f"ON CLUSTER {_quote(cluster)}"
    key = SHARDING_KEYS[table.name][0]
    return [
        f"CREATE TABLE {table.if_not_exists}{local} {on} {table.columns} ENGINE = {engine}{table.tail}",
        f"CREATE TABLE {table.if_not_exists}{table.name} {on} AS {local} "
        f"ENGINE = Distributed({_quote(cluster)}, {_quote(database)}, {_quote(local)}, {key})",
    ]


def _parse_create(match: re.Match[str] | None, sql: str, cluster: str) -> _Create:
    if match is None:
        raise ClusterDDLError(f"cannot render {_head(sql)!r} for cluster {cluster!r}: not a CREATE TABLE")
    close = _closing_paren(sql, match.end() - 1)
    engine = _ENGINE.match(sql, close)
    if engine is None:
        raise ClusterDDLError(f"cannot render {_head(sql)!r} for cluster {cluster!r}: the column list must be "
                              "followed by ENGINE = <a MergeTree engine>")
    name = engine.group(1)
    if not _MERGE_TREE.match(name):
        raise ClusterDDLError(f"cannot render {_head(sql)!r} for cluster {cluster!r}: engine {name} has no "
                              "Replicated variant; use a (Replacing, Summing, ...) MergeTree")
    args, rest = "", engine.end()
    if sql.startswith("(", rest):
        end = _closing_paren(sql, rest)
        args, rest = sql[rest + 1:end - 1].strip(), end
    return _Create("IF NOT EXISTS " if match.group(1) else "", match.group(2), sql[match.end() - 1:close],
                   name, args, " " + sql[rest:].strip() if sql[rest:].strip() else "")


def _replicated(engine: str, args: str, path: str, replica: str) -> str:
    parts = [_quote(path), _quote(replica)] + ([args] if args else [])
    return f"Replicated{engine}({', '.join(parts)})"


def _alter(match: re.Match[str], sql: str, cluster: str, database: str) -> list[str]:
    table = _known_table(match.group(1), sql, cluster)
    ops = _split_top_level(match.group(2))
    on = f"ON CLUSTER {_quote(cluster)}"
    statements = [f"ALTER TABLE {local_name(table)} {on} {', '.join(ops)}"]
    column_ops = [op for op in ops if _COLUMN_OP.match(op)]
    if column_ops:  # the Distributed table must show the same columns as its local tables
        distributed = f"ALTER TABLE {table} {on} {', '.join(column_ops)}"
        # Added columns must exist locally before a query names them through the Distributed table;
        # dropped or renamed ones must leave the Distributed table first.
        adding = all(op.upper().startswith(("ADD", "MODIFY", "COMMENT")) for op in column_ops)
        local = statements[0]
        statements = [local, distributed] if adding else [distributed, local]
    return statements


def _optimize(match: re.Match[str], sql: str, cluster: str, database: str) -> list[str]:
    table = _known_table(match.group(1), sql, cluster)
    return [f"OPTIMIZE TABLE {local_name(table)} ON CLUSTER {_quote(cluster)}{match.group(2) or ''}".rstrip()]


def _truncate(match: re.Match[str], sql: str, cluster: str, database: str) -> list[str]:
    table = _known_table(match.group(2), sql, cluster)
    return [f"TRUNCATE TABLE {match.group(1) or ''}{local_name(table)} ON CLUSTER {_quote(cluster)}"]


def _drop_table(match: re.Match[str], sql: str, cluster: str, database: str) -> list[str]:
    table = _known_table(match.group(2), sql, cluster)
    if_exists, sync = match.group(1) or "", (match.group(3) or "").strip()
    return [f"DROP TABLE {if_exists}{name} ON CLUSTER {_quote(cluster)} {sync}".rstrip()
            for name in (table, local_name(table))]


def _database(match: re.Match[str], sql: str, cluster: str, database: str) -> list[str]:
    verb, condition, name, sync = match.group(1).upper(), match.group(2) or "", match.group(3), match.group(4) or ""
    return [f"{verb} DATABASE {condition}`{name}` ON CLUSTER {_quote(cluster)}{sync}"]


def _insert(match: re.Match[str], sql: str, cluster: str, database: str) -> list[str]:
    return [sql]  # through the Distributed table, which routes each row to its shard


_RENDERERS = [
    (_CREATE_TABLE, _create_table), (_ALTER, _alter), (_OPTIMIZE, _optimize), (_TRUNCATE, _truncate),
    (_DROP_TABLE, _drop_table), (_DATABASE, _database), (_INSERT, _insert),
]


def _known_table(name: str, sql: str, cluster: str) -> str:
    if name not in SHARDING_KEYS:
        raise ClusterDDLError(f"cannot render {_head(sql)!r} for cluster {cluster!r}: {name!r} is not a table of "
                              "the cluster schema (syncwatch.cluster_ddl.SHARDING_KEYS)")
    return name


def _closing_paren(sql: str, start: int) -> int:
    """Index just past the parenthesis that closes the one at ``start``; quotes are skipped."""
    depth, i = 0, start
    while i < len(sql):
        char = sql[i]
        if char in "'`\"":
            i = _end_of_quote(sql, i)
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        i += 1
        if depth == 0:
            return i
    raise ClusterDDLError(f"unbalanced parentheses in {_head(sql)!r}")


def _end_of_quote(sql: str, start: int) -> int:
    quote, i = sql[start], start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            return i + 1
        else:
            i += 1
    raise ClusterDDLError(f"unterminated quote in {_head(sql)!r}")


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes (an ALTER's operations)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char in "'`\"":
            i = _end_of_quote(text, i)
            continue
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        depth += {"(": 1, ")": -1}.get(char, 0)
        i += 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _head(sql: str) -> str:
    first = " ".join(sql.split())
    return first if len(first) <= 80 else first[:77] + "..."
