"""Loaded rules -> runs and scheduled jobs: what `syncwatch reconcile` and the embedded server run.

Each run decides at run time whether it can be incremental: only when the rule (at this
version) has a successful run to use as the watermark; otherwise, or when asked, it is full.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler import (
    compile_reconcile,
    compile_workflow,
    record_mirror,
    rule_versions,
    workflow_progress,
    workflow_state,
)
from reconciler.alerts import Notifier
from reconciler.findings import Scope
from reconciler.loader import LoadedRule
from reconciler.model import WorkflowRule
from reconciler.model_kpi import KpiRule
from reconciler.rule_shards import Share
from reconciler.run_lease import RunLease
from reconciler.runner import DEFAULT_TIMEOUT_SECONDS, INGEST_LAG, RunResult, last_success, run_rule
from reconciler.scheduler import Schedule, ScheduledJob
from reconciler.sql import Params, changed_keys
from syncwatch.store import Store

log = logging.getLogger(__name__)

# A rule file without `schedule:` still runs, at this pace.
DEFAULT_SCHEDULE = "15m"
# Incremental runs between full runs; a full run at least this often catches what they cannot.
FULL_RUN_EVERY = timedelta(hours=1)

# Rule kind -> compiler (rule, since) -> CompiledRule. KPI rules are evaluated by the API on
# request, not scheduled, so they have no entry here.
COMPILERS: dict[str, Callable[..., Any]] = {
    "reconcile": compile_reconcile.compile,
    "aggregate": compile_reconcile.compile,
    # a scheduled workflow run reads the progress its runs keep (brought up to date by `prepare`)
    "workflow": functools.partial(compile_workflow.compile, state=True),
}


def runnable(rules: Iterable[LoadedRule], only: str | None = None) -> list[LoadedRule]:
    """The enabled rules that have a compiler (all of them, or the one named ``only``)."""
    return [r for r in rules if r.rule.kind in COMPILERS and r.rule.enabled and only in (None, r.name)]


def run_one(store: Store, loaded: LoadedRule, full: bool = False, notifier: Notifier | None = None, *,
            now: datetime | None = None, timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> RunResult:
    """Run one rule now: incremental from its last success unless ``full`` or there is none.
    With a notifier, the run's findings are queued for alerting (never blocks, never raises).
    ``now`` is the run's clock (deadlines and grace periods count from it); default: the wall clock.
    ClickHouse cancels the rule's query after ``timeout_seconds`` (recorded as the run's error)."""
    rule = loaded.rule
    now = now or datetime.now(UTC)
    since = None if full else last_success(store, loaded.name, loaded.version)
    if since is not None and _full_run_due(store, loaded, now):
        since = None
    if since is not None:
        since -= INGEST_LAG
    compiled = functools.partial(_prepared, store, rule, since, now)
    scope = None if since is None else changed_scope(rule, since, now)
    rule_versions.record(store, loaded, now)  # so this run's findings resolve to the rule's exact text
    result = run_rule(store, loaded.name, loaded.version, rule.severity, compiled, since is None, scope=scope, now=now,
                      timeout_seconds=timeout_seconds)
    if notifier is not None:
        notifier.notify(store, result)
    return result


def prepare(store: Store, rule: Any, *, full: bool, now: datetime) -> None:
    """Bring up to date what a rule's query reads besides the ingested tables: a workflow's progress
    (rebuilt on a full run, else the events received since its last update folded in)."""
    if isinstance(rule, WorkflowRule):
        workflow_progress.update(store, rule, full=full, now=now)


def _prepared(store: Store, rule: Any, since: datetime | None, now: datetime) -> Any:
    """The rule's compiled query, once what it reads is up to date (called by the runner, so that a
    failure is the run's recorded error)."""
    prepare(store, rule, full=since is None, now=now)
    if since is not None and record_mirror.applies(rule) and record_mirror.worth_it(store, rule):
        return compile_reconcile.compile(rule, since, now=now, mirror=record_mirror.update(store, rule))
    return COMPILERS[rule.kind](rule, since, now=now)


def _full_run_due(store: Store, loaded: LoadedRule, now: datetime) -> bool:
    """An incremental run sees only keys that changed; a record that merely ages past a grace
    period, or a deadline it cannot scope, needs a full run now and then."""
    last_full = last_success(store, loaded.name, loaded.version, full_only=True)
    return last_full is None or now - last_full >= FULL_RUN_EVERY


def run_leased(store: Store, loaded: LoadedRule, full: bool = False, notifier: Notifier | None = None, *,
               lease: RunLease | None = None, now: datetime | None = None,
               timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> RunResult:
    """``run_one`` under the rule's run lease, if any: when another process holds the rule, nothing runs
    and the result's error says who holds it (no rule_runs row: there was no run)."""
    if lease is None:
        return run_one(store, loaded, full, notifier, now=now, timeout_seconds=timeout_seconds)
    with lease.claim(loaded.name) as claim:
        if claim.won:
            return run_one(store, loaded, full, notifier, now=now, timeout_seconds=timeout_seconds)
    log.warning("rule %s not run: %s", loaded.name, claim.reason)
    return RunResult("", loaded.name, loaded.version, datetime.now(UTC), 0.0, full, error=f"not run: {claim.reason}")


def run_rules(store: Store, rules: Sequence[LoadedRule], *, full: bool, notifier: Notifier | None = None,
              now: datetime | None = None, lease: RunLease | None = None,
              timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> list[RunResult]:
    """Every rule once, one after another; a failure or timeout is recorded and the next rule runs."""
    return [run_leased(store, loaded, full, notifier, lease=lease, now=now, timeout_seconds=timeout_seconds)
            for loaded in rules]


def scheduled_jobs(store: Store, rules: Iterable[LoadedRule], notifier: Notifier | None = None, *,
                   share: Share | None = None, lease: RunLease | None = None,
                   timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> list[ScheduledJob]:
    """One job per rule of this reconciler's ``share`` of the pack (all of it by default)."""
    mine = (share or Share()).of(rules)
    return [ScheduledJob(r.name, schedule_of(r), functools.partial(run_leased, store, r, False, notifier, lease=lease,
                                                                   timeout_seconds=timeout_seconds))
            for r in mine]


def kpi_state_jobs(store: Store, rules: Iterable[LoadedRule], every: timedelta, *,
                   share: Share | None = None) -> list[ScheduledJob]:
    """One job per workflow that KPIs read: refresh its per-instance state whenever events arrived,
    so that KPI requests find it fresh (reconciler.workflow_state). Sharded like rules."""
    loaded = list(rules)
    kpis = [r.rule for r in loaded if isinstance(r.rule, KpiRule)]
    jobs = []
    for r in loaded:
        if not isinstance(r.rule, WorkflowRule) or not r.rule.enabled:
            continue
        if not any(k.enabled and k.workflow == r.name for k in kpis):
            continue
        name = f"kpi-state:{r.name}"
        if (share or Share()).owns(name):
            dims = workflow_state.dimensions_for(kpis, r.name)
            jobs.append(ScheduledJob(name, every, functools.partial(_refresh_state, store, r.rule, dims)))
    return jobs


def _refresh_state(store: Store, rule: WorkflowRule, dims: list[str]) -> None:
    try:
        workflow_state.ensure_fresh(store, rule, dims)
    except Exception:  # a failed refresh is retried at the next tick; requests refresh on their own
        log.exception("refreshing the KPI state of workflow %s failed", rule.name)


def schedule_of(loaded: LoadedRule) -> Schedule:
    schedule = loaded.rule.schedule
    if schedule is None:
        return DEFAULT_SCHEDULE
    return schedule.every if schedule.every is not None else str(schedule.cron)


def schedule_text(loaded: LoadedRule) -> str:
    if loaded.rule.kind not in COMPILERS:
        return "on request (not scheduled)"
    schedule = schedule_of(loaded)
    if isinstance(schedule, timedelta):
        return f"every {int(schedule.total_seconds())}s"
    return f"every {schedule}" if schedule == DEFAULT_SCHEDULE else f"on cron '{schedule}' (UTC)"


def changed_scope(rule: Any, since: datetime, now: datetime | None = None) -> Scope:
    """The keys an incremental run of a rule covers, the same set its compiler restricts its query to:
    for reconcile rules, keys whose records changed since the watermark (reconciler.sql.changed_keys);
    for workflows, instances with new events or a deadline passed since then (compile_workflow.scope)."""
    if isinstance(rule, WorkflowRule):
        return compile_workflow.scope(rule, since, now or datetime.now(UTC), state=True)
    p = Params()
    key_name = p(rule.key_name)
    sql = f"SELECT map({key_name}, k) AS keys FROM ({changed_keys(p, rule, since)})"
    # On the key name alone: an aggregate rule's findings also carry a period, and a changed
    # record of a project puts every period of that project back in question.
    return Scope(sql, p.values, key_names=(rule.key_name,))
