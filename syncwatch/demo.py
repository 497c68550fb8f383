"""`syncwatch demo`: the platform on the embedded store, fed by the simulated firm, with progress."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from datetime import date, timedelta

import click
import uvicorn
from fastapi import FastAPI

from syncwatch import dashboards_process, demo_dashboards
from syncwatch.errors import SyncwatchError
from syncwatch.server import build_server
from syncwatch.settings import Settings

SYSTEMS = ("crm", "psa", "erp", "hris", "time", "billing")
DEMO_DAYS = 180
DEMO_MARKER = "DEMO"
COUNTS_SQL = """
SELECT
    (SELECT count() FROM events FINAL),
    (SELECT count() FROM records FINAL),
    (SELECT count() FROM otel_traces),
    (SELECT count() FROM quarantine),
    (SELECT countIf(status = 'open') FROM findings FINAL)
"""


def run_demo(settings: Settings, duration: float | None, seed: int, fault_rate: float, day_seconds: float,
             dashboards: bool = True) -> None:
    if settings.embedded:
        _fresh_demo_store(settings)
    # Rules normally run every 15 minutes or hourly; the demo compresses half a year into minutes.
    # KPIs follow the feed within half a minute instead of five.
    settings = settings.model_copy(update={"reconcile_every": settings.reconcile_every or "20s",
                                           "kpi_max_staleness_seconds": min(settings.kpi_max_staleness_seconds, 30)})
    server, app = build_server(settings)
    ui = demo_dashboards.launch(settings) if dashboards else None
    stop = threading.Event()
    threading.Thread(target=_drive, args=(server, app, settings, stop, seed, fault_rate, day_seconds, ui),
                     name="demo-driver", daemon=True).start()
    if duration is not None:
        threading.Timer(duration, lambda: setattr(server, "should_exit", True)).start()
    click.echo(f"Syncwatch demo on {settings.base_url} (data in {settings.data_dir}); Ctrl-C to stop.")
    # server.run returns after SIGTERM or --for once the writer has drained; after Ctrl-C it drains
    # too and then re-raises the interrupt, which here means only "stopped"
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
    finally:
        if ui is not None:
            dashboards_process.stop(ui)
    stop.set()
    click.echo("stopped; everything acknowledged is stored.")


def _fresh_demo_store(settings: Settings) -> None:
    """Every demo starts from an empty store (the seeded feed would otherwise only repeat itself),
    but never wipes a data directory that holds anything other than an earlier demo."""
    marker = settings.data_dir / DEMO_MARKER
    store_dir, spool_dir = settings.data_dir / "store", settings.spool_path
    if (store_dir.exists() or spool_dir.exists()) and not marker.exists():
        raise SyncwatchError(
            f"{settings.data_dir} holds data that is not from a demo; "
            "set SYNCWATCH_DATA_DIR to another directory for the demo"
        )
    shutil.rmtree(store_dir, ignore_errors=True)
    shutil.rmtree(spool_dir, ignore_errors=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("this data directory belongs to `syncwatch demo`, which empties it at each start\n")


def _drive(server: uvicorn.Server, app: FastAPI, settings: Settings, stop: threading.Event, seed: int,
           fault_rate: float, day_seconds: float, ui: subprocess.Popen[bytes] | None) -> None:
    from syncwatch.simulator import FeedConfig, run_feed

    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    tokens = {s: app.state.keys.create(f"demo {s}", s, ["events", "records"])[1] for s in SYSTEMS}
    tokens["telemetry"] = app.state.keys.create("demo telemetry", "*", ["telemetry"])[1]
    # Half a year of history up to today, one simulated day every `day_seconds`: the feed never
    # runs into future dates, which would confuse every "overdue" computation.
    config = FeedConfig(seed=seed, fault_rate=fault_rate, days=DEMO_DAYS, pace=day_seconds,
                        start_date=date.today() - timedelta(days=DEMO_DAYS),
                        ground_truth_path=settings.data_dir / "ground_truth.jsonl")
    feeder = threading.Thread(target=run_feed, args=(settings.base_url, tokens, config, stop),
                              name="demo-feed", daemon=True)
    feeder.start()
    click.echo("feeding: CloudEvents, record snapshots and OTLP spans from crm, psa, erp, hris, time, billing")
    click.echo("watch it grow from another shell:  .venv/bin/syncwatch query "
               "\"SELECT type, count() FROM events FINAL GROUP BY type ORDER BY type\"")
    demo_dashboards.announce(app, settings, ui)
    next_report, announced = 0.0, False
    while not (server.should_exit or stop.is_set()):
        if time.monotonic() >= next_report:
            _report(app)
            next_report = time.monotonic() + 5
        if not feeder.is_alive() and not announced:
            announced = True
            click.echo(f"feed finished ({DEMO_DAYS} simulated days up to today); the platform keeps running")
        stop.wait(0.2)
    stop.set()  # stop feeding before the server stops listening
    feeder.join(timeout=30)


def _report(app: FastAPI) -> None:
    try:
        events, records, spans, quarantined, findings = app.state.store.query(COUNTS_SQL)[0]
    except Exception as exc:  # progress output must never take the demo down
        click.echo(f"(counts unavailable: {exc})")
        return
    click.echo(f"stored: {events:,} events  {records:,} records  {spans:,} spans  {quarantined:,} quarantined"
               f"  | open findings: {findings:,}")
