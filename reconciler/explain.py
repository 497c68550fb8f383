"""Plain-language descriptions of reconcile and workflow rules (for `syncwatch rules explain` and the dashboards)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from reconciler.model import (
    AggregateRule,
    AggregateSide,
    Compare,
    Filter,
    ReconcileRule,
    Side,
    StepKey,
    Tolerance,
    WorkflowRule,
)
from reconciler.model_kpi import KpiRule

__all__ = ["explain", "tolerance_text"]

_MISSING = {
    "both": "A key present on only one side is reported (missing_left / missing_right)",
    "left_only": "A key present only on the left is reported (missing_right); right-only keys are ignored",
    "right_only": "A key present only on the right is reported (missing_left); left-only keys are ignored",
    "none": "Keys present on only one side are not reported",
}


def tolerance_text(tolerance: Tolerance | None, type_: str = "decimal") -> str:
    """The tolerance as a reader would say it: '1%', '0.01', '3 days', 'case-insensitive', 'exact'."""
    if tolerance is None:
        return "exact"
    if tolerance.relative is not None:
        return f"{_plain(tolerance.relative * 100)}%"
    if tolerance.absolute is not None:
        return _plain(tolerance.absolute)
    if type_ in ("date", "datetime") and (tolerance.days or tolerance.seconds):
        parts = [f"{tolerance.days} days" if tolerance.days else "",
                 f"{tolerance.seconds} s" if tolerance.seconds else ""]
        return " ".join(p for p in parts if p)
    words = [w for w, on in (("case", tolerance.case_insensitive), ("whitespace", tolerance.ignore_whitespace)) if on]
    return " and ".join(words) + "-insensitive" if words else "exact"


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _filter(f: Filter) -> str:
    if f.op in ("exists", "missing"):
        return f"{f.field} {f.op}"
    value = ", ".join(f.value) if isinstance(f.value, tuple) else f.value
    return f"{f.field} {f.op.replace('_', ' ')} {value!r}" if f.op not in ("in", "not_in") else \
        f"{f.field} {f.op.replace('_', ' ')} [{value}]"


def _side(which: str, side: Side) -> str:
    key = f"field {side.key_field!r}" if side.key_field else "the record key"
    text = f"{which}: {side.system} {side.entity} records (latest version, not deleted), keyed by {key}"
    if side.filter:
        text += ", where " + " and ".join(_filter(f) for f in side.filter)
    if isinstance(side, AggregateSide):
        text += f"; {side.measure.text()} per key and period of {side.period_field!r}"
    return text


def _compare(c: Compare) -> str:
    name = c.field if not c.right_field else f"{c.field} (right: {c.right_field})"
    text = f"- {name} as {c.type}, tolerance {tolerance_text(c.tolerance, c.type)}"
    if c.value_map:
        text += "; left values translated by " + ", ".join(f"{k} -> {v}" for k, v in c.value_map.items())
    return text


def _common(rule: ReconcileRule | AggregateRule) -> list[str]:
    lines = [f"{rule.name} ({rule.kind}, severity {rule.severity}): {rule.description}".rstrip(": "),
             _side("left", rule.left), _side("right", rule.right),
             f"Joined on the key, named {rule.key_name!r} in findings"
             + (f", normalized by {' + '.join(rule.key_normalize)}" if rule.key_normalize else "") + ".",
             _MISSING[rule.missing] + "."]
    if rule.grace:
        lines.append(f"Grace period {_duration(rule.grace)} by {rule.grace_basis}: newer records are not yet "
                     "expected on the other side, and their differences are not reported yet.")
    return lines


def _keyed(item: StepKey) -> str:
    text = f"the JSON array in key {item.key!r}" if item.many else f"key {item.key!r}"
    if item.via:
        text += f", linked through the {item.via.step} step's events that carry it as {item.via.key!r}"
    if item.filter:
        text += ", where " + " and ".join(_filter(f) for f in item.filter)
    return text


def _step(rule: WorkflowRule, i: int) -> str:
    step = rule.steps[i]
    flags = [w for w, on in (("optional", step.optional), ("repeatable", step.repeatable)) if on]
    text = f"{i + 1}. {step.name}: {step.event_type} events, by {_keyed(step)}"
    text += f" ({', '.join(flags)})" if flags else ""
    if step.sla:
        text += f"; due within {_duration(step.sla.within)} after {rule.steps[rule.anchor(i)].name}"
    return text


def explain_workflow(rule: WorkflowRule) -> str:
    """What a workflow rule tracks and reports, in plain language."""
    lines = [f"{rule.name} (workflow, severity {rule.severity}): {rule.description}".rstrip(": "),
             f"Instances are correlated by {rule.key_name!r}; one starts with the first step. Steps:"]
    lines += [_step(rule, i) for i in range(len(rule.steps))]
    lines += ["stuck: the first required step not yet done once its deadline has passed.",
              "sla_breach: a step that arrived after its deadline (left: deadline, right: arrival).",
              "A repeatable step's clock restarts at each repetition; the step after it is done only when it "
              "arrives after the latest one."]
    for f in rule.failures.events:
        lines.append(f"failed_step {f.name}: a {f.event_type} event by {_keyed(f)}, since the instance started "
                     "and while it is not complete.")
    if rule.failures.error_spans:
        lines.append("failed_step: an error span in the trace of a step event keyed directly (not via another "
                     "step), since the instance started and while it is not complete.")
    if rule.impact:
        currency = rule.impact.currency or f"field {rule.impact.currency_field!r}"
        lines.append(f"Impact: field {rule.impact.field!r} of the {rule.impact.step} event, in {currency}.")
    return "\n".join(lines)


def explain_kpi(rule: KpiRule) -> str:
    """What a KPI measures, in plain language."""
    lines = [f"{rule.name} (kpi, in {rule.unit or 'no unit'}): {rule.description}".rstrip(": ")]
    if rule.duration:
        d = rule.duration
        lines.append(f"{', '.join(d.stats)} of the hours from {d.from_step} to {d.to_step} of {d.workflow} instances.")
    elif rule.completion_rate:
        lines.append(f"Share of {rule.completion_rate.workflow} instances that did every required step.")
    elif rule.sla_compliance:
        lines.append(f"Share of {rule.sla_compliance.workflow} steps with an SLA that arrived on time, of those "
                     "that arrived or are overdue.")
    elif rule.straight_through:
        st = rule.straight_through
        which = f"of {', '.join(st.rules)}" if st.rules else "of any rule"
        lines.append(f"Share of settled {st.workflow} instances (complete, or with a finding or an action) that "
                     f"completed with no finding {which} on their key and no action on any of their findings.")
    elif rule.ratio:
        lines.append(f"{rule.ratio.numerator.table} rows matching the numerator's filter per "
                     f"{rule.ratio.denominator.table} row matching the denominator's.")
        for side in (rule.ratio.numerator, rule.ratio.denominator):
            if side.without_findings:
                w = side.without_findings
                lines.append(f"Counting only {side.table} rows whose {w.field or w.key} no finding names as {w.key}"
                             + (f" (rules {', '.join(w.rules)})" if w.rules else "")
                             + (f" (kinds {', '.join(w.kinds)})" if w.kinds else "") + ".")
    if rule.dimensions:
        lines.append(f"Broken down by any of: {', '.join(rule.dimensions)}.")
    lines.append("Evaluated on request over a time range (workflow instances by their first step's time).")
    return "\n".join(lines)


def explain(rule: ReconcileRule | AggregateRule | WorkflowRule | KpiRule) -> str:
    """What the rule compares, in plain language."""
    if isinstance(rule, WorkflowRule):
        return explain_workflow(rule)
    if isinstance(rule, KpiRule):
        return explain_kpi(rule)
    lines = _common(rule)
    if isinstance(rule, AggregateRule):
        lines.append(f"Per {rule.key_name} and {rule.period}, the left {rule.left.measure.text()} is compared with "
                     f"the right {rule.right.measure.text()}, tolerance {tolerance_text(rule.tolerance)}: "
                     "a difference is an aggregate_mismatch.")
        if rule.impact:
            currency = rule.impact.currency or f"the {rule.impact.currency_field} side's currency"
            lines.append(f"Impact: the difference, in {currency}.")
        return "\n".join(lines)
    if rule.compare:
        lines.append("Fields compared (a difference beyond tolerance is a mismatch):")
        lines += [_compare(c) for c in rule.compare]
    if rule.impact:
        currency = rule.impact.currency or f"field {rule.impact.currency_field!r}"
        lines.append(f"Impact: field {rule.impact.field!r} (left side, else right), in {currency}.")
    return "\n".join(lines)
