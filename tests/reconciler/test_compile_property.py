"""Laws for all rules: any valid rule compiles to SQL that runs, and no value reaches SQL text."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.compile_reconcile import COLUMNS, compile
from reconciler.model import AggregateRule, ReconcileRule
from syncwatch.store import Store
from tests.reconciler.records import NOW, OLD, Records

MARK = "ZQX"  # every generated value starts with it: it must never show in the SQL text
FIELDS = ["amount", "status", "budget", "start_date", "legal_entity", "x.y", "A-b_1"]
values = st.text(max_size=12).map(lambda t: MARK + t)
names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
fields = st.sampled_from(FIELDS)


def tolerance_for(type_: str) -> st.SearchStrategy[dict[str, Any] | None]:
    options: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "string": st.fixed_dictionaries({}, optional={"case_insensitive": st.booleans(),
                                                      "ignore_whitespace": st.booleans()}),
        "decimal": st.one_of(st.fixed_dictionaries({"absolute": st.decimals(0, 1000, places=3)}),
                             st.fixed_dictionaries({"relative": st.decimals(0, 1, places=4)})),
        "date": st.fixed_dictionaries({"days": st.integers(0, 400)}),
        "datetime": st.fixed_dictionaries({}, optional={"days": st.integers(0, 10), "seconds": st.integers(0, 9999)}),
    }
    options["enum"], options["int"] = options["string"], options["decimal"]
    return st.none() | options[type_]


@st.composite
def compares(draw: st.DrawFn) -> dict[str, Any]:
    type_ = draw(st.sampled_from(["string", "enum", "decimal", "int", "date", "datetime"]))
    item: dict[str, Any] = {"field": draw(fields), "type": type_, "tolerance": draw(tolerance_for(type_))}
    if type_ in ("string", "enum") and draw(st.booleans()):
        item["value_map"] = draw(st.dictionaries(values, values, min_size=1, max_size=3))
    if draw(st.booleans()):
        item["right_field"] = draw(fields)
    return item


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["=", "!=", "in", "not_in", ">", ">=", "<", "<=", "exists", "missing"]))
    item: dict[str, Any] = {"field": draw(fields), "op": op}
    if op in ("in", "not_in"):
        item["value"] = draw(st.lists(values, min_size=1, max_size=3))
    elif op not in ("exists", "missing"):
        item["value"] = draw(values | st.integers(-5, 5).map(str))
    return item


def side(system: str, entity: str, aggregate: bool) -> st.SearchStrategy[dict[str, Any]]:
    base: dict[str, Any] = {"system": st.just(system), "entity": st.just(entity),
                            "filter": st.lists(filters(), max_size=2)}
    optional: dict[str, Any] = {"key_field": fields, "label": values}
    if aggregate:
        base["period_field"] = fields
        base["measure"] = st.one_of(
            st.just({"op": "count"}),
            st.fixed_dictionaries({"op": st.sampled_from(["sum", "min", "max", "avg"]), "field": fields},
                                  optional={"times": fields}))
        optional["currency_field"] = fields
    return st.fixed_dictionaries(base, optional=optional)


@st.composite
def rules(draw: st.DrawFn) -> ReconcileRule | AggregateRule:
    aggregate = draw(st.booleans())
    common: dict[str, Any] = {
        "name": draw(names), "key_name": draw(names.filter(lambda n: n != "period")),
        "left": draw(side("psa", "project", aggregate)), "right": draw(side("erp", "project", aggregate)),
        "key_normalize": draw(st.sampled_from([[], ["trim"], ["lower"], ["trim", "upper"]])),
        "missing": draw(st.sampled_from(["both", "left_only", "right_only"])),
        "grace": draw(st.sampled_from(["0s", "1h", "3d"])),
        "grace_basis": draw(st.sampled_from(["updated_at", "received_at"])),
        "severity": draw(st.sampled_from(["low", "critical"])),
    }
    if aggregate:
        tolerance = draw(tolerance_for("decimal"))
        impact = draw(st.none() | st.just({"currency": "EUR"}))
        return AggregateRule.model_validate({**common, "kind": "aggregate", "period": draw(
            st.sampled_from(["day", "week", "month", "quarter", "year"])), "tolerance": tolerance, "impact": impact})
    listed = draw(st.lists(compares(), max_size=4, unique_by=lambda c: c["field"]))
    impact = draw(st.none() | st.fixed_dictionaries({"field": fields, "currency": st.just("EUR")}))
    return ReconcileRule.model_validate({**common, "kind": "reconcile", "compare": listed, "impact": impact})


def _seed(store: Store) -> None:
    records = Records()
    for i, (left, right) in enumerate([("1", "1.5"), ("2024-03-01", "2024-03-05"), ("a", "A "), (MARK, "x")]):
        fields_ = {f: left for f in FIELDS}
        records.add("psa", "project", f"P{i}", fields_, at=OLD)
        records.add("erp", "project", f"P{i}", {f: right for f in FIELDS}, at=NOW - timedelta(minutes=5))
    records.add("psa", "project", "LEFT", {"amount": "3"}).add("erp", "project", "RIGHT", {"amount": "4"})
    records.write(store)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule=rules(), incremental=st.booleans())
def test_any_valid_rule_compiles_to_sql_that_runs(store: Store, rule: ReconcileRule | AggregateRule,
                                                  incremental: bool) -> None:
    if not store.query("SELECT count() FROM records")[0][0]:
        _seed(store)
    compiled = compile(rule, OLD if incremental else None, now=NOW)
    assert MARK not in compiled.sql
    names_, rows = store.query_columns(compiled.sql, compiled.parameters)
    for row in rows:
        record = dict(zip(names_, row, strict=True))
        assert tuple(record) == COLUMNS
        assert record["kind"] in ("missing_left", "missing_right", "mismatch", "aggregate_mismatch")
        assert record["systems"] == ["psa", "erp"] and rule.key_name in record["keys"]
