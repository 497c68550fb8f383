"""Record snapshots: JSON array and NDJSON, field texts, versions, errors naming record and field,
and a round trip where the latest version wins on chDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from collector.decode_records import decode_records
from collector.decoded import DecodeContext, Decoded, DecodeError, UnsupportedMediaType, as_arrow
from syncwatch.model import RECORDS, RECORDS_SCHEMA
from syncwatch.store import Store

RECEIVED = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CTX = DecodeContext(system="erp", key_id="k-erp", source_prefixes=(), received_at=RECEIVED, batch_id="b-1")


def decode(body: bytes | list[Any], content_type: str = "application/json", system: str = "erp",
           entity: str = "project", ctx: DecodeContext = CTX) -> Decoded:
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return decode_records(body, content_type, system, entity, ctx)


def ndjson(*items: Any) -> bytes:
    return b"\n".join(json.dumps(i).encode() for i in items) + b"\n"


def rows(decoded: Decoded) -> list[dict[str, Any]]:
    return decoded.tables[RECORDS].to_pylist() if RECORDS in decoded.tables else []


def test_json_array() -> None:
    decoded = decode([
        {"key": "P-17", "version": 42, "updated_at": "2024-05-01T12:00:00+02:00", "traceparent": TRACEPARENT,
         "fields": {"name": "Apollo", "budget": 120000.5, "hours": 12, "active": True, "closed": False,
                    "manager": None, "tags": ["a", "b"], "address": {"city": "Köln"}}},
        {"key": "P-18", "version": 0, "deleted": True},
    ])
    assert decoded.accepted == 2 and as_arrow(RECORDS, decoded.tables[RECORDS]).schema == RECORDS_SCHEMA
    first, second = rows(decoded)
    assert (first["system"], first["entity"], first["key"], first["version"]) == ("erp", "project", "P-17", 42)
    assert first["updated_at"] == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert first["received_at"] == RECEIVED and first["deleted"] == 0
    assert (first["trace_id"], first["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert dict(first["fields"]) == {"name": "Apollo", "budget": "120000.5", "hours": "12", "active": "true",
                                     "closed": "false", "tags": '["a","b"]', "address": '{"city":"Köln"}'}
    assert (second["deleted"], second["updated_at"], dict(second["fields"])) == (1, RECEIVED, {})
    assert (second["trace_id"], second["span_id"]) == ("", "")


def test_ndjson_with_blank_lines_and_crlf() -> None:
    body = b'{"key": "a", "version": 1}\r\n\n  \n{"key": "b", "version": 2}'
    assert [r["key"] for r in rows(decode(body, "application/x-ndjson; charset=utf-8"))] == ["a", "b"]


def test_empty_bodies() -> None:
    assert decode([]).accepted == 0
    assert decode(b"", "application/x-ndjson").accepted == 0


def test_version_from_updated_at_in_epoch_microseconds() -> None:
    [row] = rows(decode([{"key": "a", "updated_at": "2024-05-01T12:00:00.123456Z"}]))
    assert row["version"] == 1714564800123456
    assert row["updated_at"] == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_number_texts() -> None:
    body = b'[{"key": "a", "version": 1, "fields": {"x": 1.50, "y": 1e3, "z": -0, "big": 12345678901234567890}}]'
    [row] = rows(decode(body))
    assert dict(row["fields"]) == {"x": "1.5", "y": "1000.0", "z": "0", "big": "12345678901234567890"}


@pytest.mark.parametrize(("system", "entity", "fragment"), [
    ("ERP", "project", "system 'ERP'"),
    ("erp", "pro ject", "entity 'pro ject'"),
    ("erp", "x" * 65, "entity"),
    ("", "project", "system ''"),
])
def test_path_segments_are_validated(system: str, entity: str, fragment: str) -> None:
    with pytest.raises(DecodeError, match=fragment) as info:
        decode([], system=system, entity=entity)
    assert info.value.code == "invalid_path"


def test_path_segments_allow_dots_dashes_underscores() -> None:
    assert decode([{"key": "a", "version": 1}], system="sap-s4.eu_1", entity="cost_rate").accepted == 1


@pytest.mark.parametrize("content_type", ["text/csv", "", "application/cloudevents+json"])
def test_unsupported_media_types(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        decode([], content_type)


BAD_ARRAYS: list[tuple[str, bytes, str, list[str]]] = [
    ("malformed", b'[{"key": "a", "version": 1}, {"key": "b", "version": }]', "malformed_json", ["record[1]"]),
    ("not an array", b'{"key": "a", "version": 1}', "invalid_attribute", ["body"]),
    ("non-object item", b'[{"key": "a", "version": 1}, "b"]', "invalid_attribute", ["record[1]", "object"]),
    ("missing key", b'[{"key": "a", "version": 1}, {"version": 1}]', "invalid_attribute", ["record[1]", "key"]),
    ("empty key", b'[{"key": "", "version": 1}]', "invalid_attribute", ["record[0].key"]),
    ("key not a string", b'[{"key": 7, "version": 1}]', "invalid_attribute", ["record[0].key"]),
    ("no version", b'[{"key": "a", "fields": {}}]', "missing_field", ["record[0]", "version", "updated_at"]),
    ("negative version", b'[{"key": "a", "version": -1}]', "invalid_attribute", ["record[0].version"]),
    ("float version", b'[{"key": "a", "version": 1.5}]', "invalid_attribute", ["record[0].version"]),
    ("bad updated_at", b'[{"key": "a", "updated_at": "May 1st"}]', "invalid_attribute", ["record[0].updated_at"]),
    ("naive updated_at", b'[{"key": "a", "updated_at": "2024-05-01T12:00:00"}]', "invalid_time",
     ["record[0].updated_at", "offset"]),
    ("updated_at before 1970", b'[{"key": "a", "updated_at": "1969-12-31T23:59:59Z"}]', "invalid_time",
     ["record[0].updated_at", "version"]),
    ("fields not an object", b'[{"key": "a", "version": 1, "fields": [1]}]', "invalid_attribute",
     ["record[0].fields"]),
    ("deleted not a bool", b'[{"key": "a", "version": 1, "deleted": "yes"}]', "invalid_attribute",
     ["record[0].deleted"]),
    ("unknown member", b'[{"key": "a", "version": 1, "field": {}}]', "invalid_attribute", ["record[0]", "field"]),
    ("bad traceparent", b'[{"key": "a", "version": 1, "traceparent": "nope"}]', "invalid_traceparent",
     ["record[0].traceparent"]),
    ("invalid utf-8", b'[{"key": "a", "version": 1}, {"key": "\xff", "version": 1}]', "invalid_utf8",
     ["record[1]", "UTF-8"]),
    ("deep field", b'[{"key": "a", "version": 1, "fields": {"x": ' + b"[" * 70 + b"]" * 70 + b"}}]", "too_deep",
     ["record[0].fields.x"]),
    ("very deep", b'[{"key": "a", "version": 1, "fields": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}]",
     "too_deep", ["nested"]),
]


@pytest.mark.parametrize(("body", "code", "fragments"), [c[1:] for c in BAD_ARRAYS], ids=[c[0] for c in BAD_ARRAYS])
def test_bad_arrays_are_refused_naming_record_and_field(body: bytes, code: str, fragments: list[str]) -> None:
    with pytest.raises(DecodeError) as info:
        decode(body)
    assert info.value.code == code
    for fragment in fragments:
        assert fragment in info.value.message


@pytest.mark.parametrize(("body", "fragments"), [
    (ndjson({"key": "a", "version": 1}, {"key": "b"}), ["line 2: record: needs 'version'"]),
    (b'{"key": "a", "version": 1}\n\n{"key": "b", "version": 2,}\n', ["line 3: record (column 27): JSON is malformed"]),
    (ndjson({"key": "a", "version": 1}, {"key": "b", "version": "2"}), ["line 2: record.version"]),
    (ndjson({"key": "a", "version": 1}, [1]), ["line 2: record: Expected 'object', got 'array'"]),
    (ndjson({"key": "a", "version": 1, "fields": {"f": {"g": 1}}, "traceparent": "x"}), ["line 1: record.traceparent"]),
])
def test_bad_ndjson_is_refused_naming_the_line(body: bytes, fragments: list[str]) -> None:
    with pytest.raises(DecodeError) as info:
        decode(body, "application/x-ndjson")
    for fragment in fragments:
        assert fragment in info.value.message


def test_latest_version_wins_on_chdb(store: Store) -> None:
    first = decode([{"key": "P-1", "version": 2, "fields": {"budget": 200}},
                    {"key": "P-2", "updated_at": "2024-05-01T00:00:00Z", "fields": {"budget": 1}}])
    second = decode(ndjson({"key": "P-1", "version": 1, "fields": {"budget": 100}},
                           {"key": "P-2", "updated_at": "2024-05-02T00:00:00Z", "fields": {"budget": 2},
                            "deleted": True}), "application/x-ndjson")
    for decoded in (first, second):
        store.insert_arrow(RECORDS, as_arrow(RECORDS, decoded.tables[RECORDS]))
    result = store.query("SELECT key, fields['budget'], deleted FROM records FINAL ORDER BY key")
    assert [tuple(r) for r in result] == [("P-1", "200", 0), ("P-2", "2", 1)]
