"""Body limits and content encodings, on their own and through the app."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from collector.errors import IngestHTTPError
from collector.http_body import decompress
from tests.conftest import Harness


def test_gzip_and_deflate_round_trip() -> None:
    assert decompress(gzip.compress(b"hello"), "gzip", 100) == b"hello"
    assert decompress(zlib.compress(b"hello"), "deflate", 100) == b"hello"
    assert decompress(b"hello", "identity", 100) == b"hello"


def test_every_gzip_member_is_part_of_the_body() -> None:
    # `cat a.gz b.gz` is one valid gzip file (RFC 1952 2.2); keeping only the first member dropped rows
    assert decompress(gzip.compress(b"one\n") + gzip.compress(b"two\n"), "gzip", 100) == b"one\ntwo\n"
    assert decompress(gzip.compress(b"one") + b"\0" * 8, "gzip", 100) == b"one"  # zero padding
    with pytest.raises(IngestHTTPError) as info:  # the bomb limit spans the members
        decompress(gzip.compress(b"x" * 60) + gzip.compress(b"y" * 60), "gzip", 100)
    assert info.value.status == 413


def test_decompression_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # ~50 KB on the wire, 50 MB inflated
    with pytest.raises(IngestHTTPError) as info:
        decompress(bomb, "gzip", 1_000_000)
    assert info.value.status == 413 and "decompressed" in info.value.message


@pytest.mark.parametrize(("body", "encoding", "status", "code"), [
    (b"not gzip at all", "gzip", 400, "bad_encoding"),
    (gzip.compress(b"x" * 1000)[:-12], "gzip", 400, "bad_encoding"),
    (b"x", "br", 415, "unsupported_encoding"),
    (gzip.compress(b"x") + b"garbage", "gzip", 400, "bad_encoding"),
    (gzip.compress(b"x") + gzip.compress(b"y")[:-12], "gzip", 400, "bad_encoding"),
    (zlib.compress(b"x") + zlib.compress(b"y"), "deflate", 400, "bad_encoding"),
])
def test_bad_encodings(body: bytes, encoding: str, status: int, code: str) -> None:
    with pytest.raises(IngestHTTPError) as info:
        decompress(body, encoding, 1000)
    assert (info.value.status, info.value.code) == (status, code)


def test_oversized_and_bomb_bodies_through_the_app(harness: Harness) -> None:
    harness.app.state.settings.max_body_bytes = 100_000
    headers = {**harness.auth(harness.key("crm", "events")), "Content-Type": "application/cloudevents-batch+json"}
    big = json.dumps([{"specversion": "1.0", "id": str(i), "source": "/crm/x", "type": "t", "data": "y" * 100}
                      for i in range(2000)]).encode()
    response = harness.client.post("/v1/events", content=big, headers=headers)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    response = harness.client.post("/v1/events", content=bomb, headers={**headers, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    small = gzip.compress(json.dumps([{"specversion": "1.0", "id": "g1", "source": "/crm/x",
                                       "type": "crm.account.created",
                                       "data": {"account_id": "A", "name": "n", "region": "EMEA"}}]).encode())
    ok = harness.client.post("/v1/events", content=small, headers={**headers, "Content-Encoding": "gzip"})
    assert ok.status_code == 200, ok.text
    assert harness.count("SELECT count() FROM events FINAL") == 1
