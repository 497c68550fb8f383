"""The spool on its own: framing, group commit, torn tails, checkpoints, the size limit."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from collector.decoded import Rows
from collector.spool import (
    Position,
    Spool,
    SpoolFull,
    SpoolUnavailable,
    encode_record,
    record_parts,
    scan_segment,
)


def rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array([str(i) for i in range(start, start + n)])})


def spool(tmp_path: Path, **kw: int) -> Spool:
    return Spool(tmp_path, kw.get("max_bytes", 10_000_000), kw.get("segment_bytes", 1_000_000))


def test_records_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    s = spool(tmp_path)
    end = s.submit([encode_record("events", rows(3)), encode_record("quarantine", rows(1))]).result(5)
    assert end == s.durable
    s.close()
    reopened = spool(tmp_path)
    records = reopened.read(Position(0, 0), 1000)
    assert [(r.table, r.rows) for r in records] == [("events", 3), ("quarantine", 1)]
    assert records[0].to_batch().column("id").to_pylist() == ["0", "1", "2"]
    reopened.close()


def test_a_record_written_in_parts_is_the_record(tmp_path: Path) -> None:
    s = spool(tmp_path)
    items = [("events", rows(1000)), ("quarantine", Rows({"id": ["q"]}))]
    parts = [part for item in items for part in record_parts(*item)]
    assert any(isinstance(part, pa.Buffer) for part in parts)  # the Arrow body is written as Arrow made it
    whole = b"".join(encode_record(*item) for item in items)
    assert s.submit(parts).result(5).offset == len(whole)
    s.close()
    assert (tmp_path / "000000000000.wal").read_bytes() == whole
    reopened = spool(tmp_path)
    records = reopened.read(Position(0, 0), 10_000)
    assert [(r.table, r.rows) for r in records] == [("events", 1000), ("quarantine", 1)]
    assert records[0].to_batch().equals(rows(1000))
    reopened.close()


def test_torn_tail_is_truncated_at_start_up(tmp_path: Path) -> None:
    s = spool(tmp_path)
    s.submit([encode_record("events", rows(2))]).result(5)
    s.close()
    segment = tmp_path / "000000000000.wal"
    good = segment.stat().st_size
    with open(segment, "ab") as fh:
        fh.write(encode_record("events", rows(5))[:-7])  # a crash in the middle of a write
    reopened = spool(tmp_path)
    assert segment.stat().st_size == good
    assert sum(r.rows for r in reopened.read(Position(0, 0), 1000)) == 2
    reopened.close()


def test_corrupt_record_stops_the_scan(tmp_path: Path) -> None:
    s = spool(tmp_path)
    s.submit([encode_record("events", rows(2)), encode_record("events", rows(2))]).result(5)
    s.close()
    segment = tmp_path / "000000000000.wal"
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert len(scan_segment(segment, 0)) == 1


def test_full_spool_refuses_before_writing(tmp_path: Path) -> None:
    frame = encode_record("events", rows(100))
    s = spool(tmp_path, max_bytes=len(frame) * 2 + 10)
    s.submit([frame]).result(5)
    s.submit([frame]).result(5)
    with pytest.raises(SpoolFull, match="not yet stored"):
        s.submit([frame])
    s.checkpoint(s.durable, None)  # the writer stored everything: room again
    s.submit([frame]).result(5)
    s.close()


def test_rotation_and_checkpoint_drop_stored_segments(tmp_path: Path) -> None:
    s = spool(tmp_path, segment_bytes=2_000)
    for i in range(20):
        s.submit([encode_record("events", rows(50, i * 50))]).result(5)
    segments = sorted(tmp_path.glob("*.wal"))
    assert len(segments) > 2
    s.checkpoint(Position(s.durable.segment, 0), None)
    assert sorted(tmp_path.glob("*.wal")) == [tmp_path / f"{s.durable.segment:012d}.wal"]
    s.close()


def test_closed_spool_refuses(tmp_path: Path) -> None:
    s = spool(tmp_path)
    s.close()
    with pytest.raises(SpoolUnavailable):
        s.submit([encode_record("events", rows(1))])


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_fails_the_request_and_leaves_no_torn_record(tmp_path: Path) -> None:
    s = spool(tmp_path)
    s.submit([encode_record("events", rows(1))]).result(5)
    good = s.durable
    real = s._fh
    s._fh = open("/dev/full", "ab")  # noqa: SIM115 - every write fails with ENOSPC
    with pytest.raises(SpoolUnavailable, match="spool write failed"):
        s.submit([encode_record("events", rows(1000))]).result(5)
    real.close()
    assert s.durable == good
    s.submit([encode_record("events", rows(1))]).result(5)
    assert sum(r.rows for r in s.read(Position(0, 0), 1000)) == 2
    s.close()


def test_small_requests_travel_as_msgpack_rows(tmp_path: Path) -> None:
    s = spool(tmp_path)
    s.submit([encode_record("events", Rows({"id": ["a", "b"], "n": [1, 2]}))], rows=2).result(5)
    (record,) = s.read(Position(0, 0), 1000)
    assert (record.fmt, record.rows) == (b"M", 2)
    assert record.to_batch().columns == {"id": ["a", "b"], "n": [1, 2]}
    s.close()


def test_durable_beyond_says_whether_a_read_left_records_behind(tmp_path: Path) -> None:
    s = Spool(tmp_path, 10_000_000, 1, read_cap=1)  # every append seals its segment; every read takes one record
    assert s.submit([encode_record("events", rows(2))]).result(5).segment == 0
    [record] = s.read(Position(0, 0), 1000)
    assert not s.durable_beyond(record.end), "the end of a sealed segment with an empty successor"
    s.submit([encode_record("events", rows(1))]).result(5)
    assert s.durable_beyond(record.end), "the next segment now holds a record"
    s.close()

    one = Spool(tmp_path / "one", 10_000_000, 1_000_000, read_cap=400)  # one record of ~330 bytes per read
    for i in range(3):
        one.submit([encode_record("events", rows(1, i))]).result(5)
    taken = one.read(Position(0, 0), 1000)
    assert len(taken) == 1 and one.durable_beyond(taken[-1].end)
    rest = one.read(taken[-1].end, 1000)
    rest += one.read(rest[-1].end, 1000)
    assert not one.durable_beyond(rest[-1].end)
    one.close()
