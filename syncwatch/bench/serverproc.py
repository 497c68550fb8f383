"""A `syncwatch serve` child process with its own embedded store, and its memory use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, every thread of it, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    def __init__(self, data_dir: Path, admin_token: str, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = admin_token
        self.env = {**os.environ, "SYNCWATCH_DATA_DIR": str(data_dir), "SYNCWATCH_PORT": str(self.port),
                    "SYNCWATCH_ADMIN_TOKEN": admin_token, "SYNCWATCH_LOG_LEVEL": "warning",
                    # ingest figures are about ingest: no scheduled rule runs competing for the cores
                    "SYNCWATCH_RECONCILE_IN_PROCESS": "false", **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0
        self.rss_samples: list[tuple[float, int]] = []
        self._sampling = threading.Event()

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "syncwatch.cli", "serve"], env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    threading.Thread(target=self._sample_rss, daemon=True).start()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def _sample_rss(self) -> None:
        started = time.monotonic()
        while not self._sampling.is_set() and self.proc and self.proc.poll() is None:
            try:
                rss = rss_bytes(self.proc.pid)
            except OSError:
                return
            self.peak_rss = max(self.peak_rss, rss)
            self.rss_samples.append((time.monotonic() - started, rss))
            time.sleep(0.25)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def admin(self, method: str, path: str, **kwargs: object) -> object:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        response = httpx.request(method, f"{self.url}{path}", headers=headers, timeout=120, **kwargs)
        response.raise_for_status()
        return response.json()

    def key(self, system: str, *scopes: str) -> str:
        body = self.admin("POST", "/api/v1/admin/keys", json={"name": "bench", "system": system,
                                                               "scopes": list(scopes)})
        return body["token"]  # type: ignore[index]

    def query(self, sql: str) -> list[list[object]]:
        return self.admin("POST", "/api/v1/admin/query", json={"sql": sql})["rows"]  # type: ignore[index]

    def scalar(self, sql: str) -> int:
        return int(self.query(sql)[0][0])  # type: ignore[call-overload]

    def wait_drained(self, timeout: float = 60) -> None:
        """Until everything acknowledged is in the store (the spool holds nothing pending)."""
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/readyz", timeout=5).json()["checks"]["spool"]["pending_bytes"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"spool did not drain within {timeout} s")
            time.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook runs, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self._sampling.set()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
