"""The one path every ingest request takes: body -> decode -> spool (on disk) -> acknowledge."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from starlette.requests import Request

from collector.auth import Principal
from collector.decoded import DecodeContext, Decoded, DecodeError, SourceNotAllowed, UnsupportedMediaType
from collector.errors import IngestHTTPError
from collector.http_body import read_body
from collector.loop_lag import loop_lag
from collector.metrics import CollectorMetrics
from collector.spool import SpoolFull, SpoolUnavailable

Decoder = Callable[[bytes, DecodeContext], Decoded]
# Bodies up to this size decode on the event loop. A batch of 1,000 events (~0.6 MB) takes ~2.5 ms
# there; handed to a thread instead, the loop and that thread passed the GIL back and forth ~15 times
# a request and the server spent ~0.5 us more CPU per event: 185,600-221,300 events/s inline against
# 169,000-199,800/s, alternating, while one-event requests sent beside them waited p50 12-14 against
# 8-9 ms (p99 39-51 against 27-28). Bigger bodies, up to the 20 MiB limit, would stall the loop for
# tens of milliseconds each, so they still go to the decode thread.
THREAD_DECODE_BYTES = 4 * 1024 * 1024


def decode_thread() -> ThreadPoolExecutor:
    """The one thread that decodes bodies over THREAD_DECODE_BYTES. Decoding is Python holding the GIL,
    so more threads decode no faster; four of them fighting over the GIL with the event loop, the spool
    and the writer cost ~8% more CPU per event than one (batches of 1,000 with schemas:
    124,600-134,400/s against 106,400-126,800/s, alternating). Requests queue for it in order instead."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")


async def accept(request: Request, principal: Principal, kind: str, decode: Decoder) -> Decoded:
    """Decode and durably spool one request, or raise IngestHTTPError. Nothing is half stored:
    a request is either refused whole (4xx/5xx) or all its rows are on disk when this returns."""
    state = request.app.state
    metrics = state.metrics
    retry = {"Retry-After": str(state.settings.retry_after_seconds)}
    if state.inflight >= state.settings.max_inflight_requests:
        metrics.rejected.labels(kind, "too_many_requests").inc()
        raise IngestHTTPError(429, "too_many_requests", "too many concurrent ingest requests; retry later", retry)
    lag_limit = state.settings.max_loop_lag_ms / 1000
    if lag_limit and (lag := loop_lag(state).seconds()) > lag_limit:
        metrics.rejected.labels(kind, "overloaded").inc()
        raise IngestHTTPError(429, "overloaded", f"the collector is overloaded (requests wait {lag:.1f} s "
                              "for its event loop); retry later", retry)
    state.inflight += 1
    try:
        return await _accept(request, principal, kind, decode)
    except IngestHTTPError as exc:
        metrics.rejected.labels(kind, exc.code).inc()
        raise
    finally:
        state.inflight -= 1


async def _accept(request: Request, principal: Principal, kind: str, decode: Decoder) -> Decoded:
    state = request.app.state
    body = await read_body(request, state.settings.max_body_bytes)
    ctx = DecodeContext(
        system=principal.system, key_id=principal.key_id, source_prefixes=principal.source_prefixes,
        received_at=datetime.now(UTC), batch_id=os.urandom(16).hex(), max_depth=state.settings.max_json_depth,
    )
    try:
        if len(body) > THREAD_DECODE_BYTES:
            decoded = await asyncio.get_running_loop().run_in_executor(state.decode_thread, decode, body, ctx)
        else:
            decoded = decode(body, ctx)
    except SourceNotAllowed as exc:
        raise IngestHTTPError(403, exc.code, exc.message) from exc
    except UnsupportedMediaType as exc:
        raise IngestHTTPError(415, exc.code, exc.message) from exc
    except DecodeError as exc:
        raise IngestHTTPError(400, exc.code, exc.message) from exc
    decoded.with_batch_row(kind, ctx, len(body))
    await _spool(request, decoded, len(body))
    _count(state.metrics, kind, decoded)
    return decoded


async def _spool(request: Request, decoded: Decoded, body_bytes: int) -> None:
    retry = {"Retry-After": str(request.app.state.settings.retry_after_seconds)}
    try:
        await request.app.state.writer.submit(decoded.tables, body_bytes)
    except SpoolFull as exc:
        raise IngestHTTPError(503, "spool_full", f"the store is behind ({exc}); retry later", retry) from exc
    except SpoolUnavailable as exc:
        raise IngestHTTPError(503, "spool_unavailable", f"{exc}; retry later", retry) from exc


def _count(metrics: CollectorMetrics, kind: str, decoded: Decoded) -> None:
    metrics.count(metrics.accepted, decoded.accepted, kind)
    if decoded.quarantined:
        metrics.count(metrics.quarantined, decoded.quarantined, kind)
    if decoded.rejected:
        metrics.count(metrics.rejected, decoded.rejected, kind, "invalid_item")
