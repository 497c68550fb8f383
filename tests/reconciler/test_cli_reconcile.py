"""`syncwatch rules check|explain` in process; `syncwatch reconcile --once` in a subprocess (it opens a store)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncwatch.cli import main
from tests.conftest import REPO
from tests.syncwatch.test_cli import cli

PACK = """\
- name: psa_erp_projects
  kind: reconcile
  description: Every PSA project exists in the ERP with the same status.
  severity: high
  schedule: {every: 5m}
  key_name: project_id
  left: {system: psa, entity: project}
  right: {system: erp, entity: project}
  compare:
    - {field: status}
"""


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "projects.yaml").write_text(PACK)
    return tmp_path / "rules"


@pytest.mark.parametrize("command", [["rules"], ["rules", "check"], ["rules", "explain"], ["reconcile"]])
def test_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_rules_check_prints_each_rules_sql_and_refuses_a_bad_pack(pack: Path) -> None:
    ok = CliRunner().invoke(main, ["rules", "check", str(pack)])
    assert ok.exit_code == 0, ok.output
    assert "-- psa_erp_projects  kind=reconcile" in ok.output and "FULL OUTER JOIN" in ok.output
    assert ': "psa"' in ok.output and "1 rule(s) OK" in ok.output
    # what its incremental runs read, and how they keep it
    assert "-- an incremental run, from the record mirror:" in ok.output and "FROM record_mirror" in ok.output
    assert "-- the mirror's build:" in ok.output and "INSERT INTO record_mirror" in ok.output

    (pack / "projects.yaml").write_text(PACK.replace("key_name:", "key_nmae:"))
    bad = CliRunner().invoke(main, ["rules", "check", str(pack)])
    assert bad.exit_code == 1 and "projects.yaml:" in bad.output and "key_nmae" in bad.output


def test_rules_check_prints_a_workflows_query_and_the_progress_it_reads() -> None:
    ok = CliRunner().invoke(main, ["rules", "check", str(REPO / "rules" / "packs" / "professional_services")])
    assert ok.exit_code == 0, ok.output
    section = re.search(r"-- time_to_bill  kind=workflow.*?(?=\n-- \w+  kind=|\Z)", ok.output, re.S)
    assert section is not None
    assert "FROM workflow_progress" in section[0] and "INSERT INTO workflow_progress" in section[0]


def test_rules_explain(pack: Path) -> None:
    result = CliRunner().invoke(main, ["rules", "explain", "psa_erp_projects", "--path", str(pack)])
    assert result.exit_code == 0, result.output
    assert "severity high, runs every 300s" in result.output and "status" in result.output
    unknown = CliRunner().invoke(main, ["rules", "explain", "nope", "--path", str(pack)])
    assert unknown.exit_code == 1 and "no rule named 'nope'" in unknown.output


SEED = """
import sys
from datetime import datetime, UTC
from syncwatch import schema
from syncwatch.settings import Settings
from syncwatch.store import Store
store = Store.open(Settings())
schema.migrate(store)
now = datetime.now(UTC)
rows = [(s, "project", k, v, now, 0, {"status": st}, "", "", now)
        for s, k, st, v in (tuple(part.split(":")[:3]) + (int(part.split(":")[3]),) for part in sys.argv[1:])]
store.insert_rows("records", rows, ["system", "entity", "key", "version", "updated_at", "deleted", "fields",
                                    "trace_id", "span_id", "received_at"])
store.close()
"""


def seed(data_dir: Path, *records: str) -> None:
    """Records as system:key:status:version, written by a separate process (it owns the store)."""
    subprocess.run([sys.executable, "-c", textwrap.dedent(SEED), *records], cwd=REPO, check=True, timeout=120,
                   env={**os.environ, "SYNCWATCH_DATA_DIR": str(data_dir)})


def findings_of(data_dir: Path) -> str:
    result = cli(data_dir, "query", "SELECT keys['project_id'] AS p, kind, status FROM findings FINAL ORDER BY p",
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_reconcile_once_full_then_incremental(tmp_path: Path, pack: Path) -> None:
    data = tmp_path / "data"
    seed(data, "psa:P-1:active:1", "psa:P-2:active:1", "erp:P-1:closed:1", "psa:P-3:active:1", "erp:P-3:active:1")
    first = cli(data, "reconcile", "--once", "--path", str(pack))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[1].split()[:6] == ["psa_erp_projects", "1", "2", "0", "0", "0"]
    listed = findings_of(data)
    assert '"p": "P-1"' in listed and '"kind": "mismatch"' in listed and '"kind": "missing_right"' in listed

    # P-1 fixed and P-2 created in the ERP: the incremental run covers exactly those keys.
    seed(data, "erp:P-1:active:2", "erp:P-2:active:1")
    second = cli(data, "reconcile", "--once", "--path", str(pack))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[1].split()[:6] == ["psa_erp_projects", "0", "0", "0", "2", "0"]
    assert findings_of(data).count('"status": "resolved"') == 2

    full = cli(data, "reconcile", "--once", "--full", "--rule", "psa_erp_projects", "--path", str(pack))
    assert full.returncode == 0 and full.stdout.splitlines()[1].split()[:6] == [
        "psa_erp_projects", "1", "0", "0", "0", "0"]
    runs = cli(data, "query", "SELECT count(), countIf(error = '') FROM rule_runs", "--format", "json")
    assert '"count()": 3' in runs.stdout

    unknown = cli(data, "reconcile", "--once", "--rule", "nope", "--path", str(pack))
    assert unknown.returncode == 1 and "no runnable rule named 'nope'" in unknown.stderr
