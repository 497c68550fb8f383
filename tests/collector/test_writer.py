"""The writer against the real store: batching, crash windows, segment clean-up."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from collector.decoded import DecodeContext, Rows, quarantine_rows
from collector.metrics import CollectorMetrics
from collector.spool import Frame, Position, Spool, SpoolUnavailable, encode_record
from collector.writer import BatchWriter
from syncwatch.model import INGEST_BATCHES, QUARANTINE, SCHEMAS
from syncwatch.store import Store


def batch_rows(n: int, offset: int) -> pa.Table:
    """ingest_batches is a plain MergeTree: a duplicate insert would show up as extra rows."""
    return pa.table({
        "batch_id": [f"b{offset + i}" for i in range(n)], "received_at": pa.array([0] * n, pa.timestamp("us", "UTC")),
        "kind": ["event"] * n, "system": ["crm"] * n, "key_id": ["k"] * n, "accepted": [1] * n,
        "quarantined": [0] * n, "rejected": [0] * n, "bytes": [10] * n,
    }, schema=SCHEMAS[INGEST_BATCHES])


CTX = DecodeContext(system="crm", key_id="k", source_prefixes=("/crm",), received_at=datetime(2026, 11, 26, tzinfo=UTC),
                    batch_id="b", max_depth=64)


def writer(spool: Spool, store: Store) -> BatchWriter:
    return BatchWriter(spool, store.insert_arrow, CollectorMetrics(), max_rows=1000, max_delay_s=0.01)


def test_crash_between_insert_and_checkpoint_does_not_duplicate(tmp_path: Path, store: Store) -> None:
    spool = Spool(tmp_path, 10_000_000, 1_000_000)
    for i in range(5):
        spool.submit([encode_record(INGEST_BATCHES, batch_rows(100, i * 100))]).result(5)
    start, end = Position(0, 0), spool.durable
    records = spool.read_range(start, end)
    crashed = writer(spool, store)
    spool.checkpoint(start, (start, end))
    crashed._insert_tables(start, end, records)  # the insert landed; then the process died
    spool.close()
    assert store.query("SELECT count() FROM ingest_batches")[0][0] == 500

    reopened = Spool(tmp_path, 10_000_000, 1_000_000)
    assert reopened.inflight == (start, end)
    restarted = writer(reopened, store)
    restarted.start()
    assert restarted.wait_until_stored(30)
    restarted.stop()
    reopened.close()
    assert store.query("SELECT count(), uniqExact(batch_id) FROM ingest_batches")[0] == (500, 500)


def test_many_requests_become_few_inserts_and_segments_are_dropped(tmp_path: Path, store: Store) -> None:
    spool = Spool(tmp_path, 10_000_000, 20_000)
    w = writer(spool, store)
    for i in range(40):
        spool.submit([encode_record(INGEST_BATCHES, batch_rows(50, i * 50))]).result(5)
    w.start()
    assert w.wait_until_stored(30)
    assert store.query("SELECT count(), uniqExact(batch_id) FROM ingest_batches")[0] == (2000, 2000)
    inserts = w.metrics.registry.get_sample_value("syncwatch_writer_batch_seconds_count", {"table": INGEST_BATCHES})
    assert inserts is not None and inserts < 40, "requests must be batched into fewer inserts"
    assert len(list(tmp_path.glob("*.wal"))) == 1, "stored segments must be deleted"
    assert spool.pending_bytes() == 0
    w.stop()
    spool.close()


def test_store_error_is_retried_with_the_same_range(tmp_path: Path, store: Store) -> None:
    spool = Spool(tmp_path, 10_000_000, 1_000_000)
    w = writer(spool, store)
    store.command("DETACH TABLE ingest_batches")
    w.start()
    spool.submit([encode_record(INGEST_BATCHES, batch_rows(10, 0))]).result(5)
    assert not w.wait_until_stored(1.0)
    assert w.store_up is False and "ingest_batches" in w.last_error
    store.command("ATTACH TABLE ingest_batches")
    assert w.wait_until_stored(30)
    assert w.store_up is True
    assert store.query("SELECT count() FROM ingest_batches")[0][0] == 10
    w.stop()
    spool.close()


def test_a_cancelled_request_does_not_strand_the_others(tmp_path: Path, store: Store) -> None:
    """A client that disconnects cancels its request while the group is being fsynced."""
    spool = Spool(tmp_path, 10_000_000, 1_000_000)
    w = writer(spool, store)

    async def scenario() -> None:
        first = asyncio.ensure_future(w.submit({INGEST_BATCHES: batch_rows(5, 0)}))
        second = asyncio.ensure_future(w.submit({INGEST_BATCHES: batch_rows(5, 5)}))
        await asyncio.sleep(0)  # both are gathered and handed off together
        first.cancel()
        await asyncio.wait_for(second, timeout=10)
        third = await asyncio.wait_for(w.submit({INGEST_BATCHES: batch_rows(5, 10)}), timeout=10)
        assert third == spool.durable

    asyncio.run(scenario())
    w.start()
    assert w.wait_until_stored(30)
    assert store.query("SELECT count() FROM ingest_batches")[0][0] == 15  # the cancelled rows were spooled too
    w.stop()
    spool.close()


class HeldSpool(Spool):
    """A spool whose first write waits until released: an fsync that takes as long as a test needs."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int) -> None:
        self.writing = threading.Event()
        self.release = threading.Event()
        super().__init__(directory, max_bytes, segment_bytes)

    def _write_batch(self, batch: list[tuple[Sequence[Frame], Future[Position], int]]) -> None:
        if not self.release.is_set():
            self.writing.set()
            self.release.wait(10)
        super()._write_batch(batch)


def test_requests_reach_the_spool_while_an_earlier_group_is_still_being_written(
        tmp_path: Path, store: Store) -> None:
    """The hand-off does not wait for the fsync under way: a request served meanwhile is queued in
    the spool at once, and the spool writes it right after (the loop never idles for a round trip)."""
    spool = HeldSpool(tmp_path, 10_000_000, 1_000_000)
    w = writer(spool, store)

    async def scenario() -> None:
        first = asyncio.ensure_future(w.submit({INGEST_BATCHES: batch_rows(5, 0)}))
        assert await asyncio.to_thread(spool.writing.wait, 10), "the first group reached the spool thread"
        second = asyncio.ensure_future(w.submit({INGEST_BATCHES: batch_rows(5, 5)}))
        for _ in range(3):
            await asyncio.sleep(0)
        assert spool.pending_bytes() + spool._queued_bytes > 0 and not w._gathered, "second is queued in the spool"
        assert not first.done() and not second.done()
        spool.release.set()
        first_at, second_at = await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
        assert first_at < second_at == spool.durable

    asyncio.run(scenario())
    w.start()
    assert w.wait_until_stored(30)
    assert store.query("SELECT count(), uniqExact(batch_id) FROM ingest_batches")[0] == (10, 10)
    w.stop()
    spool.close()


def test_a_hand_off_that_cannot_be_encoded_answers_its_requests_and_the_next_one_is_stored(
        tmp_path: Path, store: Store) -> None:
    spool = Spool(tmp_path, 10_000_000, 1_000_000)
    w = writer(spool, store)

    async def scenario() -> None:
        with pytest.raises(SpoolUnavailable, match="spool failed"):
            await asyncio.wait_for(w.submit({INGEST_BATCHES: Rows({"batch_id": [object()]})}), timeout=10)
        await asyncio.wait_for(w.submit({INGEST_BATCHES: batch_rows(3, 0)}), timeout=10)

    asyncio.run(scenario())
    w.start()
    assert w.wait_until_stored(30)
    assert store.query("SELECT count() FROM ingest_batches")[0][0] == 3
    w.stop()
    spool.close()


def test_a_read_cut_short_by_its_byte_cap_is_inserted_without_waiting_for_max_delay(
        tmp_path: Path, store: Store) -> None:
    """Large requests fill the byte cap long before max_rows: such a batch is as full as it gets,
    so the writer must not idle max_delay on each one (it did, and capped ingest at ~85k events/s)."""
    spool = Spool(tmp_path, 10_000_000, 1_000_000, read_cap=3_000)
    w = BatchWriter(spool, store.insert_arrow, CollectorMetrics(), max_rows=100_000, max_delay_s=60)
    for i in range(12):
        spool.submit([encode_record(INGEST_BATCHES, batch_rows(20, i * 20))]).result(5)
    w.start()
    deadline = time.monotonic() + 30  # half of one max_delay: the old writer would still be waiting
    while store.query("SELECT count() FROM ingest_batches")[0][0] < 220 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Every read but the last had more behind it; the last, with nothing behind, may wait for company.
    assert store.query("SELECT count(), uniqExact(batch_id) FROM ingest_batches")[0] == (220, 220)
    inserts = w.metrics.registry.get_sample_value("syncwatch_writer_batch_seconds_count", {"table": INGEST_BATCHES})
    assert inserts == 11, "each capped read is one insert"
    assert w.wait_until_stored(30)
    assert store.query("SELECT count(), uniqExact(batch_id) FROM ingest_batches")[0] == (240, 240)
    w.stop()
    spool.close()


def test_small_requests_handed_off_together_become_one_record_per_table(tmp_path: Path, store: Store) -> None:
    spool = Spool(tmp_path, 10_000_000, 1_000_000)
    w = writer(spool, store)
    requests = [{INGEST_BATCHES: Rows(batch_rows(2, i * 2).to_pydict()),
                 QUARANTINE: quarantine_rows(CTX, "event", [("/crm/x", f"q{i}", "t", "bad", "{}")])}
                for i in range(6)]
    large = {INGEST_BATCHES: batch_rows(300, 100)}  # Arrow: spooled as its own record
    before = [{name: {c: list(v) for c, v in rows.columns.items()} for name, rows in r.items()} for r in requests]

    async def scenario() -> None:
        await asyncio.gather(*(w.submit(r, body_bytes=200) for r in [*requests, large]))

    asyncio.run(scenario())
    records = spool.read(Position(0, 0), 100_000)
    assert sorted((r.table, r.fmt, r.rows) for r in records) == [
        (INGEST_BATCHES, b"A", 300), (INGEST_BATCHES, b"M", 12), (QUARANTINE, b"M", 6)]
    assert [{name: dict(rows.columns) for name, rows in r.items()} for r in requests] == before, \
        "a request's own rows must not be changed by the join"
    w.start()
    assert w.wait_until_stored(30)
    assert store.query("SELECT count(), uniqExact(batch_id) FROM ingest_batches")[0] == (312, 312)
    assert store.query("SELECT groupArraySorted(10)(item_id) FROM quarantine")[0][0] == [f"q{i}" for i in range(6)]
    w.stop()
    spool.close()
