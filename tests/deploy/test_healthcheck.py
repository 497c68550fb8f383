"""deploy/healthcheck.py, the image's probe: 0 when healthy, 1 when not, 2 on bad usage."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest

from syncwatch.store import Store
from tests.conftest import free_port
from tests.deploy.files import DEPLOY


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", DEPLOY / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe = _load()


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_http_probe_follows_the_status(http_port: int) -> None:
    assert probe.main(["http", "/healthz", str(http_port)]) == 0
    assert probe.main(["http", "/readyz", str(http_port)]) == 1  # 503: not ready


def test_http_probe_fails_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(["http", "/healthz", str(free_port())]) == 1
    assert "Connection refused" in capsys.readouterr().err


def test_http_probe_reads_the_port_from_the_environment(http_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCWATCH_PORT", str(http_port))
    assert probe.main(["http", "healthz"]) == 0


def test_store_probe_needs_a_current_schema(store: Store, chdb_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCWATCH_CLICKHOUSE_URL", chdb_dsn)
    monkeypatch.setenv("SYNCWATCH_CLICKHOUSE_DATABASE", store.database)
    assert probe.main(["store"]) == 0
    empty = f"{store.database}_empty"
    monkeypatch.setenv("SYNCWATCH_CLICKHOUSE_DATABASE", empty)
    try:
        assert probe.main(["store"]) == 1  # reachable, but migrations pending
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{empty}` SYNC")


def test_store_probe_fails_on_an_unreachable_server(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SYNCWATCH_CLICKHOUSE_URL", f"http://nobody:x@127.0.0.1:{free_port()}")
    assert probe.main(["store"]) == 1
    assert "store:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["http"], ["tcp", "9000"], ["store", "extra"]])
def test_bad_usage_prints_the_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(argv) == 2
    assert "healthcheck.py http PATH" in capsys.readouterr().err


def test_store_probe_reports_a_malformed_setting(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SYNCWATCH_SPOOL_MAX_BYTES", "lots")
    assert probe.main(["store"]) == 1
    assert "spool_max_bytes" in capsys.readouterr().err
