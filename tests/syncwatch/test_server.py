"""The served process: what `syncwatch serve` sets up around the app."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pyarrow as pa

from syncwatch.server import GC_THRESHOLDS, build_server
from syncwatch.settings import Settings
from tests.conftest import free_port


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """`syncwatch serve`'s server in a thread, once started and frozen; yields its URL."""
    gc.unfreeze()
    thresholds = gc.get_threshold()
    port = free_port()
    server, _ = build_server(settings.model_copy(update={"port": port, "reconcile_in_process": False}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while gc.get_freeze_count() == 0:  # uvicorn says `started` a moment before the freeze
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start and freeze"
            time.sleep(0.02)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_startup_freezes_what_lives_as_long_as_the_process(settings: Settings) -> None:
    """Without the freeze every full collection walks the modules and the app: pauses of 60-70 ms in
    the middle of single-event ingest (p99 45-60 ms instead of ~12 ms)."""
    with served(settings):
        assert gc.get_freeze_count() > 10_000


def test_startup_spaces_out_collections(settings: Settings) -> None:
    """At the default 700 net new objects, a young-generation pass ran about once per 1,000-event
    batch, and full ones every ~1.5 s: 2.5% of the server's CPU under batch ingest."""
    with served(settings):
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] >= 10_000


def test_the_server_gives_arrow_the_system_allocator(settings: Settings) -> None:
    """Arrow's default pool kept freed pages: peak RSS under batch ingest was 60-140 MiB higher."""
    before = pa.default_memory_pool()
    try:
        build_server(settings.model_copy(update={"port": free_port(), "reconcile_in_process": False}))
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(before)


def test_answers_name_no_server_software(settings: Settings) -> None:
    with served(settings) as url:
        response = httpx.get(f"{url}/healthz", timeout=10)
    assert response.status_code == 200 and "date" in response.headers
    assert "server" not in response.headers and response.headers["x-content-type-options"] == "nosniff"
