"""The store goes away and comes back, or fails mid-insert: the spool holds, nothing is lost or doubled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from collector.app import create_app
from syncwatch.settings import Settings
from tests.collector.test_durability import CE_BATCH, event_batch, span_base, span_batch
from tests.conftest import free_port
from tests.reliability.conftest import FlakyStore


@pytest.fixture
def client(settings: Settings, flaky_store: FlakyStore) -> Iterator[TestClient]:
    settings = settings.model_copy(update={"clickhouse_database": flaky_store.database, "spool_max_bytes": 400_000})
    with TestClient(create_app(settings, store=flaky_store)) as c:
        yield c


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_store_refusing_connections_then_back_spools_503s_then_drains_exactly(
        client: TestClient, flaky_store: FlakyStore) -> None:
    app = client.app
    key = app.state.keys.create("crm", "crm", ["events"])[1]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": CE_BATCH}
    flaky_store.mode = "down"
    acked, pending, refused = [], [], None
    for n in range(400):
        response = client.post("/v1/events", content=event_batch(f"dn{n}", 40), headers=headers)
        if response.status_code != 200:
            refused = response
            break
        acked.append(f"dn{n}")
        pending.append(app.state.spool.pending_bytes())
    # Every request while the store is down was acknowledged from the spool, which only grew.
    assert len(acked) >= 5 and pending == sorted(pending) and pending[-1] > pending[0]
    assert refused is not None and refused.status_code == 503, refused and refused.text
    assert refused.headers["Retry-After"] == "5" and refused.json()["error"]["code"] == "spool_full"
    assert "retry later" in refused.json()["error"]["message"]
    assert wait_for(lambda: client.get("/readyz").status_code == 503)
    checks = client.get("/readyz").json()["checks"]
    assert checks["writer"]["ok"] is False and "Connection refused" in checks["writer"]["detail"]
    assert client.get("/metrics").status_code == 200
    assert client.get("/healthz").status_code == 200  # alive, only not ready

    flaky_store.mode = "up"
    assert wait_for(lambda: app.state.spool.pending_bytes() == 0, 30), "the spool did not drain"
    assert client.post("/v1/events", content=event_batch("back", 40), headers=headers).status_code == 200
    app.state.writer.wait_until_stored(30)
    (rows, ids), = flaky_store.query("SELECT count(), uniqExact(id) FROM events")
    assert rows == ids == (len(acked) + 1) * 40, "raw count: nothing lost, nothing inserted twice"
    assert flaky_store.query("SELECT countIf(startsWith(id, {p:String})) FROM events",
                             {"p": f"dn{len(acked)}-"})[0][0] == 0, "the refused batch was stored"
    assert client.get("/readyz").status_code == 200


def test_inserts_refused_or_landing_with_a_lost_answer_store_each_row_once(
        client: TestClient, flaky_store: FlakyStore) -> None:
    """Lost answers are the hard case: the rows landed, the writer retries the same range, and
    the insert_deduplication_token makes ClickHouse drop the second copy."""
    app = client.app
    events = {"Authorization": f"Bearer {app.state.keys.create('crm', 'crm', ['events'])[1]}",
              "Content-Type": CE_BATCH}
    spans = {"Authorization": f"Bearer {app.state.keys.create('otel', '*', ['telemetry'])[1]}",
             "Content-Type": "application/json"}
    flaky_store.mode = "flaky"
    for n in range(30):
        assert client.post("/v1/events", content=event_batch(f"fl{n}", 20), headers=events).status_code == 200
        assert client.post("/v1/traces", content=span_batch(f"fs{n}", 10), headers=spans).status_code == 200
        time.sleep(0.03)  # several writer batches, so faults land on different ranges
    assert app.state.writer.wait_until_stored(60), "the writer did not get through the faults"
    assert flaky_store.injected["lost_ack"] >= 2 and flaky_store.injected["refused"] >= 2, flaky_store.injected

    (rows, ids), = flaky_store.query("SELECT count(), uniqExact(id) FROM events")  # no FINAL: raw rows
    assert rows == ids == 30 * 20
    per_batch = dict(flaky_store.query("SELECT substring(SpanId, 1, 10), count() FROM otel_traces GROUP BY 1"))
    assert per_batch == {span_base(f"fs{n}"): 10 for n in range(30)}, "otel_traces has no merge-time dedup"
    assert "syncwatch_store_insert_errors_total" in client.get("/metrics").text


def test_keys_read_before_an_outage_keep_working_and_without_any_the_answer_is_503(
        client: TestClient, flaky_store: FlakyStore) -> None:
    app = client.app
    known = app.state.keys.create("crm", "crm", ["events"])[1]
    headers = {"Content-Type": CE_BATCH}
    assert client.post("/v1/events", content=event_batch("k0", 5),
                       headers={**headers, "Authorization": f"Bearer {known}"}).status_code == 200
    flaky_store.mode = "down"
    time.sleep(app.state.settings.key_refresh_seconds + 0.1)  # the keys are due for a re-read now
    ok = client.post("/v1/events", content=event_batch("k1", 5),
                     headers={**headers, "Authorization": f"Bearer {known}"})
    assert ok.status_code == 200, ok.text

    app.state.keys._loaded_at = 0.0  # no key read yet: the store went down before the first request
    unknown = client.post("/v1/events", content=event_batch("k2", 5),
                          headers={**headers, "Authorization": f"Bearer sw_{'a' * 12}_{'b' * 48}"})
    assert unknown.status_code == 503 and unknown.headers["Retry-After"] == "5"
    assert unknown.json()["error"]["code"] == "store_unavailable"
    assert "Connection refused" in unknown.json()["error"]["message"]
    flaky_store.mode = "up"
    assert app.state.writer.wait_until_stored(30)
    assert flaky_store.query("SELECT count() FROM events")[0][0] == 10


def test_a_collector_pointed_at_a_port_that_refuses_stops_at_start_up_naming_it(tmp_path: Path) -> None:
    """Keys and migrations live in the store, so a collector cannot start without it; it must say so
    and exit, for its supervisor to retry, rather than serve 500s."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "SYNCWATCH_CLICKHOUSE_URL": url, "SYNCWATCH_DATA_DIR": str(tmp_path),
           "SYNCWATCH_PORT": str(free_port()), "SYNCWATCH_ADMIN_TOKEN": "t" * 32, "SYNCWATCH_LOG_LEVEL": "warning"}
    done = subprocess.run([sys.executable, "-m", "syncwatch.cli", "serve"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert f"cannot connect to ClickHouse at {url}" in done.stderr and "Connection refused" in done.stderr
