"""Cluster DDL: every rendered statement parses in ClickHouse itself, and the cluster schema has the
single-node schema's columns, table by table, in its local tables and their Distributed twins.

No ClickHouse cluster (Keeper, several servers) exists here, so the cluster statements are parsed with
`formatQuery` in chDB, and the column comparison builds the cluster schema with the Replicated engines
swapped back to their plain forms and the Distributed twins stood in for by Memory tables created
`AS t_local` (the same statement shape, so an ALTER the renderer forgot to send to the twin shows).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from syncwatch import cluster_ddl, schema
from syncwatch import store as store_module
from syncwatch.cluster_ddl import ClusterDDLError, render
from syncwatch.errors import MigrationError, StoreError
from syncwatch.settings import Settings
from syncwatch.store import Store

CLUSTER = "syncwatch"
COLUMN_FACTS = "name, type, default_kind, default_expression, compression_codec, position"
RUNTIME = ["OPTIMIZE TABLE events FINAL", "TRUNCATE TABLE IF EXISTS findings", "DROP TABLE IF EXISTS users SYNC",
           "ALTER TABLE findings DELETE WHERE rule = 'x'", "ALTER TABLE records UPDATE deleted = 1 WHERE key = 'k'",
           "DROP DATABASE IF EXISTS bench_x SYNC", "CREATE DATABASE IF NOT EXISTS `syncwatch`",
           # reconciler/workflow_state.py drops a KPI state generation
           "ALTER TABLE workflow_instances DROP PARTITION ('time_to_bill', '479b48e57ad6c9f5', 1764115200000000)"]


def cluster_statements(database: str) -> list[str]:
    ledger = [cluster_ddl.render_ledger(schema.LEDGER_DDL, CLUSTER)]
    return ledger + [s for m in schema.bundled_migrations() for s in m.rendered(CLUSTER, database)]


def formatted(store: Store, sql: str) -> str:
    return store.query("SELECT formatQuery({sql:String})", {"sql": sql})[0][0]


def as_one_node(sql: str) -> str:
    """A rendered cluster statement made runnable on chDB: no ON CLUSTER, no Keeper, no remote shards."""
    sql = sql.replace(f" ON CLUSTER '{CLUSTER}'", "")
    sql = re.sub(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?", r"\1(", sql)
    return re.sub(r"ENGINE = Distributed\(.*\)$", "ENGINE = Memory", sql, flags=re.S)


@pytest.fixture
def cluster_db(store: Store) -> Iterator[str]:
    """The cluster schema, built statement by statement as rendered, in a database of its own."""
    name = f"c_{uuid.uuid4().hex[:12]}"
    store.command(f"CREATE DATABASE {name}")
    try:
        for sql in cluster_statements(name):
            store.command(as_one_node(sql).replace("CREATE TABLE IF NOT EXISTS ", f"CREATE TABLE {name}.")
                          .replace("ALTER TABLE ", f"ALTER TABLE {name}.").replace(" AS ", f" AS {name}."))
        yield name
    finally:
        store.command(f"DROP DATABASE IF EXISTS {name} SYNC")


def columns(store: Store, database: str, table: str) -> list[tuple]:
    return store.query(f"SELECT {COLUMN_FACTS} FROM system.columns WHERE database = {{db:String}} "
                       "AND table = {t:String} ORDER BY position", {"db": database, "t": table})


def single_node_tables(store: Store) -> list[str]:
    rows = store.query("SELECT name FROM system.tables WHERE database = {db:String} AND name != 'schema_migrations' "
                       "ORDER BY name", {"db": store.database})
    return [r[0] for r in rows]


def test_every_rendered_statement_parses_in_clickhouse(store: Store) -> None:
    statements = cluster_statements("syncwatch") + [s for r in RUNTIME for s in render(r, CLUSTER, "syncwatch")]
    for sql in statements:
        text = formatted(store, sql)
        assert f"ON CLUSTER {CLUSTER}" in text, text
    creates = [formatted(store, s) for s in statements if s.startswith("CREATE TABLE")]
    locals_ = [t for t in creates if "ENGINE = Replicated" in t and "schema_migrations" not in t]
    twins = [t for t in creates if "ENGINE = Distributed" in t]
    assert len(locals_) == len(twins) == len(cluster_ddl.SHARDING_KEYS)
    for text in locals_:
        table = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)_local ON", text).group(1)
        assert f"('/clickhouse/tables/{{shard}}/{{database}}/{table}_local', '{{replica}}'" in text
    for text in twins:
        table = re.search(r"CREATE TABLE IF NOT EXISTS (\w+) ON", text).group(1)
        assert f"AS {table}_local" in text
        assert f"Distributed('{CLUSTER}', 'syncwatch', '{table}_local', " in text


def test_ledger_is_one_replica_set_across_the_whole_cluster(store: Store) -> None:
    text = formatted(store, cluster_ddl.render_ledger(schema.LEDGER_DDL, CLUSTER))
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{shard}-{replica}')" \
        in text
    assert "Distributed" not in text and "{shard}/" not in text
    assert cluster_ddl.render_ledger(schema.LEDGER_DDL, "") == schema.LEDGER_DDL.strip()


def test_cluster_schema_has_the_single_node_columns_in_locals_and_twins(store: Store, cluster_db: str) -> None:
    tables = [t for t in single_node_tables(store) if t not in cluster_ddl.NODE_LOCAL_TABLES]
    assert set(tables) == set(cluster_ddl.SHARDING_KEYS), "every table needs a sharding key and nothing more"
    single, cluster = engines(store, store.database), engines(store, cluster_db)
    for table in cluster_ddl.NODE_LOCAL_TABLES:  # kept by each node as it is: no _local, no Distributed twin
        assert columns(store, cluster_db, table) == columns(store, store.database, table), table
        assert cluster[table] == single[table] and f"{table}_local" not in cluster, table
    for table in tables:
        expected = columns(store, store.database, table)
        assert expected, table
        assert columns(store, cluster_db, f"{table}_local") == expected, f"{table}_local differs from {table}"
        assert columns(store, cluster_db, table) == expected, f"Distributed twin of {table} differs"
    for table in tables:  # the same MergeTree flavour, with its arguments, under the Replicated prefix
        assert cluster[f"{table}_local"] == single[table], table


def engines(store: Store, database: str) -> dict[str, str]:
    return dict(store.query("SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
                            {"db": database}))


@pytest.mark.parametrize("table", sorted(cluster_ddl.SHARDING_KEYS))
def test_sharding_key_is_an_integer_of_the_dedup_key(store: Store, table: str) -> None:
    """Versions of one row must meet on one shard, or FINAL and merges leave duplicates: for every
    Replacing/Summing/... table the key reads only ORDER BY columns. Plain MergeTree may use others."""
    key = cluster_ddl.SHARDING_KEYS[table][0]
    described = store.query(f"DESCRIBE (SELECT {key} AS shard_key FROM {table})")
    assert described[0][1] == "UInt64", f"{table}: sharding key type {described[0][1]}"
    engine, sorting_key = store.query("SELECT engine, sorting_key FROM system.tables WHERE database = {db:String} "
                                      "AND name = {t:String}", {"db": store.database, "t": table})[0]
    if engine != "MergeTree":
        names = {c[0] for c in columns(store, store.database, table)}
        used = set(re.findall(r"\b\w+\b", key)) & names
        assert used and used <= set(re.findall(r"\b\w+\b", sorting_key)), f"{table}: {key} vs ORDER BY {sorting_key}"


def test_single_node_rendering_is_the_statement_itself() -> None:
    for migration in schema.bundled_migrations():
        assert migration.rendered("", "syncwatch") == migration.statements()
    assert render("OPTIMIZE TABLE events FINAL;", "", "db") == ["OPTIMIZE TABLE events FINAL"]


def test_runtime_ddl_reaches_the_local_tables_and_column_alters_both() -> None:
    assert render("OPTIMIZE TABLE events FINAL", CLUSTER, "db") == [
        f"OPTIMIZE TABLE events_local ON CLUSTER '{CLUSTER}' FINAL"]
    assert render("ALTER TABLE findings DELETE WHERE rule = 'a,b'", CLUSTER, "db") == [
        f"ALTER TABLE findings_local ON CLUSTER '{CLUSTER}' DELETE WHERE rule = 'a,b'"]
    assert render("DROP TABLE users", CLUSTER, "db") == [
        f"DROP TABLE users ON CLUSTER '{CLUSTER}'", f"DROP TABLE users_local ON CLUSTER '{CLUSTER}'"]
    mixed = render("ALTER TABLE findings ADD COLUMN m Map(String, String), ADD INDEX i m TYPE minmax", CLUSTER, "db")
    assert mixed == [f"ALTER TABLE findings_local ON CLUSTER '{CLUSTER}' ADD COLUMN m Map(String, String), "
                     "ADD INDEX i m TYPE minmax",
                     f"ALTER TABLE findings ON CLUSTER '{CLUSTER}' ADD COLUMN m Map(String, String)"]
    dropped = render("ALTER TABLE findings DROP COLUMN detail", CLUSTER, "db")
    assert dropped[0].startswith("ALTER TABLE findings ON") and dropped[1].startswith("ALTER TABLE findings_local")


def test_apply_ddl_runs_runtime_statements_on_a_single_node(store: Store) -> None:
    store.insert_rows("users", [("u1", "x", "ops", "h")], ["user_id", "name", "role", "token_sha256"])
    schema.apply_ddl(store, "TRUNCATE TABLE IF EXISTS users")
    assert store.query("SELECT count() FROM users") == [(0,)]


def test_quotes_and_nested_parentheses_do_not_confuse_the_renderer(store: Store) -> None:
    odd = ("CREATE TABLE IF NOT EXISTS events (id String DEFAULT 'x) ENGINE = Memory, (', "
           "m Map(String, Tuple(a UInt8, b String)) COMMENT 'it''s (odd)') "
           "ENGINE = ReplacingMergeTree(toUInt64(length(id))) ORDER BY (id) SETTINGS index_granularity = 8192")
    local, twin = render(odd, CLUSTER, "db")
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}', " \
           "toUInt64(length(id)))" in local
    assert "DEFAULT 'x) ENGINE = Memory, ('" in local
    assert local.endswith("ORDER BY (id) SETTINGS index_granularity = 8192")
    assert formatted(store, local).split("\nENGINE = ", 1)[1].startswith("ReplicatedReplacingMergeTree(")
    formatted(store, twin)


@pytest.mark.parametrize(("sql", "reason"), [
    ("CREATE VIEW v AS SELECT 1", "is not a CREATE TABLE"),
    ("CREATE TABLE IF NOT EXISTS events (a String) ENGINE = Memory", "engine Memory has no Replicated variant"),
    ("CREATE TABLE IF NOT EXISTS scratch (a String) ENGINE = MergeTree ORDER BY a", "'scratch' has no sharding key"),
    ("CREATE TABLE events ON CLUSTER x (a String) ENGINE = MergeTree ORDER BY a", "already names a cluster"),
    ("CREATE TABLE events (a String) ORDER BY a", "followed by ENGINE"),
    ("CREATE TABLE events (a Map(String, String) ENGINE = MergeTree ORDER BY a", "unbalanced parentheses"),
    ("CREATE TABLE events (a String DEFAULT 'x) ENGINE = MergeTree ORDER BY a", "unterminated quote"),
    ("ALTER TABLE other.findings ADD COLUMN x String", "is not a CREATE TABLE, ALTER TABLE"),
    ("ALTER TABLE scratch ADD COLUMN x String", "'scratch' is not a table of the cluster schema"),
    ("RENAME TABLE events TO events2", "is not a CREATE TABLE"),
])
def test_statements_without_a_cluster_form_are_refused_by_name(sql: str, reason: str) -> None:
    migration = schema.Migration(42, "odd", f"CREATE TABLE IF NOT EXISTS users (a String) ENGINE = "
                                 f"ReplacingMergeTree ORDER BY a;\n{sql};\n")
    with pytest.raises(MigrationError) as caught:
        migration.rendered(CLUSTER, "db")
    message = str(caught.value)
    assert "0042_odd" in message and reason in message and sql.split()[0] in message
    with pytest.raises(ClusterDDLError):
        render(sql, CLUSTER, "db")
    assert migration.rendered("", "db")[1] == sql  # one node: passed through as written


@pytest.mark.parametrize("name", ["a'b", "x y", "", "-lead"])
def test_cluster_name_cannot_break_out_of_its_quotes(tmp_path, name: str) -> None:
    if not name:
        assert Settings(data_dir=tmp_path).clickhouse_cluster == ""
        return
    with pytest.raises(ValueError, match="clickhouse_cluster"):
        Settings(data_dir=tmp_path, clickhouse_url="http://ch:8123", clickhouse_cluster=name)


def test_cluster_mode_needs_a_server(tmp_path) -> None:
    with pytest.raises(ValueError, match="needs a ClickHouse server"):
        Settings(data_dir=tmp_path, clickhouse_cluster=CLUSTER)
    assert Settings(data_dir=tmp_path, clickhouse_url="http://ch:8123", clickhouse_cluster=CLUSTER).clickhouse_cluster


def test_reading_the_ledger_never_creates_it(chdb_dsn: str) -> None:
    """/readyz asks is_current on every probe: on a cluster, creating the ledger would be a distributed
    DDL task per probe, so only migrate() creates it."""
    fresh = Store(chdb_dsn, f"t_{uuid.uuid4().hex[:12]}")
    try:
        assert not schema.is_current(fresh) and schema.applied_versions(fresh) == set()
        assert fresh.query("EXISTS TABLE schema_migrations") == [(0,)]
        schema.migrate(fresh)
        assert schema.is_current(fresh)
    finally:
        fresh.command(f"DROP DATABASE IF EXISTS `{fresh.database}` SYNC")
        fresh.close()


def test_cluster_store_creates_its_database_on_the_cluster_and_says_so(chdb_dsn: str) -> None:
    with pytest.raises(StoreError, match=f"cannot create database 'x_db'.*cluster '{CLUSTER}' not found"):
        Store(chdb_dsn, "x_db", cluster=CLUSTER)


def test_cluster_session_settings_reach_every_query(chdb_dsn: str) -> None:
    client = store_module._connect(chdb_dsn, None, store_module.CLUSTER_SESSION)
    try:
        for name, value in store_module.CLUSTER_SESSION.items():
            got = client.query(f"SELECT toString(getSetting('{name}'))").result_rows[0][0]
            assert {"true": "1", "false": "0"}.get(got, got) == str(value), name  # Bool settings read true/false
    finally:
        client.close()
