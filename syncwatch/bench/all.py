"""`syncwatch bench all` (`make bench`): every benchmark at a stated size, and the reports in docs/benchmarks.

Each benchmark runs as a `syncwatch bench <name>` child process: chDB opens one data path per
process, and each benchmark's peak RSS should be its own. Their JSON and markdown land in `out`;
the markdown is then copied to `docs`, where the README's Performance section links it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

# the sizes the issue states the figures for (the 10M-scale runs want a quiet machine and ~1 hour)
FULL: dict[str, list[str]] = {
    "ingest": ["--seconds", "10", "--sustain", "300"],  # 5 minutes sustained: the RSS bound is stated for them
    "reconcile": ["--rows", "1000000,10000000", "--events", "10000000"],
    "api": ["--events", "10000000"],
    "latency": ["--instances", "300", "--spread", "60", "--sla", "15", "--every", "10"],
    "accuracy": ["--seed", "7", "--consultants", "40", "--days", "180", "--fault-rate", "0.1"],
}
# a smoke run: every benchmark end to end in a few minutes, figures not comparable with FULL
SMALL: dict[str, list[str]] = {
    "ingest": ["--seconds", "2"],
    "reconcile": ["--rows", "20000,100000", "--events", "100000"],
    "api": ["--events", "100000", "--findings", "2000", "--repeat", "5"],
    "latency": ["--instances", "20", "--spread", "5", "--sla", "5", "--every", "10"],
    "accuracy": ["--seed", "7", "--consultants", "12", "--days", "110", "--fault-rate", "0.1"],
}
NAMES = tuple(FULL)


def commands(small: bool, only: tuple[str, ...], out: Path) -> list[tuple[str, list[str]]]:
    """The `syncwatch bench` command line of each chosen benchmark, in the order they run."""
    sizes = SMALL if small else FULL
    return [(name, [sys.executable, "-m", "syncwatch.cli", "bench", name, *sizes[name], "--out", str(out)])
            for name in NAMES if not only or name in only]


def run(small: bool, only: tuple[str, ...], out: Path, docs: Path | None) -> list[str]:
    """Run the chosen benchmarks one after another; return the names of those that failed."""
    failed = []
    for name, command in commands(small, only, out):
        click.echo(f"== bench {name}: {' '.join(command[3:])}")
        began = time.monotonic()
        code = subprocess.call(command)
        click.echo(f"== bench {name}: exit {code} after {time.monotonic() - began:.0f} s")
        report = out / f"{name}.md"
        if code != 0:
            failed.append(name)
        if docs is not None and report.exists() and (code == 0 or name == "accuracy"):
            # an inexact accuracy report is still the truth about the pack; a crashed bench's is stale
            docs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report, docs / report.name)
    return failed
