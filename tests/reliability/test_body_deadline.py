"""A request whose body does not arrive in time is answered 408 and frees its ingest slot: slow or
silent senders cannot hold the collector's slots, nor leave an API request hanging."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from syncwatch.settings import Settings
from tests.collector.test_durability import CE_BATCH, event_batch
from tests.conftest import ADMIN_TOKEN, LiveServer

DEADLINE = 0.5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"body_timeout_seconds": DEADLINE, "max_inflight_requests": 2})


def _stalled(server: LiveServer, path: str, token: str, content_type: str = CE_BATCH) -> socket.socket:
    """A request that declares 1,000 bytes of body and sends two."""
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n[{{".encode())
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def _length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
    return next((int(line.split(":")[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0)


def test_a_stalled_ingest_body_is_408_and_frees_its_slot(live_server: LiveServer) -> None:
    token = live_server.key("crm", "events")
    stalled = [_stalled(live_server, "/v1/events", token) for _ in range(2)]  # every slot of the two
    time.sleep(0.1)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": CE_BATCH}
    shut_out = httpx.post(f"{live_server.base_url}/v1/events", content=event_batch("a", 1), headers=headers)
    assert shut_out.status_code == 429
    began = time.monotonic()
    for sock in stalled:
        status, body = _answer(sock)
        assert status == 408 and body["error"]["code"] == "body_timeout", body
        assert "did not arrive within 0.5 s" in body["error"]["message"]
        sock.close()
    assert time.monotonic() - began < 10
    assert live_server.app.state.inflight == 0
    ok = httpx.post(f"{live_server.base_url}/v1/events", content=event_batch("b", 3), headers=headers)
    assert ok.status_code == 200 and ok.json()["accepted"] == 3
    live_server.flush()
    assert live_server.store.query("SELECT count() FROM events FINAL")[0][0] == 3


def test_a_stalled_api_body_is_408_not_a_hang(live_server: LiveServer) -> None:
    sock = _stalled(live_server, "/api/v1/admin/query", ADMIN_TOKEN, "application/json")
    status, body = _answer(sock)
    sock.close()
    assert status == 408 and body["error"]["code"] == "body_timeout"


def test_a_slow_body_that_arrives_in_time_is_taken(live_server: LiveServer) -> None:
    token = live_server.key("crm", "events")
    body = event_batch("c", 2)
    host, port = live_server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Type: {CE_BATCH}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        for i in range(0, len(body), len(body) // 3 + 1):  # in pieces, well inside the deadline
            sock.sendall(body[i:i + len(body) // 3 + 1])
            time.sleep(0.05)
        status, answer = _answer(sock)
    assert status == 200 and answer["accepted"] == 2
