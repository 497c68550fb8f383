"""Compile KPI rules to one parameterized ClickHouse query, evaluated on request over a time range.

Every query returns rows of (stat, bucket, dimension, value, count):

    stat       p50 / p90 / mean for a duration, else the metric's name
    bucket     the start of the day, week (Monday) or month, or NULL without bucketing
    dimension  the dimension's value, or '' without one
    value      hours for a duration; a fraction (0..1) for the rates and ratios
    count      the instances (duration, completion), SLA steps (sla_compliance), settled instances
               (straight_through) or denominator rows

Workflow metrics read the workflow's stored per-instance state (reconciler.workflow_state: each
step's presence, first and last arrival, grouped by correlation key inside ClickHouse and refreshed
when events arrive) and derive T/done/arrive/due per step as compile_workflow does; an instance is in
range when its first step's time is in [start, end) and is bucketed by that time. Its dimension is
the first step event's key of that name, else the data field of that name. Quantiles interpolate
linearly between the instances (quantileExactInclusive, numpy's default). A ratio counts rows of its
tables whose time is in [start, end).

Straight-through processing reads the findings and the audit log: an instance is an exception when
a finding (of the listed rules, any status, resolved ones too) carries its correlation key under
the workflow's key name, or an action (acknowledge, assign, resolve, ...) was recorded on any of its
findings. Of the settled instances (complete, or an exception), the share complete without one.
A ratio side `without_findings` keeps the rows whose key no finding names (invoice accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from reconciler import workflow_state
from reconciler.compile_reconcile import CompiledRule
from reconciler.compile_workflow import _derived
from reconciler.errors import RuleError
from reconciler.model import Failures, WorkflowRule
from reconciler.model_kpi import Count, KpiFilter, KpiRule, WithoutFindings, references
from reconciler.sql import DATETIME, JOIN_SETTINGS, Params
from syncwatch.store import Store

__all__ = ["COLUMNS", "compile", "evaluate", "evaluate_views", "prepare"]

Bucket = Literal["day", "week", "month"]
COLUMNS = ("stat", "bucket", "dimension", "value", "count")
_BUCKETS = {"day": "toStartOfDay({})", "week": "toMonday({})", "month": "toStartOfMonth({})"}
_QUANTILES = {"p50": "0.5", "p90": "0.9"}
# the tables a ratio counts: name, time column, the columns a filter or dimension may name, and the
# map holding every other field (its key is bound as a parameter)
_TABLES = {
    "events": ("events FINAL", "time", {"type", "source", "system", "id"}, "keys"),
    "records": ("records FINAL", "updated_at", {"system", "entity", "key"}, "fields"),
    "spans": ("otel_traces", "Timestamp", {"ServiceName", "SpanName", "SpanKind", "StatusCode", "StatusMessage"},
              "SpanAttributes"),
}


def compile(kpi: KpiRule, workflows: dict[str, WorkflowRule], start: datetime, end: datetime,
            dimension: str | None = None, bucket: Bucket | None = None, *, now: datetime | None = None,
            state_dimensions: Sequence[str] | None = None, views: Sequence[str] = ()) -> CompiledRule:
    """The KPI's query over [start, end); `now` decides which SLA deadlines are overdue. A workflow
    KPI reads the workflow's state stored with `state_dimensions` (default: the KPI's own). With
    `views` (of overall, trend, breakdown), one query answers them all, each row naming its view."""
    _check(kpi, workflows, start, end, dimension, bucket)
    p = Params()
    frame = (p.named("start", start, DATETIME), p.named("end", end, DATETIME))
    if kpi.ratio:
        sql = _ratio(p, kpi, frame, dimension, bucket, views)
    else:
        assert kpi.workflow is not None
        dims = kpi.dimensions if state_dimensions is None else state_dimensions
        sql = _workflow(p, kpi, workflows[kpi.workflow], dims, frame, dimension, bucket, now or datetime.now(UTC),
                        views)
    return CompiledRule(sql, p.values)


def prepare(store: Store, kpi: KpiRule, workflows: dict[str, WorkflowRule], *,
            state_dimensions: Sequence[str] | None = None,
            max_staleness: timedelta = timedelta(0)) -> workflow_state.Freshness:
    """Bring the state a workflow KPI reads up to date (within `max_staleness`); a ratio reads its
    tables directly and is always current."""
    if kpi.workflow is None:
        return workflow_state.Freshness(None, refreshed=False)
    dims = kpi.dimensions if state_dimensions is None else state_dimensions
    return workflow_state.ensure_fresh(store, workflows[kpi.workflow], dims, max_staleness)


def evaluate(store: Store, kpi: KpiRule, workflows: dict[str, WorkflowRule], start: datetime, end: datetime,
             dimension: str | None = None, bucket: Bucket | None = None, *, now: datetime | None = None,
             state_dimensions: Sequence[str] | None = None,
             max_staleness: timedelta | None = timedelta(0)) -> list[dict[str, Any]]:
    """The KPI's rows, ordered by stat, bucket and dimension. The workflow state is refreshed first
    when older than `max_staleness` (None: the caller has prepared it)."""
    if max_staleness is not None:
        prepare(store, kpi, workflows, state_dimensions=state_dimensions, max_staleness=max_staleness)
    compiled = compile(kpi, workflows, start, end, dimension, bucket, now=now, state_dimensions=state_dimensions)
    names, rows = store.query_columns(compiled.sql, compiled.parameters)
    return [dict(zip(names, row, strict=True)) for row in rows]


def evaluate_views(store: Store, kpi: KpiRule, workflows: dict[str, WorkflowRule], start: datetime, end: datetime,
                   dimension: str | None = None, bucket: Bucket | None = None, *, now: datetime | None = None,
                   state_dimensions: Sequence[str] | None = None,
                   max_staleness: timedelta | None = timedelta(0)) -> dict[str, list[dict[str, Any]]]:
    """The overall values, the trend (with `bucket`) and the breakdown (with `dimension`) in one
    query: {"overall": rows, "trend": rows, "breakdown": rows}, each as `evaluate` returns them."""
    if max_staleness is not None:
        prepare(store, kpi, workflows, state_dimensions=state_dimensions, max_staleness=max_staleness)
    views = ["overall"] + (["trend"] if bucket else []) + (["breakdown"] if dimension else [])
    compiled = compile(kpi, workflows, start, end, dimension, bucket, now=now, state_dimensions=state_dimensions,
                       views=views)
    names, rows = store.query_columns(compiled.sql, compiled.parameters)
    found: dict[str, list[dict[str, Any]]] = {"overall": [], "trend": [], "breakdown": []}
    for row in rows:
        record = dict(zip(names, row, strict=True))
        found[record.pop("view")].append(record)
    return found


def _check(kpi: KpiRule, workflows: dict[str, WorkflowRule], start: datetime, end: datetime,
           dimension: str | None, bucket: str | None) -> None:
    problems = [f"{kpi.name}: {'.'.join(map(str, path))}: {message}" for path, message in references(kpi, workflows)]
    if dimension is not None and dimension not in kpi.dimensions:
        problems.append(f"{kpi.name}: dimension {dimension!r} is not one of the KPI's dimensions "
                        f"({', '.join(kpi.dimensions) or 'none'})")
    if bucket is not None and bucket not in _BUCKETS:
        problems.append(f"{kpi.name}: bucket {bucket!r} is not one of {', '.join(_BUCKETS)}")
    if start.tzinfo is None or end.tzinfo is None or not start < end:
        problems.append(f"{kpi.name}: the range needs timezone-aware start < end (got {start} .. {end})")
    if problems:
        raise RuleError(problems)


def _bucket(bucket: str | None, column: str) -> str:
    if bucket is None:
        return "CAST(NULL AS Nullable(DateTime('UTC')))"
    start = _BUCKETS[bucket].format(f"toDateTime({column}, 'UTC')")
    return f"toDateTime({start}, 'UTC')"


# GROUPING SETS of the views one query may answer at once
_SETS = {"overall": "()", "trend": "(b)", "breakdown": "(d)"}


def _view(views: Sequence[str]) -> str:
    """Which view a row belongs to. grouping(x) is 1 where x was aggregated away (standard
    semantics) and may only name columns of the grouping sets, hence one form per combination."""
    trend, breakdown = "trend" in views, "breakdown" in views
    if trend and breakdown:
        return "multiIf(grouping(b, d) = 3, 'overall', grouping(b, d) = 1, 'trend', 'breakdown')"
    if trend or breakdown:
        column, name = ("b", "trend") if trend else ("d", "breakdown")
        return f"if(grouping({column}) = 1, 'overall', '{name}')"
    return "'overall'"


def _grouped(stats: list[tuple[str, str]], count: str, source: str, having: str = "",
             views: Sequence[str] = ()) -> str:
    """Every stat over `source` (which yields b and d) in one pass, grouped by bucket and dimension,
    then one row per stat: the source (a whole workflow's instances) is computed once. With `views`,
    one grouping set per view (overall, trend, breakdown) and a `view` column naming each row's."""
    values = ", ".join(f"tuple('{stat}', toFloat64({value}))" for stat, value in stats)
    group = f"GROUPING SETS ({', '.join(_SETS[v] for v in views)})" if views else "b, d"
    view, first = (f"{_view(views)} AS view, ", "view, ") if views else ("", "")
    # a column no grouping set names is the constant of an unrequested view (NULL bucket, '' dimension)
    b = "any(b)" if views and "trend" not in views else "b"
    d = "any(d)" if views and "breakdown" not in views else "d"
    return (
        f"SELECT {first}v.1 AS stat, bucket, dimension, v.2 AS value, count FROM (\n"
        f"SELECT {view}{b} AS bucket, {d} AS dimension, toUInt64({count}) AS count, [{values}] AS vals\n"
        f"FROM (\n{source}\n)\nGROUP BY {group}{having}\n)\nARRAY JOIN vals AS v\n"
        f"ORDER BY {first}stat, bucket, dimension\n" + JOIN_SETTINGS
    )


def _needed(kpi: KpiRule, rule: WorkflowRule) -> WorkflowRule:
    """The workflow as far as the KPI reads it: no failure signals and no impact (no metric uses
    them), and for a duration only the steps up to its later end (a step's anchor is earlier)."""
    steps = rule.steps
    if kpi.duration:
        names = [s.name for s in steps]
        last = max(names.index(kpi.duration.from_step), names.index(kpi.duration.to_step))
        steps = steps[: last + 1]
    return rule.model_copy(update={"steps": steps, "impact": None, "failures": Failures()})


# -- workflow metrics ------------------------------------------------------------------------------------

def _workflow(p: Params, kpi: KpiRule, rule: WorkflowRule, dims: Sequence[str], frame: tuple[str, str],
              dimension: str | None, bucket: str | None, now: datetime, views: Sequence[str] = ()) -> str:
    at = p.named("now", now, DATETIME)
    needed = _needed(kpi, rule)
    stored = workflow_state.instances(p, rule, dims, dimension, frame)
    instances = f"        SELECT *, {', '.join(_derived(p, needed))}\n        FROM (\n        {stored}\n        )"
    source = (f"    SELECT {_bucket(bucket, 'first0')} AS b, dim AS d, {_per_instance(kpi, rule, at)}\n"
              f"    FROM (\n{instances}\n    ) AS i{_exceptions(p, kpi, rule)}\n    WHERE 1")
    if kpi.duration:
        stats = _duration_stats(kpi.duration.stats)
        return _grouped(stats, "count()", source + " AND measured", " HAVING count() > 0", views)
    if kpi.completion_rate:
        return _grouped([("completion_rate", "countIf(complete) / count()")], "count()", source, views=views)
    if kpi.straight_through:
        settled = "countIf(complete OR exception)"
        return _grouped([("straight_through", f"countIf(complete AND NOT exception) / {settled}")], settled,
                        source, f" HAVING {settled} > 0", views)
    return _grouped([("sla_compliance", "sum(ok) / sum(due)")], "sum(due)", source, " HAVING sum(due) > 0", views)


def _duration_stats(names: Sequence[str]) -> list[tuple[str, str]]:
    """Each stat's expression; the quantiles share one quantilesExactInclusive (one sort of the
    instances' hours, not one per quantile: ClickHouse computes an aggregate written twice once)."""
    levels = [_QUANTILES[n] for n in names if n in _QUANTILES]
    quantiles = f"quantilesExactInclusive({', '.join(levels)})(hours)"
    return [(n, f"{quantiles}[{levels.index(_QUANTILES[n]) + 1}]" if n in _QUANTILES else "avg(hours)")
            for n in names]


def _exceptions(p: Params, kpi: KpiRule, rule: WorkflowRule) -> str:
    """straight_through: `exception` is 1 for the correlation keys a finding (of the KPI's rules)
    names, or whose findings (of any rule) someone acted on."""
    if kpi.straight_through is None:
        return ""
    name = p(rule.key_name)
    named = f"SELECT keys[{name}] AS ck, fingerprint, rule FROM findings FINAL WHERE mapContains(keys, {name})"
    rules = kpi.straight_through.rules
    counted = f"has({p(list(rules), 'Array(String)')}, rule)" if rules else "1"
    return (f"\n    LEFT JOIN (SELECT ck, 1 AS exception FROM ({named})\n"
            f"               WHERE {counted} OR fingerprint IN (SELECT finding_fingerprint FROM actions)\n"
            f"               GROUP BY ck) AS x USING ck")


def _per_instance(kpi: KpiRule, rule: WorkflowRule, now: str) -> str:
    """The columns a metric needs of one instance: hours/measured, due/ok (its SLA steps), or
    complete (and exception)."""
    names = [s.name for s in rule.steps]
    if kpi.duration:
        a, b = names.index(kpi.duration.from_step), names.index(kpi.duration.to_step)
        return (f"dateDiff('microsecond', T{a}, arrive{b}) / 3600e6 AS hours, "
                f"done{a} AND done{b} AND arrive{b} >= T{a} AS measured")
    if kpi.completion_rate:
        return "complete"
    if kpi.straight_through:
        return "complete, exception"
    due, ok = [], []
    for i, step in enumerate(rule.steps):
        if step.sla:
            a = rule.anchor(i)
            due.append(f"(done{a} AND (done{i} OR due{i} < {now}))")
            ok.append(f"(done{a} AND done{i} AND arrive{i} <= due{i})")
    return f"{' + '.join(due)} AS due, {' + '.join(ok)} AS ok"


# -- ratios ----------------------------------------------------------------------------------------------

def _column(p: Params, table: str, name: str) -> str:
    _, _, columns, mapped = _TABLES[table]
    return name if name in columns else f"{mapped}[{p(name)}]"


def _filter(p: Params, table: str, f: KpiFilter) -> str:
    column = _column(p, table, f.field)
    if f.op in ("in", "not_in"):
        values = p(list(f.value), "Array(String)")
        return f"{'NOT ' if f.op == 'not_in' else ''}has({values}, toString({column}))"
    return f"toString({column}) {f.op} {p(f.value)}"


def _count(p: Params, side: Count, which: int, frame: tuple[str, str], dimension: str | None,
           bucket: str | None) -> str:
    source, time, _, _ = _TABLES[side.table]
    where = [f"{time} >= {frame[0]}", f"{time} < {frame[1]}"] + (["deleted = 0"] if side.table == "records" else [])
    where += [_filter(p, side.table, f) for f in side.filter]
    if side.without_findings:
        where.append(_without_findings(p, side.table, side.without_findings))
    d = f"toString({_column(p, side.table, dimension)})" if dimension else "''"
    return (f"    SELECT {_bucket(bucket, time)} AS b, {d} AS d, {which} AS side\n"
            f"    FROM {source} WHERE {' AND '.join(where)}")


def _without_findings(p: Params, table: str, w: WithoutFindings) -> str:
    """The row's value is one no finding of the given rules and kinds names under `key` (any status:
    a drift corrected later still was one)."""
    conds = [f"mapContains(keys, {p(w.key)})"]
    if w.rules:
        conds.append(f"has({p(list(w.rules), 'Array(String)')}, rule)")
    if w.kinds:
        conds.append(f"has({p(list(w.kinds), 'Array(String)')}, kind)")
    value = f"toString({_column(p, table, w.field or w.key)})"
    return f"{value} NOT IN (SELECT keys[{p(w.key)}] FROM findings FINAL WHERE {' AND '.join(conds)})"


def _ratio(p: Params, kpi: KpiRule, frame: tuple[str, str], dimension: str | None, bucket: str | None,
           views: Sequence[str] = ()) -> str:
    assert kpi.ratio is not None
    source = "\n    UNION ALL\n".join(_count(p, side, which, frame, dimension, bucket)
                                      for which, side in ((1, kpi.ratio.numerator), (0, kpi.ratio.denominator)))
    return _grouped([("ratio", "countIf(side = 1) / countIf(side = 0)")], "countIf(side = 0)", source,
                    " HAVING countIf(side = 0) > 0", views)
