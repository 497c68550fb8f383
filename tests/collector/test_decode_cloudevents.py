"""CloudEvents decoding: the three HTTP content modes built with the real SDK, every class of bad
input refused whole with a message naming item and field, quarantine, source checks, business keys,
and a round trip through the events table on chDB."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.decode_cloudevents import BATCH, STRUCTURED, decode_events, json_depth
from collector.decoded import (
    SMALL_BATCH_ROWS,
    DecodeContext,
    Decoded,
    DecodeError,
    Rows,
    SourceNotAllowed,
    UnsupportedMediaType,
    as_arrow,
)
from collector.event_columns import _data_array, _data_texts
from collector.event_registry import EventRegistry
from syncwatch.model import EVENTS, EVENTS_SCHEMA, QUARANTINE
from syncwatch.store import Store

RULES = Path(__file__).resolve().parents[2] / "rules"
RECEIVED = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TIMESHEET = {"timesheet_id": "TS-9", "person_id": "E-1", "project_id": "P-17", "period_start": "2024-04-29",
             "period_end": "2024-05-05", "hours": 38.5, "approved_at": "2024-05-06T09:00:00Z",
             "entry_ids": ["T-1", "T-2"], "region": "emea", "legal_entity": "ACME-DE"}


@pytest.fixture(scope="module")
def registry() -> EventRegistry:
    return EventRegistry.load(RULES)


def context(prefixes: tuple[str, ...] = ("/psa/",), max_depth: int = 64) -> DecodeContext:
    return DecodeContext(system="psa", key_id="k-psa", source_prefixes=prefixes, received_at=RECEIVED,
                         batch_id="b-1", max_depth=max_depth)


def event(i: int = 0, type_: str = "psa.timesheet.approved", data: Any = None, **attrs: Any) -> CloudEvent:
    attributes = {"type": type_, "source": "/psa/acme", "id": f"ev-{i}", "datacontenttype": "application/json",
                  "time": datetime(2024, 5, 6, 9, i // 60 % 60, i % 60, tzinfo=UTC), "traceparent": TRACEPARENT,
                  **attrs}
    return CloudEvent(attributes=attributes, data=TIMESHEET if data is None else data)


def batch_body(*events: CloudEvent) -> bytes:
    """The JSON batch format (an array of structured events); the 2.x SDK has no batch writer."""
    return b"[" + b",".join(JSONFormat().write(e) for e in events) + b"]"


def raw_batch(*items: Any) -> bytes:
    return json.dumps(list(items)).encode()


def valid(i: int = 0, **overrides: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"ev-{i}", "source": "/psa/acme", "type": "acme.thing.happened",
            "data": {"n": i}, **overrides}


def decode(body: bytes, content_type: str = BATCH, registry: EventRegistry | None = None,
           headers: dict[str, str] | None = None, ctx: DecodeContext | None = None) -> Decoded:
    return decode_events(body, content_type, headers or {}, ctx or context(), registry or EventRegistry())


def rows(decoded: Decoded, table: str = EVENTS) -> list[dict[str, Any]]:
    return decoded.tables[table].to_pylist() if table in decoded.tables else []


# --- the three content modes ------------------------------------------------------------------------------

def test_structured_mode(registry: EventRegistry) -> None:
    message = to_structured_event(event(tenant="acme", partitionkey="P-17"))
    decoded = decode(message.body, message.headers["content-type"], registry)
    assert (decoded.accepted, decoded.quarantined) == (1, 0)
    assert as_arrow(EVENTS, decoded.tables[EVENTS]).schema == EVENTS_SCHEMA
    [row] = rows(decoded)
    assert row["type"] == "psa.timesheet.approved" and row["source"] == "/psa/acme" and row["id"] == "ev-0"
    assert row["system"] == "psa" and row["specversion"] == "1.0" and row["received_at"] == RECEIVED
    assert row["time"] == datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
    assert (row["trace_id"], row["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert json.loads(row["data"]) == TIMESHEET
    assert dict(row["extensions"]) == {"tenant": "acme", "partitionkey": "P-17"}
    assert dict(row["keys"]) == {"timesheet_id": "TS-9", "project_id": "P-17", "person_id": "E-1",
                                 "time_entry_ids": '["T-1","T-2"]', "region": "emea", "legal_entity": "ACME-DE"}


def test_binary_mode(registry: EventRegistry) -> None:
    message = to_binary_event(event(subject="TS-9", tenant="acme"))
    decoded = decode(message.body, message.headers["content-type"], registry, headers=message.headers)
    [row] = rows(decoded)
    assert row["id"] == "ev-0" and row["subject"] == "TS-9" and row["datacontenttype"] == "application/json"
    assert row["time"] == datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
    assert row["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert json.loads(row["data"]) == TIMESHEET
    assert dict(row["extensions"]) == {"tenant": "acme"}
    assert dict(row["keys"])["timesheet_id"] == "TS-9"


def test_binary_mode_percent_decodes_headers_and_reads_mixed_case_names() -> None:
    headers = {"CE-SpecVersion": "1.0", "Ce-Id": "ev-1", "ce-source": "/psa/a%20b", "ce-type": "acme.thing.happened",
               "ce-subject": "%C3%A9t%C3%A9", "ce-time": "2024-05-06T11:00:00%2B02:00"}
    [row] = rows(decode(b'{"n": 1}', "application/json; charset=utf-8", headers=headers))
    assert row["source"] == "/psa/a b" and row["subject"] == "été"
    assert row["time"] == datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
    assert row["datacontenttype"] == "application/json; charset=utf-8"


def test_batch_mode(registry: EventRegistry) -> None:
    decoded = decode(batch_body(*(event(i) for i in range(3))), BATCH, registry)
    assert decoded.accepted == 3
    assert [r["id"] for r in rows(decoded)] == ["ev-0", "ev-1", "ev-2"]


def test_empty_batch_is_fine() -> None:
    decoded = decode(b"[]")
    assert (decoded.accepted, decoded.quarantined, decoded.tables) == (0, 0, {})


def test_content_type_parameters_and_case() -> None:
    body = json.dumps(valid()).encode()
    assert decode(body, "Application/CloudEvents+JSON; charset=UTF-8").accepted == 1


@pytest.mark.parametrize(("content_type", "headers", "expected"), [
    ("application/cloudevents+json; charset=latin-1", {}, "charset"),
    ("application/cloudevents+avro", {}, "event format"),
    ("application/cloudevents-batch+protobuf", {}, "event format"),
    ("application/json", {}, "without ce-* headers"),
    ("", {}, "without ce-* headers"),
])
def test_unsupported_media_types(content_type: str, headers: dict[str, str], expected: str) -> None:
    with pytest.raises(UnsupportedMediaType, match=re.escape(expected)):
        decode(b"{}", content_type, headers=headers)


def test_time_defaults_to_received_at_and_offsets_become_utc() -> None:
    body = raw_batch(valid(0), valid(1, time="2024-05-06T11:30:00.5+02:00"), valid(2, time="2024-05-06t09:30:00z"))
    times = [r["time"] for r in rows(decode(body))]
    assert times == [RECEIVED, datetime(2024, 5, 6, 9, 30, 0, 500000, tzinfo=UTC),
                     datetime(2024, 5, 6, 9, 30, tzinfo=UTC)]


def test_optional_attributes_and_extension_value_types() -> None:
    body = raw_batch(valid(0, subject="S", dataschema="https://schemas.acme/x.json", priority=3, urgent=True,
                           gone=None, traceparent=TRACEPARENT.upper()))
    [row] = rows(decode(body))
    assert (row["subject"], row["dataschema"]) == ("S", "https://schemas.acme/x.json")
    assert dict(row["extensions"]) == {"priority": "3", "urgent": "true"}
    assert row["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"  # uppercase hex forgiven, stored lowercase


def test_data_forms() -> None:
    body = raw_batch(
        valid(0, data=[1, {"a": "b"}]),
        valid(1, datacontenttype="text/plain", data="hello"),
        valid(2, data_base64="eyJuIjogMn0=", data=None),  # {"n": 2}, JSON by default
        valid(3, datacontenttype="application/octet-stream", data_base64="/wA=", data=None),
        valid(4, data=None),
        {k: v for k, v in valid(5).items() if k != "data"},
        valid(6, datacontenttype="text/plain", data_base64="aMOpbGxv", data=None),
    )
    got = rows(decode(body))
    assert [r["data"] for r in got] == ['[1, {"a": "b"}]', "hello", '{"n": 2}', "/wA=", "", "", "héllo"]
    assert dict(got[3]["extensions"]) == {"data_base64": "true"}


def test_unregistered_type_is_accepted_without_keys(registry: EventRegistry) -> None:
    [row] = rows(decode(raw_batch(valid()), registry=registry))
    assert dict(row["keys"]) == {}


# --- bad input: the whole request is refused, the message names item and field ----------------------------

BAD_BATCHES: list[tuple[str, bytes, str, list[str]]] = [
    ("malformed json", b'[' + json.dumps(valid(0)).encode() + b',{"id": "x",}]', "malformed_json", ["event[1]"]),
    ("truncated", json.dumps([valid(0), valid(1)]).encode()[:-30], "malformed_json", ["event[1]"]),
    ("not an array", json.dumps(valid()).encode(), "invalid_attribute", ["body", "array"]),
    ("non-object item", raw_batch(valid(0), 42), "invalid_attribute", ["event[1]", "object"]),
    ("missing source", raw_batch(valid(0), {k: v for k, v in valid(1).items() if k != "source"}),
     "invalid_attribute", ["event[1]", "source"]),
    ("null id", raw_batch(valid(0, id=None)), "invalid_attribute", ["event[0].id"]),
    ("empty type", raw_batch(valid(0), valid(1), valid(2, type="")), "invalid_attribute", ["event[2].type"]),
    ("wrong type", raw_batch(valid(0, id=17)), "invalid_attribute", ["event[0].id", "str"]),
    ("bad specversion", raw_batch(valid(0), valid(1, specversion="0.3")), "invalid_attribute",
     ["event[1].specversion", "0.3"]),
    ("bad time", raw_batch(valid(0, time="yesterday")), "invalid_attribute", ["event[0].time"]),
    ("naive time", raw_batch(valid(0, time="2024-05-06T09:00:00")), "invalid_time", ["event[0].time", "offset"]),
    ("time out of range", raw_batch(valid(0, time="1800-01-01T00:00:00Z")), "invalid_time", ["event[0].time"]),
    ("invalid utf-8", b'[{"specversion":"1.0","id":"a","source":"/psa/x","type":"a.b","subject":"\xff"}]',
     "invalid_utf8", ["event[0]", "UTF-8"]),
    ("invalid utf-8 in data", b'[{"specversion":"1.0","id":"a","source":"/psa/x","type":"a.b","data":{"k":"\xc3"}}]',
     "invalid_utf8", ["event[0].data"]),
    ("deep data", raw_batch(valid(0), valid(1, data=json.loads("[" * 70 + "]" * 70))), "too_deep",
     ["event[1].data", "70"]),
    ("invalid utf-8 in data in a big batch", raw_batch(*[valid(i) for i in range(SMALL_BATCH_ROWS)])[:-1]
     + b',{"specversion":"1.0","id":"z","source":"/psa/x","type":"a.b","data":{"k":"\xed\xa0\x80"}}]',
     "invalid_utf8", [f"event[{SMALL_BATCH_ROWS}].data"]),
    ("deep data in a big batch", raw_batch(*[valid(i) for i in range(SMALL_BATCH_ROWS)],
                                           valid(999, data=json.loads('{"a":' * 65 + "1" + "}" * 65))),
     "too_deep", [f"event[{SMALL_BATCH_ROWS}].data", "65"]),
    ("very deep", b'[{"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}]", "too_deep", ["nested"]),
    ("bad traceparent", raw_batch(valid(0, traceparent="00-abc-def-01")), "invalid_traceparent",
     ["event[0].traceparent"]),
    ("zero trace id", raw_batch(valid(0, traceparent="00-" + "0" * 32 + "-00f067aa0ba902b7-01")),
     "invalid_traceparent", ["event[0].traceparent"]),
    ("traceparent not a string", raw_batch(valid(0, traceparent=1)), "invalid_attribute", ["event[0].traceparent"]),
    ("traceparents shifted across events", raw_batch(valid(0, traceparent=TRACEPARENT[:-1]),
                                                      valid(1, traceparent="1" + TRACEPARENT)),
     "invalid_traceparent", ["event[0].traceparent"]),
    ("traceparents shifted in a big batch", raw_batch(*[valid(i, traceparent=TRACEPARENT)
                                                                   for i in range(SMALL_BATCH_ROWS + 9)],
                                                       valid(998, traceparent=TRACEPARENT[:-1]),
                                                       valid(999, traceparent="1" + TRACEPARENT)),
     "invalid_traceparent", [f"event[{SMALL_BATCH_ROWS + 9}].traceparent"]),
    ("a non-hex character in a big batch", raw_batch(*[valid(i, traceparent=TRACEPARENT)
                                                           for i in range(SMALL_BATCH_ROWS)],
                                               valid(999, traceparent=TRACEPARENT[:3] + "G" + TRACEPARENT[4:])),
     "invalid_traceparent", [f"event[{SMALL_BATCH_ROWS}].traceparent"]),
    ("bad base64", raw_batch(valid(0, data=None, data_base64="not base64!")), "invalid_data",
     ["event[0].data_base64"]),
    ("data and data_base64", raw_batch(valid(0, data_base64="e30=")), "invalid_data", ["event[0]", "both"]),
    ("bad extension name", raw_batch(valid(0, **{"Tenant": "x"})), "invalid_attribute", ["event[0].Tenant"]),
    ("extension object", raw_batch(valid(0, meta={"a": 1})), "invalid_attribute", ["event[0].meta", "an object"]),
    ("extension float", raw_batch(valid(0, weight=1.5)), "invalid_attribute", ["event[0].weight", "a number"]),
]


@pytest.mark.parametrize(("body", "code", "fragments"), [c[1:] for c in BAD_BATCHES], ids=[c[0] for c in BAD_BATCHES])
def test_bad_batches_are_refused_naming_item_and_field(body: bytes, code: str, fragments: list[str]) -> None:
    with pytest.raises(DecodeError) as info:
        decode(body)
    assert info.value.code == code
    for fragment in fragments:
        assert fragment in info.value.message


def test_structured_errors_name_the_field() -> None:
    with pytest.raises(DecodeError, match=r"^event\.specversion: '0\.3' is not supported"):
        decode(json.dumps(valid(specversion="0.3")).encode(), STRUCTURED)
    with pytest.raises(DecodeError, match=r"^event \(column 11\): Input data was truncated"):
        decode(b'{"id": "a"', STRUCTURED)


@pytest.mark.parametrize(("headers", "body", "fragment"), [
    ({"ce-specversion": "1.0", "ce-id": "a", "ce-source": "/psa/x"}, b"{}", "type"),
    ({"ce-specversion": "1.0", "ce-id": "a", "ce-source": "/psa/x", "ce-type": "a.b", "ce-time": "noon"}, b"{}",
     "header ce-time"),
    ({"ce-specversion": "1.0", "ce-id": "a", "ce-source": "/psa/x", "ce-type": "a.b"}, b'{"a": ', "body"),
    ({"ce-specversion": "1.0", "ce-id": "a", "ce-source": "/psa/x", "ce-type": "a.b", "ce-data": "x"}, b"{}",
     "header ce-data"),
    ({"ce-specversion": "1.0", "ce-id": "%FF", "ce-source": "/psa/x", "ce-type": "a.b"}, b"{}", "header ce-id"),
    ({"ce-specversion": "1.0", "ce-id": "a", "ce-source": "/psa/x", "ce-type": "a.b",
      "ce-traceparent": "01-zz"}, b"{}", "traceparent"),
])
def test_bad_binary_events_name_the_header(headers: dict[str, str], body: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(body, "application/json", headers=headers)
    assert fragment in info.value.message


# --- quarantine, sources, keys ------------------------------------------------------------------------------

def test_schema_violation_is_quarantined_and_the_rest_accepted(registry: EventRegistry) -> None:
    bad = event(1, data={**TIMESHEET, "hours": "seven"})
    decoded = decode(batch_body(event(0), bad, event(2)), BATCH, registry)
    assert (decoded.accepted, decoded.quarantined) == (2, 1)
    assert [r["id"] for r in rows(decoded)] == ["ev-0", "ev-2"]
    [q] = rows(decoded, QUARANTINE)
    assert (q["kind"], q["system"], q["source"], q["item_id"], q["type"], q["batch_id"]) == (
        "event", "psa", "/psa/acme", "ev-1", "psa.timesheet.approved", "b-1")
    assert q["reason"] == "data.hours must be number"
    payload = json.loads(q["payload"])
    assert payload["id"] == "ev-1" and payload["data"]["hours"] == "seven"
    assert decoded.messages == ["event 'ev-1' (type psa.timesheet.approved, source /psa/acme) quarantined: "
                                "data.hours must be number"]


def test_binary_schema_violation_is_quarantined(registry: EventRegistry) -> None:
    message = to_binary_event(event(data={"timesheet_id": "TS-1"}))
    decoded = decode(message.body, message.headers["content-type"], registry, headers=message.headers)
    assert (decoded.accepted, decoded.quarantined) == (0, 1)
    payload = json.loads(rows(decoded, QUARANTINE)[0]["payload"])
    assert payload["type"] == "psa.timesheet.approved" and json.loads(payload["data"]) == {"timesheet_id": "TS-1"}


def test_key_of_wrong_shape_is_quarantined_with_the_key_named() -> None:
    from collector.event_registry import TypeMapping
    reg = EventRegistry.from_parts({}, {"acme.thing.happened": TypeMapping({"project_id": "data.n"}, {})})
    decoded = decode(raw_batch(valid(0, data={"n": {"id": 1}})), registry=reg)
    assert decoded.quarantined == 1
    assert "project_id" in rows(decoded, QUARANTINE)[0]["reason"]


def test_messages_are_capped(registry: EventRegistry) -> None:
    body = batch_body(*(event(i, data={"timesheet_id": "x"}) for i in range(120)))
    decoded = decode(body, BATCH, registry)
    assert decoded.quarantined == 120 and len(decoded.messages) == 101
    assert decoded.messages[-1] == "... and 20 more quarantined"


def test_spoofed_source_refuses_the_whole_request() -> None:
    body = raw_batch(valid(0), valid(1, source="/erp/acme"))
    with pytest.raises(SourceNotAllowed, match=r"event\[1\]\.source: API key 'k-psa' may not .* source '/erp/acme'"):
        decode(body)
    message = to_binary_event(event(source="/erp/acme"))
    with pytest.raises(SourceNotAllowed):
        decode(message.body, "application/json", headers=message.headers)


def test_key_without_prefixes_may_send_any_source() -> None:
    assert decode(raw_batch(valid(0, source="/anything")), ctx=context(prefixes=())).accepted == 1


def test_invoice_covering_many_timesheets(registry: EventRegistry) -> None:
    invoice = {"invoice_id": "INV-1", "client_id": "A-1", "project_id": "P-17", "amount": 1500.0,
               "currency": "EUR", "issued_on": "2024-05-31", "service_line": "cloud",
               "lines": [{"timesheet_id": "TS-1", "amount": 1000}, {"timesheet_id": "TS-2", "amount": 500}]}
    body = batch_body(event(0, "billing.invoice.created", invoice))
    [row] = rows(decode(body, BATCH, registry))
    assert dict(row["keys"]) == {"invoice_id": "INV-1", "client_id": "A-1", "project_id": "P-17",
                                 "timesheet_ids": '["TS-1","TS-2"]', "service_line": "cloud"}


# --- a batch in the common form is taken a column at a time: the same result as event by event ---------------

@st.composite
def common_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events in the form collector.event_columns takes a column at a time (valid ones and some whose
    data breaks its schema or its key mapping)."""
    events = []
    for i in range(draw(st.integers(1, 8))):
        type_ = draw(st.sampled_from(["psa.timesheet.approved", "billing.invoice.created", "acme.thing.happened"]))
        data = draw(st.sampled_from([TIMESHEET, {**TIMESHEET, "hours": "seven"}, {**TIMESHEET, "entry_ids": []},
                                     {"timesheet_id": "TS-1"}, {"n": i}, [1, 2], {"invoice_id": "I", "lines": []}]))
        times = ["2024-05-06T11:30:00.5+02:00", "2299-12-30T13:00:00-05:00", "1900-01-02T00:00:00Z"]
        optional = draw(st.fixed_dictionaries({}, optional={
            "time": st.sampled_from(times),
            "subject": st.just("TS-1"), "datacontenttype": st.sampled_from(["application/json", "text/plain"]),
            "dataschema": st.just("https://schemas.acme/x.json")}))
        events.append(valid(i, type=type_, data=data, traceparent=f"00-{i + 1:032x}-{i + 1:016x}-01", **optional))
    return events


@given(common_events())
@settings(max_examples=200, deadline=None)
def test_a_batch_in_the_common_form_decodes_as_event_by_event(registry: EventRegistry,
                                                              events: list[dict[str, Any]]) -> None:
    # an uppercase traceparent is forgiven, but not in the common form: the batch goes event by event
    odd = valid(99, traceparent=TRACEPARENT.upper())
    for reg in (registry, EventRegistry()):
        plain, by_event = decode(raw_batch(*events), registry=reg), decode(raw_batch(*events, odd), registry=reg)
        assert rows(plain) == rows(by_event)[:-1]
        assert (rows(plain, QUARANTINE), plain.messages) == (rows(by_event, QUARANTINE), by_event.messages)


@given(common_events(), st.integers(SMALL_BATCH_ROWS, SMALL_BATCH_ROWS + 64))
@settings(max_examples=60, deadline=None)
def test_a_batch_that_becomes_a_table_decodes_as_event_by_event(registry: EventRegistry, events: list[dict[str, Any]],
                                                                 size: int) -> None:
    """Batches of SMALL_BATCH_ROWS or more become an Arrow table, with ids and times converted a column at
    a time; when quarantine leaves fewer rows than that, those columns become rows again."""
    batch = [{**events[i % len(events)], "id": f"ev-{i}", "traceparent": f"00-{i + 1:032x}-{i + 7:016x}-01"}
             for i in range(size)]
    odd = valid(size, traceparent=TRACEPARENT.upper())
    for reg in (registry, EventRegistry()):
        plain, by_event = decode(raw_batch(*batch), registry=reg), decode(raw_batch(*batch, odd), registry=reg)
        expected = as_arrow(EVENTS, by_event.tables[EVENTS])  # holds `odd` at least
        got = as_arrow(EVENTS, plain.tables[EVENTS]) if EVENTS in plain.tables else expected.slice(0, 0)
        assert got == expected.slice(0, expected.num_rows - 1)
        assert (rows(plain, QUARANTINE), plain.messages) == (rows(by_event, QUARANTINE), by_event.messages)


def test_a_mostly_quarantined_big_batch_stores_its_few_rows_as_event_by_event(registry: EventRegistry) -> None:
    events = [event(i, data={**TIMESHEET, "timesheet_id": f"TS-{i}", **({} if i % 3 == 0 else {"hours": "seven"})},
                    traceparent=f"00-{i + 1:032x}-{i + 1:016x}-01") for i in range(300)]
    plain = decode(batch_body(*events), registry=registry)
    by_event = decode(batch_body(*events, event(300, traceparent=TRACEPARENT.upper())), registry=registry)
    assert (plain.accepted, plain.quarantined) == (100, 200)
    assert isinstance(plain.tables[EVENTS], Rows)
    assert rows(plain)[:3] == rows(by_event)[:3] and rows(plain)[0]["trace_id"] == f"{1:032x}"
    assert rows(plain) == rows(by_event)[:-1]


def test_times_with_offsets_become_the_same_utc_instants_as_event_by_event() -> None:
    times = ["2024-05-06T11:30:00.5+02:00", "2299-12-30T13:00:00-05:00", "1900-01-02T00:00:00Z",
             "2024-02-29T23:59:59.999999+05:30", "2024-05-06T09:00:00.123-00:30", "2024-05-06T09:00:00z"]
    batch = [valid(i, time=times[i % len(times)]) for i in range(SMALL_BATCH_ROWS)]
    plain = decode(raw_batch(*batch))
    by_event = decode(raw_batch(*batch, valid(999, traceparent=TRACEPARENT.upper())))
    got = as_arrow(EVENTS, plain.tables[EVENTS]).column("time").to_pylist()
    assert got == as_arrow(EVENTS, by_event.tables[EVENTS]).column("time").to_pylist()[:-1]
    assert got[:3] == [datetime(2024, 5, 6, 9, 30, 0, 500000, tzinfo=UTC), datetime(2299, 12, 30, 18, tzinfo=UTC),
                       datetime(1900, 1, 2, tzinfo=UTC)]


def test_a_big_batch_in_the_common_form_decodes_as_event_by_event(registry: EventRegistry) -> None:
    events = [event(i, data={**TIMESHEET, "timesheet_id": f"TS-{i}", **({"hours": -1} if i % 97 == 0 else {})})
              for i in range(600)]
    plain = decode(batch_body(*events), registry=registry)
    by_event = decode(batch_body(*events, event(600, traceparent=TRACEPARENT.upper())), registry=registry)
    assert (plain.accepted, plain.quarantined) == (593, 7)
    table = as_arrow(EVENTS, by_event.tables[EVENTS])
    assert as_arrow(EVENTS, plain.tables[EVENTS]) == table.slice(0, table.num_rows - 1)
    assert (rows(plain, QUARANTINE), plain.messages) == (rows(by_event, QUARANTINE), by_event.messages)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6)
# malformed UTF-8 (a lone byte, a truncated sequence, an overlong form, a surrogate, past U+10FFFF) and well-formed
OCTETS = st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                          b"\xc3\xa9", b"\xef\xbf\xbf", b"\xf0\x9f\x98\x80"])


@st.composite
def data_documents(draw: st.DrawFn) -> bytes:
    """`data` as msgspec leaves it raw: JSON text (strings and null too), empty when absent, deep, or with
    bytes inside a string that may not be UTF-8 (msgspec skips raw values without decoding them)."""
    kind = draw(st.sampled_from(["json", "json", "absent", "deep", "octets"]))
    if kind == "absent":
        return b""
    if kind == "deep":  # objects in arrays, each level counted once
        objects, arrays = draw(st.integers(0, 5)), draw(st.integers(0, 5))
        return b"[" * arrays + b'{"a":' * objects + b"1" + b"}" * objects + b"]" * arrays
    if kind == "octets":
        return b'{"k":"a' + draw(OCTETS) + b'"}'
    return msgspec.json.encode(draw(JSON_VALUES))


@given(st.lists(data_documents(), min_size=1, max_size=12), st.integers(1, 8))
@settings(max_examples=1_000, deadline=None)
def test_data_checked_as_arrays_is_data_checked_as_texts(docs: list[bytes], limit: int) -> None:
    """A batch that becomes a table checks its data with array operations (_data_array), a small one text
    by text (_data_texts): the same verdict on every batch, and the same texts."""
    raws = [msgspec.Raw(doc) for doc in docs]
    texts, column = _data_texts(raws, limit), _data_array(raws, limit)
    assert (column is None) == (texts is None)
    assert column is None or column.to_pylist() == texts


def test_json_depth() -> None:
    assert json_depth(b'{"a": "[[[[", "b": [{"c": []}]}') == 4
    assert json_depth(b'"x"') == 0


def test_round_trip_through_chdb(store: Store, registry: EventRegistry) -> None:
    invoice = {"invoice_id": "INV-1", "client_id": "A-1", "amount": 10, "currency": "EUR",
               "issued_on": "2024-05-31", "lines": [{"timesheet_id": "TS-9", "amount": 5},
                                                    {"timesheet_id": "TS-2", "amount": 5}]}
    decoded = decode(batch_body(event(0), event(1, "billing.invoice.created", invoice),
                                event(2, data={"timesheet_id": "bad"})), BATCH, registry)
    for table, data in decoded.tables.items():
        store.insert_arrow(table, as_arrow(table, data))
    joined = store.query(
        "SELECT t.id, i.id FROM (SELECT id, keys['timesheet_id'] AS ts FROM events FINAL "
        "WHERE type = 'psa.timesheet.approved') AS t INNER JOIN (SELECT id, arrayJoin(JSONExtract("
        "keys['timesheet_ids'], 'Array(String)')) AS ts FROM events FINAL WHERE type = 'billing.invoice.created') "
        "AS i ON t.ts = i.ts")
    assert [tuple(r) for r in joined] == [("ev-0", "ev-1")]
    quarantined = store.query("SELECT item_id, reason FROM quarantine")
    assert [tuple(r) for r in quarantined] == [
        ("ev-2", "data must contain ['approved_at', 'hours', 'period_end', 'period_start', 'person_id', "
                 "'project_id'] properties")]
