"""GET /api/v1/rules and /rules/{name}/runs: what each rule is, when it ran, how that went.

A rule's health status, from its runs (rule_runs) and schedule:

    ok             its last run succeeded, within three schedule intervals
    failing        its last run recorded an error
    stale          no run for more than three intervals (the scheduler is down or the rule is stuck)
    never_run      no run recorded yet
    disabled       `enabled: false` in the rule file
    not_scheduled  KPIs, evaluated on request
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from apscheduler.triggers.interval import IntervalTrigger
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from collector.api.access import User, require
from collector.api.kpis import ACTIVE_STATUSES
from collector.api.params import as_utc, not_found
from collector.api.rule_pack import RulePack, rule_pack
from reconciler import runner, service
from reconciler.findings import effective_status_sql
from reconciler.loader import LoadedRule
from reconciler.scheduler import Schedule, trigger_for
from syncwatch.store import Store

router = APIRouter(tags=["rules"])
Status = Literal["ok", "failing", "stale", "never_run", "disabled", "not_scheduled"]
RECENT = timedelta(hours=24)
STALE_AFTER_INTERVALS = 3


class RuleRun(BaseModel):
    run_id: str
    rule: str
    rule_version: str
    started_at: datetime
    duration_ms: float
    full: bool
    rows_scanned: int | None
    opened: int
    updated: int
    resolved: int
    reopened: int
    error: str


class RuleHealth(BaseModel):
    name: str
    kind: str
    description: str
    severity: str
    enabled: bool
    version: str
    schedule: str
    status: Status
    last_run: RuleRun | None
    last_success_at: datetime | None
    last_error: str
    last_error_at: datetime | None
    runs_24h: int
    failures_24h: int
    opened_24h: int = Field(description="findings opened or reopened by the last 24 h of runs")
    resolved_24h: int
    p95_duration_ms_24h: float | None
    open_findings: int = Field(description="findings of the rule now open or acknowledged")


def runs_summary_sql() -> str:
    """Per rule: the last run, the last success and failure, and the last 24 h; one pass over rule_runs."""
    last = ", ".join(f"argMax({c}, started_at) AS run_{c}" for c in runner.RUN_COLUMNS if c != "rule")
    recent = "started_at >= {since:DateTime64(6, 'UTC')}"
    return (f"SELECT rule, {last},\n"
            "       if(countIf(error = '') > 0, maxIf(started_at, error = ''), NULL) AS last_success_at,\n"
            "       argMaxIf(error, started_at, error != '') AS last_error,\n"
            "       if(countIf(error != '') > 0, maxIf(started_at, error != ''), NULL) AS last_error_at,\n"
            f"       countIf({recent}) AS runs_24h, countIf({recent} AND error != '') AS failures_24h,\n"
            f"       sumIf(opened + reopened, {recent}) AS opened_24h, sumIf(resolved, {recent}) AS resolved_24h,\n"
            f"       quantileIf(0.95)(duration_ms, {recent}) AS p95_duration_ms_24h\n"
            "FROM rule_runs GROUP BY rule")


def open_findings_sql() -> str:
    statuses = ", ".join(f"'{s}'" for s in ACTIVE_STATUSES)
    return f"SELECT rule, count() FROM findings FINAL WHERE {effective_status_sql()} IN ({statuses}) GROUP BY rule"


def schedule_of(loaded: LoadedRule, override: str) -> tuple[str, Schedule | None]:
    """The schedule as text and as the scheduler takes it (None when the rule is not scheduled)."""
    if loaded.rule.kind not in service.COMPILERS:
        return service.schedule_text(loaded), None
    if override:
        return f"every {override} (SYNCWATCH_RECONCILE_EVERY)", override
    return service.schedule_text(loaded), service.schedule_of(loaded)


def interval(schedule: Schedule, now: datetime) -> timedelta:
    """How long one run normally waits for the next; for cron, the gap after the next fire time."""
    trigger = trigger_for(schedule)
    if isinstance(trigger, IntervalTrigger):
        return trigger.interval
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    return second - first


def status_of(loaded: LoadedRule, schedule: Schedule | None, summary: dict[str, Any] | None, now: datetime) -> Status:
    if not loaded.rule.enabled:
        return "disabled"
    if schedule is None:
        return "not_scheduled"
    if summary is None:
        return "never_run"
    if summary["run_error"]:
        return "failing"
    late = now - as_utc(summary["run_started_at"]) > STALE_AFTER_INTERVALS * interval(schedule, now)
    return "stale" if late else "ok"


def _run(summary: dict[str, Any]) -> RuleRun:
    fields = {c: summary[f"run_{c}"] for c in runner.RUN_COLUMNS if c != "rule"}
    return RuleRun(rule=summary["rule"], **{**fields, "started_at": as_utc(fields["started_at"])})


def health(loaded: LoadedRule, override: str, summary: dict[str, Any] | None, open_count: int,
           now: datetime) -> RuleHealth:
    text, schedule = schedule_of(loaded, override)
    s = summary or {}
    p95 = s.get("p95_duration_ms_24h")
    return RuleHealth(
        name=loaded.name, kind=loaded.rule.kind, description=loaded.rule.description, severity=loaded.rule.severity,
        enabled=loaded.rule.enabled, version=loaded.version, schedule=text,
        status=status_of(loaded, schedule, summary, now), last_run=_run(summary) if summary else None,
        last_success_at=as_utc(s.get("last_success_at")), last_error=s.get("last_error", ""),
        last_error_at=as_utc(s.get("last_error_at")),
        runs_24h=s.get("runs_24h", 0), failures_24h=s.get("failures_24h", 0), opened_24h=s.get("opened_24h", 0),
        resolved_24h=s.get("resolved_24h", 0), p95_duration_ms_24h=p95 if s.get("runs_24h") else None,
        open_findings=open_count)


@router.get("/rules", summary="Every rule with its schedule, last run, findings and health status")
def list_rules(request: Request, _: User = Depends(require("health:read")),
               rules: RulePack = Depends(rule_pack)) -> list[RuleHealth]:
    store: Store = request.app.state.store
    now = datetime.now(UTC)
    names, rows = store.query_columns(runs_summary_sql(), {"since": now - RECENT})
    summaries = {row[0]: dict(zip(names, row, strict=True)) for row in rows}
    open_counts = dict(store.query(open_findings_sql()))
    override = request.app.state.settings.reconcile_every
    return [health(r, override, summaries.get(r.name), int(open_counts.get(r.name, 0)), now) for r in rules.rules]


@router.get("/rules/{name}/runs", summary="The most recent runs of one rule, newest first")
def rule_runs(request: Request, name: str = Path(description="rule name"),
              limit: int = Query(50, ge=1, le=1000, description="most runs to return"),
              _: User = Depends(require("health:read")), rules: RulePack = Depends(rule_pack)) -> list[RuleRun]:
    runs = runner.recent_runs(request.app.state.store, name, limit)
    if not runs and rules.get(name) is None:
        raise not_found("rule", f"no rule named {name!r} and no runs recorded for one")
    return [RuleRun(**{**r, "started_at": as_utc(r["started_at"])}) for r in runs]
