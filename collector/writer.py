"""The batching writer: moves acknowledged records from the spool into ClickHouse.

One worker thread reads durable records after the checkpoint, concatenates them per table up
to batch_max_rows, inserts each table with a deduplication token derived from the spool range,
and then advances the checkpoint. Store errors are logged and counted and the same range is
retried with backoff; the spool absorbs the backlog until it is full, when ingest answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future

import pyarrow as pa

from collector.decoded import Batch, Rows, as_arrow
from collector.metrics import CollectorMetrics
from collector.spool import (
    Frame,
    Position,
    Record,
    Spool,
    SpoolFull,
    SpoolUnavailable,
    encode_record,
    record_parts,
)
from syncwatch.errors import StoreError

log = logging.getLogger("syncwatch.writer")

MAX_BACKOFF_SECONDS = 5.0
Inserter = Callable[[str, pa.Table, str], None]


def merge(table: str, records: list[Record]) -> pa.Table:
    """One Arrow table from many records: small ones (Rows) are joined as Python lists first, so a
    thousand one-event requests cost one Arrow conversion instead of a thousand."""
    small: Rows | None = None
    tables: list[pa.Table] = []
    for record in records:
        batch = record.to_batch()
        if isinstance(batch, pa.Table):
            tables.append(batch)
        elif small is None:
            small = batch
        else:
            small.extend(batch)
    if small is not None:
        tables.append(as_arrow(table, small))
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def joined_rows_records(requests: Iterable[dict[str, Rows]]) -> list[bytes]:
    """One spool record per table for the small requests of one submission (copies: the requests'
    own Rows are left as they were)."""
    joined: dict[str, Rows] = {}
    for tables in requests:
        for name, rows in tables.items():
            if (held := joined.get(name)) is None:
                joined[name] = Rows({column: list(values) for column, values in rows.columns.items()})
            else:
                held.extend(rows)
    return [encode_record(name, rows) for name, rows in joined.items()]


def _settle(waiters: list[asyncio.Future[Position]], outcome: Position | BaseException) -> None:
    """Answer every request of a hand-off; one whose client disconnected was cancelled already."""
    if isinstance(outcome, BaseException) and not isinstance(outcome, SpoolFull | SpoolUnavailable):
        outcome = SpoolUnavailable(f"spool failed: {outcome}")
    for future in waiters:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


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
        self._rows_mark = 0  # spool.durable_rows and durable_bytes when the pending batch began
        self._bytes_mark = 0
        self._gathered: list[tuple[list[Frame], dict[str, Rows], int, asyncio.Future[Position]]] = []
        self._gathered_bytes = 0
        self._hand_off_due = False  # a hand-off is scheduled for the end of this loop turn
        spool.add_listener(self._wake)
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- request side ---------------------------------------------------------------------------

    async def submit(self, tables: dict[str, Batch], body_bytes: int = 0) -> Position:
        """Spool the tables; returns once they are on disk. Raises SpoolFull/SpoolUnavailable.

        The requests one turn of the event loop serves are gathered and handed to the spool thread
        together, at the end of that turn: one thread hand-off per turn instead of one per request,
        which halves the cost of a one-event request. They are handed over without waiting for the
        fsync already under way: the spool thread writes everything queued behind it with one more
        fsync, so they no longer wait for that fsync's acknowledgement to reach the loop first
        (decision 4, session-14 amendment). Small requests (Rows) of one hand-off are joined
        into one record per table, so the writer reads one record where it read one per request (at
        5k one-event requests/s their scanning and decoding held the GIL ~10% of the time).
        `body_bytes`, the request's size, bounds their spool size before they are encoded.
        """
        frames = [part for name, data in tables.items() if data.num_rows and not isinstance(data, Rows)
                  for part in record_parts(name, data)]
        small = {name: data for name, data in tables.items() if data.num_rows and isinstance(data, Rows)}
        size = sum(len(f) for f in frames) + (2 * body_bytes + 512 * len(small) if small else 0)
        self.spool.check_room(size + self._gathered_bytes)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Position] = loop.create_future()
        self._gathered.append((frames, small, sum(data.num_rows for data in tables.values()), future))
        self._gathered_bytes += size
        if not self._hand_off_due:
            self._hand_off_due = True
            loop.call_soon(self._hand_off)  # runs after the requests already scheduled in this turn
        return await future

    def _hand_off(self) -> None:
        self._hand_off_due = False
        group, self._gathered, self._gathered_bytes = self._gathered, [], 0
        waiters = [future for _, _, _, future in group]
        try:
            frames = [frame for request_frames, _, _, _ in group for frame in request_frames]
            frames += joined_rows_records(small for _, small, _, _ in group)
            spooled = self.spool.submit(frames, sum(rows for _, _, rows, _ in group))
        except Exception as exc:  # SpoolFull/SpoolUnavailable, or anything else: every waiter must hear
            _settle(waiters, exc)
            return
        loop = asyncio.get_running_loop()

        def on_disk(done: Future[Position]) -> None:  # on the spool thread
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
                loop.call_soon_threadsafe(self._acknowledge, waiters, done)

        spooled.add_done_callback(on_disk)

    def _acknowledge(self, waiters: list[asyncio.Future[Position]], done: Future[Position]) -> None:
        error = done.exception()
        _settle(waiters, error if error is not None else done.result())
        self.metrics.spool_bytes.set(self.spool.pending_bytes())

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
        backoff = 0.1
        while not self._stop.is_set():
            try:
                if self.spool.inflight:
                    self._store_range(*self.spool.inflight)
                delay = self._step()
                backoff = 0.1
            except Exception as exc:  # a writer thread that died would strand every acknowledged row
                # A checkpoint that cannot be written (disk full) or a batch that cannot be read;
                # the spool still holds everything after `done`, so the same range is tried again.
                if self.store_up:
                    log.exception("writer step failed; retrying with backoff")
                self._mark_down(f"writer: {type(exc).__name__}: {exc}")
                self._stop.wait(backoff)  # not _sleep: a waiting flush would make that return at once
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if delay:
                self._sleep(delay)

    def _sleep(self, delay: float) -> None:
        """Wait for the batch to fill; wake early only for a full batch, a flush or a stop.

        The spool wakes us on every append, but re-reading the pending range each time would cost
        the event loop the GIL hundreds of times a second: here a wake-up is two integer checks.
        """
        deadline = time.monotonic() + delay
        while not (self._flush.is_set() or self._stop.is_set()):
            if self._pending_since is not None and (
                    self.spool.durable_rows - self._rows_mark >= self.max_rows
                    or self.spool.durable_bytes - self._bytes_mark >= self.spool.read_cap):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(remaining)
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
        if self._pending_since is None:
            self._pending_since = now
            self._rows_mark = self.spool.durable_rows - sum(r.rows for r in records)
            self._bytes_mark = self.spool.durable_bytes - (records[-1].end.offset - records[0].start.offset)
        waited = now - self._pending_since
        # A read cut short by its row or byte cap is as full as a batch gets: waiting for
        # max_rows would idle the writer for max_delay on every capped read.
        full = sum(r.rows for r in records) >= self.max_rows or self.spool.durable_beyond(records[-1].end)
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
        by_table: dict[str, list[Record]] = defaultdict(list)
        for record in records:
            by_table[record.table].append(record)
        token = f"{start.segment}:{start.offset}-{end.segment}:{end.offset}"
        for table, parts in by_table.items():
            began = time.perf_counter()
            data = merge(table, parts)
            self.insert(table, data, f"{token}:{table}")
            self.metrics.batch_seconds.labels(table).observe(time.perf_counter() - began)
            self.metrics.stored_rows.labels(table).inc(data.num_rows)

    def _mark_down(self, error: str) -> None:
        if self.store_up:
            log.error("writer cannot store, retrying with backoff: %s", error)
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
