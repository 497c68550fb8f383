"""`syncwatch bench accuracy`: the scoring on a real simulated feed (no store), and the command end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncwatch.bench.accuracy import START, feed_config
from syncwatch.bench.accuracy_score import UNEXPLAINED, finding_object, score
from syncwatch.bench.delivered import Delivered
from syncwatch.bench.pack_truth import UNCOVERED, Finding, expected, touched
from syncwatch.cli import main
from syncwatch.simulator.faults import SCHEMA_BREAK, Fault
from syncwatch.simulator.feed import Feed

DAYS = 120
Truth = tuple[list[Fault], Delivered, dict[Finding, list[Fault]]]


@pytest.fixture(scope="module")
def truth() -> Truth:
    feed = Feed(feed_config(seed=5, consultants=16, days=DAYS, fault_rate=0.1))
    batches = list(feed.batches())
    faults = feed.truth.faults
    delivered = Delivered(batches, {f.keys["event_id"] for f in faults if f.fault == SCHEMA_BREAK})
    now = datetime.combine(START + timedelta(days=DAYS), time(), UTC)
    return faults, delivered, expected(faults, delivered, now)


def test_finding_exactly_what_the_faults_imply_scores_100_per_cent(truth: Truth) -> None:
    faults, delivered, want = truth
    result = score(faults, delivered, want, set(want))
    assert result.exact and (result.precision, result.recall) == (1.0, 1.0) and result.expected == len(want) > 0
    assert {t.fault for t in result.types if not t.covered} == set(UNCOVERED)
    for t in result.types:
        assert t.injected == sum(f.fault == t.fault for f in faults)
        assert t.precision in (1.0, None) and t.recall in (1.0, None) and t.detected == t.must_find
        assert UNEXPLAINED not in t.left_nothing
    assert all(t.must_find == 0 for t in result.types if not t.covered)


def test_a_miss_and_a_finding_without_a_fault_are_charged_where_they_belong(truth: Truth) -> None:
    faults, delivered, want = truth
    missed = sorted(want)[0]
    cause = want[missed][0]
    # a finding of another kind on an object the same fault touched: a false positive charged to its type
    rule, obj = sorted(touched(cause, delivered), key=str)[0]
    key = {"project_id": obj[0], "period": obj[1]} if rule == "billing_leakage" else {"x": obj}
    wrong: Finding = (rule, "invented", "", tuple(sorted(key.items())))
    assert finding_object(wrong) == (rule, obj)
    nowhere: Finding = ("hr_vs_psa_cost_rates", "mismatch", "cost_rate", (("person_id", "nobody"),))
    result = score(faults, delivered, want, (set(want) - {missed}) | {wrong, nowhere})
    assert not result.exact and result.missed == [missed] and result.extra == sorted([wrong, nowhere])
    assert (result.true_positives, result.found, result.expected) == (len(want) - 1, len(want) + 1, len(want))
    row = next(t for t in result.types if t.fault == cause.fault)
    assert row.recall == pytest.approx((row.expected_findings - 1) / row.expected_findings)
    assert row.precision == pytest.approx(row.found_expected / (row.found_expected + 1))
    undetected = {id(f) for f in want[missed] if f.fault == cause.fault}  # a fault is detected only whole
    assert row.detected == row.must_find - len(undetected) < row.must_find
    report = result.as_dict()
    assert report["missed_count"] == 1 and report["extra_count"] == 2 and "nobody" in " ".join(report["extra"])


def test_too_few_days_for_every_fault_to_come_due_is_refused_with_the_option_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "accuracy", "--days", "95", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--days" in result.output and "95" in result.output
    assert not (tmp_path / "accuracy.json").exists()
    result = CliRunner().invoke(main, ["bench", "accuracy", "--fault-rate", "1.5"])
    assert result.exit_code == 2 and "--fault-rate" in result.output



def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncwatch.cli", *args], capture_output=True, text=True,
                          timeout=900, check=False)


@pytest.mark.slow
def test_the_pack_finds_exactly_what_a_small_faulty_firm_implies(tmp_path: Path) -> None:
    # a process of its own: the benchmark opens embedded stores, and chDB allows one data path per
    # process (this test process may already hold the suite's)
    result = run_cli(["bench", "accuracy", "--consultants", "10", "--days", "110", "--fault-rate", "0.1", "--seed", "3",
                    "--out", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert report["exact"] and report["precision"] == report["recall"] == 1.0 and report["found"] > 0
    assert report["machine"]["cores"] and "load_1m_at_start" in report["machine"]
    rows = {t["fault"]: t for t in report["types"]}
    assert sum(t["injected"] for t in rows.values()) > 0 and set(report["uncovered"]) == set(UNCOVERED)
    text = (tmp_path / "accuracy.md").read_text()
    assert "| duplicate | **no** |" in text and "load average" in text and "exactly the implied set" in text
