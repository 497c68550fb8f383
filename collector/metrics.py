"""Prometheus metrics of one collector instance (a registry per app, so tests can build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CollectorMetrics:
    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Counter] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("syncwatch_ingest_accepted", "Items acknowledged, by kind", ["kind"], registry=r)
        self.rejected = Counter(
            "syncwatch_ingest_rejected", "Items or requests refused, by kind and reason", ["kind", "reason"], registry=r
        )
        self.quarantined = Counter(
            "syncwatch_ingest_quarantined", "Items kept in quarantine, by kind", ["kind"], registry=r
        )
        self.requests = Counter(
            "syncwatch_ingest_requests", "Ingest requests by route and status", ["route", "status"], registry=r
        )
        self.stored_rows = Counter("syncwatch_store_rows", "Rows inserted into ClickHouse", ["table"], registry=r)
        self.insert_errors = Counter("syncwatch_store_insert_errors", "Failed insert attempts", registry=r)
        self.store_up = Gauge("syncwatch_store_up", "1 when the last insert succeeded", registry=r)
        self.spool_bytes = Gauge("syncwatch_spool_bytes", "Acknowledged bytes not yet in the store", registry=r)
        self.spool_limit = Gauge("syncwatch_spool_limit_bytes", "Spool size at which ingest answers 503", registry=r)
        self.batch_seconds = Histogram(
            "syncwatch_writer_batch_seconds", "Latency of one insert into ClickHouse", ["table"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.store_up.set(1)

    def count(self, counter: Counter, amount: int, *labels: str) -> None:
        """counter.labels(*labels).inc(amount), with the labelled child looked up once per process:
        prometheus_client's labels() takes a lock and builds a key on every call."""
        key = (id(counter), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        child.inc(amount)
