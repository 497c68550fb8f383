"""Server mode over real HTTP: a collector on a ClickHouse-HTTP endpoint that goes away (its port
refuses connections) and comes back on the same data. The endpoint is chdb_http_server.py."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from syncwatch.bench.serverproc import ServerProcess, free_port
from tests.collector.test_durability import CE_BATCH, event_batch
from tests.conftest import ADMIN_TOKEN

SHIM = Path(__file__).with_name("chdb_http_server.py")


@dataclass
class ClickHouseEndpoint:
    path: Path
    port: int
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SHIM), str(self.path), str(self.port)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[ClickHouseEndpoint]:
    ch = ClickHouseEndpoint(tmp_path / "clickhouse", free_port())
    ch.start()
    yield ch
    ch.stop()


def test_a_store_whose_port_refuses_then_returns_loses_nothing(tmp_path: Path, endpoint: ClickHouseEndpoint) -> None:
    server = ServerProcess(tmp_path / "collector", ADMIN_TOKEN, {
        "SYNCWATCH_CLICKHOUSE_URL": endpoint.url, "SYNCWATCH_SPOOL_MAX_BYTES": "250000",
        "SYNCWATCH_KEY_REFRESH_SECONDS": "0.5"})
    server.start()
    try:
        headers = {"Authorization": f"Bearer {server.key('crm', 'events')}", "Content-Type": CE_BATCH}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            acked = [f"up{n}" for n in range(3)
                     if http.post("/v1/events", content=event_batch(f"up{n}", 40)).status_code == 200]
            assert len(acked) == 3

            endpoint.stop()  # the port now refuses connections
            time.sleep(1.0)  # past SYNCWATCH_KEY_REFRESH_SECONDS: the keys are due for a re-read
            refused = None
            for n in range(300):
                response = http.post("/v1/events", content=event_batch(f"down{n}", 40))
                if response.status_code != 200:
                    refused = response
                    break
                acked.append(f"down{n}")
            assert refused is not None and refused.status_code == 503, refused and refused.text
            assert refused.json()["error"]["code"] == "spool_full" and refused.headers["Retry-After"] == "5"
            assert len(acked) > 4, "nothing was acknowledged into the spool during the outage"
            deadline = time.monotonic() + 30  # the writer reports the outage after its first failed insert
            while (checks := http.get("/readyz").json()["checks"])["writer"]["ok"]:
                assert time.monotonic() < deadline, checks
                time.sleep(0.1)
            assert checks["store"]["ok"] is False and "Connection refused" in checks["writer"]["detail"]

            endpoint.start()  # same data, same port
            server.wait_drained(timeout=60)
            assert http.post("/v1/events", content=event_batch("back", 40)).status_code == 200
            acked.append("back")
            server.wait_drained(timeout=60)
            deadline = time.monotonic() + 30
            while http.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "not ready after the store returned"
                time.sleep(0.2)
        (rows, ids), = server.query("SELECT count(), uniqExact(id) FROM events")
        assert rows == ids == len(acked) * 40
        stored = {b for (b,) in server.query("SELECT DISTINCT splitByChar('-', id)[1] FROM events")}
        assert stored == set(acked), "an acknowledged batch is missing or a refused one was stored"
    finally:
        server.stop()
