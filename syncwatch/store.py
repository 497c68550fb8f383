"""The ClickHouse store, reached only through clickhouse-connect (embedded chDB or a server)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from syncwatch import chdb_insert, cluster_ddl
from syncwatch.errors import StoreError, StoreLockedError
from syncwatch.model import SCHEMAS
from syncwatch.record_ids import stored_rows, stored_table
from syncwatch.settings import Settings

# Session settings of every query in cluster mode (SYNCWATCH_CLICKHOUSE_CLUSTER), where the plain
# table names are Distributed tables:
CLUSTER_SESSION: dict[str, Any] = {
    # An IN or JOIN whose subquery reads another Distributed table is refused under the default 'deny'.
    # 'global' runs the subquery once and ships its result to every shard; 'allow' would run it on each
    # shard's local data only, which is wrong here: events, records and findings are sharded by different
    # keys, so the rows a shard's subquery needs are mostly on other shards.
    "distributed_product_mode": "global",
    # A Distributed insert returns only when every shard stored its rows (not when they are queued on
    # the initiator's disk), so the writer's checkpoint and the collector's acknowledgements keep
    # meaning "stored". (The 23.x+ name is distributed_foreground_insert; this alias works everywhere.)
    "insert_distributed_sync": 1,
    # Read your own writes: every client, whichever node it reached, reads and writes the first healthy
    # replica of each shard, so a finding version or audit row just written is the one read next
    # (replication to the other replicas is asynchronous). Failover to the next replica can serve
    # rows up to the replication lag behind.
    "load_balancing": "in_order",
    "prefer_localhost_replica": 0,
}


READONLY_MAX_ROWS = 10_000
READONLY_LIMITS: dict[str, Any] = {
    "result_overflow_mode": "break",  # stop reading at the row limit instead of failing
    "max_execution_time": 60,
    "max_memory_usage": 2 * 1024**3,
}


def _connect(dsn: str, database: str | None, session: Mapping[str, Any] | None = None) -> Client:
    kwargs: dict[str, Any] = {"dsn": dsn}
    if database:
        kwargs["database"] = database
    if session:
        kwargs["settings"] = dict(session)
    try:
        return clickhouse_connect.get_client(**kwargs)
    except Exception as exc:  # clickhouse-connect raises several unrelated types here
        if "EmbeddedServer" in str(exc):
            raise StoreLockedError(
                f"the embedded store at {dsn} is held by another process (a running `syncwatch serve`?); "
                "use the server's API instead, or stop it first"
            ) from exc
        raise StoreError(f"cannot connect to ClickHouse at {_redact(dsn)}: {exc}") from exc


def _redact(dsn: str) -> str:
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return dsn


class Store:
    """Thread-safe facade over clickhouse-connect clients.

    Reads and writes use separate clients: on chDB, separate clients on one path run in
    parallel while one shared client serializes every call, and a streaming read would
    otherwise hold up the writer.
    """

    def __init__(self, dsn: str, database: str, cluster: str = "") -> None:
        self.dsn = dsn
        self.database = database
        self.cluster = cluster  # non-empty: the schema is Replicated + Distributed tables on this cluster
        session = CLUSTER_SESSION if cluster else None
        bootstrap = _connect(dsn, None, session)
        try:
            for sql in cluster_ddl.render(f"CREATE DATABASE IF NOT EXISTS {_ident(database)}", cluster, database):
                bootstrap.command(sql)
        except ClickHouseError as exc:
            raise StoreError(f"cannot create database {database!r}: {exc}") from exc
        self._reader = _connect(dsn, database, session)
        self._writer = _connect(dsn, database, session)
        self._embedded = dsn.startswith("chdb://")
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings) -> Store:
        if settings.embedded:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings.dsn, settings.clickhouse_database, settings.clickhouse_cluster)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None,
              settings: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._read_lock:
            return self._call(self._reader.query, sql, parameters=parameters, settings=settings).result_rows

    def query_columns(self, sql: str, parameters: Mapping[str, Any] | None = None,
                      settings: Mapping[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        with self._read_lock:
            result = self._call(self._reader.query, sql, parameters=parameters, settings=settings)
        return list(result.column_names), result.result_rows

    def query_readonly(self, sql: str, parameters: Mapping[str, Any] | None = None,
                       max_rows: int = READONLY_MAX_ROWS) -> tuple[list[str], list[tuple], bool]:
        """One statement someone typed (`syncwatch query`, the admin API): read-only, and bounded in
        rows, time and memory, because the embedded engine shares its process with the collector and
        `SELECT * FROM events` without a LIMIT would take all of it. Returns the columns, at most
        `max_rows` rows and whether there were more."""
        # formatQuery parses exactly one statement: multi-statement text is refused before it runs
        self.query("SELECT formatQuery({q:String})", {"q": sql})
        # one row more than shown: to know there were more. `readonly` comes last, as settings apply in
        # order and it refuses any later one; it also keeps the statement from raising these limits.
        limits = {**READONLY_LIMITS, "max_result_rows": max_rows + 1, "readonly": 1}
        columns, rows = self.query_columns(sql, parameters, settings=limits)
        return columns, rows[:max_rows], len(rows) > max_rows

    def query_arrow(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        with self._read_lock:
            return self._call(self._reader.query_arrow, sql, parameters=parameters)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        with self._write_lock:
            return self._call(self._writer.command, sql, parameters=parameters)

    def insert_arrow(self, table: str, data: pa.Table, token: str | None = None) -> None:
        """Insert one batch; a token makes a retried batch idempotent (see the migrations).

        optimize_on_insert=0: collapsing a ReplacingMergeTree block at insert time made the insert
        2.3x slower (313k against 740k event rows/s here), and it is not needed for correctness:
        every read that counts rows uses FINAL or takes the latest version itself, and merges
        collapse repeats in the background.
        """
        insert_settings: dict[str, Any] = {"optimize_on_insert": 0}
        if token:
            insert_settings["insert_deduplication_token"] = token
        _check_types(table, data)
        data = stored_table(table, data)
        with self._write_lock:
            if self._embedded:  # chDB reads the table in-process (syncwatch/chdb_insert.py)
                self._call(chdb_insert.insert, self._writer, self.database, table, data, insert_settings)
            else:
                self._call(self._writer.insert_arrow, table, data, settings=insert_settings)

    def insert_rows(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        rows, columns = stored_rows(table, rows, columns)
        with self._write_lock:
            self._call(self._writer.insert, table, rows, column_names=columns)

    def ping(self) -> bool:
        try:
            self.query("SELECT 1")
        except StoreError:
            return False
        return True

    def close(self) -> None:
        for client in (self._reader, self._writer):
            with contextlib.suppress(Exception):  # closing is best effort; the process is going away
                client.close()

    @staticmethod
    def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClickHouseError as exc:
            raise StoreError(str(exc).strip().splitlines()[0][:2000]) from exc
        except OSError as exc:
            raise StoreError(f"store unreachable: {exc}") from exc


def _check_types(table: str, data: pa.Table) -> None:
    """Columns of the model's tables in the model's Arrow types. chDB's Python() table function
    converts what it reads leniently (text that is no time became 1970-01-01), so a batch of
    another type is refused here, by name, rather than stored as something else."""
    model = SCHEMAS.get(table)
    if model is None:
        return
    for field in data.schema:
        at = model.get_field_index(field.name)
        if at >= 0 and model.field(at).type != field.type:
            raise StoreError(f"column {field.name!r} of {table} is {field.type}, "
                             f"but the store takes {model.field(at).type}")


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise StoreError(f"invalid identifier {name!r}: use letters, digits and underscores")
    return f"`{name}`"
