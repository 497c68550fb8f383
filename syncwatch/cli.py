"""`syncwatch`: one CLI to run each service, the demo, admin tasks and the benchmarks.

Exit codes: 0 success, 1 a Syncwatch error (message on stderr), 2 bad usage.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from syncwatch import __version__
from syncwatch.errors import SyncwatchError
from syncwatch.settings import Settings

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from reconciler.loader import LoadedRule


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except SyncwatchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)
def main() -> None:
    """Syncwatch: business-process observability and reconciliation.

    Settings come from SYNCWATCH_* environment variables (and the TOML file named by
    SYNCWATCH_CONFIG); see the README for the full table.
    """


class _Finite(click.FloatRange):
    """click.FloatRange that also refuses nan and inf, which compare false with every bound."""

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


PROBABILITY = _Finite(0, 1)
EARLIEST_DAY, LATEST_DAY = date(1900, 1, 2), date(2299, 12, 30)  # ClickHouse's DateTime64 range
PORT = click.IntRange(1, 65535)


def _settings() -> Settings:
    try:
        settings = Settings()
    except Exception as exc:  # pydantic's ValidationError names the variable and the problem
        raise SyncwatchError(f"invalid configuration: {exc}") from exc
    # settings whose parsers live outside the core, checked here rather than when a server starts
    from collector.security_headers import allowed_origins
    from reconciler.scheduler import trigger_for

    try:
        allowed_origins(settings.cors_allow_origins)
        if settings.reconcile_every:
            trigger_for(settings.reconcile_every)
    except (ValueError, SyncwatchError) as exc:
        raise SyncwatchError(f"invalid configuration: {exc}") from exc
    return settings


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "apscheduler"):  # a line per request or per job run drowns everything else
        logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@click.option("--host", help="Listen address (default SYNCWATCH_HOST).")
@click.option("--port", type=PORT, help="Listen port (default SYNCWATCH_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Run the API and collector (one process owns an embedded store)."""
    from syncwatch.server import serve as run

    settings = _settings().model_copy(update={k: v for k, v in {"host": host, "port": port}.items() if v})
    _logging(settings)
    run(settings)


@main.command()
def up() -> None:
    """Run everything on this machine: API, collector and, in embedded mode, the scheduled work."""
    from syncwatch.server import serve as run

    settings = _settings()
    _logging(settings)
    run(settings)


@main.command()
@click.option("--host", help="Listen address (default SYNCWATCH_DASHBOARD_HOST).")
@click.option("--port", type=PORT, help="Listen port (default SYNCWATCH_DASHBOARD_PORT).")
def dashboards(host: str | None, port: int | None) -> None:
    """Run the Streamlit dashboards; they reach the API at SYNCWATCH_API_URL (default http://host:port)."""
    import subprocess

    from syncwatch import dashboards_process

    settings = _settings().model_copy(
        update={k: v for k, v in {"dashboard_host": host, "dashboard_port": port}.items() if v})
    click.echo(f"dashboards on {dashboards_process.url(settings)} (API {settings.base_url}); Ctrl-C to stop")
    try:
        code = subprocess.call(dashboards_process.command(settings), env=dashboards_process.environment(settings))
    except KeyboardInterrupt:  # Streamlit stops on the same Ctrl-C: a normal stop
        code = 0
    sys.exit(code)


@main.command()
@click.option("--for", "duration", type=_Finite(0, min_open=True), default=None,
              help="Stop after this many seconds (for scripts).")
@click.option("--seed", type=int, default=7, show_default=True, help="Simulator seed.")
@click.option("--fault-rate", type=PROBABILITY, default=0.03, show_default=True,
              help="Share of each kind of integration step that goes wrong (lost, late, wrong...).")
@click.option("--day-seconds", type=_Finite(0, min_open=True), default=1.0, show_default=True,
              help="Real seconds per simulated day (the feed covers the last 180 days up to today).")
@click.option("--dashboards/--no-dashboards", default=True, show_default=True,
              help="Also start the Streamlit dashboards (on SYNCWATCH_DASHBOARD_HOST:PORT).")
def demo(duration: float | None, seed: int, fault_rate: float, day_seconds: float, dashboards: bool) -> None:
    """Start the platform on the embedded store and feed it a simulated consulting firm.

    Runs until Ctrl-C / SIGTERM (or --for SECONDS), then drains the writer and stops.
    """
    from syncwatch.demo import run_demo

    settings = _settings()
    _logging(settings)
    run_demo(settings, duration=duration, seed=seed, fault_rate=fault_rate, day_seconds=day_seconds,
             dashboards=dashboards)


@main.command()
def migrate() -> None:
    """Apply pending schema migrations (servers also do this at start-up)."""
    from syncwatch import schema
    from syncwatch.store import Store

    store = Store.open(_settings())
    applied = schema.migrate(store)
    store.close()
    click.echo("\n".join(f"applied {m.version:04d}_{m.name}" for m in applied) or "schema is current")


@main.command()
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def query(sql: str, fmt: str) -> None:
    """Run one read-only SQL statement (through the server's admin API while it holds the store)."""
    from syncwatch.admin import connect

    admin = connect(_settings())
    try:
        columns, rows, truncated = admin.query(sql)
    finally:
        admin.close()
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2))
    else:
        _print_table(columns, rows)
    if truncated:
        click.echo(f"(only the first {len(rows):,} rows: add a LIMIT, or narrow the query)", err=True)


def _print_table(columns: list[str], rows: list[list[object]]) -> None:
    cells = [[str(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


@main.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed)."""


@keys.command("create")
@click.option("--name", required=True, help="Who uses the key, e.g. 'salesforce connector'.")
@click.option("--system", required=True, help="Source system the key speaks for (crm, psa, erp...), or '*'.")
@click.option("--scope", "scopes", multiple=True, required=True,
              type=click.Choice(["events", "records", "telemetry", "admin"]), help="Repeat for several.")
@click.option("--source-prefix", "prefixes", multiple=True,
              help="Allowed CloudEvents source prefix (default /<system>/).")
@click.option("--expires", type=click.DateTime(), default=None, help="Expiry time (UTC).")
def keys_create(name: str, system: str, scopes: tuple[str, ...], prefixes: tuple[str, ...],
                expires: datetime | None) -> None:
    """Create a key and print its token once."""
    from syncwatch.admin import connect

    admin = connect(_settings())
    try:
        key_id, token = admin.create_key(name, system, list(scopes), list(prefixes), expires)
    except ValueError as exc:
        raise SyncwatchError(str(exc)) from exc
    finally:
        admin.close()
    click.echo(f"key_id: {key_id}\ntoken:  {token}\n(the token is shown only now; store it as a secret)")


@keys.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    from syncwatch.admin import connect

    admin = connect(_settings())
    try:
        rows = admin.list_keys()
    finally:
        admin.close()
    columns = ["key_id", "name", "system", "scopes", "expires_at", "revoked_at"]
    _print_table(columns, [[r[c] if c != "scopes" else ",".join(r[c]) for c in columns] for r in rows])


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; requests with it are refused (401) from the next key refresh on."""
    from syncwatch.admin import connect

    admin = connect(_settings())
    try:
        if not admin.revoke_key(key_id):
            raise SyncwatchError(f"no API key {key_id!r}")
    finally:
        admin.close()
    click.echo(f"revoked {key_id}")


@main.group()
def users() -> None:
    """Create, list and revoke the people who use the query and action API (tokens stored hashed)."""


@users.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["executive", "ops", "auditor", "admin"]),
              help="executive: KPIs; ops: findings and actions; auditor: timelines, audit log, exports; admin: users.")
@click.option("--expires", type=click.DateTime(), default=None, help="Expiry time (UTC); default: until revoked.")
def users_create(name: str, role: str, expires: datetime | None) -> None:
    """Create a user NAME and print its token once."""
    from syncwatch.admin import connect

    admin = connect(_settings())
    try:
        user_id, token = admin.create_user(name, role, expires)
    except ValueError as exc:
        raise SyncwatchError(str(exc)) from exc
    finally:
        admin.close()
    click.echo(f"user_id: {user_id}\ntoken:   {token}\n(the token is shown only now; hand it over as a secret)")


@users.command("list")
def users_list() -> None:
    """List users and their roles (never their tokens)."""
    from syncwatch.admin import connect

    admin = connect(_settings())
    try:
        rows = admin.list_users()
    finally:
        admin.close()
    columns = ["user_id", "name", "role", "expires_at", "revoked_at"]
    _print_table(columns, [[r[c] if r[c] is not None else "" for c in columns] for r in rows])


@users.command("revoke")
@click.argument("user_id")
def users_revoke(user_id: str) -> None:
    """Revoke a user; requests with its token are refused (401) from the next refresh on."""
    from syncwatch.admin import connect

    admin = connect(_settings())
    try:
        if not admin.revoke_user(user_id):
            raise SyncwatchError(f"no user {user_id!r}; `syncwatch users list` shows them")
    finally:
        admin.close()
    click.echo(f"revoked {user_id}")


@main.group()
def rules() -> None:
    """Check rule packs and explain what a rule compares."""


def _load_rules(path: str | None) -> list[LoadedRule]:
    from reconciler.loader import load_rules

    return load_rules(path or _settings().rules_dir)


@rules.command("check")
@click.argument("path", required=False, type=click.Path())
def rules_check(path: str | None) -> None:
    """Validate every rule under PATH (default SYNCWATCH_RULES_DIR) and print its compiled SQL.

    Exit code 1 lists every problem as file:line:col: field: message.
    """
    from reconciler.service import COMPILERS

    loaded = _load_rules(path)
    if not loaded:  # an empty file or folder is more likely a wrong path than a pack to accept
        raise SyncwatchError(f"no rules found in {path or _settings().rules_dir}")
    for rule in loaded:
        click.echo(f"-- {rule.name}  kind={rule.rule.kind} version={rule.version} severity={rule.rule.severity} "
                   f"({rule.path}:{rule.line})")
        compiler = COMPILERS.get(rule.rule.kind)
        compiled = compiler(rule.rule) if compiler else None
        click.echo(compiled.sql if compiled else "(evaluated on request by the API; nothing scheduled)")
        if compiled:
            click.echo(f"-- parameters: {json.dumps(compiled.parameters, default=str)}")
        if rule.rule.kind == "workflow":  # what the query reads: the progress runs keep
            from reconciler.compile_workflow import progress_sql

            kept = progress_sql(rule.rule, 0)
            click.echo(f"-- the progress it reads, as a full run rebuilds it (generation 0 here):\n{kept.sql}")
            click.echo(f"-- parameters: {json.dumps(kept.parameters, default=str)}")
        _echo_mirror_sql(rule.rule)
        click.echo()
    click.echo(f"{len(loaded)} rule(s) OK")


def _echo_mirror_sql(rule: Any) -> None:
    """What an incremental run of a record-level rule reads: its record mirror, and how runs keep it."""
    from datetime import UTC, datetime

    from reconciler import record_mirror
    from reconciler.compile_reconcile import compile as compile_rule
    from reconciler.sql import Params

    if not record_mirror.applies(rule):
        return
    prefix, since = record_mirror.definition(rule), datetime.now(UTC)
    incremental = compile_rule(rule, since, mirror=prefix)
    fold, build = Params(), Params()
    for title, sql, parameters in (
        ("an incremental run, from the record mirror", incremental.sql, incremental.parameters),
        ("the mirror's build", record_mirror.build_sql(build, rule, prefix), build.values),
        ("its update before each incremental run", record_mirror.fold_sql(fold, rule, prefix, since), fold.values),
    ):
        click.echo(f"-- {title}:\n{sql}\n-- parameters: {json.dumps(parameters, default=str)}")


@rules.command("explain")
@click.argument("rule_name")
@click.option("--path", type=click.Path(), help="Rule pack (default SYNCWATCH_RULES_DIR).")
def rules_explain(rule_name: str, path: str | None) -> None:
    """Say in words what RULE_NAME compares, with its schedule and severity."""
    from reconciler import service

    found = [r for r in _load_rules(path) if r.name == rule_name]
    if not found:
        raise SyncwatchError(f"no rule named {rule_name!r}; `syncwatch rules check` lists them")
    loaded = found[0]
    click.echo(f"{loaded.name}: {loaded.rule.kind} rule, version {loaded.version}, severity {loaded.rule.severity}, "
               f"runs {service.schedule_text(loaded)}; defined at {loaded.path}:{loaded.line}")
    try:  # the compiler's own account of the comparison, where its module provides one
        from reconciler.compile_reconcile import explain
    except ImportError:
        click.echo(loaded.rule.description or "(no explanation: reconciler.compile_reconcile.explain is missing)")
        return
    click.echo(explain(loaded.rule))


@main.command()
@click.option("--once", is_flag=True, help="Run each rule once, print the runs and exit (1 if any rule failed).")
@click.option("--rule", "rule_name", help="Only this rule.")
@click.option("--full", is_flag=True, help="Full runs: re-check every key, not only those changed since the last run.")
@click.option("--path", type=click.Path(), help="Rule pack (default SYNCWATCH_RULES_DIR).")
def reconcile(once: bool, rule_name: str | None, full: bool, path: str | None) -> None:
    """Run the reconciliation rules on their schedules (server mode), or once with --once.

    In embedded mode the API server runs the schedule itself and holds the store; this command
    is for a ClickHouse server, or for --once while no server runs. With
    SYNCWATCH_RECONCILER_REPLICAS > 1 each process schedules its share of the rules, and a run lease
    keeps any rule from running in two processes at once (docs/decisions/0010-cluster-schema.md).
    """
    from reconciler import scheduler, service
    from reconciler.alerts import Notifier
    from reconciler.rule_shards import Share
    from reconciler.run_lease import lease_for
    from syncwatch import schema
    from syncwatch.store import Store

    settings = _settings()
    _logging(settings)
    if full and not once:
        raise SyncwatchError("--full applies to --once; scheduled runs decide for themselves when to run in full")
    share = Share.from_settings(settings)  # before anything starts: an index out of range is an error
    chosen = service.runnable(_load_rules(path), rule_name)
    if rule_name is not None and not chosen:
        raise SyncwatchError(f"no runnable rule named {rule_name!r} (unknown, disabled or not scheduled)")
    rules_dir = Path(path) if path else settings.rules_dir
    notifier = Notifier.from_file((rules_dir if rules_dir.is_dir() else rules_dir.parent) / "alerts.yaml")
    store = Store.open(settings)
    try:
        schema.migrate(store)
        lease = lease_for(store, share)
        if once:  # the rules asked for, whatever the share; the lease still keeps a scheduled run out
            results = service.run_rules(store, chosen, full=full, notifier=notifier, lease=lease,
                                        timeout_seconds=settings.rule_timeout_seconds)
            _print_table(["rule", "full", "opened", "updated", "resolved", "reopened", "ms", "error"],
                         [[r.rule, int(r.full), r.opened, r.updated, r.resolved, r.reopened, round(r.duration_ms),
                           r.error[:120]] for r in results])
            if any(not r.ok for r in results):
                sys.exit(1)
            return
        jobs = service.scheduled_jobs(store, chosen, notifier, share=share, lease=lease,
                                      timeout_seconds=settings.rule_timeout_seconds)
        if settings.reconcile_every:  # as the API process's schedule does (reconciler.background)
            jobs = [scheduler.ScheduledJob(job.name, settings.reconcile_every, job.run) for job in jobs]
        if settings.kpi_state_every and not rule_name:
            jobs += service.kpi_state_jobs(store, _load_rules(path), settings.kpi_state_every, share=share)
        click.echo(f"reconciler {share}: {len(jobs)} of {len(chosen)} rule(s): {', '.join(j.name for j in jobs)}",
                   err=True)
        _serve_schedule(scheduler.start(jobs))
    finally:
        notifier.close(timeout=10)  # delivers what the runs queued, within the timeout
        store.close()


def _serve_schedule(running: BackgroundScheduler) -> None:
    """Block until SIGINT/SIGTERM, then let the runs in progress finish."""
    import signal
    import threading

    from reconciler import scheduler

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    click.echo("reconciler running; Ctrl-C to stop", err=True)
    stopping.wait()
    scheduler.stop(running)


@main.command()
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same firm and faults.")
@click.option("--consultants", type=click.IntRange(1, 1_000_000), default=60, show_default=True,
              help="Opening headcount (the firm hires as demand grows).")
@click.option("--clients", type=click.IntRange(1, 1_000_000), default=20, show_default=True)
@click.option("--days", type=click.IntRange(1, 36_500), default=60, show_default=True, help="Simulated days.")
@click.option("--start-date", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First simulated day (default: DAYS days before today).")
@click.option("--fault-rate", type=PROBABILITY, default=0.03, show_default=True,
              help="Share of each kind of integration step that goes wrong.")
@click.option("--events-per-batch", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write the feed to files here instead of sending it (bulk mode).")
@click.option("--url", default=None, help="Send to this Syncwatch (default: the configured host and port).")
@click.option("--pace", type=_Finite(0), default=0.0, show_default=True,
              help="Live mode: real seconds per simulated day (0: as fast as the server takes it).")
@click.option("--ground-truth", type=click.Path(dir_okay=False), default=None,
              help="Live mode: where to log injected faults (default <data dir>/ground_truth.jsonl).")
@click.option("--target-events", type=click.IntRange(1), default=None,
              help="With --out: stop after the simulated day on which this many events are written (--days "
                   "caps the run, so give it room). A grown firm sends ~1.6 events a day per opening consultant: "
                   "--consultants 1000 --clients 200 --days 7000 --target-events 10000000 gives 10M.")
def simulate(seed: int, consultants: int, clients: int, days: int, start_date: datetime | None, fault_rate: float,
             events_per_batch: int, out_dir: str | None, url: str | None, pace: float,
             ground_truth: str | None, target_events: int | None) -> None:
    """A seeded consulting firm across CRM, PSA, HRIS, time, ERP and billing, with injected faults:
    sent live to a running Syncwatch, or written to files with --out."""
    from syncwatch.simulator.delivery import FeedConfig

    if target_events is not None and out_dir is None:
        raise click.UsageError("--target-events needs --out (bulk mode)")
    if out_dir is not None and (url is not None or pace or ground_truth is not None):
        raise click.UsageError("--url, --pace and --ground-truth are for live mode; --out writes files")
    if url is not None and not url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--url")
    if start_date is not None and not EARLIEST_DAY <= start_date.date() <= LATEST_DAY - timedelta(days=days):
        raise click.BadParameter(f"with --days {days}, give a day from {EARLIEST_DAY} to "
                                 f"{LATEST_DAY - timedelta(days=days)} (the store keeps times from 1900 to 2299)",
                                 param_hint="--start-date")

    settings = _settings()
    config = FeedConfig(seed=seed, consultants=consultants, clients=clients, days=days, fault_rate=fault_rate,
                        events_per_batch=events_per_batch, pace=pace,
                        start_date=start_date.date() if start_date else None,
                        ground_truth_path=Path(ground_truth) if ground_truth else
                        settings.data_dir / "ground_truth.jsonl")
    if out_dir is not None:
        import resource
        import time

        from syncwatch.simulator.files import write_files

        began, cpu = time.perf_counter(), time.process_time()
        try:
            summary = write_files(config, Path(out_dir), target_events)
        except OSError as exc:
            raise SyncwatchError(f"cannot write to --out {out_dir}: {exc.strerror or exc}") from exc
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu  # CPU: what a busy machine hides
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
        click.echo(f"wrote {summary['events']:,} events, {summary['records']:,} records and {summary['spans']:,}"
                   f" spans from {summary['start_date']} ({summary['days']} days) to {out_dir} in {seconds:.0f} s "
                   f"({summary['events'] / seconds:,.0f} events/s, peak RSS {peak_mib:,} MiB, {cpu:.0f} s of CPU); "
                   "faults: "
                   + (", ".join(f"{k} {v}" for k, v in summary["faults"].items()) or "none"))
        return
    from syncwatch.simulator.live import run_live

    run_live(settings, url or settings.base_url, config)


@main.group()
def bench() -> None:
    """Benchmarks that print figures (never run as timed tests)."""


@bench.command("ingest")
@click.option("--seconds", type=_Finite(0, min_open=True), default=10.0, show_default=True,
              help="Duration of each scenario.")
@click.option("--sustain", type=_Finite(0), default=0.0, show_default=True,
              help="Also hold batch-1000 load this many seconds and report RSS over time.")
@click.option("--out", type=click.Path(), default="bench-results", show_default=True, help="Where to write JSON/MD.")
def bench_ingest(seconds: float, sustain: float, out: str) -> None:
    """End-to-end ingest throughput (HTTP request to queryable) against the raw insert ceiling."""
    from syncwatch.bench.ingest import run

    run(seconds=seconds, out_dir=out, sustain_seconds=sustain)


@bench.command("reconcile")
@click.option("--rows", default="1000000,10000000", show_default=True,
              help="Records per system, comma-separated sizes.")
@click.option("--events", type=int, default=10_000_000, show_default=True,
              help="Workflow events for stuck-instance detection (10 per instance); 0 skips it.")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also time polars and datacompy on the same data (datacompy needs the 'bench' extra).")
@click.option("--out", type=click.Path(), default="bench-results", show_default=True, help="Where to write JSON/MD.")
def bench_reconcile(rows: str, events: int, baselines: bool, out: str) -> None:
    """The PSA-vs-ERP rule over N x N generated records against polars and datacompy; stuck instances."""
    from syncwatch.bench.reconcile import run

    try:
        sizes = [int(part.replace("_", "")) for part in rows.split(",") if part.strip()]
    except ValueError as exc:
        raise click.BadParameter("give sizes as integers, e.g. 1000000,10000000", param_hint="--rows") from exc
    if not sizes or min(sizes) < 1_000:
        raise click.BadParameter("give one or more sizes of at least 1000, e.g. 1000000,10000000", param_hint="--rows")
    run(sizes, out_dir=out, baselines=baselines, events=events)


@bench.command("latency")
@click.option("--instances", type=int, default=300, show_default=True, help="Workflow instances started.")
@click.option("--spread", type=float, default=60.0, show_default=True, help="Seconds over which they start.")
@click.option("--sla", type=int, default=15, show_default=True, help="Seconds until each instance is overdue.")
@click.option("--every", type=int, default=10, show_default=True, help="The rule's schedule, in seconds (>= 10).")
@click.option("--out", type=click.Path(), default="bench-results", show_default=True, help="Where to write JSON/MD.")
def bench_latency(instances: int, spread: float, sla: int, every: int, out: str) -> None:
    """Detection latency: from an SLA deadline passing to the alert arriving at a local webhook."""
    from syncwatch.bench.latency import run

    if instances < 1 or spread < 0 or sla < 1 or every < 10:
        raise click.BadParameter("need --instances >= 1, --spread >= 0, --sla >= 1 and --every >= 10")
    run(instances, spread, sla, every, out)


@bench.command("api")
@click.option("--events", type=click.IntRange(1000), default=10_000_000, show_default=True,
              help="Events in the generated store.")
@click.option("--findings", type=click.IntRange(0), default=200_000, show_default=True)
@click.option("--repeat", type=click.IntRange(1), default=40, show_default=True, help="Requests per endpoint.")
@click.option("--out", type=click.Path(), default="bench-results", show_default=True, help="Where to write JSON/MD.")
def bench_api(events: int, findings: int, repeat: int, out: str) -> None:
    """KPI and findings endpoints over HTTP on a generated store: p50/p95 per request."""
    from syncwatch.bench.api import run

    run(events, findings, repeat, out)


@bench.command("storage")
@click.option("--consultants", type=click.IntRange(1, 1_000_000), default=200, show_default=True,
              help="Opening headcount of the simulated firm.")
@click.option("--clients", type=click.IntRange(1, 1_000_000), default=40, show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True, help="Simulated days.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--store-dir", type=click.Path(file_okay=False), default=None,
              help="Where the temporary chDB store goes (default: the system temp directory).")
@click.option("--clickhouse-url", default="",
              help="Measure on this ClickHouse instead (http(s)://user:pass@host:8123); database bench_storage "
                   "is created there and dropped.")
@click.option("--out", type=click.Path(), default="bench-results", show_default=True, help="Where to write JSON/MD.")
def bench_storage(consultants: int, clients: int, days: int, seed: int, store_dir: str | None, clickhouse_url: str,
                  out: str) -> None:
    """Compressed bytes per event, record and span on simulator data (sizing for docs/DEPLOY.md)."""
    from syncwatch.bench.storage import run
    from syncwatch.simulator.delivery import FeedConfig

    config = FeedConfig(seed=seed, consultants=consultants, clients=clients, days=days)
    run(config, out, store_dir=Path(store_dir) if store_dir else None, dsn=clickhouse_url)


@bench.command("accuracy")
@click.option("--seed", type=int, default=7, show_default=True, help="Simulator seed (same seed, same faults).")
@click.option("--consultants", type=click.IntRange(2, 100_000), default=40, show_default=True,
              help="Opening headcount of the simulated firm (clients: a quarter of it).")
@click.option("--days", type=click.IntRange(1, 36_500), default=180, show_default=True,
              help="Simulated days; faults stop 95 days before the end so every consequence is due.")
@click.option("--fault-rate", type=PROBABILITY, default=0.1, show_default=True,
              help="Share of each kind of integration step that goes wrong (0.1: every fault type occurs).")
@click.option("--out", type=click.Path(), default="bench-results", show_default=True, help="Where to write JSON/MD.")
def bench_accuracy(seed: int, consultants: int, days: int, fault_rate: float, out: str) -> None:
    """Precision and recall of the default pack's findings per fault type, against the simulator's ground truth."""
    from syncwatch.bench.accuracy import run

    run(seed, consultants, days, fault_rate, out)


@bench.command("all")
@click.option("--small", is_flag=True, help="A smoke run at small sizes (minutes, not the stated sizes).")
@click.option("--only", multiple=True, type=click.Choice(["ingest", "reconcile", "api", "latency", "accuracy"]),
              help="Run only these (repeat the option); default: all five.")
@click.option("--out", type=click.Path(file_okay=False), default="bench-results", show_default=True,
              help="Where each benchmark writes its JSON and markdown.")
@click.option("--docs", type=click.Path(file_okay=False), default="docs/benchmarks", show_default=True,
              help="Where the markdown reports are copied; '' to leave the docs alone.")
def bench_all(small: bool, only: tuple[str, ...], out: str, docs: str) -> None:
    """Every benchmark, one after another, at the sizes the figures are stated for (`make bench`).

    Full size needs a quiet machine and about an hour (10M-record and 10M-event stores). Exit code 1
    names the benchmarks that failed; the others' reports are still written.
    """
    from syncwatch.bench.all import run

    failed = run(small, only, Path(out), Path(docs) if docs else None)
    if failed:
        raise SyncwatchError(f"benchmarks failed: {', '.join(failed)} (their output is above)")


@bench.command("load")
@click.option("--rate", type=click.IntRange(1), default=10_000, show_default=True,
              help="Events/s in the sustained and recovery phases.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=100, show_default=True, help="Events per request.")
@click.option("--seconds", type=click.FloatRange(min=1), default=180.0, show_default=True,
              help="Length of the sustained phase.")
@click.option("--burst-seconds", type=click.FloatRange(min=1), default=20.0, show_default=True)
@click.option("--burst-factor", type=click.FloatRange(min=1), default=10.0, show_default=True,
              help="Burst rate as a multiple of --rate.")
@click.option("--recover-seconds", type=click.FloatRange(min=1), default=30.0, show_default=True)
@click.option("--max-inflight", type=click.IntRange(1), default=64, show_default=True,
              help="The server's SYNCWATCH_MAX_INFLIGHT_REQUESTS during the run.")
@click.option("--spool-mib", type=click.IntRange(1), default=512, show_default=True,
              help="The server's spool limit (SYNCWATCH_SPOOL_MAX_BYTES) in MiB.")
@click.option("--connections", type=click.IntRange(1), default=512, show_default=True,
              help="Most requests the client keeps in flight.")
@click.option("--out", type=click.Path(), default="bench-results", show_default=True, help="Where to write JSON/MD.")
def bench_load(rate: int, batch: int, seconds: float, burst_seconds: float, burst_factor: float,
               recover_seconds: float, max_inflight: int, spool_mib: int, connections: int, out: str) -> None:
    """Sustained ingest, a burst with backpressure and recovery; then every acknowledged event stored once."""
    from syncwatch.bench.load import LoadConfig, run

    report = run(LoadConfig(rate, batch, seconds, burst_seconds, burst_factor, recover_seconds, max_inflight,
                            spool_mib, connections), out)
    if not (report["exactly_once"] and report["server_alive"]):
        raise click.ClickException("delivery check failed: see the report above")


@main.group()
def evidence() -> None:
    """Evidence packs of findings (GET /api/v1/findings/{fingerprint}/evidence)."""


@evidence.command("verify")
@click.argument("pack", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evidence_verify(pack: str, as_json: bool) -> None:
    """Check a pack offline: file hashes, the audit-chain proof, the rule version. Exit 1 if anything fails."""
    from reconciler.evidence import verify_pack

    report = verify_pack(Path(pack).read_bytes())
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.checked:
            click.echo(f"checked: {line}")
        for problem in report.problems:
            click.echo(f"PROBLEM: {problem}")
        click.echo(f"finding {report.finding}: {'OK' if report.ok else 'FAILED'}; head seq {report.head_seq} "
                   f"hash {report.head_hash}; manifest sha256 {report.manifest_sha256}")
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
