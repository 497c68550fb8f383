"""A real API server with demo-like data for the dashboards' tests, shared by the whole session.

The data comes in the way production data does: the simulator sends CloudEvents, record snapshots
and OTLP spans through the real ingest endpoints of a uvicorn server on loopback, the writer stores
them in chDB, and the real reconciler runs every rule once (full), which opens findings and writes
rule runs. One user per role is created through the user directory the API authenticates with.
Tests that act on findings pick different findings, so sharing the server is safe.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from collector.api.access import ROLES
from collector.app import create_app
from reconciler.loader import load_rules
from reconciler.service import run_rules, runnable
from syncwatch import schema
from syncwatch.settings import Settings
from syncwatch.simulator import SYSTEMS, FeedConfig, run_feed
from syncwatch.store import Store
from tests.conftest import ADMIN_TOKEN, REPO, free_port

FEED_DAYS = 120


@dataclass
class SeededApi:
    base_url: str
    app: FastAPI
    store: Store
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)  # role -> user token

    def query(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        return [tuple(r) for r in self.store.query(sql, params or None)]


def seed(app: FastAPI, base_url: str, days: int = FEED_DAYS) -> None:
    """Feed the simulated firm through the real endpoints, then run every rule once."""
    tokens = {s: app.state.keys.create(f"seed {s}", s, ["events", "records"])[1] for s in SYSTEMS}
    tokens["telemetry"] = app.state.keys.create("seed telemetry", "*", ["telemetry"])[1]
    config = FeedConfig(seed=11, consultants=36, clients=12, days=days, fault_rate=0.06,
                        start_date=date.today() - timedelta(days=days))
    stats = run_feed(base_url, tokens, config)
    assert stats.failed_requests == 0, stats
    assert app.state.writer.wait_until_stored(60), "writer did not drain"
    rules = runnable(load_rules(REPO / "rules" / "packs"))
    results = run_rules(app.state.store, rules, full=True)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]


@pytest.fixture(scope="session")
def seeded_api(chdb_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededApi]:
    database = f"dash_{uuid.uuid4().hex[:10]}"
    store = Store(chdb_dsn, database)
    schema.migrate(store)
    port = free_port()
    settings = Settings(data_dir=tmp_path_factory.mktemp("dash-data"), clickhouse_url=chdb_dsn,
                        clickhouse_database=database, rules_dir=REPO / "rules", admin_token=ADMIN_TOKEN,
                        batch_max_delay_ms=20, key_refresh_seconds=0.2, host="127.0.0.1", port=port)
    app = create_app(settings, store=store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    api = SeededApi(f"http://127.0.0.1:{port}", app, store, settings)
    seed(app, api.base_url)
    api.tokens = {role: app.state.users.create(f"{role} tester", role)[1] for role in ROLES}
    yield api
    server.should_exit = True
    thread.join(timeout=30)
    store.command(f"DROP DATABASE IF EXISTS `{database}`")
    store.close()


@pytest.fixture
def dashboard_env(seeded_api: SeededApi, monkeypatch: pytest.MonkeyPatch) -> SeededApi:
    """The environment an AppTest run of the dashboards reads its Settings from."""
    for name in ("SYNCWATCH_CONFIG", "SYNCWATCH_DASHBOARD_TOKEN", "SYNCWATCH_DASHBOARD_OIDC_USERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNCWATCH_API_URL", seeded_api.base_url)
    return seeded_api


APP = REPO / "dashboards" / "app.py"


def app_path() -> Path:
    return APP
