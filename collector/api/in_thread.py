"""Run a blocking store call off the event loop; a failing store is a 503 with Retry-After, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from collector.errors import IngestHTTPError
from syncwatch.errors import StoreError

T = TypeVar("T")
RETRY_AFTER_SECONDS = "5"


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await run_in_threadpool(fn, *args)
    except StoreError as exc:
        raise IngestHTTPError(503, "store_unavailable", f"the store failed: {exc}",
                              {"Retry-After": RETRY_AFTER_SECONDS}) from exc
