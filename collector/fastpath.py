"""A thin ASGI front for the hot ingest routes.

FastAPI's routing, dependency solving and middleware layers cost more than everything else in a
one-event request (profiled: ~60% of the event loop's time at 3k requests/s). The CloudEvents and
records routes are simple enough to serve straight from the ASGI scope; the FastAPI routes stay
registered for the OpenAPI document and share the same handlers, so behaviour is identical.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from collector.errors import IngestHTTPError
from collector.routes import events, records

log = logging.getLogger("syncwatch.collector")
Handler = Callable[[Request], Awaitable[Response]]


def _handler(path: str) -> Handler | None:
    if path == "/v1/events":
        return events.handle_events
    if path.startswith(records.PREFIX):
        return records.handle_path
    return None


class IngestFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = _handler(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except IngestHTTPError as exc:
            response = JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        except Exception as exc:  # the same last resort as the app's handler: logged, never a bare 500
            log.exception("unhandled error")
            response = JSONResponse({"error": {"code": "internal", "message": f"internal error "
                                               f"({type(exc).__name__}); see server log"}}, status_code=500)
        await response(scope, receive, send)
