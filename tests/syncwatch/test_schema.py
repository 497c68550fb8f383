"""Migrations apply once, in order, and the Arrow model matches the migrated tables."""

from __future__ import annotations

import pyarrow as pa
import pytest

from syncwatch import schema
from syncwatch.errors import MigrationError
from syncwatch.model import SCHEMAS
from syncwatch.store import Store

CH_TO_ARROW_PREFIX = {
    pa.string(): ("String", "LowCardinality(String)"),
    pa.uint64(): ("UInt64",), pa.uint32(): ("UInt32",), pa.uint8(): ("UInt8",), pa.int32(): ("Int32",),
    pa.float64(): ("Float64",), pa.bool_(): ("Bool",),
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
    described = {row[0]: row[1] for row in store.query(f"DESCRIBE TABLE {table}") if row[2] == ""}
    model = SCHEMAS[table]
    assert set(model.names) <= set(described), f"model columns missing in {table}"
    missing = set(described) - set(model.names)
    assert not missing, f"{table} columns without a default that the model does not write: {missing}"
    for f in model:
        allowed = CH_TO_ARROW_PREFIX.get(f.type)
        if allowed:
            assert described[f.name] in allowed, f"{table}.{f.name}: {described[f.name]} vs {f.type}"
