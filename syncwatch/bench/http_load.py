"""A keep-alive HTTP/1.1 POST client on a plain socket: the load side of `bench ingest`'s batch scenarios.

Why not http.client: the load runs on the two cores of the collector it measures, so every
microsecond it spends is taken from the collector. http.client builds header objects and parses each
response with the email package; at batches of 1,000 events it used 0.62-0.65 us of CPU per event,
this client 0.28-0.38, and the collector's measured rate rose by 8% with it (decision 4, session 18).
It does what the benchmark needs and no more: POST with a body, responses framed by Content-Length,
the connection kept open unless the server closes it.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

RECV_BYTES = 65536


class HttpLoadError(Exception):
    """The server's answer could not be read as the HTTP/1.1 this client speaks."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class PostConnection:
    """One persistent connection; reconnects when the server has closed it."""

    def __init__(self, host: str, port: int, timeout: float = 60.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._buffer = bytearray()

    def post(self, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{lines}Content-Length: {len(body)}\r\n\r\n"
        for attempt in (1, 2):
            reused = self._sock is not None
            try:
                return self._exchange(head.encode("latin-1"), body)
            except (_ClosedBeforeAnswer, ConnectionResetError, BrokenPipeError) as exc:
                if reused and attempt == 1:
                    # A kept-alive connection the server had closed (its idle timeout) before this
                    # request: sent again once, on a new connection.
                    continue
                if isinstance(exc, _ClosedBeforeAnswer):
                    raise HttpLoadError(f"{self.host}:{self.port} closed the connection without answering") from None
                raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._buffer = None, bytearray()

    def _exchange(self, head: bytes, body: bytes) -> Answer:
        sock = self._sock or self._connect()
        try:
            _send_all(sock, [head, body])
            answer, close = self._read_answer(sock)
        except (_ClosedBeforeAnswer, HttpLoadError, OSError):
            self.close()
            raise
        if close:
            self.close()
        return answer

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        return sock

    def _read_answer(self, sock: socket.socket) -> tuple[Answer, bool]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._fill(sock, answered=bool(self._buffer))
        status, fields = parse_head(bytes(self._buffer[:end]))
        del self._buffer[:end + 4]
        if "transfer-encoding" in fields:
            raise HttpLoadError(f"Transfer-Encoding {fields['transfer-encoding']!r} is not supported: "
                                "this client reads bodies framed by Content-Length")
        close = fields.get("connection", "").lower() == "close"
        if "content-length" in fields:
            try:
                length = int(fields["content-length"])
            except ValueError:
                raise HttpLoadError(f"Content-Length {fields['content-length']!r} is not a number") from None
        elif close:
            length = -1  # the body runs to the end of the connection
        else:
            length = 0
        while length < 0 or len(self._buffer) < length:
            if not self._fill(sock, answered=True, eof_ok=length < 0):
                break
        body = bytes(self._buffer if length < 0 else self._buffer[:length])
        del self._buffer[:len(body)]
        return Answer(status, body), close

    def _fill(self, sock: socket.socket, answered: bool, eof_ok: bool = False) -> bool:
        data = sock.recv(RECV_BYTES)
        if data:
            self._buffer += data
            return True
        if eof_ok:
            return False
        if not answered:
            raise _ClosedBeforeAnswer
        raise HttpLoadError(f"{self.host}:{self.port} closed the connection in the middle of an answer")


class _ClosedBeforeAnswer(Exception):
    pass


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status code and the header fields (lower-case names) of a response head."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
        raise HttpLoadError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    fields = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise HttpLoadError(f"not a header field: {line[:80]!r}")
        fields[name.strip().lower()] = value.strip()
    return int(code), fields


def _send_all(sock: socket.socket, parts: list[bytes]) -> None:
    """sendall for several buffers in one system call where the kernel takes them all (no joined copy)."""
    views = [memoryview(p) for p in parts if p]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]
