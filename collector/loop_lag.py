"""How far behind the event loop runs: the collector's measure of CPU saturation.

The in-flight limit counts requests inside a handler; when the process is out of CPU, the excess
waits in socket buffers before any handler runs and only latency shows it. A timer that should
fire every `interval` and fires late says how long a request now waits for the loop; above a
limit, ingest answers 429 before reading the body, which is cheap, so the backlog drains.
"""

from __future__ import annotations

import asyncio


class LoopLag:
    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.1) -> None:
        self.loop = loop
        self.interval = interval
        self.lag = 0.0
        self._due = loop.time() + interval
        loop.call_later(interval, self._tick)  # a timer, not a task: nothing to cancel at shutdown

    def _tick(self) -> None:
        now = self.loop.time()
        self.lag = max(0.0, now - self._due)
        self._due = now + self.interval
        self.loop.call_later(self.interval, self._tick)

    def seconds(self) -> float:
        """The lag last measured, or how overdue the timer is now if that is more (a stall in progress)."""
        return max(self.lag, self.loop.time() - self._due)


def loop_lag(state: object) -> LoopLag:
    """The monitor of the running loop, started on first use (tests start a new loop per client)."""
    loop = asyncio.get_running_loop()
    monitor: LoopLag | None = getattr(state, "loop_lag", None)
    if monitor is None or monitor.loop is not loop:
        monitor = LoopLag(loop)
        state.loop_lag = monitor  # type: ignore[attr-defined]
    return monitor
