"""Above max_inflight_requests concurrent requests ingest answers 429 with Retry-After, and sheds
only the excess: the requests it let in are all stored once the pressure goes."""

from __future__ import annotations

import threading
import time

import httpx

from collector.spool import Spool
from tests.collector.test_durability import CE_BATCH, event_batch
from tests.conftest import LiveServer


def hold_spool_writes(spool: Spool) -> threading.Event:
    """Fault injection: every spool write waits for the returned gate (a very slow disk)."""
    gate, write = threading.Event(), spool._write_batch

    def slow_write(batch: list) -> None:  # type: ignore[type-arg]
        gate.wait(30)
        write(batch)

    spool._write_batch = slow_write  # type: ignore[method-assign]
    return gate


def test_over_the_inflight_limit_answers_429_with_retry_after_and_recovers(live_server: LiveServer) -> None:
    app = live_server.app
    app.state.settings.max_inflight_requests = 2
    headers = {"Authorization": f"Bearer {live_server.key('crm', 'events')}", "Content-Type": CE_BATCH}
    url = f"{live_server.base_url}/v1/events"
    gate = hold_spool_writes(app.state.spool)
    answers: dict[str, int] = {}

    def post(name: str) -> None:
        answers[name] = httpx.post(url, content=event_batch(name, 30), headers=headers, timeout=60).status_code

    held = [threading.Thread(target=post, args=(f"held{i}",)) for i in range(2)]
    for t in held:
        t.start()
    deadline = time.monotonic() + 20
    while app.state.inflight < 2:
        assert time.monotonic() < deadline, "the held requests never reached the spool"
        time.sleep(0.02)

    shed = httpx.post(url, content=event_batch("shed", 30), headers=headers, timeout=30)
    assert shed.status_code == 429 and shed.headers["Retry-After"] == "5"
    assert shed.json()["error"]["code"] == "too_many_requests"
    assert httpx.get(f"{live_server.base_url}/healthz").status_code == 200  # health is never shed

    gate.set()
    for t in held:
        t.join(timeout=30)
    assert answers == {"held0": 200, "held1": 200}
    assert httpx.post(url, content=event_batch("later", 30), headers=headers).status_code == 200
    live_server.flush()
    batches = dict(live_server.store.query("SELECT splitByChar('-', id)[1], count() FROM events GROUP BY 1"))
    assert batches == {"held0": 30, "held1": 30, "later": 30}


def test_a_saturated_event_loop_sheds_with_429_until_it_catches_up(live_server: LiveServer) -> None:
    """Out of CPU, the excess waits before any handler runs, where the in-flight count cannot see it;
    the event loop's delay can, and ingest sheds on it before reading the body."""
    app = live_server.app
    app.state.settings.max_loop_lag_ms = 300
    headers = {"Authorization": f"Bearer {live_server.key('crm', 'events')}", "Content-Type": CE_BATCH}
    url = f"{live_server.base_url}/v1/events"
    assert httpx.post(url, content=event_batch("warm", 30), headers=headers).status_code == 200

    app.state.loop_lag.loop.call_soon_threadsafe(time.sleep, 1.5)  # fault injection: the loop is busy 1.5 s
    time.sleep(0.2)
    shed = httpx.post(url, content=event_batch("shed", 30), headers=headers, timeout=30)  # waits out the stall
    assert shed.status_code == 429 and shed.headers["Retry-After"] == "5", shed.text
    assert shed.json()["error"]["code"] == "overloaded" and "event loop" in shed.json()["error"]["message"]

    deadline = time.monotonic() + 10
    while (after := httpx.post(url, content=event_batch("after", 30), headers=headers)).status_code != 200:
        assert after.status_code == 429 and time.monotonic() < deadline, after.text
        time.sleep(0.2)
    live_server.flush()
    batches = dict(live_server.store.query("SELECT splitByChar('-', id)[1], count() FROM events GROUP BY 1"))
    assert batches == {"warm": 30, "after": 30}
