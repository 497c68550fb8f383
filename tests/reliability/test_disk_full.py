"""The spool's disk fills up: clean 503s naming the cause, acknowledged data intact, recovery."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from collector.app import create_app
from collector.spool import SEGMENT_SUFFIX, scan_segment
from syncwatch.settings import Settings
from syncwatch.store import Store
from tests.collector.test_durability import CE_BATCH, event_batch

HEADROOM = 120_000  # bytes left free on the 1 MiB disk: a dozen requests' worth


def fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    stat = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


def segments_are_whole(spool_dir: Path) -> bool:
    """Every segment is a sequence of valid records up to its last byte: no torn or corrupt tail."""
    for path in sorted(spool_dir.glob(f"*{SEGMENT_SUFFIX}")):
        records = scan_segment(path, int(path.stem))
        if path.stat().st_size != (records[-1].end.offset if records else 0):
            return False
    return True


def test_a_full_spool_disk_answers_503_keeps_what_it_acked_and_recovers(
        settings: Settings, store: Store, small_disk: Path) -> None:
    spool_dir = small_disk / "spool"
    settings = settings.model_copy(update={"spool_dir": spool_dir})
    with TestClient(create_app(settings, store=store)) as client:
        key = client.app.state.keys.create("crm", "crm", ["events"])[1]
        headers = {"Authorization": f"Bearer {key}", "Content-Type": CE_BATCH}
        filler = fill(small_disk, HEADROOM)
        acked, refused = [], []
        for n in range(60):
            response = client.post("/v1/events", content=event_batch(f"df{n}", 40), headers=headers)
            (acked if response.status_code == 200 else refused).append((n, response))
            if len(refused) == 3:
                break
        assert acked and len(refused) == 3, "the disk never filled"
        for _, response in refused:
            assert response.status_code == 503 and response.headers["Retry-After"] == "5"
            error = response.json()["error"]
            assert error["code"] == "spool_unavailable" and "No space left on device" in error["message"]
        assert segments_are_whole(spool_dir), "a failed write left a torn record"
        assert client.get("/healthz").status_code == 200

        filler.unlink()  # space returns
        assert client.post("/v1/events", content=event_batch("after", 40), headers=headers).status_code == 200
        assert client.app.state.writer.wait_until_stored(30)
        assert client.get("/readyz").status_code == 200

    (rows, ids), = store.query("SELECT count(), uniqExact(id) FROM events")
    assert rows == ids == (len(acked) + 1) * 40
    stored = {r[0] for r in store.query("SELECT DISTINCT splitByChar('-', id)[1] FROM events")}
    assert stored == {f"df{n}" for n, _ in acked} | {"after"}, "a refused request was stored, or an acked one lost"

    with TestClient(create_app(settings, store=store)):  # restart on the same spool: nothing replayed twice
        pass
    assert store.query("SELECT count() FROM events")[0][0] == rows


def fill_to_the_brim(disk: Path) -> Path:
    filler = disk / "brim"
    with open(filler, "wb", buffering=0) as fh:  # unbuffered: closing has nothing left to write
        try:
            while True:
                fh.write(b"\0" * 4096)  # tmpfs allocates whole pages
        except OSError:
            pass
    return filler


def test_a_checkpoint_that_cannot_be_written_stalls_the_writer_until_space_returns(
        settings: Settings, store: Store, small_disk: Path) -> None:
    """The writer's checkpoint lives on the spool's disk too: a full disk must not kill the writer
    thread (which would strand every acknowledged row until a restart)."""
    settings = settings.model_copy(update={"spool_dir": small_disk / "spool"})
    with TestClient(create_app(settings, store=store)) as client:
        key = client.app.state.keys.create("crm", "crm", ["events"])[1]
        headers = {"Authorization": f"Bearer {key}", "Content-Type": CE_BATCH}
        store.command("DETACH TABLE events")  # hold the rows in the spool while the disk fills
        for n in range(5):
            assert client.post("/v1/events", content=event_batch(f"cp{n}", 40), headers=headers).status_code == 200
        brim = fill_to_the_brim(small_disk)
        store.command("ATTACH TABLE events")  # the insert now works; the checkpoint after it cannot
        deadline = time.monotonic() + 20
        while "No space left on device" not in client.app.state.writer.last_error:
            assert time.monotonic() < deadline, f"writer: {client.app.state.writer.last_error!r}"
            time.sleep(0.05)
        assert client.get("/readyz").json()["checks"]["writer"]["ok"] is False

        brim.unlink()
        assert client.app.state.writer.wait_until_stored(30), "the writer did not resume after space returned"
        assert client.get("/readyz").status_code == 200
    (rows, ids), = store.query("SELECT count(), uniqExact(id) FROM events")
    assert rows == ids == 5 * 40
