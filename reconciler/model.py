"""Rule models: strict, frozen pydantic models of the YAML rule language (see rules/README.md).

Names, systems, entities and field names must match safe patterns here, at load, so nothing
hostile ever reaches the compiler; the compiler binds every value from a rule as a parameter all
the same (field names included: they are keys of the records' `fields` Map, i.e. values).
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
FieldName = Annotated[str, StringConstraints(pattern=FIELD_PATTERN)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Severity = Literal["info", "low", "medium", "high", "critical"]
MissingMode = Literal["both", "left_only", "right_only", "none"]
CompareType = Literal["string", "decimal", "int", "date", "datetime", "enum"]
Grain = Literal["day", "week", "month", "quarter", "year"]

_DURATION = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


class At(ValueError):
    """A validation problem at a sub-path of the model being validated (the loader points there)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


def _text(value: Any) -> Any:
    """A YAML scalar as the text a record field would hold: numbers as JSON text, true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return value


def _duration(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.replace(" ", "")
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration: write e.g. '90s', '15m', '2h', '3d', '1w' or '1d12h'")
        return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    return value


def _fraction(value: Any) -> Any:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return Decimal(value.strip()[:-1]) / 100
        except ArithmeticError as exc:
            raise ValueError(f"{value!r} is not a percentage like '1%' or '0.5%'") from exc
    return value


Text = Annotated[str, BeforeValidator(_text), StringConstraints(max_length=1000)]
Duration = Annotated[timedelta, BeforeValidator(_duration), Field(ge=timedelta(0))]
Ratio = Annotated[Decimal, BeforeValidator(_fraction), Field(ge=0, le=1)]
NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(Strict):
    """How often the scheduler runs a rule: `every: 15m` or `cron: "*/15 * * * *"` (UTC)."""

    every: Duration | None = None
    cron: Annotated[str, StringConstraints(pattern=r"^[0-9*/,\-A-Za-z?]+( [0-9*/,\-A-Za-z?]+){4}$")] | None = None

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of every (e.g. '15m') or cron (e.g. '*/15 * * * *')")
        if self.every is not None and self.every < timedelta(seconds=10):
            raise At(("every",), "must be at least 10s")
        return self


class Filter(Strict):
    """A simple comparison on one field of a side's records (values are text, as stored)."""

    field: FieldName
    op: Literal["=", "!=", "in", "not_in", ">", ">=", "<", "<=", "exists", "missing"] = "="
    value: Text | tuple[Text, ...] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Filter:
        many = isinstance(self.value, tuple)
        if self.op in ("exists", "missing") and self.value is not None:
            raise At(("value",), f"op {self.op!r} takes no value")
        if self.op in ("in", "not_in") and not (many and self.value):
            raise At(("value",), f"op {self.op!r} needs a non-empty list of values")
        if self.op not in ("in", "not_in", "exists", "missing") and (self.value is None or many):
            raise At(("value",), f"op {self.op!r} needs one value")
        return self


class Side(Strict):
    """One system's records of one entity; the join key is the record key or one of its fields."""

    system: Name
    entity: Name
    key_field: FieldName | None = None
    filter: tuple[Filter, ...] = ()
    label: Annotated[str, StringConstraints(max_length=200)] | None = None


class Tolerance(Strict):
    """How different two values may be and still match. Which keys apply depends on the type."""

    absolute: NonNegative | None = None
    relative: Ratio | None = None
    days: Annotated[int, Field(ge=0, le=36500)] | None = None
    seconds: Annotated[int, Field(ge=0)] | None = None
    case_insensitive: bool = False
    ignore_whitespace: bool = False

    def given(self) -> set[str]:
        return {k for k, v in self if v not in (None, False)}


_TOLERANCES: dict[str, set[str]] = {
    "string": {"case_insensitive", "ignore_whitespace"},
    "enum": {"case_insensitive", "ignore_whitespace"},
    "decimal": {"absolute", "relative"},
    "int": {"absolute", "relative"},
    "date": {"days"},
    "datetime": {"days", "seconds"},
}


def check_tolerance(tolerance: Tolerance | None, type_: str) -> None:
    if tolerance is None:
        return
    for key in sorted(tolerance.given() - _TOLERANCES[type_]):
        allowed = ", ".join(sorted(_TOLERANCES[type_]))
        raise At(("tolerance", key), f"does not apply to type {type_} (allowed: {allowed})")
    if tolerance.absolute is not None and tolerance.relative is not None:
        raise At(("tolerance",), "give absolute or relative, not both")


class Compare(Strict):
    """One field compared between the sides (`right_field` when the right system names it otherwise)."""

    field: FieldName
    right_field: FieldName | None = None
    type: CompareType = "string"
    tolerance: Tolerance | None = None
    value_map: dict[Text, Text] | None = None

    @model_validator(mode="after")
    def _fits_type(self) -> Compare:
        check_tolerance(self.tolerance, self.type)
        if self.value_map is not None and self.type not in ("string", "enum"):
            raise At(("value_map",), f"applies to string and enum fields, not {self.type}")
        if self.value_map is not None and not self.value_map:
            raise At(("value_map",), "is empty")
        return self

    @property
    def other(self) -> str:
        return self.right_field or self.field


class Impact(Strict):
    """The business impact of a finding: an amount field (left side, else right) and its currency."""

    field: FieldName
    right_field: FieldName | None = None
    currency_field: FieldName | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _currency(self) -> Impact:
        if (self.currency_field is None) == (self.currency is None):
            raise ValueError("give exactly one of currency_field (a field holding the code) or currency (e.g. EUR)")
        return self


class RuleBase(Strict):
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    severity: Severity = "medium"
    schedule: Schedule | None = None
    enabled: bool = True
    tags: tuple[Name, ...] = ()


class SidesRule(RuleBase):
    """What record-level and aggregate reconcile share: two sides joined on a normalized key."""

    key_name: Name
    key_normalize: tuple[Literal["trim", "lower", "upper"], ...] = ()
    missing: MissingMode = "both"
    grace: Duration = timedelta(0)
    grace_basis: Literal["updated_at", "received_at"] = "updated_at"

    @model_validator(mode="after")
    def _key(self) -> SidesRule:
        if {"lower", "upper"} <= set(self.key_normalize):
            raise At(("key_normalize",), "give lower or upper, not both")
        return self


class ReconcileRule(SidesRule):
    """Record-level reconciliation: each key's latest record on both sides, field by field."""

    kind: Literal["reconcile"]
    left: Side
    right: Side
    compare: tuple[Compare, ...] = ()
    impact: Impact | None = None

    @model_validator(mode="after")
    def _compares(self) -> ReconcileRule:
        seen: set[str] = set()
        for i, c in enumerate(self.compare):
            if c.field in seen:
                raise At(("compare", i, "field"), f"{c.field!r} is compared twice")
            seen.add(c.field)
        if not self.compare and self.missing == "none":
            raise ValueError("the rule checks nothing: add compare entries or set missing")
        return self


class Measure(Strict):
    """What an aggregate side adds up: op over a field, or over the product field x times."""

    op: Literal["sum", "count", "min", "max", "avg"] = "sum"
    field: FieldName | None = None
    times: FieldName | None = None

    @model_validator(mode="after")
    def _shape(self) -> Measure:
        if self.op == "count" and (self.field or self.times):
            raise At(("field",), "count takes no field")
        if self.op != "count" and not self.field:
            raise At(("field",), f"{self.op} needs a field")
        return self

    def text(self) -> str:
        if self.op == "count":
            return "count()"
        return f"{self.op}({self.field}{' * ' + self.times if self.times else ''})"


class AggregateSide(Side):
    period_field: FieldName
    measure: Measure
    currency_field: FieldName | None = None


class AggregateImpact(Strict):
    """The impact of an aggregate finding is the difference; this says its currency."""

    currency_field: Literal["left", "right"] | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _currency(self) -> AggregateImpact:
        if (self.currency_field is None) == (self.currency is None):
            raise ValueError("give exactly one of currency_field (left or right: that side's currency_field) "
                             "or currency (e.g. EUR)")
        return self


class AggregateRule(SidesRule):
    """Aggregate reconciliation: a measure per key and period on each side (e.g. billing leakage)."""

    kind: Literal["aggregate"]
    left: AggregateSide
    right: AggregateSide
    period: Grain = "month"
    tolerance: Tolerance | None = None
    impact: AggregateImpact | None = None

    @model_validator(mode="after")
    def _fits(self) -> AggregateRule:
        check_tolerance(self.tolerance, "decimal")
        if self.key_name == "period":
            raise At(("key_name",), "'period' is the period key of an aggregate finding: choose another name")
        if self.impact and self.impact.currency_field:
            side = self.left if self.impact.currency_field == "left" else self.right
            if side.currency_field is None:
                raise At(("impact", "currency_field"), f"the {self.impact.currency_field} side has no currency_field")
        return self

    @property
    def field(self) -> str:
        """The `field` of its findings: the left measure, e.g. 'sum(hours * bill_rate)'."""
        return self.left.measure.text()


class Via(Strict):
    """Reach the correlation key through an earlier step's events, which carry both keys."""

    step: Name
    key: FieldName


class StepKey(Strict):
    """How an event yields the correlation key: `key` is an events.keys entry; `many` when it holds a
    JSON array of keys (one invoice covering many timesheets); `via` when it holds another key.
    `filter` keeps only the events it matches (a field is the event's key of that name, else the
    data field, `a.b` nesting; compared as text like record fields, e.g. billable_amount > 0)."""

    key: FieldName
    many: bool = False
    via: Via | None = None
    filter: tuple[Filter, ...] = ()


class Sla(Strict):
    within: Duration
    after: Name | None = None  # default: the previous step


class Step(StepKey):
    name: Name
    event_type: Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN, max_length=200)]
    optional: bool = False
    repeatable: bool = False
    sla: Sla | None = None


class FailureEvent(StepKey):
    name: Name
    event_type: Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN, max_length=200)]
    message_field: FieldName | None = None  # a data field with the error text (e.g. error_message)


class Failures(Strict):
    events: tuple[FailureEvent, ...] = ()
    error_spans: bool = False  # spans with StatusCode 'Error' in the trace of a step event keyed directly


class StepImpact(Strict):
    """The impact of a workflow finding: a numeric data field of one step's event."""

    step: Name
    field: FieldName
    currency_field: FieldName | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _currency(self) -> StepImpact:
        if (self.currency_field is None) == (self.currency is None):
            raise ValueError("give exactly one of currency_field (a data field holding the code) or currency")
        return self


class WorkflowRule(RuleBase):
    """Ordered steps (event types) of one business process, correlated by one key."""

    kind: Literal["workflow"]
    key_name: Name
    steps: Annotated[tuple[Step, ...], Field(max_length=20)]
    failures: Failures = Failures()
    impact: StepImpact | None = None

    @model_validator(mode="after")
    def _references(self) -> WorkflowRule:
        # checked here, not as min_length, so that one bad step is not also reported as "too few"
        if len(self.steps) < 2:
            raise At(("steps",), "a workflow needs at least two steps")
        names = [s.name for s in self.steps]
        first = self.steps[0]
        if first.optional or first.via or first.sla:
            raise At(("steps", 0), "the first step starts an instance: it cannot be optional, have via or an sla")
        for i, step in enumerate(self.steps):
            if step.name in names[:i]:
                raise At(("steps", i, "name"), f"{step.name!r} is used twice")
            if step.sla and step.sla.after is not None and step.sla.after not in names[:i]:
                raise At(("steps", i, "sla", "after"), f"{step.sla.after!r} is not an earlier step")
            _check_via(step, names[:i], ("steps", i, "via", "step"), self.steps)
        for i, failure in enumerate(self.failures.events):
            _check_via(failure, names, ("failures", "events", i, "via", "step"), self.steps)
        if self.impact and self.impact.step not in names:
            raise At(("impact", "step"), f"{self.impact.step!r} is not a step of this workflow")
        return self

    def anchor(self, index: int) -> int:
        """The index of the step whose time step `index`'s SLA counts from (default: the previous)."""
        sla = self.steps[index].sla
        after = sla.after if sla and sla.after else self.steps[index - 1].name
        return [s.name for s in self.steps].index(after)


def _check_via(item: StepKey, allowed: list[str], path: tuple[str | int, ...], steps: tuple[Step, ...]) -> None:
    if item.via is None:
        return
    if item.via.step not in allowed:
        raise At(path, f"{item.via.step!r} is not an earlier step")
    if next(s for s in steps if s.name == item.via.step).via is not None:
        raise At(path, f"{item.via.step!r} is itself reached via another step: link to a step keyed directly")


Rule = Annotated[ReconcileRule | AggregateRule | WorkflowRule, Field(discriminator="kind")]
