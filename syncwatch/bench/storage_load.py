"""Simulator data as the collector would store it: the feed's requests decoded by the real decoders.

Nothing goes over HTTP: each batch the simulator would send is encoded as its request body (a
CloudEvents batch, an NDJSON record snapshot, an OTLP/protobuf trace export built by the
OpenTelemetry SDK) and handed to the same pure decoder the route calls, so the rows, their types
and their values are the ones a collector writes.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector.decode_cloudevents import decode_events
from collector.decode_otlp import decode_traces
from collector.decode_records import decode_records
from collector.decoded import DecodeContext, Decoded, as_arrow
from collector.event_registry import EventRegistry
from syncwatch.simulator.delivery import FeedConfig
from syncwatch.simulator.feed import Feed
from syncwatch.simulator.spans import SpanSpec
from syncwatch.simulator.transport import Batch, SpanReplayer

EVENTS_TYPE = "application/cloudevents-batch+json"
RECORDS_TYPE = "application/x-ndjson"
OTLP_TYPE = "application/x-protobuf"


class _MemoryReplayer(SpanReplayer):
    """The simulator's span replay (same ids, attributes, events, status) into memory, not over HTTP."""

    def __init__(self) -> None:
        super().__init__("http://unused", "unused", 1.0)
        self.memory = InMemorySpanExporter()
        self._memory_providers: dict[str, TracerProvider] = {}

    def _provider(self, service: str) -> TracerProvider:
        if service not in self._memory_providers:
            resource = Resource.create({"service.name": service, "service.namespace": "demo-firm",
                                        "deployment.environment.name": "demo"})
            provider = TracerProvider(resource=resource, id_generator=self.ids)
            provider.add_span_processor(SimpleSpanProcessor(self.memory))
            self._memory_providers[service] = provider
        return self._memory_providers[service]

    def otlp_body(self, specs: Sequence[SpanSpec]) -> bytes:
        self.memory.clear()
        self.replay(specs)
        return encode_spans(self.memory.get_finished_spans()).SerializeToString()


def _context(system: str) -> DecodeContext:
    return DecodeContext(system=system, key_id="bench-storage", source_prefixes=(),
                         received_at=datetime.now(UTC), batch_id=uuid.uuid4().hex)


def decode_batch(batch: Batch, registry: EventRegistry, spans: _MemoryReplayer) -> Decoded:
    """One simulator batch through the decoder of the endpoint it would be posted to."""
    if batch.kind == "events":
        body = orjson.dumps(list(batch.items), default=str)
        return decode_events(body, EVENTS_TYPE, {}, _context(batch.system), registry)
    if batch.kind == "records":
        body = b"\n".join(orjson.dumps(item, default=str) for item in batch.items)
        return decode_records(body, RECORDS_TYPE, batch.system, batch.entity, _context(batch.system))
    return decode_traces(spans.otlp_body(batch.items), OTLP_TYPE, _context("*"))


def decoded_tables(config: FeedConfig, rules_dir: Path, chunk_rows: int = 100_000) -> Iterator[tuple[str, pa.Table]]:
    """(table, Arrow rows) in chunks of about `chunk_rows`, for the whole simulated feed."""
    registry = EventRegistry.load(rules_dir)
    replayer = _MemoryReplayer()
    held: dict[str, list[pa.Table]] = defaultdict(list)
    sizes: dict[str, int] = defaultdict(int)
    try:
        for batch in Feed(dataclasses.replace(config, pace=0.0)).batches():
            for table, rows in decode_batch(batch, registry, replayer).tables.items():
                held[table].append(as_arrow(table, rows))
                sizes[table] += rows.num_rows
                if sizes[table] >= chunk_rows:
                    yield table, pa.concat_tables(held.pop(table))
                    sizes[table] = 0
        for table, parts in held.items():
            yield table, pa.concat_tables(parts)
    finally:
        replayer.shutdown()
