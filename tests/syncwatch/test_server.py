"""The served process: what `syncwatch serve` sets up around the app."""

from __future__ import annotations

import gc
import threading
import time

from syncwatch.server import build_server
from syncwatch.settings import Settings
from tests.conftest import free_port


def test_startup_freezes_what_lives_as_long_as_the_process(settings: Settings) -> None:
    """Without the freeze every full collection walks the modules and the app: pauses of 60-70 ms in
    the middle of single-event ingest (p99 45-60 ms instead of ~12 ms)."""
    gc.unfreeze()
    server, _ = build_server(settings.model_copy(update={"port": free_port(), "reconcile_in_process": False}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while gc.get_freeze_count() == 0:  # uvicorn says `started` a moment before the freeze
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start and freeze"
            time.sleep(0.02)
        assert server.started
        assert gc.get_freeze_count() > 10_000
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        gc.unfreeze()
