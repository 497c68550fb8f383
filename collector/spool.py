"""The write-ahead spool: what the collector acknowledged, on disk, until ClickHouse has it.

Layout: numbered segment files of framed records plus a checkpoint file.

    record   = MAGIC | u32 payload length | u32 crc32(payload) | payload
    payload  = u16 table-name length | table name | u8 format | u32 row count | body
    body     = an Arrow IPC stream (format A) or msgpack columns (format M, small requests)

Appends are group-committed: requests queue their records, one thread writes everything
queued and fsyncs once, then acknowledges them all (the OpenTelemetry SDK's BatchProcessor
shape, with a bounded size instead of a bounded queue). A torn record at the end of the last
segment can only come from a crash before its acknowledgement, so start-up truncates it.

The checkpoint says what has reached ClickHouse ("done") and which range is being inserted
right now ("inflight"). After a crash the inflight range is inserted again with the same
deduplication tokens, so ClickHouse drops whatever part of it had already landed.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa

from collector.decoded import Batch, Rows

MAGIC = b"SWR1"
HEADER = struct.Struct("<4sII")
SEGMENT_SUFFIX = ".wal"
CHECKPOINT = "checkpoint.json"
READ_CAP = 32 * 1024 * 1024  # bytes the writer reads per batch; bounds its memory during a backlog


class SpoolFull(Exception):
    """The spool holds spool_max_bytes not yet in the store: the caller should answer 503."""


class SpoolUnavailable(Exception):
    """The spool could not write (disk full, I/O error, shutting down): nothing was acknowledged."""


@dataclass(frozen=True, order=True)
class Position:
    segment: int
    offset: int

    def to_json(self) -> list[int]:
        return [self.segment, self.offset]


@dataclass(frozen=True)
class Record:
    table: str
    fmt: bytes
    rows: int
    body: memoryview  # a view of the bytes read (records are ~0.5 MB: copying them cost ~0.25 us per event)
    start: Position
    end: Position

    def to_batch(self) -> Batch:
        if self.fmt == ARROW:
            return pa.ipc.open_stream(self.body).read_all()
        return Rows(_COLUMNS.decode(self.body))


ARROW, MSGPACK = b"A", b"M"
Frame = bytes | pa.Buffer  # a record, or a piece of one (record_parts)
_COLUMNS = msgspec.msgpack.Decoder(dict[str, list[Any]])
_ENCODER = msgspec.msgpack.Encoder()
_IPC_OPTIONS = pa.ipc.IpcWriteOptions()  # explicit options: pyarrow skips its per-call environment lookups


def encode_record(table: str, data: Batch) -> bytes:
    return b"".join(record_parts(table, data))


def record_parts(table: str, data: Batch) -> list[Frame]:
    """One record as pieces written one after the other: the header, then the body as Arrow or msgpack
    made it. Records are ~0.6 MB; joining them into one bytes object cost the event loop a copy each."""
    body: bytes | pa.Buffer
    if isinstance(data, Rows):
        fmt, body = MSGPACK, _ENCODER.encode(data.columns)
    else:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema, options=_IPC_OPTIONS) as writer:
            writer.write_table(data)
        fmt, body = ARROW, sink.getvalue()
    name = table.encode()
    head = b"".join((struct.pack("<H", len(name)), name, fmt, struct.pack("<I", data.num_rows)))
    crc = zlib.crc32(body, zlib.crc32(head))
    return [HEADER.pack(MAGIC, len(head) + len(body), crc) + head, body]


def _decode_payload(payload: memoryview) -> tuple[str, bytes, int, memoryview]:
    (name_len,) = struct.unpack_from("<H", payload, 0)
    table = bytes(payload[2 : 2 + name_len]).decode()
    fmt = bytes(payload[2 + name_len : 3 + name_len])
    (rows,) = struct.unpack_from("<I", payload, 3 + name_len)
    return table, fmt, rows, payload[7 + name_len :]


def scan_segment(path: Path, segment: int, start: int = 0, limit: int | None = None,
                 max_read: int | None = None) -> list[Record]:
    """Read whole, valid records of one segment from byte `start` up to byte `limit`.

    `max_read` caps how much is read at once (the writer takes a bounded batch); a single
    record larger than the cap is still read whole.
    """
    end = limit if limit is not None else path.stat().st_size
    if max_read is not None and end - start > max_read:
        records = _scan_bytes(_read_range(path, start, start + max_read), segment, start)
        if records:
            return records
    return _scan_bytes(_read_range(path, start, end), segment, start)


def _scan_bytes(data: bytes, segment: int, base: int) -> list[Record]:
    records, offset, view = [], 0, memoryview(data)
    while offset + HEADER.size <= len(data):
        magic, length, crc = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if magic != MAGIC or end > len(data):
            break
        payload = view[offset + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        table, fmt, rows, body = _decode_payload(payload)
        records.append(Record(table, fmt, rows, body, Position(segment, base + offset), Position(segment, base + end)))
        offset = end
    return records


def _read_range(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(max(0, end - start))


class Spool:
    """Segment files, the checkpoint, and the group-committing append thread."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int, fsync: bool = True,
                 read_cap: int = READ_CAP) -> None:
        self.directory = directory
        self.read_cap = read_cap
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self.done, self.inflight = self._load_checkpoint()
        self._segments = self._recover_segments()
        self._current = self._segments[-1]
        self._fh = open(self._path(self._current), "ab")  # noqa: SIM115 - lives as long as the spool
        self.durable = Position(self._current, self._fh.tell())
        self._sizes = {seg: self._path(seg).stat().st_size for seg in self._segments}
        self._queue: deque[tuple[Sequence[Frame], Future[Position], int]] = deque()
        self.durable_rows = 0  # rows and bytes made durable since start-up; the writer sizes batches with them
        self.durable_bytes = 0
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._durable_listeners: list[threading.Event] = []
        self._closed = False
        self._broken = ""  # why the spool refuses every write until a restart repairs its tail
        self._thread = threading.Thread(target=self._append_loop, name="spool-append", daemon=True)
        self._thread.start()

    # -- append side -------------------------------------------------------------------------

    def submit(self, frames: Sequence[Frame], rows: int = 0) -> Future[Position]:
        """Queue encoded records, or their pieces in order (holding `rows` rows); the future resolves
        once they are on disk."""
        size = sum(len(f) for f in frames)
        with self._cond:
            self.check_room(size)
            future: Future[Position] = Future()
            self._queue.append((frames, future, rows))
            self._queued_bytes += size
            self._cond.notify_all()
        return future

    def check_room(self, size: int) -> None:
        """Raise SpoolFull/SpoolUnavailable unless `size` more bytes may be queued now."""
        if self._closed:
            raise SpoolUnavailable("the collector is shutting down")
        if self._broken:
            raise SpoolUnavailable(self._broken)
        if self.pending_bytes() + self._queued_bytes + size > self.max_bytes:
            raise SpoolFull(f"spool holds {self.pending_bytes()} bytes not yet stored (limit {self.max_bytes})")

    def _append_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[Sequence[Frame], Future[Position], int]]) -> None:
        start = self.durable.offset  # only this thread moves `durable`, so no lock is needed to read it
        try:
            for frames, _, _ in batch:
                for frame in frames:
                    self._fh.write(frame)
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
        except OSError as exc:
            try:
                self._undo_partial_write(start)
            except OSError as undo:  # refuse from now on rather than append after a torn record
                self._broken = f"the spool cannot undo a failed write ({undo.strerror or undo}); restart the collector"
            for _, future, _ in batch:
                future.set_exception(SpoolUnavailable(f"spool write failed: {exc.strerror or exc}"))
            return
        end = Position(self._current, start + sum(len(f) for frames, _, _ in batch for f in frames))
        with self._cond:
            self.durable = end
            self.durable_rows += sum(rows for _, _, rows in batch)
            self.durable_bytes += end.offset - start
            self._sizes[self._current] = end.offset
            for event in self._durable_listeners:
                event.set()
        for _, future, _ in batch:
            future.set_result(end)
        if end.offset >= self.segment_bytes:
            self._rotate()

    def _undo_partial_write(self, start: int) -> None:
        """Cut a failed write back to the last acknowledged byte so no torn record remains.

        Closing flushes what is still buffered, which fails again on a full disk; the file is
        closed all the same, and the truncation must still happen: later records appended after
        a torn one would be unreadable, to the writer now and to the start-up scan.
        """
        with contextlib.suppress(OSError):
            self._fh.close()
        os.truncate(self._path(self._current), start)  # frees space, so it works on a full disk
        self._fh = open(self._path(self._current), "ab")  # noqa: SIM115

    def _rotate(self) -> None:
        self._fh.close()
        self._current += 1
        self._fh = open(self._path(self._current), "ab")  # noqa: SIM115
        with self._cond:
            self._segments.append(self._current)
            self._sizes[self._current] = 0
            self.durable = Position(self._current, 0)

    def add_listener(self, event: threading.Event) -> None:
        """`event` is set whenever new records become durable (the writer waits on it)."""
        with self._cond:
            self._durable_listeners.append(event)

    # -- read side (the writer) ----------------------------------------------------------------

    def read(self, start: Position, max_rows: int) -> list[Record]:
        """Durable records from `start` within one segment, at most ~max_rows rows."""
        with self._cond:
            durable = self.durable
        if start.segment == durable.segment and start.offset >= durable.offset:
            return []
        limit = durable.offset if start.segment == durable.segment else None
        records = scan_segment(self._path(start.segment), start.segment, start.offset, limit, self.read_cap)
        taken, rows = [], 0
        for record in records:
            if taken and rows + record.rows > max_rows:
                break
            taken.append(record)
            rows += record.rows
        return taken

    def durable_beyond(self, position: Position) -> bool:
        """Whether durable records follow `position`: then a batch read up to it was cut short by
        the row cap, the byte cap (read_cap) or the segment's end, and waiting would not fill it more."""
        with self._cond:
            if position.segment == self.durable.segment:
                return position.offset < self.durable.offset
            return position.offset < self._sizes.get(position.segment, 0) or any(
                self._sizes.get(segment, 0) for segment in self._segments if segment > position.segment)

    def read_range(self, start: Position, end: Position) -> list[Record]:
        return scan_segment(self._path(start.segment), start.segment, start.offset, end.offset)

    def next_segment_after(self, position: Position) -> Position | None:
        """Where reading continues once `position` is at the end of a sealed segment."""
        with self._cond:
            later = [s for s in self._segments if s > position.segment]
        if not later or position.offset < self._sizes.get(position.segment, 0):
            return None
        return Position(later[0], 0)

    def checkpoint(self, done: Position, inflight: tuple[Position, Position] | None) -> None:
        """Record progress durably (write, fsync, rename) and drop fully stored segments."""
        state = {"done": done.to_json(), "inflight": [p.to_json() for p in inflight] if inflight else None}
        tmp = self.directory / (CHECKPOINT + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, self.directory / CHECKPOINT)
        self.done, self.inflight = done, inflight
        self._drop_segments_before(done.segment)

    def _drop_segments_before(self, segment: int) -> None:
        with self._cond:
            stale = [s for s in self._segments if s < segment]
            self._segments = [s for s in self._segments if s >= segment]
            for seg in stale:
                self._sizes.pop(seg, None)
        for seg in stale:
            self._path(seg).unlink(missing_ok=True)

    def pending_bytes(self) -> int:
        """Bytes acknowledged but not yet in the store."""
        total = sum(self._sizes.values())
        return max(0, total - self.done.offset)

    # -- start-up and shutdown --------------------------------------------------------------------

    def _load_checkpoint(self) -> tuple[Position, tuple[Position, Position] | None]:
        path = self.directory / CHECKPOINT
        if not path.exists():
            return Position(0, 0), None
        state = json.loads(path.read_text())
        inflight = state.get("inflight")
        return Position(*state["done"]), (Position(*inflight[0]), Position(*inflight[1])) if inflight else None

    def _recover_segments(self) -> list[int]:
        segments = sorted(int(p.stem) for p in self.directory.glob(f"*{SEGMENT_SUFFIX}"))
        for stale in (s for s in segments if s < self.done.segment):
            self._path(stale).unlink()  # crashed between checkpoint and clean-up
        segments = [s for s in segments if s >= self.done.segment] or [self.done.segment]
        last = segments[-1]
        path = self._path(last)
        if path.exists():
            valid_end = max((r.end.offset for r in scan_segment(path, last)), default=0)
            if path.stat().st_size > valid_end:
                os.truncate(path, valid_end)  # a torn tail was never acknowledged
        else:
            path.touch()
        return segments

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{SEGMENT_SUFFIX}"

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        self._fh.close()
