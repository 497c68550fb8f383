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

from syncwatch.errors import StoreError, StoreLockedError
from syncwatch.settings import Settings


def _connect(dsn: str, database: str | None) -> Client:
    kwargs: dict[str, Any] = {"dsn": dsn}
    if database:
        kwargs["database"] = database
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

    def __init__(self, dsn: str, database: str) -> None:
        self.dsn = dsn
        self.database = database
        bootstrap = _connect(dsn, None)
        try:
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {_ident(database)}")
        except ClickHouseError as exc:
            raise StoreError(f"cannot create database {database!r}: {exc}") from exc
        self._reader = _connect(dsn, database)
        self._writer = _connect(dsn, database)
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings) -> Store:
        if settings.embedded:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings.dsn, settings.clickhouse_database)

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None,
              settings: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._read_lock:
            return self._call(self._reader.query, sql, parameters=parameters, settings=settings).result_rows

    def query_columns(self, sql: str, parameters: Mapping[str, Any] | None = None,
                      settings: Mapping[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        with self._read_lock:
            result = self._call(self._reader.query, sql, parameters=parameters, settings=settings)
        return list(result.column_names), result.result_rows

    def query_arrow(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        with self._read_lock:
            return self._call(self._reader.query_arrow, sql, parameters=parameters)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        with self._write_lock:
            return self._call(self._writer.command, sql, parameters=parameters)

    def insert_arrow(self, table: str, data: pa.Table, token: str | None = None) -> None:
        """Insert one batch; a token makes a retried batch idempotent (see the migrations)."""
        insert_settings = {"insert_deduplication_token": token} if token else None
        with self._write_lock:
            self._call(self._writer.insert_arrow, table, data, settings=insert_settings)

    def insert_rows(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        with self._write_lock:
            self._call(self._writer.insert, table, rows, column_names=list(columns))

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


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise StoreError(f"invalid identifier {name!r}: use letters, digits and underscores")
    return f"`{name}`"
