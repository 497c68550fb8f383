"""Record-level reconcile rules compiled to SQL and run on the real embedded ClickHouse.

Each test writes records with known drift and asserts the EXACT set of (kind, field, keys) rows.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.compile_reconcile import COLUMNS, compile, explain
from reconciler.loader import load_rules
from syncwatch.store import Store
from tests.reconciler.records import NOW, OLD, Records, found, k, reconcile, run, span_of, trace_of

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "reconciler"
PACK = {r.name: r.rule for r in load_rules(REPO / "rules") if r.rule.kind in ("reconcile", "aggregate")}
HOSTILE = "x'); DROP TABLE events; --"


# -- golden SQL -------------------------------------------------------------------------------------------

def _golden(name: str, sql: str, parameters: dict[str, Any]) -> None:
    """Compare with tests/fixtures/reconciler/<name>.sql (+ .json); SYNCWATCH_UPDATE_GOLDEN=1 rewrites."""
    params = json.dumps(parameters, indent=2, sort_keys=True, default=str) + "\n"
    sql_file, params_file = GOLDEN / f"{name}.sql", GOLDEN / f"{name}.params.json"
    if os.environ.get("SYNCWATCH_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        sql_file.write_text(sql + "\n")
        params_file.write_text(params)
    assert sql_file.read_text() == sql + "\n", f"compiled SQL of {name} changed (SYNCWATCH_UPDATE_GOLDEN=1)"
    assert params_file.read_text() == params


@pytest.mark.parametrize("name", sorted(PACK))
def test_golden_sql_of_the_shipped_pack(name: str, store: Store) -> None:
    compiled = compile(PACK[name], now=NOW)
    _golden(name, compiled.sql, compiled.parameters)
    assert store.query(compiled.sql, compiled.parameters) == []


def test_golden_sql_of_an_incremental_run(store: Store) -> None:
    compiled = compile(PACK["psa_vs_erp_projects"], OLD, now=NOW)
    _golden("psa_vs_erp_projects.incremental", compiled.sql, compiled.parameters)
    assert store.query(compiled.sql, compiled.parameters) == []


def test_the_contract_column_types(store: Store) -> None:
    compiled = compile(PACK["psa_vs_erp_projects"], now=NOW)
    described = store.query(f"DESCRIBE ({compiled.sql.rsplit('SETTINGS', 1)[0]})", compiled.parameters)
    types = [(row[0], row[1]) for row in described]
    assert tuple(name for name, _ in types) == COLUMNS
    assert types == [("kind", "String"), ("field", "String"), ("keys", "Map(String, String)"),
                     ("systems", "Array(String)"), ("left_value", "String"), ("right_value", "String"),
                     ("impact_amount", "Float64"), ("impact_currency", "String"), ("left_trace_id", "String"),
                     ("left_span_id", "String"), ("right_trace_id", "String"), ("right_span_id", "String"),
                     ("detail", "String")]


# -- hostile values ---------------------------------------------------------------------------------------

def test_hostile_values_are_bound_never_pasted(store: Store) -> None:
    rule = reconcile(left={"system": "psa", "entity": "project", "filter": [{"field": "name", "value": HOSTILE}]},
                     compare=[{"field": "status", "value_map": {HOSTILE: "x'y"}}],
                     impact={"field": "budget", "currency": "EUR"})
    compiled = compile(rule, now=NOW)
    assert "DROP" not in compiled.sql and "x'y" not in compiled.sql
    assert HOSTILE in compiled.parameters.values()
    Records().add("psa", "project", "P1", {"name": HOSTILE, "status": HOSTILE}) \
        .add("psa", "project", "P2", {"name": "other"}) \
        .add("erp", "project", "P1", {"status": "x'y"}).write(store)
    assert found(store, rule) == set()  # P1 matches through the hostile value map; P2 is filtered out
    assert store.query("EXISTS TABLE events") == [(1,)]


# -- tolerances -------------------------------------------------------------------------------------------

def _pairs(store: Store, field: str, pairs: dict[str, tuple[str | None, str | None]]) -> None:
    records = Records()
    for key, (left, right) in pairs.items():
        records.add("psa", "project", key, {} if left is None else {field: left})
        records.add("erp", "project", key, {} if right is None else {field: right})
    records.write(store)


CASES: list[tuple[str, dict[str, Any], dict[str, tuple[str | None, str | None]], set[str]]] = [
    ("exact string", {"type": "string"},
     {"same": ("UK01", "UK01"), "case": ("UK01", "uk01"), "absent": (None, None), "one_absent": ("UK01", None)},
     {"case", "one_absent"}),
    ("case-insensitive", {"tolerance": {"case_insensitive": True}},
     {"case": ("UK01", "uk01"), "other": ("UK01", "UK02"), "space": ("UK01", " UK01")}, {"other", "space"}),
    ("whitespace-insensitive", {"tolerance": {"ignore_whitespace": True}},
     {"spaces": (" Acme  Ltd ", "Acme Ltd"), "tab": ("Acme\tLtd", "Acme Ltd"), "case": ("Acme", "ACME")},
     {"case"}),
    ("value map", {"type": "enum", "value_map": {"active": "ACT", "closed": "CLS"}},
     {"mapped": ("active", "ACT"), "wrong": ("closed", "ACT"), "unmapped_same": ("setup", "setup"),
      "unmapped_raw": ("active", "active")},
     {"wrong", "unmapped_raw"}),
    ("value map, case-insensitive", {"type": "enum", "value_map": {"Active": "ACT"},
                                     "tolerance": {"case_insensitive": True}},
     {"mapped": ("ACTIVE", "act"), "wrong": ("closed", "ACT")}, {"wrong"}),
    ("decimal exact", {"type": "decimal"},
     {"same": ("100", "100.00"), "off": ("100", "100.01"), "text": ("n/a", "n/a"), "bad": ("100", "n/a")},
     {"off", "bad"}),
    ("decimal absolute", {"type": "decimal", "tolerance": {"absolute": 0.01}},
     {"edge": ("100.00", "100.01"), "over": ("100.00", "100.02"), "neg": ("-5", "-5.011"),
      "sci": ("1e5", "100000.0")},
     {"over", "neg"}),
    ("decimal relative", {"type": "decimal", "tolerance": {"relative": "1%"}},
     {"edge": ("200", "202"), "over": ("200", "202.5"), "zero": ("0", "0"), "from_zero": ("0", "1"),
      "below": ("200", "197.9")},
     {"over", "from_zero", "below"}),
    ("int absolute", {"type": "int", "tolerance": {"absolute": 2}},
     {"edge": ("10", "12"), "over": ("10", "13"), "fraction": ("10", "10.5")}, {"over", "fraction"}),
    ("int relative", {"type": "int", "tolerance": {"relative": 0.1}},
     {"edge": ("100", "110"), "over": ("100", "111")}, {"over"}),
    ("date days", {"type": "date", "tolerance": {"days": 1}},
     {"edge": ("2024-03-01", "2024-03-02"), "over": ("2024-03-01", "2024-03-03"),
      "before": ("2024-03-01", "2024-02-28"), "same_day": ("2024-03-01", "2024-03-01T18:00:00Z"),
      "bad": ("2024-03-01", "someday")},
     {"over", "before", "bad"}),
    ("date exact", {"type": "date"},
     {"same": ("2024-03-01", "2024-03-01"), "next": ("2024-03-01", "2024-03-02")}, {"next"}),
    ("datetime seconds", {"type": "datetime", "tolerance": {"seconds": 60}},
     {"edge": ("2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z"), "over": ("2024-03-01T10:00:00Z", "2024-03-01 10:01:01"),
      "zone": ("2024-03-01T10:00:00+02:00", "2024-03-01T08:00:30Z")},
     {"over"}),
    ("datetime days", {"type": "datetime", "tolerance": {"days": 1}},
     {"edge": ("2024-03-01T10:00:00Z", "2024-03-02T10:00:00Z"),
      "over": ("2024-03-01T10:00:00Z", "2024-03-02T10:00:01Z")},
     {"over"}),
]


@pytest.mark.parametrize(("title", "compare", "pairs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_tolerance_finds_exactly_the_drift(store: Store, title: str, compare: dict[str, Any],
                                                pairs: dict[str, tuple[str | None, str | None]],
                                                expected: set[str]) -> None:
    _pairs(store, "v", pairs)
    rule = reconcile(compare=[{"field": "v", **compare}], missing="none")
    assert found(store, rule) == {("mismatch", "v", k(project_id=key)) for key in expected}, title


def test_right_field_and_several_compares_fan_out(store: Store) -> None:
    Records().add("crm", "opportunity", "O1", {"amount": "100", "currency": "EUR"}) \
        .add("erp", "project", "PRJ-1", {"opportunity_id": "O1", "budget": "150", "currency": "USD"}) \
        .add("crm", "opportunity", "O2", {"amount": "100", "currency": "EUR"}) \
        .add("erp", "project", "PRJ-2", {"opportunity_id": "O2", "budget": "100", "currency": "EUR"}).write(store)
    rule = reconcile(key_name="opportunity_id", left={"system": "crm", "entity": "opportunity"},
                     right={"system": "erp", "entity": "project", "key_field": "opportunity_id"},
                     compare=[{"field": "amount", "right_field": "budget", "type": "decimal"},
                              {"field": "currency"}])
    (amount, currency) = sorted(run(store, rule), key=lambda r: r["field"])
    assert (amount["field"], amount["left_value"], amount["right_value"]) == ("amount", "100", "150")
    assert (currency["field"], currency["left_value"], currency["right_value"]) == ("currency", "EUR", "USD")
    assert amount["keys"] == {"opportunity_id": "O1"} and amount["systems"] == ["crm", "erp"]


# -- missing sides, keys, filters, versions ----------------------------------------------------------------

def _sides(store: Store) -> None:
    Records().add("psa", "project", "BOTH").add("erp", "project", "BOTH") \
        .add("psa", "project", "PSA_ONLY").add("erp", "project", "ERP_ONLY").write(store)


@pytest.mark.parametrize(("mode", "expected"), [
    ("both", {("missing_right", "PSA_ONLY"), ("missing_left", "ERP_ONLY")}),
    ("left_only", {("missing_right", "PSA_ONLY")}),
    ("right_only", {("missing_left", "ERP_ONLY")}),
])
def test_missing_modes(store: Store, mode: str, expected: set[tuple[str, str]]) -> None:
    _sides(store)
    assert found(store, reconcile(missing=mode)) == {(kind, "", k(project_id=key)) for kind, key in expected}


def test_missing_none_reports_only_mismatches(store: Store) -> None:
    _sides(store)
    assert found(store, reconcile(missing="none", compare=[{"field": "x"}])) == set()


def test_key_normalization_joins_what_means_the_same(store: Store) -> None:
    Records().add("psa", "project", " prj-1 ").add("erp", "project", "PRJ-1") \
        .add("psa", "project", "PRJ-2").add("erp", "project", "PRJ-3").write(store)
    assert found(store, reconcile(key_normalize=["trim", "upper"])) == {
        ("missing_right", "", k(project_id="PRJ-2")), ("missing_left", "", k(project_id="PRJ-3"))}
    assert len(found(store, reconcile())) == 4  # un-normalized, ' prj-1 ' and 'PRJ-1' differ


def test_filters_deleted_records_and_latest_versions(store: Store) -> None:
    Records().add("psa", "project", "P1", {"status": "active", "budget": "10"}) \
        .add("psa", "project", "P2", {"status": "lost"}) \
        .add("psa", "project", "P3", {"status": "active"}) \
        .add("erp", "project", "P1", {"budget": "99"}, version=1) \
        .add("erp", "project", "P1", {"budget": "10"}, version=2) \
        .add("erp", "project", "P3", {}, version=1) \
        .add("erp", "project", "P3", {}, version=2, deleted=True).write(store)
    rule = reconcile(left={"system": "psa", "entity": "project",
                           "filter": [{"field": "status", "op": "!=", "value": "lost"},
                                      {"field": "budget", "op": "missing"}]},
                     missing="left_only", compare=[{"field": "budget", "type": "decimal"}])
    assert found(store, rule) == {("missing_right", "", k(project_id="P3"))}  # P1 has a budget; P3 was deleted
    rule = reconcile(left={"system": "psa", "entity": "project",
                           "filter": [{"field": "budget", "op": ">=", "value": 5},
                                      {"field": "status", "op": "in", "value": ["active", "setup"]}]},
                     missing="both", compare=[{"field": "budget", "type": "decimal"}])
    assert found(store, rule) == set()  # P1's latest ERP version agrees


def test_impact_traces_and_detail(store: Store) -> None:
    Records().add("psa", "project", "P1", {"budget": "164000.0", "currency": "GBP"}) \
        .add("erp", "project", "P1", {"budget": "184500.0", "currency": "GBP"}) \
        .add("erp", "project", "P2", {"budget": "5000", "currency": "EUR"}).write(store)
    rule = reconcile(compare=[{"field": "budget", "type": "decimal", "tolerance": {"relative": "1%"}}],
                     impact={"field": "budget", "currency_field": "currency"})
    rows = {r["kind"]: r for r in run(store, rule)}
    assert set(rows) == {"mismatch", "missing_left"}
    mismatch, missing = rows["mismatch"], rows["missing_left"]
    assert (mismatch["impact_amount"], mismatch["impact_currency"]) == (164000.0, "GBP")
    assert mismatch["detail"] == "budget differs by 12.5% (164000.0 in psa vs 184500.0 in erp; tolerance 1%)"
    assert (mismatch["left_trace_id"], mismatch["right_trace_id"]) == (trace_of("psa-P1-1"), trace_of("erp-P1-1"))
    assert (mismatch["left_span_id"], mismatch["right_span_id"]) == (span_of("psa-P1"), span_of("erp-P1"))
    assert (missing["impact_amount"], missing["impact_currency"]) == (5000.0, "EUR")
    assert (missing["left_trace_id"], missing["right_trace_id"]) == ("", trace_of("erp-P2-1"))
    assert (missing["left_value"], missing["right_value"]) == ("", "")
    assert missing["detail"] == "project_id P2 is in erp project but not in psa project"


def test_fixed_currency_and_no_impact(store: Store) -> None:
    Records().add("psa", "project", "P1", {"budget": "7"}).write(store)
    (row,) = run(store, reconcile(impact={"field": "budget", "currency": "EUR"}))
    assert (row["impact_amount"], row["impact_currency"]) == (7.0, "EUR")
    (row,) = run(store, reconcile())
    assert (row["impact_amount"], row["impact_currency"]) == (0.0, "")


# -- grace period and incremental runs ------------------------------------------------------------------

@pytest.mark.parametrize("basis", ["updated_at", "received_at"])
def test_grace_period_holds_back_young_records(store: Store, basis: str) -> None:
    young, old = NOW - timedelta(minutes=10), NOW - timedelta(hours=2)
    at = {"updated_at": {"at": young, "received": old}, "received_at": {"at": old, "received": young}}[basis]
    Records().add("psa", "project", "YOUNG_ONLY", **at) \
        .add("psa", "project", "OLD_ONLY", at=old) \
        .add("psa", "project", "YOUNG_DIFF", {"v": "1"}, at=old) \
        .add("erp", "project", "YOUNG_DIFF", {"v": "2"}, **at) \
        .add("psa", "project", "OLD_DIFF", {"v": "1"}, at=old) \
        .add("erp", "project", "OLD_DIFF", {"v": "2"}, at=old).write(store)
    rule = reconcile(grace="1h", grace_basis=basis, compare=[{"field": "v"}])
    assert found(store, rule) == {("missing_right", "", k(project_id="OLD_ONLY")),
                                  ("mismatch", "v", k(project_id="OLD_DIFF"))}
    everything = found(store, rule, now=NOW + timedelta(hours=1))
    assert everything == found(store, reconcile(compare=[{"field": "v"}])) and len(everything) == 4


def test_incremental_run_checks_only_keys_changed_on_either_side(store: Store) -> None:
    since = NOW - timedelta(days=1)
    recent = NOW - timedelta(hours=1)
    Records().add("psa", "project", "OLD_DRIFT", {"v": "1"}).add("erp", "project", "OLD_DRIFT", {"v": "2"}) \
        .add("psa", "project", "LEFT_CHANGED", {"v": "1"}, at=recent) \
        .add("erp", "project", "LEFT_CHANGED", {"v": "2"}) \
        .add("psa", "project", "RIGHT_CHANGED", {"v": "1"}) \
        .add("erp", "project", "RIGHT_CHANGED", {"v": "2"}, at=recent) \
        .add("psa", "project", "DELETED_RIGHT") \
        .add("erp", "project", "DELETED_RIGHT", version=1) \
        .add("erp", "project", "DELETED_RIGHT", version=2, deleted=True, at=recent) \
        .add("psa", "project", "NEW_LEFT", at=recent).write(store)
    rule = reconcile(compare=[{"field": "v"}])
    assert found(store, rule, since) == {
        ("mismatch", "v", k(project_id="LEFT_CHANGED")), ("mismatch", "v", k(project_id="RIGHT_CHANGED")),
        ("missing_right", "", k(project_id="DELETED_RIGHT")), ("missing_right", "", k(project_id="NEW_LEFT"))}
    assert found(store, rule) == found(store, rule, since) | {("mismatch", "v", k(project_id="OLD_DRIFT"))}


def test_explain_says_what_is_compared() -> None:
    text = explain(PACK["psa_vs_erp_projects"])
    assert "psa project records" in text and "erp project records" in text
    assert "- budget as decimal, tolerance 1%" in text
    assert "lost -> cancelled" in text and "Grace period 4h" in text
