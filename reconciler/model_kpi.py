"""KPI rule models: named metrics over workflow instances, events, records and spans.

A KPI is not scheduled and makes no findings: the API evaluates it on request over a time range,
optionally per bucket (day, week, month) and per dimension (see compile_kpi). Kept apart from
model.py, on which it builds; `AnyRule` is the union the loader validates rule files against.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from reconciler.model import (
    AggregateRule,
    At,
    FieldName,
    Name,
    ReconcileRule,
    Strict,
    Text,
    WorkflowRule,
)

Stat = Literal["p50", "p90", "mean"]
Table = Literal["events", "records", "spans"]
FindingKind = Literal["missing_left", "missing_right", "mismatch", "aggregate_mismatch", "stuck", "sla_breach",
                      "failed_step"]
METRICS = ("duration", "completion_rate", "sla_compliance", "straight_through", "ratio")


class DurationMetric(Strict):
    """Hours from one step of a workflow's instances to a later one."""

    workflow: Name
    from_step: Name
    to_step: Name
    stats: Annotated[tuple[Stat, ...], Field(min_length=1)] = ("p50", "p90", "mean")

    @model_validator(mode="after")
    def _distinct(self) -> DurationMetric:
        if self.from_step == self.to_step:
            raise At(("to_step",), "must differ from from_step")
        if len(set(self.stats)) != len(self.stats):
            raise At(("stats",), "a stat is listed twice")
        return self


class WorkflowMetric(Strict):
    """completion_rate and sla_compliance: a rate over one workflow's instances."""

    workflow: Name


class StraightThroughMetric(Strict):
    """Instances that completed with no finding on their correlation key (of `rules`, default every
    rule) and no action recorded on any finding of theirs, of those complete or with either."""

    workflow: Name
    rules: tuple[Name, ...] = ()


class KpiFilter(Strict):
    """A comparison on a column of the table (e.g. StatusCode) or an entry of its map (keys, fields,
    SpanAttributes). Values are bound as parameters."""

    field: FieldName
    op: Literal["=", "!=", "in", "not_in"] = "="
    value: Text | tuple[Text, ...]

    @model_validator(mode="after")
    def _shape(self) -> KpiFilter:
        many = isinstance(self.value, tuple)
        if self.op in ("in", "not_in") and not (many and self.value):
            raise At(("value",), f"op {self.op!r} needs a non-empty list of values")
        if self.op in ("=", "!=") and many:
            raise At(("value",), f"op {self.op!r} needs one value")
        return self


class WithoutFindings(Strict):
    """Keeps the rows whose `field` (a column or map entry; default `key`) holds a value no finding
    (of `rules` and `kinds`, default all; any status) carries under `key` in its keys."""

    key: FieldName
    field: FieldName | None = None
    rules: tuple[Name, ...] = ()
    kinds: tuple[FindingKind, ...] = ()


class Count(Strict):
    """Rows of one table (events, records: latest versions not deleted, spans) matching every filter."""

    table: Table
    filter: tuple[KpiFilter, ...] = ()
    without_findings: WithoutFindings | None = None


class RatioMetric(Strict):
    numerator: Count
    denominator: Count


class KpiRule(Strict):
    """A named metric: exactly one of duration, completion_rate, sla_compliance, straight_through or ratio."""

    kind: Literal["kpi"]
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    unit: Annotated[str, StringConstraints(max_length=40)] = ""
    enabled: bool = True
    tags: tuple[Name, ...] = ()
    duration: DurationMetric | None = None
    completion_rate: WorkflowMetric | None = None
    sla_compliance: WorkflowMetric | None = None
    straight_through: StraightThroughMetric | None = None
    ratio: RatioMetric | None = None
    # workflow metrics: keys (else top-level data fields) of the first step's event, e.g. region;
    # ratio: columns or map entries of the table, e.g. ServiceName
    dimensions: Annotated[tuple[FieldName, ...], Field(max_length=20)] = ()

    @model_validator(mode="after")
    def _one_metric(self) -> KpiRule:
        given = [m for m in METRICS if getattr(self, m)]
        if len(given) != 1:
            raise ValueError(f"give exactly one metric: {', '.join(METRICS[:-1])} or {METRICS[-1]}")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise At(("dimensions",), "a dimension is listed twice")
        return self

    @property
    def metric(self) -> str:
        return next(m for m in METRICS if getattr(self, m))

    @property
    def workflow(self) -> str | None:
        """The workflow rule the metric is computed over (None for a ratio)."""
        found = self.duration or self.completion_rate or self.sla_compliance or self.straight_through
        return found.workflow if found else None

    def finding_rules(self) -> list[tuple[tuple[str | int, ...], str]]:
        """The rules whose findings the metric reads, with where the KPI names each."""
        named: list[tuple[tuple[str | int, ...], str]] = []
        if self.straight_through:
            named += [(("straight_through", "rules", i), r) for i, r in enumerate(self.straight_through.rules)]
        for side in ("numerator", "denominator"):
            count = getattr(self.ratio, side) if self.ratio else None
            if count is not None and count.without_findings is not None:
                named += [(("ratio", side, "without_findings", "rules", i), r)
                          for i, r in enumerate(count.without_findings.rules)]
        return named

    @property
    def severity(self) -> str:
        """KPIs make no findings; `info` so listings that show every rule's severity need no case."""
        return "info"


def references(kpi: KpiRule, workflows: dict[str, WorkflowRule],
               finders: set[str] | None = None) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems with the workflow, steps and rules a KPI names, as (path in the rule, message).
    `finders` are the names of the rules that make findings (checked when given)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if finders is not None:
        known = ", ".join(sorted(finders)) or "none"
        problems = [(path, f"{name!r} is not a rule that makes findings (known: {known})")
                    for path, name in kpi.finding_rules() if name not in finders]
    return problems + _workflow_references(kpi, workflows)


def _workflow_references(kpi: KpiRule, workflows: dict[str, WorkflowRule]) -> list[tuple[tuple[str | int, ...], str]]:
    if kpi.workflow is None:
        return []
    root = (kpi.metric,)
    workflow = workflows.get(kpi.workflow)
    if workflow is None:
        known = ", ".join(sorted(workflows)) or "none"
        return [((*root, "workflow"), f"{kpi.workflow!r} is not a workflow rule (known: {known})")]
    if kpi.metric == "sla_compliance" and not any(s.sla for s in workflow.steps):
        return [((*root, "workflow"), f"workflow {kpi.workflow!r} has no step with an sla")]
    if kpi.duration is None:
        return []
    names = [s.name for s in workflow.steps]
    problems: list[tuple[tuple[str | int, ...], str]] = [
        ((*root, which), f"{step!r} is not a step of workflow {kpi.workflow!r} ({', '.join(names)})")
        for which, step in (("from_step", kpi.duration.from_step), ("to_step", kpi.duration.to_step))
        if step not in names]
    if not problems and names.index(kpi.duration.to_step) < names.index(kpi.duration.from_step):
        problems.append(((*root, "to_step"), f"{kpi.duration.to_step!r} comes before {kpi.duration.from_step!r}"))
    return problems


AnyRule = Annotated[ReconcileRule | AggregateRule | WorkflowRule | KpiRule, Field(discriminator="kind")]
