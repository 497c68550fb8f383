"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import json

from tests.conftest import Harness


def test_healthz_and_readyz(harness: Harness) -> None:
    assert harness.client.get("/healthz").json() == {"status": "ok"}
    ready = harness.client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["store"]["ok"] and checks["migrations"]["ok"] and checks["spool"]["ok"] and checks["writer"]["ok"]


def test_readyz_fails_above_the_spool_high_water_mark(harness: Harness) -> None:
    harness.app.state.settings.spool_max_bytes = 0  # any pending byte is above the mark
    harness.store.command("DETACH TABLE events")
    token = harness.key("crm", "events")
    event = {"specversion": "1.0", "id": "1", "source": "/crm/x", "type": "crm.account.created",
             "data": {"account_id": "A", "name": "n", "region": "EMEA"}}
    harness.client.post("/v1/events", content=json.dumps(event),
                        headers={**harness.auth(token), "Content-Type": "application/cloudevents+json"})
    response = harness.client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["spool"]["ok"] is False
    harness.store.command("ATTACH TABLE events")
    harness.app.state.settings.spool_max_bytes = 1 << 30
    harness.flush()
    assert harness.client.get("/readyz").status_code == 200


def test_metrics_count_accepted_rejected_and_spool(harness: Harness) -> None:
    token = harness.key("crm", "events")
    headers = {**harness.auth(token), "Content-Type": "application/cloudevents+json"}
    event = {"specversion": "1.0", "id": "1", "source": "/crm/x", "type": "crm.account.created",
             "data": {"account_id": "A", "name": "n", "region": "EMEA"}}
    assert harness.client.post("/v1/events", content=json.dumps(event), headers=headers).status_code == 200
    assert harness.client.post("/v1/events", content=b"{not json", headers=headers).status_code == 400
    harness.flush()
    text = harness.client.get("/metrics").text
    assert 'syncwatch_ingest_accepted_total{kind="event"} 1.0' in text
    assert 'syncwatch_ingest_rejected_total{kind="event",reason=' in text
    assert "syncwatch_spool_bytes" in text and "syncwatch_writer_batch_seconds_bucket" in text
    assert 'syncwatch_store_rows_total{table="events"} 1.0' in text
