"""Migrations apply once, in order, and the Arrow model matches the migrated tables."""

from __future__ import annotations

import pyarrow as pa
import pytest

from syncwatch import schema
from syncwatch.errors import MigrationError
from syncwatch.model import RECORDS, SCHEMAS
from syncwatch.record_ids import IDS, stored_table
from syncwatch.store import Store

CH_TO_ARROW_PREFIX = {
    pa.string(): ("String", "LowCardinality(String)"),
    pa.uint64(): ("UInt64",), pa.uint32(): ("UInt32",), pa.uint8(): ("UInt8",), pa.int32(): ("Int32",),
    pa.float64(): ("Float64",), pa.bool_(): ("Bool",), IDS: ("FixedString(24)",),
}


def test_migrations_are_recorded_and_idempotent(store: Store) -> None:
    versions = [m.version for m in schema.bundled_migrations()]
    assert versions == sorted(versions) and versions[0] == 1
    assert schema.applied_versions(store) == set(versions)
    assert schema.migrate(store) == []
    assert schema.is_current(store)


def test_failed_migration_names_itself_and_is_not_recorded(store: Store) -> None:
    bad = schema.Migration(9999, "broken", "CREATE TABLE oops (a NoSuchType) ENGINE = Memory;")
    with pytest.raises(MigrationError, match="9999_broken"):
        schema.migrate(store, [bad])
    assert 9999 not in schema.applied_versions(store)


def test_split_statements_ignores_comments() -> None:
    sql = "-- a comment; with a semicolon\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nSELECT 1;\n"
    assert schema.split_statements(sql) == ["CREATE TABLE a (x UInt8) ENGINE = Memory", "SELECT 1"]


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_model_schema_matches_table(store: Store, table: str) -> None:
    rows = store.query(f"DESCRIBE TABLE {table}")
    described = {row[0]: row[1] for row in rows if row[2] in ("", "DEFAULT")}  # not ALIAS, MATERIALIZED
    model = stored_table(table, SCHEMAS[table].empty_table()).schema  # as the store inserts it
    assert set(model.names) <= set(described), f"model columns missing in {table}"
    missing = {row[0] for row in rows if row[2] == ""} - set(model.names)
    assert not missing, f"{table} columns without a default that the model does not write: {missing}"
    for f in model:
        allowed = CH_TO_ARROW_PREFIX.get(f.type)
        if allowed:
            assert described[f.name] in allowed, f"{table}.{f.name}: {described[f.name]} vs {f.type}"


HEX_ROWS = [("psa", "project", "P-1", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
            ("psa", "project", "P-2", "", ""),
            ("erp", "project", "P-1", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")]


def test_records_ids_migration_keeps_every_id_and_may_run_again(store: Store) -> None:
    """0011 turns stored hex ids into bytes readable as the same hex; running it again changes nothing."""
    binary_ids = next(m for m in schema.bundled_migrations() if m.name == "records_binary_ids")
    for statement in ["DROP TABLE records", *_records_before(binary_ids.version)]:
        store.command(statement)
    store.command("INSERT INTO records (system, entity, key, version, trace_id, span_id) VALUES "
                  + ", ".join(f"('{s}', '{e}', '{k}', 1, '{t}', '{sp}')" for s, e, k, t, sp in HEX_ROWS))
    for _ in range(2):
        for statement in binary_ids.statements():
            store.command(statement)
        got = store.query("SELECT system, entity, key, trace_id, span_id FROM records ORDER BY system DESC, key")
        assert got == HEX_ROWS
    assert store.query("SELECT hex(ids) FROM records WHERE key = 'P-2'") == [("0" * 48,)]
    assert store.query("SELECT count() FROM records WHERE trace_id = '0af7651916cd43dd8448eb211c80319c'") == [(1,)]


def _records_before(version: int) -> list[str]:
    """The CREATE and ALTERs of `records` in the migrations before `version`."""
    return [statement for m in schema.bundled_migrations() if m.version < version
            for statement in m.statements() if "TABLE IF NOT EXISTS records " in statement
            or statement.startswith("ALTER TABLE records")]


def test_record_inserts_store_hex_ids_as_bytes_and_refuse_other_text(store: Store) -> None:
    rows = [(s, e, k, 1, t, sp) for s, e, k, t, sp in HEX_ROWS]
    columns = ["system", "entity", "key", "version", "trace_id", "span_id"]
    store.insert_rows(RECORDS, rows[:2], columns)
    store.insert_arrow(RECORDS, pa.table({c: [r[i] for r in rows[2:]] for i, c in enumerate(columns)},
                                         schema=pa.schema([(c, pa.uint64() if c == "version" else pa.string())
                                                           for c in columns])))
    got = store.query("SELECT system, entity, key, trace_id, span_id FROM records ORDER BY system DESC, key")
    assert got == HEX_ROWS
    with pytest.raises(ValueError, match=r"must be hexadecimal, got 'trace-psa-P-18x+' and ''"):
        store.insert_rows(RECORDS, [("psa", "project", "P-9", 1, "trace-psa-P-18".ljust(32, "x"), "")], columns)
    with pytest.raises(ValueError, match="32 and 16 hex digits or empty, got 'abc'"):
        store.insert_arrow(RECORDS, pa.table({"key": ["P-9", "P-10"], "trace_id": [HEX_ROWS[0][3], "abc"],
                                              "span_id": ["", ""]}))
    assert store.query("SELECT count() FROM records") == [(3,)]


def test_record_ids_that_are_null_are_stored_as_none(store: Store) -> None:
    store.insert_arrow(RECORDS, pa.table({"key": ["P-1", "P-2"], "trace_id": pa.array([None, HEX_ROWS[0][3]]),
                                          "span_id": pa.array([None, HEX_ROWS[0][4]], pa.string())}))
    assert store.query("SELECT key, trace_id, span_id FROM records ORDER BY key") == [
        ("P-1", "", ""), ("P-2", HEX_ROWS[0][3], HEX_ROWS[0][4])]
