"""`syncwatch bench all`: which benchmarks run at which size, and the reports copied to the docs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncwatch.bench.all import FULL, SMALL, commands
from syncwatch.cli import main


def test_every_benchmark_runs_at_its_stated_size_unless_chosen(tmp_path: Path) -> None:
    planned = commands(False, (), tmp_path)
    assert [name for name, _ in planned] == ["ingest", "reconcile", "api", "latency", "accuracy"]
    reconcile = dict(planned)["reconcile"]
    assert reconcile[:5] == [sys.executable, "-m", "syncwatch.cli", "bench", "reconcile"]
    assert "1000000,10000000" in reconcile and reconcile[-2:] == ["--out", str(tmp_path)]
    assert dict(planned)["ingest"][5:9] == ["--seconds", "10", "--sustain", "300"], "RSS is stated for 5 min of load"
    assert [name for name, _ in commands(True, ("accuracy", "ingest"), tmp_path)] == ["ingest", "accuracy"]
    assert set(SMALL) == set(FULL) and all(SMALL[n] != FULL[n] for n in FULL)


def test_an_unknown_benchmark_is_refused_with_the_choices() -> None:
    result = CliRunner().invoke(main, ["bench", "all", "--only", "speed"])
    assert result.exit_code == 2 and "--only" in result.output and "accuracy" in result.output


@pytest.mark.slow
def test_the_chosen_report_lands_in_out_and_in_the_docs(tmp_path: Path) -> None:
    out, docs = tmp_path / "out", tmp_path / "docs"
    result = CliRunner().invoke(main, ["bench", "all", "--small", "--only", "latency", "--out", str(out),
                                       "--docs", str(docs)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["latency.json", "latency.md"]
    assert [p.name for p in docs.iterdir()] == ["latency.md"]
    assert (docs / "latency.md").read_text() == (out / "latency.md").read_text()
    assert "load average" in (docs / "latency.md").read_text()
