"""CloudEvents and record snapshots through real HTTP: every mode, duplicates, bad input, no half-storing."""

from __future__ import annotations

import gzip
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.app import create_app
from collector.ingest import THREAD_DECODE_BYTES
from syncwatch.settings import Settings
from syncwatch.store import Store
from tests.conftest import Harness

BATCH = "application/cloudevents-batch+json"
TIMESHEET = {"timesheet_id": "TS-9", "person_id": "E-1", "project_id": "P-17", "period_start": "2026-11-16",
             "period_end": "2026-11-22", "hours": 38.5, "approved_at": "2026-11-23T09:00:00Z",
             "region": "EMEA", "legal_entity": "ACME-DE", "service_line": "Cloud"}


def event(i: int, data: dict[str, Any] | None = None, source: str = "/psa/acme") -> CloudEvent:
    return CloudEvent(attributes={
        "type": "psa.timesheet.approved", "source": source, "id": f"ev-{i}", "datacontenttype": "application/json",
        "time": datetime(2026, 11, 23, 9, 0, i % 60, tzinfo=UTC),
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }, data={**TIMESHEET, "timesheet_id": f"TS-{i}"} if data is None else data)


def batch(*events: CloudEvent) -> bytes:
    return b"[" + b",".join(JSONFormat().write(e) for e in events) + b"]"


@pytest.fixture
def psa(harness: Harness) -> dict[str, str]:
    return harness.auth(harness.key("psa", "events", "records"))


def test_structured_binary_and_batch_modes_from_the_sdk(harness: Harness, psa: dict[str, str]) -> None:
    structured = to_structured_event(event(1))
    binary = to_binary_event(event(2))
    responses = [
        harness.client.post("/v1/events", content=structured.body, headers={**psa, **structured.headers}),
        harness.client.post("/v1/events", content=binary.body, headers={**psa, **binary.headers}),
        harness.client.post("/v1/events", content=batch(event(3), event(4)), headers={**psa, "Content-Type": BATCH}),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.json()["accepted"] for r in responses] == [1, 1, 2]
    harness.flush()
    rows = harness.store.query(
        "SELECT id, system, trace_id, span_id, keys['timesheet_id'], keys['region'] FROM events FINAL ORDER BY id")
    assert rows == [(f"ev-{i}", "psa", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", f"TS-{i}", "EMEA")
                    for i in range(1, 5)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries=st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=6), min_size=1, max_size=6),
       seed=st.integers(0, 1000))
def test_duplicates_in_any_order_and_batches_are_stored_and_counted_once(
        harness: Harness, psa: dict[str, str], deliveries: list[list[int]], seed: int) -> None:
    harness.store.command("TRUNCATE TABLE events")
    random.Random(seed).shuffle(deliveries)
    for ids in deliveries:
        body = batch(*(event(i) for i in ids))
        response = harness.client.post("/v1/events", content=body, headers={**psa, "Content-Type": BATCH})
        assert response.status_code == 200
    sent = {i for ids in deliveries for i in ids}
    assert harness.count("SELECT count() FROM events FINAL") == len(sent)
    assert harness.count("SELECT uniqExact(id) FROM events") == len(sent)
    assert harness.count("SELECT countIf(type = 'psa.timesheet.approved') FROM events FINAL") == len(sent)


BAD_BODIES = [
    (b"[{not json", "malformed JSON"),
    (b'[{"specversion":"1.0","id":"a","source":"/psa/x"}]', "missing attribute"),
    (b'[{"specversion":"1.0","id":7,"source":"/psa/x","type":"t"}]', "wrong type"),
    (b'[{"specversion":"0.3","id":"a","source":"/psa/x","type":"t"}]', "unsupported specversion"),
    (b'[{"specversion":"1.0","id":"a\xff","source":"/psa/x","type":"t"}]', "invalid UTF-8"),
    (b'[{"specversion":"1.0","id":"a","source":"/psa/x","type":"t","data":' + b"[" * 200 + b"]" * 200 + b"}]",
     "deep nesting"),
    (b'[{"specversion":"1.0","id":"a","source":"/psa/x","type":"t","traceparent":"00-zz"}]', "bad traceparent"),
    (b'{"specversion":"1.0"}', "batch that is not an array"),
]


@pytest.mark.parametrize(("bad", "what"), BAD_BODIES, ids=[w for _, w in BAD_BODIES])
def test_bad_input_is_a_clear_400_and_nothing_of_the_request_is_stored(
        harness: Harness, psa: dict[str, str], bad: bytes, what: str) -> None:
    good = JSONFormat().write(event(1))
    body = b"[" + good + b"," + bad[1:] if bad.startswith(b"[") else bad  # a valid event rides along
    response = harness.client.post("/v1/events", content=body, headers={**psa, "Content-Type": BATCH})
    assert response.status_code == 400, what
    error = response.json()["error"]
    assert error["code"] and len(error["message"]) > 10, what
    assert harness.count("SELECT count() FROM events") == 0
    assert harness.count("SELECT count() FROM ingest_batches") == 0


def test_wrong_content_type_is_415(harness: Harness, psa: dict[str, str]) -> None:
    response = harness.client.post("/v1/events", content=b"<xml/>", headers={**psa, "Content-Type": "text/xml"})
    assert response.status_code == 415 and "ce-" in response.json()["error"]["message"]


def test_schema_violation_is_quarantined_and_reported(harness: Harness, psa: dict[str, str]) -> None:
    broken = event(2, data={"timesheet_id": "TS-2", "hours": "many"})
    response = harness.client.post("/v1/events", content=batch(event(1), broken),
                                   headers={**psa, "Content-Type": BATCH})
    body = response.json()
    assert response.status_code == 200 and (body["accepted"], body["quarantined"]) == (1, 1)
    assert "ev-2" in body["messages"][0]
    harness.flush()
    (reason, payload), = harness.store.query("SELECT reason, payload FROM quarantine WHERE item_id = 'ev-2'")
    assert "hours" in reason or "person_id" in reason
    assert json.loads(payload)["id"] == "ev-2"
    assert harness.count("SELECT count() FROM events FINAL") == 1


def test_a_number_beyond_any_float_is_quarantined_not_a_500(harness: Harness, psa: dict[str, str]) -> None:
    # 1e999 is valid JSON but no parser can hold it: the event is quarantined, its batch stored
    broken = event(2, data={"timesheet_id": "TS-2", "hours": 777777})
    body = batch(event(1), broken).replace(b"777777", b"1e999")
    assert b"1e999" in body
    response = harness.client.post("/v1/events", content=body, headers={**psa, "Content-Type": BATCH})
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["quarantined"]) == (1, 1)
    harness.flush()
    (reason,), = harness.store.query("SELECT reason FROM quarantine WHERE item_id = 'ev-2'")
    assert "out of range" in reason
    assert harness.count("SELECT count() FROM events FINAL") == 1
    single = JSONFormat().write(event(3, data={"timesheet_id": "TS-3", "hours": 777777})).replace(b"777777", b"1e999")
    one = harness.client.post("/v1/events", content=single,
                              headers={**psa, "Content-Type": "application/cloudevents+json"})
    assert one.status_code == 200 and one.json()["quarantined"] == 1, one.text


def test_large_gzip_batch_takes_the_arrow_path(harness: Harness, psa: dict[str, str]) -> None:
    body = gzip.compress(batch(*(event(i) for i in range(1000))))
    response = harness.client.post("/v1/events", content=body,
                                   headers={**psa, "Content-Type": BATCH, "Content-Encoding": "gzip"})
    assert response.json()["accepted"] == 1000
    assert harness.count("SELECT count() FROM events FINAL") == 1000


def _decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("decode")]


def test_big_bodies_decode_off_the_loop_on_one_thread_that_stops_with_the_app(
        settings: Settings, store: Store) -> None:
    per_body = 9000
    bodies = [batch(*(event(per_body * b + i) for i in range(per_body))) for b in range(4)]
    assert min(map(len, bodies)) > THREAD_DECODE_BYTES
    usual = batch(*(event(10 * per_body + i) for i in range(1000)))
    assert len(usual) < THREAD_DECODE_BYTES
    bad = bodies[0][:-1] + b',{"specversion": "1.0"]'  # broken JSON after megabytes of good events
    app = create_app(settings, store=store)
    with TestClient(app) as client:
        harness = Harness(client, app, store)
        headers = {**harness.auth(harness.key("psa", "events")), "Content-Type": BATCH}
        assert client.post("/v1/events", content=usual, headers=headers).json()["accepted"] == 1000
        assert _decode_threads() == []  # a batch of 1,000 decodes on the event loop
        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda body: client.post("/v1/events", content=body, headers=headers),
                                    [*bodies, bad]))
        assert [a.json()["accepted"] for a in answers[:4]] == [per_body] * 4
        assert answers[4].status_code == 400 and "JSON" in answers[4].json()["error"]["message"]
        assert harness.count("SELECT count() FROM events FINAL") == 4 * per_body + 1000
        assert len(_decode_threads()) == 1
    assert _decode_threads() == []  # it ends when the app shuts down


def test_records_latest_version_wins_whatever_the_arrival_order(harness: Harness, psa: dict[str, str]) -> None:
    versions = [3, 1, 5, 2, 4]
    for v in versions:
        ndjson = json.dumps({"key": "P-17", "version": v, "fields": {"budget": v * 1000, "status": f"s{v}"}})
        response = harness.client.post("/v1/records/psa/project", content=ndjson + "\n",
                                       headers={**psa, "Content-Type": "application/x-ndjson"})
        assert response.status_code == 200 and response.json()["accepted"] == 1
    array = [{"key": f"Q-{i}", "updated_at": "2026-11-20T10:00:00Z", "fields": {"budget": i}} for i in range(300)]
    assert harness.client.post("/v1/records/psa/project", json=array, headers=psa).json()["accepted"] == 300
    harness.flush()
    assert harness.store.query("SELECT version, fields['budget'], fields['status'] FROM records FINAL "
                               "WHERE key = 'P-17'") == [(5, "5000", "s5")]
    assert harness.count("SELECT count() FROM records FINAL") == 301


def test_versions_of_one_record_in_one_request_leave_the_latest(harness: Harness, psa: dict[str, str]) -> None:
    """Inserts do not collapse a block (optimize_on_insert=0): FINAL must still see one record."""
    body = "".join(json.dumps({"key": "P-9", "version": v, "fields": {"budget": v}}) + "\n" for v in (2, 7, 1, 5))
    response = harness.client.post("/v1/records/psa/project", content=body,
                                   headers={**psa, "Content-Type": "application/x-ndjson"})
    assert response.status_code == 200 and response.json()["accepted"] == 4
    assert harness.count("SELECT count() FROM records FINAL WHERE key = 'P-9'") == 1
    assert harness.store.query("SELECT version, fields['budget'] FROM records FINAL WHERE key = 'P-9'") == [(7, "7")]


@pytest.mark.parametrize(("body", "content_type", "fragment"), [
    (b'[{"version": 1}]', "application/json", "key"),
    (b'[{"key": "P-1"}]', "application/json", "version"),
    (b'{"key": "P-1", "version": 1}\n{"key": ', "application/x-ndjson", "line 2"),
    (b'[{"key": "P-1", "version": -1}]', "application/json", "version"),
])
def test_bad_records_name_the_item_and_field(harness: Harness, psa: dict[str, str], body: bytes,
                                             content_type: str, fragment: str) -> None:
    response = harness.client.post("/v1/records/psa/project", content=body,
                                    headers={**psa, "Content-Type": content_type})
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    assert harness.count("SELECT count() FROM records") == 0
