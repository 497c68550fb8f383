"""A real HTTP endpoint on 127.0.0.1 that records what it receives: the replay target of the tests.

It answers each POST with the next status of `statuses` (then `default`), and can hold a request
until the test releases it (to show the API keeps serving while a delivery waits).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    default: int = 202
    hold: threading.Event | None = None  # when set by the test, held requests are answered
    arrived: threading.Event = field(default_factory=threading.Event)

    def next_status(self) -> int:
        return self.statuses.pop(0) if self.statuses else self.default


@contextmanager
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    got = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    server.receiver = got  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        if got.hold is not None:
            got.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # http.server calls do_<METHOD>
        got: Receiver = self.server.receiver  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        got.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw)))
        got.arrived.set()
        if got.hold is not None:
            got.hold.wait(30)
        status = got.next_status()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}' if status < 400 else b'{"error": "receiver says no"}')

    def log_message(self, *_: Any) -> None:  # keep test output quiet
        pass
