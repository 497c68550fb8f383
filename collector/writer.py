"""The batching writer: moves acknowledged records from the spool into ClickHouse.

One worker thread reads durable records after the checkpoint, concatenates them per table up
to batch_max_rows, inserts each table with a deduplication token derived from the spool range,
and then advances the checkpoint. Store errors are logged and counted and the same range is
retried with backoff; the spool absorbs the backlog until it is full, when ingest answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pyarrow as pa

from collector.metrics import CollectorMetrics
from collector.spool import Position, Record, Spool, encode_record
from syncwatch.errors import StoreError

log = logging.getLogger("syncwatch.writer")

MAX_BACKOFF_SECONDS = 5.0
Inserter = Callable[[str, pa.Table, str], None]


class BatchWriter:
    def __init__(self, spool: Spool, insert: Inserter, metrics: CollectorMetrics,
                 max_rows: int, max_delay_s: float) -> None:
        self.spool = spool
        self.insert = insert
        self.metrics = metrics
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self.store_up = True
        self.last_error = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._flush = threading.Event()  # set while someone waits for everything to be stored
        self._pending_since: float | None = None
        spool.add_listener(self._wake)
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- request side ---------------------------------------------------------------------------

    async def submit(self, tables: dict[str, pa.Table]) -> Position:
        """Spool the tables; returns once they are on disk. Raises SpoolFull/SpoolUnavailable."""
        frames = [encode_record(name, data) for name, data in tables.items() if data.num_rows]
        future = self.spool.submit(frames)
        position = await asyncio.wrap_future(future)
        self.metrics.spool_bytes.set(self.spool.pending_bytes())
        return position

    def wait_until_stored(self, timeout: float = 30.0) -> bool:
        """Block until everything durable now is in the store (tests, demo, shutdown)."""
        target = self.spool.durable
        deadline = time.monotonic() + timeout
        self._flush.set()
        try:
            with self._idle:
                while self.spool.done < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._wake.set()
                    self._idle.wait(min(remaining, 0.05))
        finally:
            self._flush.clear()
        return True

    # -- worker ---------------------------------------------------------------------------------

    def _run(self) -> None:
        if self.spool.inflight:
            self._store_range(*self.spool.inflight)
        while not self._stop.is_set():
            delay = self._step()
            if delay:
                self._wake.wait(delay)
                self._wake.clear()

    def _step(self) -> float:
        """Insert one batch if one is due; otherwise return how long to wait."""
        records = self.spool.read(self.spool.done, self.max_rows)
        if not records:
            self._pending_since = None
            following = self.spool.next_segment_after(self.spool.done)
            if following is not None:
                self.spool.checkpoint(following, None)
                return 0.0
            return self.max_delay_s
        now = time.monotonic()
        self._pending_since = self._pending_since or now
        waited = now - self._pending_since
        full = sum(r.rows for r in records) >= self.max_rows
        if not (full or self._flush.is_set() or waited >= self.max_delay_s):
            return self.max_delay_s - waited
        self._store_range(records[0].start, records[-1].end, records)
        self._pending_since = None
        return 0.0

    def _store_range(self, start: Position, end: Position, records: list[Record] | None = None) -> None:
        records = records if records is not None else self.spool.read_range(start, end)
        self.spool.checkpoint(start, (start, end))
        backoff = 0.1
        while True:
            try:
                self._insert_tables(start, end, records)
                break
            except StoreError as exc:
                self._mark_down(str(exc))
                if self._stop.wait(backoff):
                    return  # shutting down: the range stays inflight and is replayed at start-up
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self.spool.checkpoint(end, None)
        self._mark_up()
        self.metrics.spool_bytes.set(self.spool.pending_bytes())
        with self._idle:
            self._idle.notify_all()

    def _insert_tables(self, start: Position, end: Position, records: list[Record]) -> None:
        by_table: dict[str, list[pa.Table]] = defaultdict(list)
        for record in records:
            by_table[record.table].append(record.to_arrow())
        token = f"{start.segment}:{start.offset}-{end.segment}:{end.offset}"
        for table, parts in by_table.items():
            began = time.perf_counter()
            data = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            self.insert(table, data, f"{token}:{table}")
            self.metrics.batch_seconds.labels(table).observe(time.perf_counter() - began)
            self.metrics.stored_rows.labels(table).inc(data.num_rows)

    def _mark_down(self, error: str) -> None:
        if self.store_up:
            log.error("store insert failed, retrying with backoff: %s", error)
        self.store_up = False
        self.last_error = error
        self.metrics.insert_errors.inc()
        self.metrics.store_up.set(0)

    def _mark_up(self) -> None:
        if not self.store_up:
            log.info("store is back; draining the spool")
        self.store_up = True
        self.last_error = ""
        self.metrics.store_up.set(1)

    # -- shutdown -------------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """Drain what is spooled within `timeout`, then stop; the rest waits in the spool."""
        self.wait_until_stored(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout)
