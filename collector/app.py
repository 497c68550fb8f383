"""The collector/API service: app factory and lifecycle (store, migrations, spool, writer, keys)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from collector.api.access import USER_SECURITY_SCHEME, UserDirectory
from collector.api.router import router as api_router
from collector.auth import SECURITY_SCHEMES, KeyRing
from collector.body_deadline import BodyDeadline, BodyTimeout
from collector.errors import IngestHTTPError
from collector.event_registry import EventRegistry
from collector.fastpath import IngestFastPath
from collector.ingest import decode_thread
from collector.metrics import CollectorMetrics
from collector.openapi_contract import document_errors
from collector.routes import admin, events, health, otlp, records
from collector.security_headers import SecurityHeaders, allowed_origins, cors_options
from collector.spool import Spool
from collector.telemetry import TracingMiddleware, tracer_provider
from collector.writer import BatchWriter
from reconciler.audit import AuditLog
from syncwatch import __version__, schema
from syncwatch.settings import Settings
from syncwatch.store import Store

log = logging.getLogger("syncwatch.collector")
HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}


class Background(Protocol):
    """Work that runs beside the API on the same store (the CLI passes the reconciler's schedule)."""

    def start(self, store: Store) -> None: ...
    def stop(self) -> None: ...


def create_app(settings: Settings, store: Store | None = None, background: Sequence[Background] = ()) -> FastAPI:
    """Build the service. With `store` given the caller owns it; otherwise it is opened here."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        state.store = store or Store.open(settings)
        applied = schema.migrate(state.store)
        if applied:
            log.info("applied migrations: %s", ", ".join(f"{m.version:04d}_{m.name}" for m in applied))
        state.registry = EventRegistry.load(settings.rules_dir)
        state.keys = KeyRing(state.store, settings.admin_token, settings.key_refresh_seconds)
        state.users = UserDirectory(state.store, settings.admin_token, settings.key_refresh_seconds)
        state.audit = AuditLog(state.store)
        state.spool = Spool(settings.spool_path, settings.spool_max_bytes, settings.spool_segment_bytes,
                            settings.spool_fsync)
        state.metrics.spool_limit.set(settings.spool_max_bytes)
        state.writer = BatchWriter(state.spool, state.store.insert_arrow, state.metrics,
                                   settings.batch_max_rows, settings.batch_max_delay_ms / 1000)
        state.decode_thread = decode_thread()
        state.writer.start()  # replays whatever an earlier run acknowledged but did not store
        for service in background:
            service.start(state.store)
        try:
            yield
        finally:
            for service in background:
                service.stop()
            state.decode_thread.shutdown()
            state.writer.stop()
            state.spool.close()
            if store is None:
                state.store.close()

    app = FastAPI(
        title="Syncwatch",
        version=__version__,
        description="Business-process observability and reconciliation: ingest (OTLP, CloudEvents, "
        "record snapshots), query and action API.",
        lifespan=lifespan,
        # The service traces itself through TracingMiddleware, with its own provider, when configured.
        # FastAPI's native telemetry would ask OpenTelemetry's global providers on every request
        # whether to trace it (a few µs of a one-event request), and trace into any global provider
        # some library sets.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = CollectorMetrics()
    app.state.inflight = 0
    for router in (health.router, otlp.router, events.router, records.router, admin.router, api_router):
        app.include_router(router)
    _install_error_handlers(app)
    _document_security(app)
    app.add_middleware(IngestFastPath)
    app.add_middleware(BodyDeadline, seconds=settings.body_timeout_seconds)
    if settings.self_traces_endpoint:
        provider = tracer_provider(settings.self_traces_endpoint)
        app.add_middleware(TracingMiddleware, tracer=provider.get_tracer("syncwatch.collector"))
    # outermost, so the fast path's answers, CORS preflights and refusals all carry them
    origins = allowed_origins(settings.cors_allow_origins)
    if origins:
        app.add_middleware(CORSMiddleware, **cors_options(origins))  # type: ignore[arg-type]
    app.add_middleware(SecurityHeaders, hsts_max_age=settings.hsts_max_age)
    return app


def _unparsable(cause: BaseException) -> str:
    if isinstance(cause, RecursionError):
        return "the JSON is nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return f"the body is not UTF-8 text (byte {cause.start}, counting from 0)"
    return f"{type(cause).__name__}: {str(cause)[:200]}"


def _document_security(app: FastAPI) -> None:
    """Declare the bearer scheme the routes reference (they authorize in code, not by dependency)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes.update(SECURITY_SCHEMES)
            schemes.update(USER_SECURITY_SCHEME)
            app.openapi_schema = document_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(IngestHTTPError)
    async def ingest_error(_: Request, exc: IngestHTTPError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (an unparsable body, an unknown path, a wrong method) in the
        # service's error shape rather than {"detail": ...}, as the OpenAPI document says
        if isinstance(exc.__cause__, BodyTimeout):  # FastAPI turns any failure reading a body into a 400
            return JSONResponse({"error": {"code": "body_timeout", "message": str(exc.__cause__)}},
                                status_code=408, headers={"Connection": "close"})
        code, message = HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail)
        if exc.status_code == 400 and exc.__cause__ is not None:  # say why the body could not be parsed
            message = f"{message}: {_unparsable(exc.__cause__)}"
        if exc.status_code == 404 and message == "Not Found":  # no route at all, not a missing object
            code, message = "no_endpoint", f"no endpoint {request.method} {request.url.path}"
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": {"code": "invalid_request", "message": problems}}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, BodyTimeout):
            return JSONResponse({"error": {"code": "body_timeout", "message": str(exc)}}, status_code=408,
                                headers={"Connection": "close"})
        log.exception("unhandled error")
        return JSONResponse(
            {"error": {"code": "internal", "message": f"internal error ({type(exc).__name__}); see server log"}},
            status_code=500,
        )
