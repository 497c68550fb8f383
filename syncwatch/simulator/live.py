"""`syncwatch simulate` against a running Syncwatch: keys made through the admin API, then the feed."""

from __future__ import annotations

import threading

import click

from syncwatch.admin import connect
from syncwatch.settings import Settings
from syncwatch.simulator.delivery import SYSTEMS, FeedConfig
from syncwatch.simulator.feed import run_feed
from syncwatch.simulator.transport import FeedStats


def simulator_tokens(settings: Settings) -> dict[str, str]:
    """One key per source system (events, records) and one for telemetry, named 'simulator ...'."""
    admin = connect(settings)
    try:
        tokens = {s: admin.create_key(f"simulator {s}", s, ["events", "records"], [], None)[1] for s in SYSTEMS}
        tokens["telemetry"] = admin.create_key("simulator telemetry", "*", ["telemetry"], [], None)[1]
    finally:
        admin.close()
    return tokens


def _progress(stats: FeedStats) -> None:
    click.echo(f"day {stats.days:>4} ({stats.simulated_day}): {stats.events_sent:,} events, "
               f"{stats.records_sent:,} records, {stats.spans_sent:,} spans sent; "
               f"{stats.quarantined:,} quarantined, {stats.faults_injected:,} faults injected")


def run_live(settings: Settings, url: str, config: FeedConfig, stop: threading.Event | None = None) -> FeedStats:
    stats = run_feed(url, simulator_tokens(settings), config, stop, _progress)
    click.echo(f"done: {stats.days} days, {stats.events_sent:,} events, {stats.records_sent:,} records, "
               f"{stats.spans_sent:,} spans ({stats.spans_failed:,} spans undelivered), "
               f"{stats.failed_requests:,} requests refused; faults: "
               + (", ".join(f"{k} {v}" for k, v in sorted(stats.faults.items())) or "none"))
    return stats
