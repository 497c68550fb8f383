"""HTTP-facing ingest errors. Only routes and handlers turn these into responses."""

from __future__ import annotations


class IngestHTTPError(Exception):
    """A request refused with a 4xx/5xx status; `code` is short and machine-readable."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}
