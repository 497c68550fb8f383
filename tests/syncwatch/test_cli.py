"""The CLI: --help everywhere, key management and queries, directly and through a running server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncwatch.bench.serverproc import ServerProcess
from syncwatch.cli import main
from tests.conftest import ADMIN_TOKEN, REPO, free_port

COMMANDS = [[], ["serve"], ["up"], ["demo"], ["migrate"], ["query"], ["keys"], ["keys", "create"], ["keys", "list"],
            ["keys", "revoke"], ["bench"], ["bench", "ingest"], ["bench", "reconcile"], ["rules"], ["rules", "check"],
            ["rules", "explain"], ["reconcile"], ["simulate"], ["bench", "latency"]]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "syncwatch" for c in COMMANDS])
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def cli(data_dir: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A separate process: chDB lets this test process hold only its own store."""
    env = {**os.environ, "SYNCWATCH_DATA_DIR": str(data_dir), **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "syncwatch.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_keys_and_query_on_the_embedded_store(tmp_path: Path) -> None:
    assert "applied 0001_init" in cli(tmp_path, "migrate").stdout
    assert "schema is current" in cli(tmp_path, "migrate").stdout
    created = cli(tmp_path, "keys", "create", "--name", "sf", "--system", "crm", "--scope", "events")
    assert created.returncode == 0, created.stderr
    key_id = created.stdout.split()[1]
    listed = cli(tmp_path, "keys", "list").stdout
    assert key_id in listed and "crm" in listed and "sw_" not in listed
    assert cli(tmp_path, "keys", "revoke", key_id).returncode == 0
    query = cli(tmp_path, "query", "SELECT count() AS n, countIf(revoked_at IS NOT NULL) AS r FROM api_keys FINAL",
                "--format", "json")
    assert query.returncode == 0 and '"n": 1' in query.stdout and '"r": 1' in query.stdout
    bad = cli(tmp_path, "query", "DROP TABLE events")
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "readonly" in bad.stderr.lower()
    missing = cli(tmp_path, "keys", "revoke", "nope")
    assert missing.returncode == 1 and "no API key" in missing.stderr
    invalid = cli(tmp_path, "keys", "create", "--name", "x", "--system", "CRM!", "--scope", "events")
    assert invalid.returncode == 1 and "invalid system" in invalid.stderr


@pytest.mark.slow
def test_query_and_keys_reach_a_running_server_through_its_api(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", ADMIN_TOKEN)
    server.start()
    env = {"SYNCWATCH_PORT": server.url.rsplit(":", 1)[1], "SYNCWATCH_ADMIN_TOKEN": ADMIN_TOKEN}
    try:
        created = cli(tmp_path / "data", "keys", "create", "--name", "x", "--system", "psa", "--scope", "records",
                      extra_env=env)
        assert created.returncode == 0, created.stderr
        result = cli(tmp_path / "data", "query", "SELECT system FROM api_keys FINAL", extra_env=env)
        assert result.returncode == 0 and "psa" in result.stdout
        assert "EmbeddedServer" not in result.stderr and "Cannot lock" not in result.stderr
        no_token = cli(tmp_path / "data", "query", "SELECT 1",
                       extra_env={"SYNCWATCH_PORT": env["SYNCWATCH_PORT"]})
        assert no_token.returncode == 1 and "admin token" in no_token.stderr
    finally:
        server.stop()


@pytest.mark.slow
def test_demo_runs_feeds_reconciles_and_stops_cleanly(tmp_path: Path) -> None:
    env = {"SYNCWATCH_PORT": str(free_port()), "SYNCWATCH_RULES_DIR": str(REPO / "rules"),
           "SYNCWATCH_RECONCILE_EVERY": "5s", "SYNCWATCH_DASHBOARD_PORT": str(free_port())}
    result = cli(tmp_path / "demo", "demo", "--for", "25", "--day-seconds", "0.1", extra_env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"dashboards: http://127.0.0.1:{env['SYNCWATCH_DASHBOARD_PORT']}" in result.stdout
    users = json.loads((tmp_path / "demo" / "demo-users.json").read_text())
    assert sorted(users) == ["admin", "auditor", "executive", "ops"]
    assert all(token in result.stdout for token in users.values())
    counts = [line for line in result.stdout.splitlines() if line.startswith("stored:")]
    assert len(counts) >= 3
    last = counts[-1].replace(",", "").split()
    events, findings = int(last[1]), int(last[-1])
    assert events > 1000 and findings > 0, counts[-1]
    assert "everything acknowledged is stored" in result.stdout
    # a demo store is emptied, not refused
    again = cli(tmp_path / "demo", "demo", "--for", "3", "--no-dashboards", extra_env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    other = tmp_path / "not-a-demo"
    assert cli(other, "migrate").returncode == 0
    refused = cli(other, "demo", "--for", "3", extra_env=env)
    assert refused.returncode == 1 and "not from a demo" in refused.stderr


def test_ctrl_c_stops_the_server_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", ADMIN_TOKEN)
    server.start()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=60) == 0, "Ctrl-C after a graceful shutdown is a normal exit"
