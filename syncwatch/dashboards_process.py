"""Running the Streamlit dashboards as their own process (`syncwatch dashboards`, `syncwatch demo`).

The dashboards are a separate process that reaches the API over HTTP only; this module knows where
the app file is and how to start Streamlit on it, nothing about what the app does.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from syncwatch.errors import SyncwatchError
from syncwatch.settings import Settings

STARTUP_TIMEOUT = 60.0


def app_file() -> Path:
    spec = importlib.util.find_spec("dashboards")
    if spec is None or not spec.submodule_search_locations:
        raise SyncwatchError("the dashboards package is not installed; run `pip install -e .` in the checkout")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def url(settings: Settings) -> str:
    return f"http://{settings.dashboard_host}:{settings.dashboard_port}"


def command(settings: Settings) -> list[str]:
    """`streamlit run` on the app, headless, without usage statistics or file watching."""
    return [sys.executable, "-m", "streamlit", "run", str(app_file()),
            "--server.address", settings.dashboard_host, "--server.port", str(settings.dashboard_port),
            "--server.headless", "true", "--server.fileWatcherType", "none",
            "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
            "--client.toolbarMode", "minimal", "--theme.base", "light"]


def environment(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours, plus the API URL it must use (the server's own address)."""
    env = dict(os.environ)
    env["SYNCWATCH_API_URL"] = settings.base_url
    env.update(extra or {})
    return env


def start(settings: Settings, extra_env: dict[str, str] | None = None,
          log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start Streamlit and wait until it answers its health check."""
    out = log_path.open("ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command(settings), env=environment(settings, extra_env), stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_ready(url(settings), process)
    return process


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SyncwatchError(f"the dashboards exited with code {process.returncode} while starting")
        try:
            if httpx.get(f"{base}/_stcore/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SyncwatchError(f"the dashboards did not answer on {base} within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
