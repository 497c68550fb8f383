"""Security headers on every response, and CORS from an allow-list (default: no cross-origin access).

Pure ASGI like the ingest fast path (collector/fastpath.py): it only appends precomputed headers to
`http.response.start`, so the hot ingest routes pay a list concatenation, not a middleware stack.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON, CSV, Parquet and zip answers load nothing and may be framed by no one.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's /docs (Swagger UI) and /redoc load their bundles from jsDelivr and start them with an
# inline script; ReDoc also loads Google Fonts and runs a blob: worker; Swagger shows FastAPI's favicon.
DOCS_CSP = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net; "
    "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'"
)
DOCS_PATHS = ("/docs", "/redoc")
COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# What a browser client of the API may send cross-origin (CloudEvents binary mode's ce-* headers are
# for machines, which do not need CORS).
CORS_METHODS = ["GET", "POST", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", "Content-Encoding", "Idempotency-Key"]


def header_set(path: str, https: bool, hsts_max_age: int) -> list[tuple[bytes, bytes]]:
    """The headers added to a response for `path` (pure, so tests can read the policy directly)."""
    csp = DOCS_CSP if path.startswith(DOCS_PATHS) else API_CSP
    headers = [*COMMON, (b"content-security-policy", csp.encode())]
    if https and hsts_max_age > 0:
        # HSTS over plain http is ignored by browsers and would pin a dev install to https
        headers.append((b"strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains".encode()))
    return headers


class SecurityHeaders:
    def __init__(self, app: ASGIApp, hsts_max_age: int = 0) -> None:
        self.app = app
        self.hsts_max_age = hsts_max_age
        self._cache: dict[tuple[bool, bool], list[tuple[bytes, bytes]]] = {}

    def _headers(self, path: str, https: bool) -> list[tuple[bytes, bytes]]:
        docs = path.startswith(DOCS_PATHS)
        key = (docs, https)
        if key not in self._cache:
            self._cache[key] = header_set(DOCS_PATHS[0] if docs else "/", https, self.hsts_max_age)
        return self._cache[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers(scope["path"], scope.get("scheme") == "https")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(n, v) for n, v in extra if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def allowed_origins(setting: str) -> list[str]:
    """`SYNCWATCH_CORS_ALLOW_ORIGINS` as a list: comma-separated origins, empty for none."""
    origins = [o.strip().rstrip("/") for o in setting.split(",") if o.strip()]
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"SYNCWATCH_CORS_ALLOW_ORIGINS: {origin!r} is not an origin like https://host[:port]")
    return origins


def cors_options(origins: list[str]) -> dict[str, object]:
    """CORSMiddleware's options: credentials stay off (tokens travel in a header, not cookies)."""
    return {"allow_origins": origins, "allow_methods": CORS_METHODS, "allow_headers": CORS_HEADERS,
            "allow_credentials": False, "max_age": 600}
