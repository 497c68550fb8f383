"""`syncwatch bench ingest`: every protocol at batch sizes 1, 100 and 1,000, against the ceiling, in one table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from syncwatch.bench.ingest import _error_code, markdown, run_single_wrk
from syncwatch.bench.serverproc import ServerProcess

MACHINE = {"cores": 2, "memory_gib": 23.5, "python": "3.11.7", "date": "2026-11-25", "load_1m_at_start": 0.5}


def _scenario(name: str, protocol: str, batch: int, rate: int) -> dict[str, object]:
    return {"name": name, "protocol": protocol, "batch": batch, "clients": 4, "client": "Python threads",
            "rate_per_s": rate, "requests": 10, "refused": 1, "p50_ms": 2.0, "p99_ms": 9.5, "peak_rss_mib": 700,
            "server_cpu_us": 8.123, "load_cpu_us": 0.3}


def test_each_row_is_measured_against_its_own_protocol_s_ceiling() -> None:
    report = {"machine": MACHINE, "ceiling_rows_per_s": {"events": 200_000, "spans": 400_000},
              "scenarios": [_scenario("CE", "CloudEvents", 1000, 100_000),
                            _scenario("spans", "OTLP spans", 100, 100_000)],
              "server_peak_rss_mib": 800, "sustained": None}
    text = markdown(report)
    assert "| CE | 1000 | 4 | 100,000 | 50% | 10 | 1 | 2.0 | 9.5 | 700 | 8.12 | 0.30 |" in text
    assert "| spans | 100 | 4 | 100,000 | 25% |" in text
    assert "on 2 cores, 23.5 GiB" in text and "load average 0.50 at start" in text and "200,000 event rows/s" in text



@pytest.mark.parametrize(("answer", "code"), [
    (b'{"error": {"code": "spool_full", "message": "the store is behind"}}', "spool_full"),
    (b'{"error": "plain text"}', ""), (b"<html>bad gateway</html>", ""), (b"[1, 2]", ""), (b"", ""),
])
def test_a_refusal_is_counted_by_the_collector_s_error_code(answer: bytes, code: str) -> None:
    assert _error_code(answer) == code


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncwatch.cli", *args], capture_output=True, text=True,
                          timeout=900, check=False)


@pytest.mark.slow
def test_every_protocol_and_batch_size_reaches_the_store(tmp_path: Path) -> None:
    # a process of its own: the benchmark opens embedded stores, and chDB allows one data path per
    # process (this test process may already hold the suite's)
    result = run_cli(["bench", "ingest", "--seconds", "1", "--out", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "ingest.json").read_text())
    measured = {(s["protocol"], s["batch"]) for s in report["scenarios"] if s["rate_per_s"] > 0}
    assert measured == {(p, b) for p in ("CloudEvents", "OTLP spans") for b in (1, 100, 1000)}
    assert all(s["peak_rss_mib"] > 0 and s["p99_ms"] >= s["p50_ms"] > 0 for s in report["scenarios"])
    assert all(s["server_cpu_us"] > 0 and s["load_cpu_us"] > 0 for s in report["scenarios"]), "CPU per item"
    assert min(report["ceiling_rows_per_s"].values()) > 0 and "load_1m_at_start" in report["machine"]
    assert (tmp_path / "ingest.md").read_text().count("| OTLP spans,") == 3


@pytest.mark.slow
def test_a_second_wrk_run_against_one_server_counts_every_event(tmp_path: Path) -> None:
    """wrk's Lua random is not seeded: ids drawn from it repeated the previous run's, and repeats are
    stored once, so every run after the first on one server came out short."""
    server = ServerProcess(tmp_path, "bench-admin-test-token-0123456789")
    server.start()
    try:
        key = server.key("psa", "events")
        for _ in range(2):
            result = run_single_wrk(server, key, 4, 1)
            assert result.refused == 0 and result.requests > 100
            assert result.items >= result.requests, "events of this run were taken for repeats of the last"
    finally:
        server.stop()
