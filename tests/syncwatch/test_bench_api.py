"""`syncwatch bench api` on a small generated store: every request answered, the table written."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncwatch.bench.api import requests_to_time
from syncwatch.cli import main

pytestmark = pytest.mark.slow


def test_the_api_benchmark_answers_every_request(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "api", "--events", "7000", "--findings", "100", "--repeat", "2",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "api.json").read_text())
    counts = report["counts"]
    assert counts["psa.timesheet.approved"] == 5000 and counts["findings"] == 100
    assert 0 < counts["billing.invoice.created"] <= 1000 and 0 < counts["erp.invoice.posted"] <= 1000
    assert set(report["requests"]) == set(requests_to_time(datetime.now(UTC)))
    assert all(r["bytes"] > 2 and r["p95_seconds"] >= r["p50_seconds"] > 0 for r in report["requests"].values())
    assert "| request | p50 | p95 |" in (tmp_path / "api.md").read_text()
