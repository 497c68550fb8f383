"""`syncwatch bench latency` on a few instances: every overdue instance alerted, none early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncwatch.cli import main

pytestmark = pytest.mark.slow


def test_every_overdue_instance_reaches_the_webhook_after_its_deadline(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "latency", "--instances", "6", "--spread", "1", "--sla", "2",
                                       "--every", "10", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "latency.json").read_text())
    assert (report["alerted"], report["missed"]) == (6, 0)
    assert report["min_seconds"] >= -0.5  # never before the deadline (up to clock reading skew)
    assert report["max_seconds"] <= 10 + 30  # one schedule interval plus a run, on a loaded machine
    assert "| 6 | 0 |" in (tmp_path / "latency.md").read_text()


def test_bad_options_are_refused() -> None:
    result = CliRunner().invoke(main, ["bench", "latency", "--every", "5"])
    assert result.exit_code != 0 and "--every >= 10" in result.output
