"""`syncwatch bench storage` on a tiny firm: every table measured, figures consistent, files written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncwatch.bench.storage import MEASURED, run
from syncwatch.cli import main
from syncwatch.simulator.delivery import FeedConfig


def test_storage_bench_measures_simulator_data(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    config = FeedConfig(seed=3, consultants=12, clients=4, days=5)
    report = run(config, str(tmp_path), dsn=chdb_dsn, database=database)
    tables = {t["table"]: t for t in report["tables"]}
    assert set(tables) == set(MEASURED)
    for name in ("events", "records", "otel_traces"):
        t = tables[name]
        assert t["rows"] > 0 and 0 < t["compressed_bytes"] <= t["bytes_on_disk"], t
        assert t["uncompressed_bytes"] > t["compressed_bytes"] and t["ratio"] > 1
    # ReplacingMergeTree: what is stored after OPTIMIZE FINAL is at most what was inserted
    assert tables["events"]["rows"] <= report["inserted_rows"]["events"]
    assert tables["otel_traces"]["rows"] == report["inserted_rows"]["otel_traces"]
    assert json.loads((tmp_path / "storage.json").read_text())["inputs"]["consultants"] == 12
    assert "| events |" in (tmp_path / "storage.md").read_text()


def test_storage_bench_leaves_no_database_behind(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    from syncwatch.store import Store

    run(FeedConfig(seed=1, consultants=2, clients=1, days=1), str(tmp_path), dsn=chdb_dsn, database=database)
    probe = Store(chdb_dsn, "default")
    try:
        assert not probe.query("SELECT name FROM system.databases WHERE name = {d:String}", {"d": database})
    finally:
        probe.close()


@pytest.mark.parametrize("args", [["--consultants", "0"], ["--days", "0"], ["--days", "x"]])
def test_storage_bench_refuses_bad_sizes(args: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "storage", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "Invalid value" in result.output
