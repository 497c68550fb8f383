"""Acknowledged means stored: kill -9 mid-ingest, store outages, spool-full backpressure."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from syncwatch.bench.serverproc import ServerProcess
from tests.conftest import ADMIN_TOKEN, Harness

CE_BATCH = "application/cloudevents-batch+json"


def event_batch(prefix: str, n: int, source: str = "/crm/salesforce") -> bytes:
    return json.dumps([
        {"specversion": "1.0", "id": f"{prefix}-{i}", "source": source, "type": "crm.account.created",
         "time": "2026-11-25T10:00:00Z", "datacontenttype": "application/json",
         "data": {"account_id": f"A-{prefix}-{i}", "name": "Acme", "region": "EMEA"}}
        for i in range(n)
    ]).encode()


def span_base(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:10]


def span_batch(name: str, n: int) -> bytes:
    """OTLP/JSON spans with unique span ids (otel_traces is a plain MergeTree: no merge-time dedup)."""
    base = span_base(name)
    spans = [
        {"traceId": f"{base}{i:022x}", "spanId": f"{base}{i:06x}", "name": "sync", "kind": 3,
         "startTimeUnixNano": "1764064800000000000", "endTimeUnixNano": "1764064800100000000"}
        for i in range(n)
    ]
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "crm-to-erp"}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]}).encode()


def _pump(url: str, path: str, token: str, content_type: str, make_body: Callable[[str], bytes],
          prefix: str, acked: list[str], stop: threading.Event) -> None:
    """Send numbered batches until stopped; remember the batches the server acknowledged."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    with httpx.Client(timeout=10) as client:
        n = 0
        while not stop.is_set():
            name = f"{prefix}b{n}"
            try:
                response = client.post(f"{url}{path}", content=make_body(name), headers=headers)
            except httpx.HTTPError:
                return  # the server died mid-request: that batch was never acknowledged
            if response.status_code == 200:
                acked.append(name)
            n += 1


EVENTS_PER_BATCH = 200
ROUNDS = 4
SPANS_PER_BATCH = 100


@pytest.mark.slow
def test_kill9_during_ingest_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", ADMIN_TOKEN)
    server.start()
    event_token = server.key("crm", "events")
    span_token = server.key("*", "telemetry")
    acked_events: list[str] = []
    acked_spans: list[str] = []
    # A random point in each round (group commit, mid-insert, mid-checkpoint land differently);
    # the seed is printed so a failing round can be replayed.
    seed = int(os.environ.get("SYNCWATCH_KILL_SEED", random.randrange(2**32)))
    kill_after = [random.Random(seed + r).uniform(0.8, 4.0) for r in range(ROUNDS)]
    print(f"kill -9 seed {seed}: after {[round(t, 2) for t in kill_after]} s")
    try:
        for round_no in range(ROUNDS):
            stop = threading.Event()
            pumps = [(f"r{round_no}w{w}", "/v1/events", event_token, CE_BATCH,
                      lambda name: event_batch(name, EVENTS_PER_BATCH), acked_events) for w in range(3)]
            pumps.append((f"r{round_no}s", "/v1/traces", span_token, "application/json",
                          lambda name: span_batch(name, SPANS_PER_BATCH), acked_spans))
            threads = [
                threading.Thread(target=_pump, args=(server.url, path, token, ctype, make, prefix, acked, stop))
                for prefix, path, token, ctype, make, acked in pumps
            ]
            for t in threads:
                t.start()
            time.sleep(kill_after[round_no])
            server.kill9()
            stop.set()
            for t in threads:
                t.join(timeout=30)
            server.start()
        server.wait_drained()
        assert acked_events and acked_spans, "nothing was acknowledged before the kills"
        print(f"acknowledged before the kills: {len(acked_events)} event batches, {len(acked_spans)} span batches")

        per_batch = dict(server.query(
            "SELECT splitByChar('-', id)[1] AS batch, count() FROM events FINAL GROUP BY batch"))
        short = {b: per_batch.get(b, 0) for b in acked_events if per_batch.get(b, 0) != EVENTS_PER_BATCH}
        assert not short, f"acknowledged event batches not stored whole: {list(short.items())[:5]}"
        (rows, unique), = server.query("SELECT count(), uniqExact(source, id) FROM events FINAL")
        assert rows == unique

        spans = dict(server.query("SELECT substring(SpanId, 1, 10) AS batch, count() FROM otel_traces GROUP BY batch"))
        wrong = {b: spans.get(span_base(b), 0) for b in acked_spans if spans.get(span_base(b), 0) != SPANS_PER_BATCH}
        assert not wrong, f"acknowledged span batches lost or duplicated: {list(wrong.items())[:5]}"
        (span_rows, span_unique), = server.query("SELECT count(), uniqExact(SpanId) FROM otel_traces")
        assert span_rows == span_unique, "a replayed batch was inserted twice"
    finally:
        server.stop()


def test_store_outage_spools_then_503_then_drains_everything(harness: Harness) -> None:
    """A real store failure (the events table detached), not a fake: inserts fail until it returns."""
    app, client = harness.app, harness.client
    spool = app.state.spool
    spool.max_bytes = 150_000  # small, so the outage fills it quickly
    headers = {**harness.auth(harness.key("crm", "events")), "Content-Type": CE_BATCH}
    harness.store.command("DETACH TABLE events")
    acked, refused = [], None
    for n in range(500):
        response = client.post("/v1/events", content=event_batch(f"out{n}", 50), headers=headers)
        if response.status_code != 200:
            refused = response
            break
        acked.append(f"out{n}")
    assert refused is not None and refused.status_code == 503
    assert refused.headers["Retry-After"].isdigit()
    assert refused.json()["error"]["code"] == "spool_full"
    deadline = time.monotonic() + 10  # the writer reports the outage after its first failed insert
    while (ready := client.get("/readyz")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.status_code == 503 and ready.json()["checks"]["writer"]["ok"] is False
    assert "syncwatch_store_insert_errors_total" in client.get("/metrics").text

    harness.store.command("ATTACH TABLE events")
    assert harness.count("SELECT count() FROM events FINAL") == len(acked) * 50
    assert client.post("/v1/events", content=event_batch("after", 50), headers=headers).status_code == 200
    assert client.get("/readyz").status_code == 200
