"""Any sequence of duplicated and reordered deliveries of the same CloudEvents and record snapshots,
in any mode (structured, binary, batch; JSON array, NDJSON), leaves the same stored state as one
delivery of each in order: replay by a retrying client or a malicious one changes nothing."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Harness

EVENTS = 6
RECORDS = [("P-1", v) for v in (1, 2, 3)] + [("P-2", v) for v in (1, 4)] + [("P-3", 7)]
EVENT_STATE = ("SELECT type, source, id, system, specversion, time, subject, datacontenttype, dataschema, trace_id, "
               "span_id, toString(keys), data, toString(extensions) FROM events FINAL ORDER BY type, source, id")
RECORD_STATE = ("SELECT system, entity, key, version, updated_at, deleted, toString(fields), trace_id "
                "FROM records FINAL ORDER BY system, entity, key")


def cloud_event(i: int) -> CloudEvent:
    return CloudEvent(attributes={
        "type": "crm.account.created", "source": "/crm/app", "id": f"acct-{i}", "subject": f"A-{i}",
        "datacontenttype": "application/json", "time": datetime(2026, 11, 20, 9, i, tzinfo=UTC),
        "traceparent": f"00-{i + 1:032x}-{i + 1:016x}-01",
    }, data={"account_id": f"A-{i}", "name": f"Acme {i} 'quoted' ; --", "region": "EMEA"})


def record(key: str, version: int) -> dict[str, Any]:
    # A given (key, version) always carries the same fields: it is the same snapshot delivered again.
    # updated_at is given: without it the collector stamps the arrival time (documented), which a
    # redelivery rightly moves.
    return {"key": key, "version": version, "updated_at": f"2026-11-2{version % 10}T10:00:00Z", "deleted": version == 7,
            "fields": {"budget": str(version * 1000), "status": f"s{version}", "note": "ü'\";"}}


def deliver_events(h: Harness, headers: dict[str, str], ids: list[int], mode: str) -> None:
    events = [cloud_event(i) for i in ids]
    if mode == "batch":
        body = b"[" + b",".join(JSONFormat().write(e) for e in events) + b"]"
        sent = [(body, {"Content-Type": "application/cloudevents-batch+json"})]
    else:
        bind = to_structured_event if mode == "structured" else to_binary_event
        sent = []
        for e in events:
            message = bind(e, JSONFormat())
            sent.append((message.body, dict(message.headers)))
    for body, extra in sent:
        response = h.client.post("/v1/events", content=body, headers={**headers, **extra})
        assert response.status_code == 200, response.text


def deliver_records(h: Harness, headers: dict[str, str], items: list[tuple[str, int]], ndjson: bool) -> None:
    rows = [record(k, v) for k, v in items]
    if ndjson:
        body, content_type = "".join(json.dumps(r) + "\n" for r in rows), "application/x-ndjson"
    else:
        body, content_type = json.dumps(rows), "application/json"
    response = h.client.post("/v1/records/crm/account", content=body, headers={**headers, "Content-Type": content_type})
    assert response.status_code == 200, response.text


def state(h: Harness) -> tuple[list[Any], list[Any]]:
    h.flush()
    return h.store.query(EVENT_STATE), h.store.query(RECORD_STATE)


def reset(h: Harness) -> None:
    h.flush()
    h.store.command("TRUNCATE TABLE events")
    h.store.command("TRUNCATE TABLE records")


deliveries = st.lists(st.one_of(
    st.tuples(st.just("events"), st.lists(st.integers(0, EVENTS - 1), min_size=1, max_size=4),
              st.sampled_from(["structured", "binary", "batch"])),
    st.tuples(st.just("records"), st.lists(st.sampled_from(RECORDS), min_size=1, max_size=4), st.booleans()),
), min_size=1, max_size=8)


@settings(max_examples=12, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=deliveries, seed=st.integers(0, 10_000))
def test_duplicated_and_reordered_deliveries_leave_the_same_state(harness: Harness, plan: list[tuple], seed: int,
                                                                 ) -> None:
    headers = harness.auth(harness.key("crm", "events", "records"))
    sent_events = sorted({i for kind, items, _ in plan if kind == "events" for i in items})
    sent_records = sorted({r for kind, items, _ in plan if kind == "records" for r in items})
    reset(harness)
    if sent_events:
        deliver_events(harness, headers, sent_events, "batch")
    if sent_records:
        deliver_records(harness, headers, sent_records, ndjson=False)
    once = state(harness)
    reset(harness)
    shuffled = list(plan)
    random.Random(seed).shuffle(shuffled)
    for kind, items, how in shuffled:
        if kind == "events":
            deliver_events(harness, headers, items, how)
        else:
            deliver_records(harness, headers, items, how)
    assert state(harness) == once
    events, records = once
    assert len(events) == len(sent_events)
    latest = {k: max(v for kk, v in sent_records if kk == k) for k, _ in sent_records}
    assert [(r[2], r[3]) for r in records] == sorted(latest.items())
