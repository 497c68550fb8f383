"""A real API server with demo-like data for the dashboards' tests, shared by the whole session.

The data comes in the way production data does: the simulator sends CloudEvents, record snapshots
and OTLP spans through the real ingest endpoints of a uvicorn server on loopback, the writer stores
them in chDB, and the real reconciler runs every rule once (full), which opens findings and writes
rule runs. One user per role is created through the user directory the API authenticates with.
Tests that act on findings pick different findings, so sharing the server is safe.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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
REPLAY_TARGETS = ("erp", "psa", "billing", "hris")


class Receiver:
    """The inbound endpoints of the target systems, on loopback: each replayed request is recorded
    (path, Idempotency-Key, CloudEvent) and answered 202, as a receiving system would."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append({"path": self.path, "idempotency_key": self.headers.get("Idempotency-Key"),
                                 "event": json.loads(body or b"{}")})
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def environment(self) -> dict[str, str]:
        """The variables rules/replay.yaml expands into its targets' URLs and bearer tokens."""
        env = {f"SYNCWATCH_REPLAY_{system.upper()}_URL": f"{self.url}/{system}" for system in REPLAY_TARGETS}
        tokens = {f"SYNCWATCH_REPLAY_{system.upper()}_TOKEN": f"{system}-token" for system in REPLAY_TARGETS}
        return env | tokens

    def close(self) -> None:
        self.server.shutdown()


@dataclass
class SeededApi:
    base_url: str
    app: FastAPI
    store: Store
    settings: Settings
    receiver: Receiver
    tokens: dict[str, str] = field(default_factory=dict)  # role -> user token, plus "ops2": a second ops user

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
    receiver = Receiver()
    api = SeededApi(f"http://127.0.0.1:{port}", app, store, settings, receiver)
    seed(app, api.base_url)
    api.tokens = {role: app.state.users.create(f"{role} tester", role)[1] for role in ROLES}
    api.tokens["ops2"] = app.state.users.create("ops reviewer", "ops")[1]
    with pytest.MonkeyPatch.context() as patch:  # replay.yaml reads its target URLs when a replay is planned
        for name, value in receiver.environment().items():
            patch.setenv(name, value)
        yield api
    server.should_exit = True
    thread.join(timeout=30)
    receiver.close()
    store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
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
