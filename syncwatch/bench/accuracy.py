"""`syncwatch bench accuracy`: the default rule pack's findings against the simulator's ground truth.

A seeded firm with faults is fed through a real collector (a `syncwatch serve` child process: HTTP,
spool, writer, schema quarantine) into its own embedded store; when the spool has drained the server
stops, this process opens the store, and the professional-services pack runs once in full at the
firm's present (the end of the feed). Faults stop GRACE_DAYS before it, longer than any SLA or grace
period of the pack, so every consequence is due by then. Findings are scored per fault type against
what the faults imply (pack_truth, accuracy_score): the pack must find exactly those.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import click

from reconciler import service
from reconciler.loader import LoadedRule, load_rules
from reconciler.model import WorkflowRule
from syncwatch.bench.accuracy_score import Score, score
from syncwatch.bench.delivered import Delivered
from syncwatch.bench.figures import machine, machine_line
from syncwatch.bench.pack_truth import ERROR_SPAN, Finding, expected
from syncwatch.bench.serverproc import ServerProcess
from syncwatch.settings import Settings
from syncwatch.simulator.faults import SCHEMA_BREAK
from syncwatch.simulator.feed import SYSTEMS, Feed, FeedConfig, run_feed
from syncwatch.store import Store

PACK = "professional_services"
START = date(2025, 1, 6)  # a Monday; fixed so a seed gives the same firm whatever the date today
GRACE_DAYS = 95  # no fault in the last GRACE_DAYS days: longer than any SLA or grace period of the pack


def feed_config(seed: int, consultants: int, days: int, fault_rate: float) -> FeedConfig:
    if days <= GRACE_DAYS:
        raise click.BadParameter(f"must be more than {GRACE_DAYS}: faults stop {GRACE_DAYS} days before the "
                                 "end so that every consequence is due when the pack runs", param_hint="--days")
    return FeedConfig(seed=seed, consultants=consultants, clients=max(2, consultants // 4), days=days,
                      start_date=START, fault_rate=fault_rate, faults_until=START + timedelta(days=days - GRACE_DAYS),
                      events_per_batch=500)


def pack_rules(settings: Settings) -> list[LoadedRule]:
    return [r for r in load_rules(settings.rules_dir) if PACK in Path(r.path).parts]


def stored_findings(store: Store, pack: list[LoadedRule]) -> set[Finding]:
    """Open findings as (rule, kind, field, keys); a failed step found from an error span (not from a
    failure event the rule names) is ERROR_SPAN whatever the span's name."""
    names = {f.name for r in pack if isinstance(r.rule, WorkflowRule) for f in r.rule.failures.events}
    rows = store.query("SELECT rule, kind, field, keys FROM findings FINAL WHERE status != 'resolved'")
    return {(rule, kind, ERROR_SPAN if kind == "failed_step" and field not in names else field,
             tuple(sorted(keys.items()))) for rule, kind, field, keys in rows}


def _ingest(server: ServerProcess, config: FeedConfig) -> dict[str, Any]:
    tokens = {s: server.key(s, "events", "records") for s in SYSTEMS} | {"telemetry": server.key("*", "telemetry")}
    began = time.perf_counter()
    stats = run_feed(server.url, tokens, config)
    server.wait_drained(timeout=600)
    if stats.failed_requests or stats.spans_failed:
        raise click.ClickException(f"the collector refused {stats.failed_requests} requests and "
                                   f"{stats.spans_failed} spans: the feed did not arrive whole")
    return {"events": stats.events_sent, "records": stats.records_sent, "spans": stats.spans_sent,
            "quarantined": stats.quarantined, "seconds": time.perf_counter() - began}


def _evaluate(settings: Settings, config: FeedConfig, now: datetime) -> tuple[Score, dict[str, Any]]:
    pack = pack_rules(settings)
    store = Store.open(settings)
    try:
        began = time.perf_counter()
        results = service.run_rules(store, service.runnable(pack), full=True, now=now)
        seconds = time.perf_counter() - began
        if errors := [f"{r.rule}: {r.error}" for r in results if r.error]:
            raise click.ClickException("rules failed: " + "; ".join(errors))
        found = stored_findings(store, pack)
        quarantine = {r[0] for r in store.query("SELECT item_id FROM quarantine WHERE kind = 'event'")}
    finally:
        store.close()
    feed = Feed(config)  # the same seed again: what exactly was sent, and the truth of it
    batches = list(feed.batches())
    faults = feed.truth.faults
    quarantined = {f.keys["event_id"] for f in faults if f.fault == SCHEMA_BREAK}
    if quarantine != quarantined:
        raise click.ClickException(f"the quarantine holds {len(quarantine)} events, the schema-breaking faults "
                                   f"were {len(quarantined)}: the collector did not quarantine exactly those")
    delivered = Delivered(batches, quarantined)
    result = score(faults, delivered, expected(faults, delivered, now), found)
    return result, {"rules": [r.rule for r in results], "rules_seconds": seconds}


def run(seed: int, consultants: int, days: int, fault_rate: float, out_dir: str) -> dict[str, Any]:
    """Feed, run the pack, score; write accuracy.json/.md into out_dir. Fails unless found = expected."""
    config = feed_config(seed, consultants, days, fault_rate)
    where = machine()
    now = datetime.combine(START + timedelta(days=days), clock(), UTC)  # the firm's present when the feed ends
    with tempfile.TemporaryDirectory(prefix="syncwatch-bench-accuracy-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", clickhouse_url="")
        server = ServerProcess(settings.data_dir, "bench-admin-" + os.urandom(8).hex())
        click.echo(f"feeding {days} days of a {consultants}-consultant firm (seed {seed}, fault rate {fault_rate}) "
                   "through the collector ...")
        server.start()
        try:
            ingest = _ingest(server, config)
        finally:
            server.stop()  # the store is this process's next: chDB opens a data path in one process only
        click.echo(f"running the {PACK} pack in full at {now:%Y-%m-%d} and scoring ...")
        result, rules = _evaluate(settings, config, now)
    report = {"benchmark": "accuracy", "machine": where,
              "config": {"seed": seed, "consultants": consultants, "clients": config.clients, "days": days,
                         "start_date": START.isoformat(), "fault_rate": fault_rate, "grace_days": GRACE_DAYS},
              "ingest": ingest, **rules, **result.as_dict()}
    _write(report, Path(out_dir))
    if not result.exact:
        raise click.ClickException("the findings are not exactly what the injected faults imply: see the report")
    return report


def _ratio(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "n/a"


def _type_row(t: dict[str, Any]) -> str:
    covered = "yes" if t["covered"] else "**no**"
    nothing = "; ".join(f"{n} {why}" for why, n in t["left_nothing"].items()) or ""
    return (f"| {t['fault']} | {covered} | {t['injected']:,} | {t['must_find']:,} | {t['detected']:,} | "
            f"{t['found_expected']:,} of {t['expected_findings']:,} | {_ratio(t['precision'])} | "
            f"{_ratio(t['recall'])} | {nothing} |")


def markdown(report: dict[str, Any]) -> str:
    c, i = report["config"], report["ingest"]
    lines = [
        f"{machine_line(report['machine'])} A {c['consultants']}-consultant firm, {c['clients']} clients, "
        f"{c['days']} days from {c['start_date']} (seed {c['seed']}, fault rate {c['fault_rate']}, no faults in the "
        f"last {c['grace_days']} days): {i['events']:,} events, {i['records']:,} records and {i['spans']:,} spans "
        f"through the collector in {i['seconds']:.0f} s; the {PACK} pack ({len(report['rules'])} rules) in full "
        f"in {report['rules_seconds']:.1f} s.",
        "",
        "| fault type | covered | injected | must leave a finding | detected | findings made | precision | "
        "recall | faults that leave nothing, and why |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        *(_type_row(t) for t in report["types"]),
        "",
        f"All findings: {report['found']:,} made, {report['expected']:,} implied by the faults, "
        f"precision {_ratio(report['precision'])}, recall {_ratio(report['recall'])}: "
        + ("exactly the implied set." if report["exact"] else
           f"**not exact**: {report['missed_count']} missed, {report['extra_count']} without a fault behind them, "
           f"{len(report['unexplained'])} faults that should have left a finding (listed below)."),
        "",
        "Fault types no rule covers: " + ("; ".join(f"{k} ({why})" for k, why in report["uncovered"].items())
                                          or "none") + ".",
    ]
    for label, key in (("Missed", "missed"), ("No fault behind", "extra"), ("Unexplained fault", "unexplained")):
        lines += [f"- {label}: {f}" for f in report[key]]
    return "\n".join(lines)


def _write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    text = markdown(report)
    (out / "accuracy.md").write_text(text + "\n")
    click.echo("\n" + text)

