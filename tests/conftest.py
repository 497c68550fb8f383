"""Shared fixtures: a real embedded ClickHouse (chDB), the real app, a real HTTP server.

chDB opens one data path per process, so the session shares one path and each test gets a
database of its own on it.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collector.app import create_app
from syncwatch import schema
from syncwatch.settings import Settings
from syncwatch.store import Store

REPO = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "test-admin-token-" + "0" * 16


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def database() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(chdb_dsn: str, database: str) -> Iterator[Store]:
    s = Store(chdb_dsn, database)
    schema.migrate(s)
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    s.close()


@pytest.fixture
def settings(tmp_path: Path, chdb_dsn: str, database: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", clickhouse_url=chdb_dsn, clickhouse_database=database,
        rules_dir=REPO / "rules", admin_token=ADMIN_TOKEN, batch_max_delay_ms=20, key_refresh_seconds=0.2,
        kpi_max_staleness_seconds=0,  # tests read KPIs right after writing events
    )


@dataclass
class Harness:
    """The running app with its store, and helpers to get keys and wait for the writer."""

    client: TestClient
    app: FastAPI
    store: Store

    def key(self, system: str, *scopes: str, prefixes: list[str] | None = None) -> str:
        _, token = self.app.state.keys.create(f"test {system}", system, list(scopes), prefixes)
        return token

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def flush(self) -> None:
        assert self.app.state.writer.wait_until_stored(30), "writer did not drain in 30 s"

    def count(self, sql: str, **params: object) -> int:
        self.flush()
        return int(self.store.query(sql, params or None)[0][0])


@pytest.fixture
def harness(settings: Settings, store: Store) -> Iterator[Harness]:
    app = create_app(settings, store=store)
    with TestClient(app) as client:
        yield Harness(client, app, store)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    app: FastAPI
    store: Store

    def key(self, system: str, *scopes: str) -> str:
        return self.app.state.keys.create(f"live {system}", system, list(scopes))[1]

    def flush(self) -> None:
        assert self.app.state.writer.wait_until_stored(30)


@pytest.fixture
def live_server(settings: Settings, store: Store) -> Iterator[LiveServer]:
    """The app served by uvicorn on a loopback port, in a thread of this process."""
    port = free_port()
    app = create_app(settings, store=store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", app, store)
    server.should_exit = True
    thread.join(timeout=30)
