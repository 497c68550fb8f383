"""SQL building blocks shared by the rule compilers: bound parameters, side selections, filters.

Every value that comes from a rule goes through `Params`, which returns a `{name:Type}`
placeholder for clickhouse-connect's server-side binding; only constants of this package (function
names, string literals such as result kinds) are written into SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from reconciler.model import Filter, Side, SidesRule

DATETIME = "DateTime64(6, 'UTC')"
# The contract of every reconcile query, in order (see compile_reconcile.COLUMNS for the types).
COLUMNS = ("kind", "field", "keys", "systems", "left_value", "right_value", "impact_amount", "impact_currency",
           "left_trace_id", "left_span_id", "right_trace_id", "right_span_id", "detail")
# measured fastest at 10M x 10M with bounded memory (issue 3); join_use_nulls=0 gives the absent
# side of an outer join default values, which the `present` columns rely on.
JOIN_SETTINGS = "SETTINGS join_algorithm = 'full_sorting_merge', join_use_nulls = 0"


@dataclass
class Params:
    """Named query parameters; the same value and type reuse one name so the SQL stays readable."""

    values: dict[str, Any] = field(default_factory=dict)
    _names: dict[tuple[str, str], str] = field(default_factory=dict)

    def __call__(self, value: Any, type_: str = "String") -> str:
        memo = (repr(value), type_)
        name = self._names.get(memo)
        if name is None:
            name = self._names[memo] = f"p{len(self._names)}"
            self.values[name] = value
        return f"{{{name}:{type_}}}"

    def named(self, name: str, value: Any, type_: str) -> str:
        """A parameter with a fixed name the caller may override (`cutoff`, `since`)."""
        self.values[name] = value
        return f"{{{name}:{type_}}}"


def trace_hex(ids: str) -> str:
    """The hex trace id in a records `ids` value ('' for none), as the table's `trace_id` ALIAS gives it.

    Rules carry `ids` (24 bytes) through their aggregates and take the hex of the rows they keep:
    read through the ALIAS, every row read would be formatted (migration 0011)."""
    return f"if(substring({ids}, 1, 16) = repeat('\\0', 16), '', lower(hex(substring({ids}, 1, 16))))"


def span_hex(ids: str) -> str:
    """The hex span id in a records `ids` value ('' for none)."""
    return f"if(substring({ids}, 17, 8) = repeat('\\0', 8), '', lower(hex(substring({ids}, 17, 8))))"


def field_of(p: Params, column: str, name: str) -> str:
    return f"{column}[{p(name)}]"


def key_expr(p: Params, side: Side, rule: SidesRule) -> str:
    expr = field_of(p, "fields", side.key_field) if side.key_field else "key"
    for step in rule.key_normalize:
        expr = {"trim": "trimBoth({})", "lower": "lowerUTF8({})", "upper": "upperUTF8({})"}[step].format(expr)
    return expr


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def filter_expr(p: Params, f: Filter, value: str | None = None, present: str | None = None) -> str:
    """SQL of one filter. `value` is the SQL of the field's text and `present` of whether it is
    there; by default both read the records' `fields` map."""
    value = value or field_of(p, "fields", f.field)
    present = present or f"mapContains(fields, {p(f.field)})"
    if f.op == "exists":
        return present
    if f.op == "missing":
        return f"NOT {present}"
    if f.op in ("in", "not_in"):
        return f"{'NOT ' if f.op == 'not_in' else ''}has({p(list(f.value or ()), 'Array(String)')}, {value})"
    assert isinstance(f.value, str)
    number = _number(f.value) if f.op in (">", ">=", "<", "<=") else None
    if number is not None:  # an ordering against a number compares numbers, else text (ISO dates sort as text)
        return f"toDecimal128OrNull({value}, 6) {f.op} toDecimal128({p(str(number))}, 6)"
    return f"{value} {f.op} {p(f.value)}"


def side_filters(p: Params, side: Side) -> list[str]:
    """The side's own filters on record fields."""
    return [filter_expr(p, f) for f in side.filter]


def side_where(p: Params, side: Side, deleted: bool = False) -> list[str]:
    where = [f"system = {p(side.system)}", f"entity = {p(side.entity)}"]
    if not deleted:
        where.append("deleted = 0")
    return where + side_filters(p, side)


def changed_keys(p: Params, rule: SidesRule, since: datetime) -> str:
    """Keys whose records on either side were stored since the watermark (any version, deletions too).

    By `stored_at`, set by the server at insert (migration 0014), not `received_at`: a row the spool
    stores long after the collector took it (a replay after the store was down) is still new here."""
    at = p.named("since", since, DATETIME)
    parts = [
        f"SELECT {key_expr(p, side, rule)} AS k FROM records "
        f"WHERE system = {p(side.system)} AND entity = {p(side.entity)} AND stored_at >= {at}"
        for side in (rule.left, rule.right)
    ]
    return "\n        UNION ALL\n        ".join(parts)


def cutoff(p: Params, rule: SidesRule, now: datetime) -> str | None:
    """The placeholder of `now - grace`, or None when the rule has no grace period."""
    if not rule.grace:
        return None
    return p.named("cutoff", now - rule.grace, DATETIME)


def problem(kind: str, field_sql: str, left: str, right: str, impact: str, detail: str) -> str:
    return f"tuple('{kind}', {field_sql}, {left}, {right}, toFloat64({impact}), {detail})"


NO_PROBLEM = "tuple('', '', '', '', toFloat64(0), '')"


def problems(cases: list[tuple[str, str]]) -> str:
    """An array of the problem tuples whose conditions hold (the row fans out with ARRAY JOIN)."""
    items = ",\n            ".join(f"if({cond}, {tup}, {NO_PROBLEM})" for cond, tup in cases)
    return f"arrayFilter(x -> x.1 != '', [\n            {items}\n        ])"


# A query over a few thousand looked-up rows (record_mirror) ran in 0.16 s on one thread against
# 0.22-0.28 s on two: the second thread only splits its small blocks.
ONE_THREAD = ", max_threads = 1"


def outer_select(inner: str, extra_settings: str = "") -> str:
    return (
        "SELECT\n"
        "    problem.1 AS kind, problem.2 AS field, keys, systems, problem.3 AS left_value,\n"
        "    problem.4 AS right_value, problem.5 AS impact_amount, impact_currency,\n"
        "    left_trace_id, left_span_id, right_trace_id, right_span_id, problem.6 AS detail\n"
        f"FROM (\n{inner}\n)\nARRAY JOIN problems AS problem\n{JOIN_SETTINGS}{extra_settings}"
    )


def both(*conds: str | None) -> str:
    return " AND ".join(c for c in conds if c) or "1"
