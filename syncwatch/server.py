"""Running the service under uvicorn: one worker in embedded mode (chDB allows one process)."""

from __future__ import annotations

import contextlib
import gc
import socket

import pyarrow as pa
import uvicorn
from fastapi import FastAPI

from syncwatch.admin import ensure_admin_token
from syncwatch.settings import Settings

# Python's young-generation GC pass ran every 700 net new container objects: about once per
# 1,000-event batch, with a full collection every ~1.5 s (20 ms each, of what requests and batches
# had left alive since the freeze). Together 2.5% of the server's CPU under batch ingest with schemas
# (0.33 of 13 CPU-s); with these thresholds none ran. Nothing here makes reference cycles in bulk,
# so the garbage that waits longer is small.
GC_THRESHOLDS = (20_000, 20, 20)


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Everything built so far (modules, the app, the store's client) lives as long as the process.
        # Left to the collector, each full collection walked it all: 60-70 ms pauses of every
        # request, ten times in 13 s of single-event ingest. Frozen, they are never walked again.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


def build_server(settings: Settings) -> tuple[uvicorn.Server, FastAPI]:
    from collector.app import create_app

    if settings.embedded:
        settings = ensure_admin_token(settings)
    background = []
    if settings.reconciles_in_process:
        from reconciler.background import ScheduledReconciler
        from reconciler.rule_shards import Share

        background.append(ScheduledReconciler(settings.rules_dir, settings.reconcile_every,
                                              Share.from_settings(settings), settings.kpi_state_every,
                                              settings.rule_timeout_seconds))
    app = create_app(settings, background=background)
    # Arrow's default pool (mimalloc) kept the pages it freed: with the system allocator the server's
    # peak RSS under batch ingest was 60-140 MiB lower, at the same throughput.
    pa.set_memory_pool(pa.system_memory_pool())
    config = uvicorn.Config(app, host=settings.host, port=settings.port, workers=1,
                            log_level=settings.log_level.lower(), access_log=False, timeout_graceful_shutdown=30,
                            server_header=False)  # names no software to clients; one header less per response
    return _Server(config), app


def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; shutdown drains the writer into the store."""
    server, _ = build_server(settings)
    # uvicorn re-raises Ctrl-C after its graceful shutdown (writer drained): that is a normal stop
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
