"""Arrow inserts into the embedded store through chDB's Python() table function (syncwatch/chdb_insert.py)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import clickhouse_connect
import pyarrow as pa
import pytest

from syncwatch import schema
from syncwatch.chdb_insert import insert_sql
from syncwatch.errors import StoreError
from syncwatch.model import RECORDS, SCHEMAS
from syncwatch.record_ids import stored_table
from syncwatch.store import Store

TEXTS = ["", "plain", "it's", 'say "hi"', "back\\slash", "tab\there", "new\nline", "ünïcödé ✓", "`tick`", "x" * 300]
HEX = "0123456789abcdef"


def _value(rng: random.Random, t: pa.DataType, name: str, length: int = 0, nullable: bool = True) -> Any:
    if nullable and rng.random() < 0.05 and not pa.types.is_list(t):
        return None  # Arrow nulls: every column of the tables is non-Nullable, so they store defaults
    if pa.types.is_string(t):
        if name in ("trace_id", "TraceId"):
            return rng.choice(["", "".join(rng.choices(HEX, k=32))])
        if name in ("span_id", "SpanId"):
            return rng.choice(["", "".join(rng.choices(HEX, k=16))])
        return rng.choice(TEXTS)
    if pa.types.is_timestamp(t):
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**14))
    if pa.types.is_boolean(t):
        return rng.random() < 0.5
    if pa.types.is_floating(t):
        return rng.choice([0.0, -1.5, 1e300, float("inf"), rng.random()])
    if pa.types.is_unsigned_integer(t):
        return rng.choice([0, 1, 2 ** (t.bit_width - 1), 2**t.bit_width - 1])
    if pa.types.is_integer(t):
        return rng.choice([0, -1, 2 ** (t.bit_width - 1) - 1, -(2 ** (t.bit_width - 1))])
    if pa.types.is_map(t):
        return {rng.choice(TEXTS[1:]): rng.choice(TEXTS) for _ in range(rng.randrange(4))}
    if pa.types.is_list(t):  # the columns of one Nested structure (Events.*) have one length per row
        return [_value(rng, t.value_type, name, nullable=False) for _ in range(length)]
    raise AssertionError(f"no sample values for {t}")


def sample(table: str, rows: int, seed: int) -> pa.Table:
    rng, arrow_schema = random.Random(seed), SCHEMAS[table]
    lengths = [{prefix: rng.randrange(4) for prefix in ("Events", "Links", "")} for _ in range(rows)]
    return pa.table({f.name: pa.array([_value(rng, f.type, f.name, lengths[i].get(f.name.split(".")[0], lengths[i][""]))
                                       for i in range(rows)], f.type)
                     for f in arrow_schema}, schema=arrow_schema)


@pytest.fixture
def twin(chdb_dsn: str) -> Iterator[tuple[Store, Any]]:
    """The store, and a clickhouse-connect client of a second database inserting the way it does itself."""
    names = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    ours, theirs = Store(chdb_dsn, names[0]), Store(chdb_dsn, names[1])
    for s in (ours, theirs):
        schema.migrate(s)
    client = clickhouse_connect.get_client(dsn=chdb_dsn, database=names[1])
    yield ours, client
    client.close()
    for s in (ours, theirs):
        s.command(f"DROP DATABASE IF EXISTS `{s.database}` SYNC")
        s.close()


def _rows(query: Any, table: str) -> list[tuple]:
    except_ = " EXCEPT (stored_at)" if table == RECORDS else ""  # set by the server at insert
    return query(f"SELECT *{except_} FROM {table} ORDER BY ALL")


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_every_table_stores_what_clickhouse_connects_arrow_insert_stores(twin: tuple[Store, Any], table: str) -> None:
    ours, client = twin
    for seed in range(3):
        data = sample(table, 60, seed)
        ours.insert_arrow(table, data)
        client.insert_arrow(table, stored_table(table, data), settings={"optimize_on_insert": 0})
    stored = _rows(ours.query, table)
    assert len(stored) == 180
    assert stored == _rows(lambda sql: client.query(sql).result_rows, table)


@pytest.mark.parametrize("chunks", [1, 3])
def test_buffers_anywhere_in_memory_insert_without_warnings(
        store: Store, capfd: pytest.CaptureFixture[str], chunks: int) -> None:
    """The spool hands the writer views of a file's bytes: Arrow buffers at odd addresses, in one
    chunk (one record) or many. Arrow's scanner warned on stderr for each unaligned buffer."""
    data = sample("events", 50, 7)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    raw = b"\0" * 3 + sink.getvalue().to_pybytes()
    store.insert_arrow("events", pa.concat_tables([pa.ipc.open_stream(memoryview(raw)[3:]).read_all()
                                                   for _ in range(chunks)]))
    assert store.query("SELECT count() FROM events")[0][0] == 50 * chunks
    assert "aligned" not in capfd.readouterr().err


def test_a_token_stores_a_repeated_insert_once(store: Store) -> None:
    data = sample("ingest_batches", 20, 3)
    for token in ("range-1:ingest_batches", "range-1:ingest_batches", "range-2:ingest_batches"):
        store.insert_arrow("ingest_batches", data, token)
    assert store.query("SELECT count() FROM ingest_batches")[0][0] == 40


def test_an_empty_table_inserts_nothing(store: Store) -> None:
    store.insert_arrow("events", sample("events", 0, 1))
    assert store.query("SELECT count() FROM events")[0][0] == 0


def test_a_refused_insert_names_the_problem_and_stores_nothing(store: Store) -> None:
    data = sample("quarantine", 10, 2)
    with pytest.raises(StoreError, match="no_such_column"):
        store.insert_arrow("quarantine", data.append_column("no_such_column", pa.array(range(10))))
    with pytest.raises(StoreError, match="'received_at' of quarantine is string"):  # chDB would store 1970
        store.insert_arrow("quarantine", data.set_column(0, "received_at", pa.array(["not a time"] * 10)))
    assert store.query("SELECT count() FROM quarantine")[0][0] == 0


def test_sql_quotes_names_and_settings() -> None:
    sql = insert_sql("db", "we`ird", ["a", "b`c"], {"optimize_on_insert": 0, "insert_deduplication_token": "x'; DROP"})
    assert sql == ("INSERT INTO `db`.`we\\`ird` (`a`, `b\\`c`) SELECT `a`, `b\\`c` FROM Python(syncwatch_arrow_batch) "
                   "SETTINGS optimize_on_insert = 0, insert_deduplication_token = 'x\\'; DROP'")
    with pytest.raises(TypeError, match="float"):
        insert_sql("db", "t", ["a"], {"max_threads": 1.5})
