"""Compile reconcile rules (record-level and aggregate) to one parameterized ClickHouse query.

The comparison runs inside ClickHouse: each side's latest records (FINAL, not deleted, filtered)
are joined with a FULL OUTER JOIN on the normalized key, and every problem becomes one row:

    kind String                 'missing_left' | 'missing_right' | 'mismatch' | 'aggregate_mismatch'
    field String                the compared field ('' for missing_*; the left measure for aggregates)
    keys Map(String, String)    {key_name: key} (aggregates also {'period': ...})
    systems Array(String)       [left system, right system]
    left_value, right_value String ('' when absent)
    impact_amount Float64, impact_currency String (0 / '' without impact)
    left_trace_id, left_span_id, right_trace_id, right_span_id String
    detail String               a short sentence

>>> from reconciler.model import ReconcileRule
>>> rule = ReconcileRule.model_validate({"name": "r", "kind": "reconcile", "key_name": "project_id",
...     "left": {"system": "psa", "entity": "project"}, "right": {"system": "erp", "entity": "project"}})
>>> compiled = compile(rule)
>>> compiled.parameters["p0"], "psa" in compiled.sql
('psa', False)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler import record_mirror
from reconciler.compile_candidates import compared_text, first_pass_ctes, pairs_ctes, parse, same_source
from reconciler.explain import explain, tolerance_text
from reconciler.model import AggregateRule, Compare, ReconcileRule, Tolerance
from reconciler.sql import (
    COLUMNS,
    ONE_THREAD,
    Params,
    both,
    changed_keys,
    cutoff,
    field_of,
    key_expr,
    outer_select,
    problem,
    problems,
    side_where,
    span_hex,
    trace_hex,
)

__all__ = ["COLUMNS", "CompiledRule", "compile", "compile_aggregate", "compile_records", "explain", "tolerance_text"]

_PERIOD = {  # grain -> (start of period, text format of its key)
    "day": ("toDate32({})", "%Y-%m-%d"),
    "week": ("toMonday({})", "%Y-%m-%d"),
    "month": ("toStartOfMonth({})", "%Y-%m"),
    "quarter": ("toStartOfQuarter({})", "%Y-Q%Q"),
    "year": ("toStartOfYear({})", "%Y"),
}


@dataclass(frozen=True)
class CompiledRule:
    sql: str
    parameters: dict[str, Any]


def compile(rule: ReconcileRule | AggregateRule, since: datetime | None = None, *,
            now: datetime | None = None, mirror: str | None = None) -> CompiledRule:
    """The rule's query. `since` restricts it to keys changed on either side since then (incremental
    run); `now` is the instant grace periods count back from (default: the current time). An
    incremental run given `mirror` (the prefix record_mirror.update returned) reads the changed keys'
    records from the rule's record mirror instead of `records`."""
    now = now or datetime.now(UTC)
    if isinstance(rule, AggregateRule):
        return compile_aggregate(rule, since, now)
    return compile_records(rule, since, now, mirror)


# -- record level ------------------------------------------------------------------------------------

def _side_cte(p: Params, rule: ReconcileRule | AggregateRule, which: str, since: datetime | None) -> list[str]:
    side = rule.left if which == "l" else rule.right
    where = [*side_where(p, side), "k != ''"]
    if since is not None:
        where.append("k IN (SELECT k FROM changed)")
    return where


def compile_records(rule: ReconcileRule, since: datetime | None, now: datetime,
                    mirror: str | None = None) -> CompiledRule:
    """Two passes (see compile_candidates): a narrow join finds the candidate keys, then only
    their full rows are compared. A rule whose sides share one system and entity joins directly."""
    if same_source(rule):
        return _compile_joined(rule, since, now)
    p = Params()
    if since is None:
        ctes = first_pass_ctes(p, rule)
    else:  # an incremental run re-checks every changed key: few, so no first pass to narrow them
        ctes = [f"candidates AS (\n        {changed_keys(p, rule, since)}\n    )"]
    settings = ""
    if since is not None and mirror is not None and record_mirror.applies(rule):
        ctes += record_mirror.pairs_ctes(p, rule, mirror)
        settings = ONE_THREAD
    else:
        ctes += pairs_ctes(p, rule)
    sql = "WITH\n    " + ",\n    ".join(ctes) + "\n" + outer_select(_problem_rows(p, rule, now, "pairs"), settings)
    return CompiledRule(sql, p.values)


def _compile_joined(rule: ReconcileRule, since: datetime | None, now: datetime) -> CompiledRule:
    p = Params()
    ctes = []
    if since is not None:
        ctes.append(f"changed AS (\n        {changed_keys(p, rule, since)}\n    )")
    for name, side in (("l", rule.left), ("r", rule.right)):
        where = "\n          AND ".join(_side_cte(p, rule, name, since))
        ctes.append(
            f"{name} AS (\n        SELECT {key_expr(p, side, rule)} AS k, fields AS f, {rule.grace_basis} AS ts,"
            f" trace_id, span_id, 1 AS present\n        FROM records FINAL\n        WHERE {where}\n    )"
        )
    sql = ("WITH\n    " + ",\n    ".join(ctes) + "\n"
           + outer_select(_problem_rows(p, rule, now, "l FULL OUTER JOIN r ON l.k = r.k")))
    return CompiledRule(sql, p.values)


def _problem_rows(p: Params, rule: ReconcileRule, now: datetime, source: str) -> str:
    """One row per key with its problems; `source` provides the l.* and r.* columns."""
    return (
        "    SELECT\n"
        f"        map({p(rule.key_name)}, if(l.present, l.k, r.k)) AS keys,\n"
        f"        [{p(rule.left.system)}, {p(rule.right.system)}] AS systems,\n"
        f"        {_impact_currency(p, rule)} AS impact_currency,\n"
        "        l.trace_id AS left_trace_id, l.span_id AS left_span_id,\n"
        "        r.trace_id AS right_trace_id, r.span_id AS right_span_id,\n"
        f"        {problems(_record_cases(p, rule, now))} AS problems\n"
        f"    FROM {source}\n"
        "    WHERE notEmpty(problems)"
    )


def _impact_amount(p: Params, rule: ReconcileRule) -> str:
    if rule.impact is None:
        return "0"
    i = rule.impact
    return (f"toFloat64OrZero(if(l.present, {field_of(p, 'l.f', i.field)},"
            f" {field_of(p, 'r.f', i.right_field or i.field)}))")


def _impact_currency(p: Params, rule: ReconcileRule) -> str:
    if rule.impact is None:
        return "''"
    if rule.impact.currency:
        return p(rule.impact.currency)
    name = rule.impact.currency_field or ""
    return f"if(l.present, {field_of(p, 'l.f', name)}, {field_of(p, 'r.f', name)})"


def _missing_detail(p: Params, rule: ReconcileRule | AggregateRule, here: str, there: str, extra: str = "") -> str:
    present, absent = (rule.left, rule.right) if here == "l" else (rule.right, rule.left)
    return (f"concat({p(rule.key_name)}, ' ', {here}.k{extra}, ' is in ', {p(present.system)}, ' ', "
            f"{p(present.entity)}, ' but not in ', {p(absent.system)}, ' ', {p(absent.entity)})")


def _missing_cases(p: Params, rule: ReconcileRule | AggregateRule, at: str | None, values: tuple[str, str],
                   impacts: tuple[str, str], ts: str = "ts", extra: str = "") -> list[tuple[str, str]]:
    cases = []
    if rule.missing in ("both", "left_only"):
        cond = both("l.present", "NOT r.present", at and f"l.{ts} < {at}")
        cases.append((cond, problem("missing_right", "''", values[0], "''", impacts[0],
                                    _missing_detail(p, rule, "l", "r", extra))))
    if rule.missing in ("both", "right_only"):
        cond = both("r.present", "NOT l.present", at and f"r.{ts} < {at}")
        cases.append((cond, problem("missing_left", "''", "''", values[1], impacts[1],
                                    _missing_detail(p, rule, "r", "l", extra))))
    return cases


def _record_cases(p: Params, rule: ReconcileRule, now: datetime) -> list[tuple[str, str]]:
    at = cutoff(p, rule, now)
    impact = _impact_amount(p, rule)
    cases = _missing_cases(p, rule, at, ("''", "''"), (impact, impact))
    settled = both("l.present", "r.present", at and f"greatest(l.ts, r.ts) < {at}")
    for c in rule.compare:
        left, right = field_of(p, "l.f", c.field), field_of(p, "r.f", c.other)
        differs, detail = _comparison(p, rule, c, left, right)
        cases.append((f"{settled} AND {differs}", problem("mismatch", p(c.field), left, right, impact, detail)))
    return cases


def _comparison(p: Params, rule: ReconcileRule, c: Compare, left: str, right: str) -> tuple[str, str]:
    """(condition that the values differ beyond tolerance, detail sentence) for one compared field."""
    sides = f"{left}, ' in ', {p(rule.left.system)}, ' vs ', {right}, ' in ', {p(rule.right.system)}"
    plain = f"concat({p(c.field)}, ': ', {sides})"
    if c.type in ("string", "enum"):
        return _text_differs(p, c, left, right), plain
    tol = tolerance_text(c.tolerance, c.type)
    lv, rv = parse(c.type, left), parse(c.type, right)
    unparsed = f"isNull({lv}) OR isNull({rv})"
    diff, limit, amount = _difference(p, c, lv, rv)
    numeric = f"concat({p(c.field)}, ' differs by ', {amount}, ' (', {sides}, '; tolerance ', {p(tol)}, ')')"
    detail = f"if({unparsed}, {plain}, ifNull({numeric}, ''))"
    return f"if({unparsed}, {left} != {right}, {diff} > {limit})", detail


def _difference(p: Params, c: Compare, lv: str, rv: str) -> tuple[str, str, str]:
    """(difference, the largest allowed, the difference as text) for numbers, dates and instants."""
    t = c.tolerance or Tolerance()
    if c.type == "date":
        diff = f"abs(dateDiff('day', {lv}, {rv}))"
        return diff, p(t.days or 0, "Int64"), f"toString({diff}), ' days'"
    if c.type == "datetime":
        diff = f"abs(dateDiff('second', {lv}, {rv}))"
        return diff, p((t.days or 0) * 86400 + (t.seconds or 0), "Int64"), f"toString({diff}), ' s'"
    diff = f"abs({lv} - {rv})"
    if t.relative is not None:
        share = f"toString(round(toFloat64({diff}) * 100 / toFloat64(abs({lv})), 2)), '%'"
        return diff, f"abs({lv}) * toDecimal128({p(str(t.relative))}, 6)", share
    return diff, f"toDecimal128({p(str(t.absolute or 0))}, 6)", f"toString({diff})"


def _text_differs(p: Params, c: Compare, left: str, right: str) -> str:
    return f"{compared_text(p, c, left, 'l')} != {compared_text(p, c, right, 'r')}"


# -- aggregate -----------------------------------------------------------------------------------------

def _measure(p: Params, rule: AggregateRule, which: str) -> tuple[str, str]:
    """(per-record value, aggregate over the group as Decimal(38, 6))."""
    m = (rule.left if which == "l" else rule.right).measure
    if m.op == "count":
        return "1", "toDecimal128(count(), 6)"
    value = f"toDecimal128OrNull({field_of(p, 'fields', m.field or '')}, 6)"
    if m.times:
        value = f"{value} * toDecimal128OrNull({field_of(p, 'fields', m.times)}, 6)"
    return value, f"toDecimal128(ifNull({m.op}(m), 0), 6)"


def _period(p: Params, rule: AggregateRule, field: str) -> str:
    start, fmt = _PERIOD[rule.period]
    day = f"toDate32(parseDateTime64BestEffortOrNull({field_of(p, 'fields', field)}, 0, 'UTC'))"
    return f"ifNull(formatDateTime({start.format(day)}, '{fmt}'), '')"


def _aggregate_cte(p: Params, rule: AggregateRule, which: str, since: datetime | None) -> str:
    side = rule.left if which == "l" else rule.right
    value, total = _measure(p, rule, which)
    currency = field_of(p, "fields", side.currency_field) if side.currency_field else "''"
    where = "\n              AND ".join(_side_cte(p, rule, which, since))
    return (
        f"{which} AS (\n"
        f"        SELECT k, period, {total} AS v, max(ts) AS last_ts, argMax(ids, ts) AS last_ids,\n"
        f"               {trace_hex('last_ids')} AS trace_id, {span_hex('last_ids')} AS span_id,"
        " any(cur) AS cur, 1 AS present\n"
        f"        FROM (\n            SELECT {key_expr(p, side, rule)} AS k, {_period(p, rule, side.period_field)}"
        f" AS period, {value} AS m,\n"
        f"                   {rule.grace_basis} AS ts, ids, {currency} AS cur\n"
        f"            FROM records FINAL\n            WHERE {where}\n        )\n"
        "        GROUP BY k, period\n    )"
    )


def _label(p: Params, rule: AggregateRule, which: str) -> str:
    side = rule.left if which == "l" else rule.right
    return p(side.label or f"{side.system} {side.entity} {side.measure.text()}")


def _aggregate_cases(p: Params, rule: AggregateRule, now: datetime) -> list[tuple[str, str]]:
    at = cutoff(p, rule, now)
    values = ("toString(l.v)", "toString(r.v)")
    period = ", ' period ', if(l.present, l.period, r.period)"
    impacts = ("l.v", "r.v", "abs(l.v - r.v)") if rule.impact else ("0", "0", "0")
    cases = _missing_cases(p, rule, at, values, impacts[:2], "last_ts", period)
    t = rule.tolerance or Tolerance()
    diff = "abs(l.v - r.v)"
    if t.relative is not None:
        limit = f"abs(l.v) * toDecimal128({p(str(t.relative))}, 6)"
    else:
        limit = f"toDecimal128({p(str(t.absolute or 0))}, 6)"
    share = ("if(l.v = 0, '', concat(' (', toString(round(toFloat64(abs(l.v - r.v)) * 100 / toFloat64(abs(l.v)), 2)),"
             " '%)'))")
    detail = (f"concat({_label(p, rule, 'l')}, ' ', toString(l.v), ' vs ', {_label(p, rule, 'r')}, ' ', toString(r.v),"
              f" ': differs by ', toString({diff}), {share}, '; tolerance ', {p(tolerance_text(rule.tolerance))})")
    cond = both("l.present", "r.present", at and f"greatest(l.last_ts, r.last_ts) < {at}", f"{diff} > {limit}")
    cases.append((cond, problem("aggregate_mismatch", p(rule.field), values[0], values[1], impacts[2], detail)))
    return cases


def _aggregate_currency(p: Params, rule: AggregateRule) -> str:
    if rule.impact is None:
        return "''"
    if rule.impact.currency:
        return p(rule.impact.currency)
    first, second = ("l", "r") if rule.impact.currency_field == "left" else ("r", "l")
    return f"if({first}.cur != '', {first}.cur, {second}.cur)"


def compile_aggregate(rule: AggregateRule, since: datetime | None, now: datetime) -> CompiledRule:
    p = Params()
    ctes = []
    if since is not None:
        ctes.append(f"changed AS (\n        {changed_keys(p, rule, since)}\n    )")
    ctes += [_aggregate_cte(p, rule, "l", since), _aggregate_cte(p, rule, "r", since)]
    cases = _aggregate_cases(p, rule, now)
    inner = (
        "    SELECT\n"
        f"        map({p(rule.key_name)}, if(l.present, l.k, r.k), 'period', if(l.present, l.period, r.period))"
        " AS keys,\n"
        f"        [{p(rule.left.system)}, {p(rule.right.system)}] AS systems,\n"
        f"        {_aggregate_currency(p, rule)} AS impact_currency,\n"
        "        l.trace_id AS left_trace_id, l.span_id AS left_span_id,\n"
        "        r.trace_id AS right_trace_id, r.span_id AS right_span_id,\n"
        f"        {problems(cases)} AS problems\n"
        "    FROM l FULL OUTER JOIN r ON l.k = r.k AND l.period = r.period\n"
        "    WHERE notEmpty(problems)"
    )
    sql = "WITH\n    " + ",\n    ".join(ctes) + "\n" + outer_select(inner)
    return CompiledRule(sql, p.values)
