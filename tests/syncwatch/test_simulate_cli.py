"""`syncwatch simulate`: files that are deterministic and postable as they are; live into a server."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from syncwatch.bench.serverproc import ServerProcess
from syncwatch.cli import main
from tests.conftest import ADMIN_TOKEN, Harness
from tests.syncwatch.test_cli import cli

SMALL = ["--days", "25", "--consultants", "12", "--clients", "4", "--start-date", "2026-01-05",
         "--fault-rate", "0.2"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_files_are_deterministic_and_counted(tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = CliRunner().invoke(main, ["simulate", *SMALL, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first == second and "summary.json" in first and "ground_truth.jsonl" in first
    summary = json.loads(first["summary.json"])
    lines = {kind: sum(v.count(b"\n") for k, v in first.items() if k.startswith(kind))
             for kind in ("events", "records")}
    assert (summary["events"], summary["records"]) == (lines["events"], lines["records"]) and lines["events"] > 0
    assert summary["spans"] == first["spans.jsonl"].count(b"\n") > 0
    faults = [json.loads(line) for line in first["ground_truth.jsonl"].splitlines()]
    assert faults and sum(summary["faults"].values()) == len(faults)
    other = CliRunner().invoke(main, ["simulate", *SMALL, "--seed", "8", "--out", str(tmp_path / "c")])
    assert other.exit_code == 0 and _files(tmp_path / "c") != first


def test_written_records_and_events_post_as_they_are(tmp_path: Path, harness: Harness) -> None:
    CliRunner().invoke(main, ["simulate", *SMALL, "--fault-rate", "0", "--out", str(tmp_path)])
    body = (tmp_path / "records" / "psa.project.jsonl").read_bytes()
    response = harness.client.post("/v1/records/psa/project", content=body,
                                   headers={**harness.auth(harness.key("psa", "records")),
                                            "Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == body.count(b"\n")
    events = [json.loads(line) for line in (tmp_path / "events" / "crm.jsonl").read_text().splitlines()]
    response = harness.client.post("/v1/events", content=json.dumps(events),
                                   headers={**harness.auth(harness.key("crm", "events")),
                                            "Content-Type": "application/cloudevents-batch+json"})
    assert response.status_code == 200 and response.json()["accepted"] == len(events)


def test_bad_options_are_refused_with_the_option_named() -> None:
    result = CliRunner().invoke(main, ["simulate", "--days", "0"])
    assert result.exit_code == 2 and "--days" in result.output
    result = CliRunner().invoke(main, ["simulate", "--fault-rate", "2"])
    assert result.exit_code == 2 and "--fault-rate" in result.output


def test_live_into_a_running_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", ADMIN_TOKEN)
    server.start()
    try:
        env = {"SYNCWATCH_PORT": server.url.rsplit(":", 1)[1], "SYNCWATCH_ADMIN_TOKEN": ADMIN_TOKEN}
        result = cli(tmp_path / "data", "simulate", *SMALL, "--ground-truth", str(tmp_path / "truth.jsonl"),
                     extra_env=env)
        assert result.returncode == 0, result.stderr
        assert "done: 25 days" in result.stdout and "0 requests refused" in result.stdout
        server.wait_drained()
        sent = int(result.stdout.split("done: 25 days, ")[1].split(" events")[0].replace(",", ""))
        stored = server.scalar("SELECT count() FROM events FINAL") + server.scalar("SELECT count() FROM quarantine")
        faults = dict(part.rsplit(" ", 1) for part in result.stdout.split("faults: ")[1].strip().split(", "))
        # every event sent is stored (or quarantined) once: a duplicate delivery is not stored twice
        assert stored == sent - int(faults.get("duplicate", 0)) > 0
        assert (tmp_path / "truth.jsonl").read_text().count("\n") > 0
    finally:
        server.stop()


def test_target_events_stops_after_the_day_that_reaches_it(tmp_path: Path) -> None:
    full = CliRunner().invoke(main, ["simulate", *SMALL, "--out", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output
    whole = json.loads((tmp_path / "full" / "summary.json").read_text())
    target = whole["events"] // 2
    for name in ("a", "b"):
        result = CliRunner().invoke(main, ["simulate", *SMALL, "--target-events", str(target),
                                           "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert target <= summary["events"] < whole["events"] and 0 < summary["days"] < 25
    assert f"({summary['days']} days)" in result.output and "events/s, peak RSS" in result.output
    # the days before the stop are the full run's days: the same firm, cut short
    first_line = (tmp_path / "full" / "events" / "crm.jsonl").read_bytes().splitlines()[0]
    assert (tmp_path / "a" / "events" / "crm.jsonl").read_bytes().startswith(first_line)


def test_target_events_is_refused_without_out() -> None:
    result = CliRunner().invoke(main, ["simulate", "--target-events", "1000"])
    assert result.exit_code == 2 and "--target-events needs --out" in result.output
    result = CliRunner().invoke(main, ["simulate", "--target-events", "0", "--out", "x"])
    assert result.exit_code == 2 and "--target-events" in result.output
