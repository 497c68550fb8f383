"""A ClickHouse-HTTP-compatible test server backed by chDB: `python chdb_http_server.py PATH PORT`.

Just enough of the HTTP interface for clickhouse-connect (and so for Syncwatch's store in
server mode) to connect, migrate, insert and read, so a test can stop the "server" (its port then
refuses connections) and start it again on the same data. A test fixture, never a product.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import tempfile
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import chdb.session

# URL parameters that are not ClickHouse settings.
NOT_SETTINGS = {"query", "database", "query_id", "session_id", "session_timeout", "session_check", "default_format",
                "compress", "decompress", "enable_http_compression", "wait_end_of_query", "user", "password",
                "buffer_size", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
                "cancel_http_readonly_queries_on_client_close", "client_protocol_version"}
TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(.+?)\s+FORMAT\s+(\w+)\s*$", re.IGNORECASE | re.DOTALL)
INSERT_IN_BODY = re.compile(rb"^(\s*INSERT\s+INTO\s+.+?\s+FORMAT\s+\w+)[ \t]*\r?\n", re.IGNORECASE | re.DOTALL)
ERROR_CODE = re.compile(r"Code:\s*(\d+)")


class Engine:
    def __init__(self, path: str) -> None:
        self.session = chdb.session.Session(path)
        self.lock = threading.Lock()

    def run(self, sql: str, data: bytes, params: dict[str, str]) -> tuple[bytes, str]:
        settings = {k: v for k, v in params.items() if k not in NOT_SETTINGS and not k.startswith("param_")}
        bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        with self.lock:
            if params.get("database"):
                self.session.query(f"USE `{params['database']}`")
            if data:
                return self._insert(sql, data, settings), "TabSeparated"
            fmt_match = TRAILING_FORMAT.search(sql)
            fmt = fmt_match.group(1) if fmt_match else params.get("default_format", "TabSeparated")
            body = sql[: fmt_match.start()] if fmt_match else sql
            if settings and re.match(r"\s*(SELECT|WITH)\b", body, re.IGNORECASE):
                body += " SETTINGS " + ", ".join(f"{k} = {_literal(v)}" for k, v in settings.items())
            result = self.session.query(body, fmt, params=bound or None)
            return result.bytes(), fmt

    def _insert(self, sql: str, data: bytes, settings: dict[str, str]) -> bytes:
        match = INSERT.match(sql)
        if not match:
            raise RuntimeError("Code: 62. DB::Exception: the test server takes INSERT ... FORMAT <fmt> with a body")
        with tempfile.NamedTemporaryFile(suffix=".bin") as fh:
            fh.write(data)
            fh.flush()
            clause = (" SETTINGS " + ", ".join(f"{k} = {_literal(v)}" for k, v in settings.items())) if settings else ""
            self.session.query(f"INSERT INTO {match.group(1)} FROM INFILE '{fh.name}'{clause} FORMAT {match.group(2)}")
        return b""


def _split(body: bytes) -> tuple[str, bytes]:
    """The body holds the statement, or an INSERT's statement up to its FORMAT line and then its data."""
    match = INSERT_IN_BODY.match(body)
    if match:
        return match.group(1).decode(), body[match.end():]
    return body.decode(), b""


def _literal(value: str) -> str:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "lz4":
        import lz4.frame
        return lz4.frame.decompress(body)
    if encoding == "zstd":
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return body


class Handler(BaseHTTPRequestHandler):
    engine: Engine
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if urlsplit(self.path).path in ("/ping", "/"):
            self._answer(200, b"Ok.\n", {})
            return
        self._answer(404, b"not found", {})

    def do_POST(self) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        body = _decode(self._body(), self.headers.get("Content-Encoding", ""))
        sql, data = (params["query"], body) if "query" in params else _split(body)
        try:
            out, fmt = self.engine.run(sql, data, params)
        except Exception as exc:  # chDB's errors carry ClickHouse's own "Code: N. DB::Exception" text
            message = str(exc)
            code = ERROR_CODE.search(message)
            self._answer(500, message.encode(), {"X-ClickHouse-Exception-Code": code.group(1) if code else "1"})
            return
        self._answer(200, out, {"X-ClickHouse-Format": fmt, "X-ClickHouse-Timezone": "UTC",
                                "X-ClickHouse-Query-Id": params.get("query_id", ""),
                                "X-ClickHouse-Summary": json.dumps({"read_rows": "0", "written_rows": "0"})})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    path, port = sys.argv[1], int(sys.argv[2])
    Handler.engine = Engine(path)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
