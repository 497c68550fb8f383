"""Bad arguments, files and settings: the CLI says what is wrong in one line and exits non-zero,
never with a traceback (found by probing every command)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.syncwatch.test_cli import cli


def _files(tmp_path: Path) -> dict[str, Path]:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    dangling = tmp_path / "dangling"
    dangling.mkdir()
    (dangling / "x.yaml").symlink_to(tmp_path / "nowhere.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    deep = tmp_path / "deep.yaml"
    deep.write_text("x: " + "[" * 5000)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {"binary": binary, "dangling": dangling, "empty": empty, "deep": deep, "a_file": a_file}


CASES = [
    (["rules", "check", "{binary}"], None, "not UTF-8 text"),
    (["rules", "check", "{dangling}"], None, "cannot read"),
    (["rules", "check", "{empty}"], None, "no rules found"),
    (["rules", "check", "{deep}"], None, "nested too deeply"),
    (["reconcile", "--once", "--rule", ""], None, "no runnable rule named ''"),
    (["reconcile", "--full"], None, "--full applies to --once"),
    (["simulate", "--fault-rate", "nan"], None, "not a finite number"),
    (["simulate", "--start-date", "9999-12-31", "--days", "5"], None, "the store keeps times from 1900 to 2299"),
    (["simulate", "--url", "ftp://x"], None, "is not an http(s) URL"),
    (["simulate", "--days", "1", "--out", "{a_file}/sub"], None, "cannot write to --out"),
    (["simulate", "--out", "o", "--url", "http://x"], None, "are for live mode"),
    (["keys", "create", "--name", "evil\nkey_id  name", "--system", "crm", "--scope", "events"], None,
     "invalid key name"),
    (["bench", "ingest", "--seconds", "nan"], None, "not a finite number"),
    (["bench", "reconcile", "--rows", "0"], None, "sizes of at least 1000"),
    (["dashboards", "--port", "99999"], None, "99999 is not in the range 1<=x<=65535"),
    (["demo", "--fault-rate", "5"], None, "5.0 is not in the range 0<=x<=1"),
    (["keys", "list"], {"SYNCWATCH_LOG_LEVEL": "bogus"}, "log_level 'bogus'"),
    (["keys", "list"], {"SYNCWATCH_CLICKHOUSE_URL": "ftp://x"}, "clickhouse_url 'ftp://x'"),
    (["keys", "list"], {"SYNCWATCH_PORT": "99999"}, "port"),
    (["keys", "list"], {"SYNCWATCH_MAX_INFLIGHT_REQUESTS": "0"}, "max_inflight_requests"),
    (["keys", "list"], {"SYNCWATCH_RECONCILE_EVERY": "abc"}, "schedule 'abc'"),
    (["keys", "list"], {"SYNCWATCH_CORS_ALLOW_ORIGINS": "not an origin"}, "is not an origin"),
]


@pytest.mark.parametrize(("args", "env", "message"), CASES)
def test_bad_input_is_one_clear_error(tmp_path: Path, args: list[str], env: dict[str, str] | None,
                                      message: str) -> None:
    files = _files(tmp_path)
    done = cli(tmp_path / "data", *[a.format(**files) for a in args], extra_env=env)
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert message in done.stderr, done.stderr[-2000:]
