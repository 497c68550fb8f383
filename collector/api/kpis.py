"""KPI endpoints: the catalogue, one KPI over a range (trend buckets, breakdown by a dimension), and
the executive summary (every KPI this period against the previous one, revenue at risk).

Each KPI compiles to one query inside ClickHouse (reconciler.compile_kpi); the routes only choose
which of its three views (overall, per bucket, per dimension) a request needs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from collector.api.access import User, require
from collector.api.params import TimeRange, as_utc, bad_parameter, not_found, time_range
from collector.api.rule_pack import RulePack, rule_pack
from reconciler import compile_kpi, workflow_state
from reconciler.findings import effective_status_sql
from reconciler.model_kpi import KpiRule
from syncwatch.store import Store

router = APIRouter(tags=["kpis"])
Better = Literal["lower", "higher"]
# Active findings: what is still at risk (a silenced finding has been accepted for now).
ACTIVE_STATUSES = ("open", "acknowledged")


class KpiInfo(BaseModel):
    name: str
    description: str
    unit: str
    metric: str = Field(description="duration, completion_rate, sla_compliance or ratio")
    workflow: str | None
    stats: list[str] = Field(description="the stat names its values carry (p50, p90, mean, or the metric's name)")
    dimensions: list[str]
    tags: list[str]
    better: Better | None = Field(description="which direction is good; null when the KPI does not say")


class KpiPoint(BaseModel):
    stat: str
    value: float
    count: int = Field(description="instances, SLA steps or denominator rows behind the value")
    bucket: datetime | None = None
    dimension: str | None = None


class KpiValues(BaseModel):
    name: str
    unit: str
    start: datetime
    end: datetime
    bucket: str | None
    dimension: str | None
    as_of: datetime | None = Field(description="a workflow KPI's state as of this time (refreshed when events "
                                               "arrive, at most SYNCWATCH_KPI_MAX_STALENESS_SECONDS old); "
                                               "null for a ratio, which is always current")
    values: list[KpiPoint] = Field(description="the whole range, one point per stat")
    trend: list[KpiPoint] = Field(description="per bucket (empty without `bucket`)")
    breakdown: list[KpiPoint] = Field(description="per value of `dimension` (empty without it)")


class KpiTile(BaseModel):
    name: str
    description: str
    unit: str
    stat: str
    value: float | None
    count: int
    previous: float | None
    previous_count: int
    change: float | None = Field(description="value - previous")
    change_ratio: float | None = Field(description="(value - previous) / previous; null when previous is 0 or none")
    better: Better | None
    as_of: datetime | None = Field(None, description="the KPI's workflow state as of this time (null: a ratio)")


class MoneyAtRisk(BaseModel):
    currency: str
    amount: float
    findings: int


class KpiSummary(BaseModel):
    start: datetime
    end: datetime
    previous_start: datetime
    previous_end: datetime
    tiles: list[KpiTile]
    revenue_at_risk: list[MoneyAtRisk] = Field(description="business impact of active findings, per currency")


def stats_of(kpi: KpiRule) -> list[str]:
    return list(kpi.duration.stats) if kpi.duration else [kpi.metric]


def better_of(kpi: KpiRule) -> Better | None:
    # durations and failure shares shrink when things improve; completion and SLA shares grow
    if kpi.duration:
        return "lower"
    if kpi.completion_rate or kpi.sla_compliance:
        return "higher"
    return None


def info(kpi: KpiRule) -> KpiInfo:
    return KpiInfo(name=kpi.name, description=kpi.description, unit=kpi.unit, metric=kpi.metric,
                   workflow=kpi.workflow, stats=stats_of(kpi), dimensions=list(kpi.dimensions), tags=list(kpi.tags),
                   better=better_of(kpi))


def revenue_at_risk_sql() -> str:
    """Impact of the findings still active, per currency (a constant query: no request values)."""
    statuses = ", ".join(f"'{s}'" for s in ACTIVE_STATUSES)
    return ("SELECT impact_currency AS currency, toFloat64(sum(impact_amount)) AS amount, count() AS findings\n"
            f"FROM findings FINAL\nWHERE {effective_status_sql()} IN ({statuses}) AND impact_amount != 0\n"
            "GROUP BY currency ORDER BY amount DESC")


def _points(rows: list[dict[str, Any]], by: str | None) -> list[KpiPoint]:
    return [KpiPoint(stat=r["stat"], value=r["value"], count=r["count"],
                     bucket=as_utc(r["bucket"]) if by == "bucket" else None,
                     dimension=r["dimension"] if by == "dimension" else None) for r in rows]


def _kpi(rules: RulePack, name: str) -> KpiRule:
    kpi = rules.kpis.get(name)
    if kpi is None:
        raise not_found("kpi", f"no KPI named {name!r} (known: {', '.join(sorted(rules.kpis)) or 'none'})")
    return kpi


def _state_dimensions(rules: RulePack, kpi: KpiRule) -> list[str] | None:
    return workflow_state.dimensions_for(rules.kpis.values(), kpi.workflow) if kpi.workflow else None


def _prepare(request: Request, rules: RulePack, kpi: KpiRule) -> datetime | None:
    """Refresh the KPI's workflow state if it is older than the configured staleness and events
    arrived since; the state's as-of time."""
    max_age = timedelta(seconds=request.app.state.settings.kpi_max_staleness_seconds)
    fresh = compile_kpi.prepare(request.app.state.store, kpi, rules.workflows,
                                state_dimensions=_state_dimensions(rules, kpi), max_staleness=max_age)
    return as_utc(fresh.as_of) if fresh.as_of else None


def _evaluate(store: Store, rules: RulePack, kpi: KpiRule, period: TimeRange, **view: Any) -> list[dict[str, Any]]:
    """The KPI over `period` from state prepared by _prepare."""
    return compile_kpi.evaluate(store, kpi, rules.workflows, period.start, period.end,
                                state_dimensions=_state_dimensions(rules, kpi), max_staleness=None, **view)


@router.get("/kpis", summary="The KPI catalogue: every KPI with its unit, stats and dimensions")
def list_kpis(_: User = Depends(require("kpis:read")), rules: RulePack = Depends(rule_pack)) -> list[KpiInfo]:
    return [info(kpi) for kpi in rules.kpis.values() if kpi.enabled]


@router.get("/kpis/summary", summary="Executive tiles: each KPI this period and the previous one, revenue at risk")
def kpi_summary(request: Request, start: str | None = Query(None, description="ISO 8601; default end - 30 days"),
                end: str | None = Query(None, description="ISO 8601; default now"),
                _: User = Depends(require("kpis:read")), rules: RulePack = Depends(rule_pack)) -> KpiSummary:
    store: Store = request.app.state.store
    period = time_range(start, end)
    before = period.previous()
    tiles = []
    prepared: dict[str | None, datetime | None] = {}  # one freshness check per workflow, not per KPI
    for kpi in (k for k in rules.kpis.values() if k.enabled):
        if kpi.workflow not in prepared:
            prepared[kpi.workflow] = _prepare(request, rules, kpi)
        as_of = prepared[kpi.workflow]
        tiles.append(_tile(kpi, _headline(_evaluate(store, rules, kpi, period), kpi),
                           _headline(_evaluate(store, rules, kpi, before), kpi), as_of))
    names, rows = store.query_columns(revenue_at_risk_sql())
    risk = [MoneyAtRisk(**dict(zip(names, row, strict=True))) for row in rows]
    return KpiSummary(start=period.start, end=period.end, previous_start=before.start, previous_end=before.end,
                      tiles=tiles, revenue_at_risk=risk)


def _headline(rows: list[dict[str, Any]], kpi: KpiRule) -> tuple[float | None, int]:
    """The first stat the KPI lists (p50 for most durations): what a tile shows."""
    stat = stats_of(kpi)[0]
    found = next((r for r in rows if r["stat"] == stat), None)
    return (float(found["value"]), int(found["count"])) if found else (None, 0)


def _tile(kpi: KpiRule, now: tuple[float | None, int], before: tuple[float | None, int],
          as_of: datetime | None) -> KpiTile:
    (value, count), (previous, previous_count) = now, before
    change = value - previous if value is not None and previous is not None else None
    ratio = change / previous if change is not None and previous else None
    return KpiTile(name=kpi.name, description=kpi.description, unit=kpi.unit, stat=stats_of(kpi)[0], value=value,
                   count=count, previous=previous, previous_count=previous_count, change=change, change_ratio=ratio,
                   better=better_of(kpi), as_of=as_of)


@router.get("/kpis/{name}", summary="One KPI over a range: overall values, trend buckets, breakdown by a dimension")
def get_kpi(request: Request, name: str,
            start: str | None = Query(None, description="ISO 8601; default end - 30 days"),
            end: str | None = Query(None, description="ISO 8601; default now"),
            bucket: Literal["day", "week", "month"] | None = Query(None, description="trend bucket"),
            dimension: str | None = Query(None, description="one of the KPI's dimensions"),
            _: User = Depends(require("kpis:read")), rules: RulePack = Depends(rule_pack)) -> KpiValues:
    kpi = _kpi(rules, name)
    if dimension is not None and dimension not in kpi.dimensions:
        raise bad_parameter("dimension", f"{dimension!r} is not a dimension of KPI {name!r} "
                                         f"(choose from: {', '.join(kpi.dimensions) or 'none'})")
    period = time_range(start, end)
    store: Store = request.app.state.store
    as_of = _prepare(request, rules, kpi)
    views = compile_kpi.evaluate_views(store, kpi, rules.workflows, period.start, period.end, dimension, bucket,
                                       state_dimensions=_state_dimensions(rules, kpi), max_staleness=None)
    overall, trend, breakdown = views["overall"], views["trend"], views["breakdown"]
    return KpiValues(name=kpi.name, unit=kpi.unit, start=period.start, end=period.end, bucket=bucket,
                     dimension=dimension, as_of=as_of, values=_points(overall, None), trend=_points(trend, "bucket"),
                     breakdown=_points(breakdown, "dimension"))
