"""The demo's dashboards: one user per role (tokens in <data_dir>/demo-users.json) and Streamlit
started next to the API on loopback."""

from __future__ import annotations

import json
import os
import subprocess

import click
from fastapi import FastAPI

from syncwatch import dashboards_process
from syncwatch.errors import SyncwatchError
from syncwatch.settings import Settings

USERS_FILE = "demo-users.json"


def launch(settings: Settings) -> subprocess.Popen[bytes]:
    """Start Streamlit now (it needs the API only when a page loads); the caller stops it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = (settings.data_dir / "dashboards.log").open("ab")
    return subprocess.Popen(dashboards_process.command(settings), env=dashboards_process.environment(settings),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def create_users(app: FastAPI, settings: Settings) -> dict[str, str]:
    """A user per role; their tokens go to a 0600 file in the data directory (shown once, like any token)."""
    from collector.api.access import ROLES  # the CLI side wires collector and core together

    tokens = {role: app.state.users.create(f"demo {role}", role)[1] for role in ROLES}
    path = settings.data_dir / USERS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(tokens, fh, indent=2)
    return tokens


def announce(app: FastAPI, settings: Settings, process: subprocess.Popen[bytes] | None) -> None:
    """Create the demo users, wait for the dashboards and print where to sign in and with what."""
    tokens = create_users(app, settings)
    users = settings.data_dir / USERS_FILE
    if process is None:
        click.echo(f"demo users (tokens also in {users}):")
    else:
        try:
            dashboards_process.wait_ready(dashboards_process.url(settings), process)
        except SyncwatchError as exc:
            click.echo(f"dashboards not started: {exc} (see {settings.data_dir / 'dashboards.log'})")
            return
        click.echo(f"dashboards: {dashboards_process.url(settings)}  sign in with one of these tokens "
                   f"(also in {users}):")
    for role, token in tokens.items():
        click.echo(f"  {role:<10} {token}")
