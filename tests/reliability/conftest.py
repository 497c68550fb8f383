"""Fault injection for the reliability tests: a store whose inserts fail on command, a small disk."""

from __future__ import annotations

import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from syncwatch import schema
from syncwatch.errors import StoreError
from syncwatch.store import Store

REFUSED = "store unreachable: [Errno 111] Connection refused"


class FlakyStore(Store):
    """The real store, with faults in the write path the way a ClickHouse server produces them.

    mode "up": everything works; "down": every call is refused before it reaches the store (a
    server whose port refuses connections); "flaky": every `every`-th insert fails, alternately
    refused before it reaches the store and landing with its answer lost (the client sees a
    timeout, the rows are stored). Failures are spaced wider than one batch's tables, so every
    retry of a range gets through and the test spends no time in long backoffs.
    """

    def __init__(self, dsn: str, database: str, every: int = 5) -> None:
        super().__init__(dsn, database)
        self.mode = "up"
        self.every = every
        self.injected: Counter[str] = Counter()
        self._inserts = 0

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:  # every read, write and command
        if self.mode == "down":
            self.injected["down"] += 1
            raise StoreError(REFUSED)
        return super()._call(fn, *args, **kwargs)

    def insert_arrow(self, table: str, data: pa.Table, token: str | None = None) -> None:
        self._inserts += 1
        fault = self.mode == "flaky" and self._inserts % self.every == 0
        if fault and self._inserts % (2 * self.every):
            self.injected["refused"] += 1
            raise StoreError(REFUSED)
        super().insert_arrow(table, data, token)
        if fault:
            self.injected["lost_ack"] += 1
            raise StoreError("store unreachable: timed out reading the answer to INSERT")


@pytest.fixture
def flaky_store(chdb_dsn: str) -> Iterator[FlakyStore]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    s = FlakyStore(chdb_dsn, database)
    schema.migrate(s)
    yield s
    s.mode = "up"
    s.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    s.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a real disk that fills up (ENOSPC from the kernel, not from a fake)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip("mounting a tmpfs needs root; tests/collector/test_spool.py::"
                    "test_disk_full_fails_the_request_and_leaves_no_torn_record injects ENOSPC instead")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
