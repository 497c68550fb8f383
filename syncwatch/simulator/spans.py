"""The integrations' telemetry as plain span specifications, and the W3C trace context that ties
events and records to them.

A span here is data (`SpanSpec`), so `generate()` stays pure and deterministic; the transport
replays each one through the OpenTelemetry SDK with the same ids and timestamps. Ids come from a
seeded random stream, never from the SDK's generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

Attr = str | int | float | bool

INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"
SCOPE = "syncwatch.simulator"


@dataclass(frozen=True)
class Context:
    """A span's identity within its trace (W3C trace context)."""

    trace_id: int
    span_id: int

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-01"


@dataclass(frozen=True)
class SpanSpec:
    service: str
    name: str
    kind: str
    context: Context
    parent_id: int  # 0 for a root span
    start: datetime
    end: datetime
    attributes: dict[str, Attr] = field(default_factory=dict)
    error: str = ""  # non-empty: status ERROR with an exception event carrying this message
    error_type: str = ""
    links: tuple[Context, ...] = ()


class Tracer:
    """Allocates trace and span ids from a seeded stream and collects the day's spans."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.spans: list[SpanSpec] = []

    def new_trace(self) -> Context:
        return Context(self.rng.getrandbits(128) or 1, self.rng.getrandbits(64) or 1)

    def child_of(self, parent: Context) -> Context:
        return Context(parent.trace_id, self.rng.getrandbits(64) or 1)

    def span(self, service: str, name: str, kind: str, parent: Context | None, start: datetime, millis: float,
             attributes: dict[str, Attr], error: str = "", error_type: str = "",
             links: tuple[Context, ...] = (), context: Context | None = None) -> SpanSpec:
        """Record one span of `millis` duration starting at `start`; `context` reuses pre-allocated ids."""
        if context is None:
            context = self.child_of(parent) if parent else self.new_trace()
        spec = SpanSpec(service, name, kind, context, parent.span_id if parent else 0, start,
                        start + timedelta(milliseconds=millis), dict(attributes), error, error_type, links)
        self.spans.append(spec)
        return spec

    def drain(self) -> list[SpanSpec]:
        spans, self.spans = self.spans, []
        return spans
