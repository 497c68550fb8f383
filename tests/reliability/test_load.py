"""`syncwatch bench load` end to end (a child server, real HTTP), and its pure figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncwatch.bench.load import LoadConfig, run
from syncwatch.bench.load_figures import Sent, phase_summary, recovered_after, rss_trend, slope
from syncwatch.cli import main


def check_invariants(report: dict) -> None:
    """What must hold at any rate on any machine; how many requests were shed depends on both."""
    assert report["server_alive"] and report["exactly_once"], report["delivery"]
    delivery = report["delivery"]
    assert delivery["acked_batches"] > 0 and delivery["acked_not_stored"] == 0
    assert delivery["stored_events"] == delivery["stored_unique"]
    for phase in report["phases"]:
        assert phase["sent"] > 0 and phase["accepted"] > 0, phase
        assert phase["refusals_without_retry_after"] == 0 and phase["other_status"] == 0, phase


def test_a_short_run_reports_every_phase_and_exactly_once(tmp_path: Path) -> None:
    config = LoadConfig(rate=1000, batch=50, seconds=2, burst_seconds=2, recover_seconds=2, max_inflight=4)
    report = run(config, str(tmp_path))
    check_invariants(report)
    assert [p["phase"] for p in report["phases"]] == ["sustained", "burst", "recovery"]
    assert [p["target_rps"] for p in report["phases"]] == [20, 200, 20]
    saved = json.loads((tmp_path / "load.json").read_text())
    assert saved["delivery"] == report["delivery"]
    assert "| burst (2 s) | 200 |" in (tmp_path / "load.md").read_text()


@pytest.mark.slow
def test_a_minute_of_load_with_a_burst_keeps_rss_flat_and_delivers_exactly_once(tmp_path: Path) -> None:
    config = LoadConfig(rate=5000, batch=100, seconds=45, burst_seconds=10, recover_seconds=10, max_inflight=16)
    report = run(config, str(tmp_path))
    check_invariants(report)
    assert report["rss_sustained"]["flat"], report["rss_sustained"]
    assert report["recovered_after_s"] is not None, report["phases"]


def test_the_cli_refuses_bad_options_with_a_clear_message() -> None:
    result = CliRunner().invoke(main, ["bench", "load", "--rate", "0"])
    assert result.exit_code == 2 and "--rate" in result.output
    with pytest.raises(Exception, match="must be positive"):
        LoadConfig(seconds=0)


def sent(at: float, status: int, retry_after: bool = False, latency: float = 10.0) -> Sent:
    return Sent("p", at, latency, status, retry_after)


def test_phase_summary_counts_statuses_and_refusals_without_retry_after() -> None:
    log = [sent(0.1, 200, latency=5), sent(0.2, 429, True), sent(0.3, 503, False), sent(0.4, 0), sent(0.5, 500),
           sent(0.6, 200, latency=15)]
    summary = phase_summary("p", 10, 2.0, log)
    assert (summary["sent"], summary["accepted"], summary["status_429"], summary["status_503"]) == (6, 2, 1, 1)
    assert (summary["no_answer"], summary["other_status"], summary["refusals_without_retry_after"]) == (1, 1, 1)
    assert (summary["sent_rps"], summary["p50_ms"], summary["p99_ms"]) == (3.0, 5.0, 15.0)


def test_recovery_is_the_first_second_after_which_every_second_is_accepted() -> None:
    log = [sent(0.5, 429, True), sent(1.5, 200), sent(1.6, 503, True), sent(2.5, 200), sent(3.5, 200)]
    assert recovered_after(log, 4) == 2.0
    assert recovered_after([sent(0.5, 200), sent(1.5, 200)], 2) == 0.0
    assert recovered_after([sent(0.5, 200), sent(1.5, 429, True)], 2) is None
    assert recovered_after([sent(0.5, 200)], 3) is None, "a second without answers is not a recovered one"


def test_rss_trend_tells_flat_from_growing() -> None:
    flat = [(float(t), 500 * 2**20 + (t % 3) * 2**20) for t in range(30)]
    growing = [(float(t), (500 + 10 * t) * 2**20) for t in range(30)]
    assert rss_trend(flat)["flat"] and abs(rss_trend(flat)["slope_mib_per_min"]) < 1
    assert not rss_trend(growing)["flat"] and rss_trend(growing)["slope_mib_per_min"] == 600
    assert rss_trend([(0.0, 1)]) == {"samples": 1}
    assert slope([1, 1], [2, 3]) == 0.0
