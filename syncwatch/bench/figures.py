"""Small helpers the benchmark reports share."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile (0 <= q <= 1) of a non-empty sample.

    >>> percentile([3.0, 1.0, 2.0], 0.5), percentile([1.0, 2.0, 3.0, 4.0], 0.95)
    (2.0, 4.0)
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> dict[str, object]:
    """Where and when figures were measured; the 1-minute load average says how busy the machine was
    at the start (above the core count, other work competed and the figures are pessimistic)."""
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "load_1m_at_start": round(os.getloadavg()[0], 2)}


def machine_line(m: dict[str, Any]) -> str:
    """`Measured <date> on <cores> cores, <memory> GiB, Python <version>; load average <l> at start.`"""
    load = m.get("load_1m_at_start")
    at_start = f"; load average {load:.2f} at start" if load is not None else ""
    return f"Measured {m['date']} on {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}{at_start}."
