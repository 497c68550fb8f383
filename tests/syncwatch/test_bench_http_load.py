"""bench.http_load, the ingest benchmark's keep-alive client: against the collector, and against
servers that close, frame or garble their answers in the ways a client has to survive or report."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest

from syncwatch.bench.http_load import HttpLoadError, PostConnection, parse_head
from syncwatch.bench.ingest import CE_BATCH, Scenario, _error_code, _pump, event_template, unique_events
from tests.conftest import LiveServer

Serve = Callable[[socket.socket, int], None]  # one accepted connection and its number


@pytest.fixture
def raw_server() -> Iterator[Callable[[Serve], int]]:
    """A loopback server running `serve` on each connection it accepts; yields a starter returning its port."""
    listeners: list[socket.socket] = []

    def start(serve: Serve) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def accept() -> None:
            number = 0
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    serve(conn, number)
                number += 1

        threading.Thread(target=accept, daemon=True).start()
        return listener.getsockname()[1]

    yield start
    for listener in listeners:
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    while len(body) < length:
        body += conn.recv(65536)
    return body


def test_batches_reach_the_collector_on_one_kept_alive_connection(live_server: LiveServer) -> None:
    port = int(live_server.base_url.rsplit(":", 1)[1])
    headers = {"Authorization": f"Bearer {live_server.key('psa', 'events')}", "Content-Type": CE_BATCH}
    template, make = event_template(50), unique_events("h")
    connection = PostConnection("127.0.0.1", port)
    try:
        answers = [connection.post("/v1/events", headers, make(template, 0, n)) for n in range(3)]
        refused = connection.post("/v1/events", headers, b"[{")
        after = connection.post("/v1/events", headers, make(template, 0, 3))
    finally:
        connection.close()
    assert [a.status for a in answers] == [200, 200, 200] and b'"accepted":50' in answers[0].body.replace(b" ", b"")
    assert refused.status == 400 and _error_code(refused.body) == "malformed_json"
    assert after.status == 200, "a refusal does not spoil the connection"
    live_server.flush()
    assert live_server.store.query("SELECT count() FROM events FINAL WHERE id LIKE 'h00%'")[0][0] == 200


def test_a_connection_the_server_closed_while_idle_is_opened_again(raw_server: Callable[[Serve], int]) -> None:
    def serve(conn: socket.socket, number: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        # then close, as a keep-alive timeout would: the client's next request meets a closed socket

    connection = PostConnection("127.0.0.1", raw_server(serve))
    try:
        assert [connection.post("/x", {}, b"body").body for _ in range(3)] == [b"ok", b"ok", b"ok"]
    finally:
        connection.close()


def test_a_retried_request_that_again_gets_no_answer_is_an_error(raw_server: Callable[[Serve], int]) -> None:
    def serve(conn: socket.socket, number: int) -> None:
        read_request(conn)
        if number == 0:  # the first connection answers once, then closes; every later one answers nothing
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    connection = PostConnection("127.0.0.1", raw_server(serve))
    assert connection.post("/x", {}, b"body").body == b"ok"
    with pytest.raises(HttpLoadError, match="closed the connection without answering"):
        connection.post("/x", {}, b"body")


def test_connection_close_without_a_length_reads_the_body_to_the_end(raw_server: Callable[[Serve], int]) -> None:
    def serve(conn: socket.socket, number: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nbusy, " + b"x" * 100_000)

    connection = PostConnection("127.0.0.1", raw_server(serve))
    answer = connection.post("/x", {}, b"body")
    assert answer.status == 503 and answer.body.startswith(b"busy, ") and len(answer.body) == 100_006


@pytest.mark.parametrize(("reply", "problem"), [
    (b"", "closed the connection without answering"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line: 'SSH-2.0-OpenSSH'"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "Transfer-Encoding 'chunked'"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", "Content-Length 'many' is not a number"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed the connection in the middle of an answer"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header field: 'no colon here'"),
])
def test_an_answer_it_cannot_read_is_an_error_naming_the_problem(
        raw_server: Callable[[Serve], int], reply: bytes, problem: str) -> None:
    def serve(conn: socket.socket, number: int) -> None:
        read_request(conn)
        conn.sendall(reply)

    connection = PostConnection("127.0.0.1", raw_server(serve))
    with pytest.raises(HttpLoadError, match=problem.replace("(", r"\(")):
        connection.post("/x", {}, b"body")


def test_a_large_body_arrives_whole(raw_server: Callable[[Serve], int]) -> None:
    received: list[bytes] = []

    def serve(conn: socket.socket, number: int) -> None:
        received.append(read_request(conn))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    body = bytes(range(256)) * 40_000  # 10 MB: more than one sendmsg takes
    assert PostConnection("127.0.0.1", raw_server(serve)).post("/x", {"A": "b"}, body).status == 200
    assert received == [body]


def test_a_head_is_split_into_status_and_lower_case_fields() -> None:
    assert parse_head(b"HTTP/1.1 429 Too Many\r\nRetry-After: 1\r\nContent-Length: 0") == (
        429, {"retry-after": "1", "content-length": "0"})


def test_a_client_that_gets_no_answer_counts_it_and_keeps_going(raw_server: Callable[[Serve], int]) -> None:
    def serve(conn: socket.socket, number: int) -> None:
        read_request(conn)
        if number % 2:  # every other connection is dropped unanswered
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    port = raw_server(serve)
    result = Scenario("drops")
    _pump(SimpleNamespace(port=port), "/x", {}, b"[@@@@@@@@@@]", 1, lambda t, n: t,  # type: ignore[arg-type]
          time.monotonic() + 1.0, result, threading.Lock())
    assert result.requests == result.items + result.refused and result.items > 0 and result.refused > 0
    assert list(result.refusals) == [f"0 no answer: 127.0.0.1:{port} closed the connection without answering"]
