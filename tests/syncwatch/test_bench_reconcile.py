"""`syncwatch bench reconcile` at a tiny size: its correctness check, not its timings.

The benchmark finds drift it injected itself; this test holds it to "found = injected, as sets" for
the full run, the incremental run (against a full run on the changed keys) and stuck instances, and
to the drift counts of each baseline equalling the injected ones. It runs in a separate process
because chDB allows one data path per process and this test process already holds one.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def bench(out: Path, *args: str) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncwatch.cli",
            "bench",
            "reconcile",
            "--rows",
            "2000",
            "--events",
            "2000",
            "--out",
            str(out),
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "reconcile.json").read_text())


def test_drift_found_is_the_drift_injected(tmp_path: Path) -> None:
    report = bench(tmp_path, "--no-baselines")
    size = report["sizes"][0]
    ours = size["syncwatch"]
    assert ours["exact"] and ours["findings"] == ours["expected"] == sum(size["injected"].values()) > 0
    assert set(size["injected"]) == {"missing_left", "missing_right", "budget", "status", "legal_entity"}
    incremental = size["incremental"]
    assert incremental["exact"] and incremental["changed_records"] == 200 and incremental["findings"] > 0
    stuck = report["stuck"]
    assert stuck["compiled_rule"]["exact"] and stuck["compiled_rule"]["found"] == stuck["expected"] > 0
    assert stuck["compiled_rule_rows"]["exact"] and stuck["compiled_rule_rows"]["found"] == stuck["expected"]
    assert stuck["final"]["exact"] and stuck["no_final"]["exact"]
    for label in ("scheduled_run", "scheduled_run_rows", "scheduled_run_after_fold"):  # on kept progress
        assert stuck[label]["exact"] and stuck[label]["found"] == stuck["expected"], label
    assert stuck["progress_fold"]["events"] > 0 and stuck["progress_build_seconds"] > 0
    kpis = {name: {row["stat"]: row["value"] for row in k["rows"]} for name, k in stuck["kpis"].items()}
    completed = 1 - stuck["expected"] / stuck["instances"]
    assert kpis["bench_completion"]["completion_rate"] == pytest.approx(completed, abs=1e-4)
    assert kpis["bench_sla_compliance"]["sla_compliance"] == pytest.approx(completed, abs=1e-4)
    assert kpis["bench_cycle_time"] == {"p50": 9.0, "p90": 9.0, "mean": 9.0}  # a.start to a.end: 9 hours
    assert "reconcile.md" in {p.name for p in tmp_path.iterdir()}


@pytest.mark.skipif(importlib.util.find_spec("datacompy") is None, reason="needs the 'bench' extra (datacompy)")
def test_baselines_find_the_same_drift(tmp_path: Path) -> None:
    size = bench(tmp_path, "--events", "0")["sizes"][0]
    for name in ("polars-lazy", "datacompy-polars", "datacompy-pandas"):
        assert size["baselines"][name]["counts"] == size["injected"], name
