"""The finding lifecycle, run by run, on the real embedded ClickHouse: exact states, not counts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from reconciler import findings
from reconciler.findings import ApplyResult, FindingError, Scope
from syncwatch.errors import StoreError
from syncwatch.store import Store

T0 = datetime(2025, 3, 1, 9, 0)  # naive UTC, as the store returns DateTime64(6, 'UTC')

# Candidates of a small hand-written rule: one drift row per project in `drift`, shaped like
# the compiler's output. `{currency:String}` shows a rule's own bound parameter passing through.
CANDIDATES = """
SELECT 'mismatch' AS kind, 'status' AS field, map('project_id', project) AS keys, ['psa', 'erp'] AS systems,
       left AS left_value, right AS right_value, impact AS impact_amount, {currency:String} AS impact_currency,
       'lt' || project AS left_trace_id, 'ls' AS left_span_id, 'rt' AS right_trace_id, 'rs' AS right_span_id,
       '' AS detail
FROM drift WHERE_CLAUSE
"""
PARAMS = {"currency": "EUR"}


@pytest.fixture
def drift(store: Store) -> Store:
    store.command("CREATE TABLE drift (project String, left String, right String, impact Float64) "
                  "ENGINE = MergeTree ORDER BY project")
    return store


def put(store: Store, rows: Iterable[tuple[str, str, str, float]]) -> None:
    store.command("TRUNCATE TABLE drift")
    rows = list(rows)
    if rows:
        store.insert_rows("drift", rows, ["project", "left", "right", "impact"])


def run(store: Store, at: datetime, rule: str = "psa_erp_status", *, where: str = "",
        scope: Scope | None = None, run_id: str | None = None) -> ApplyResult:
    return findings.apply_run(store, rule, "v1", "high", CANDIDATES.replace("WHERE_CLAUSE", where), PARAMS,
                              run_id=run_id or f"{rule}-{at.isoformat()}", scope=scope, now=at)


def state(store: Store, rule: str = "psa_erp_status") -> dict[str, dict[str, Any]]:
    columns, rows = store.query_columns(
        "SELECT keys['project_id'] AS project, * FROM findings FINAL WHERE rule = {r:String}", {"r": rule})
    return {row[0]: dict(zip(columns, row, strict=True)) for row in rows}


def test_open_redetect_autoresolve_reopen(drift: Store) -> None:
    put(drift, [("P-1", "active", "closed", 100.0), ("P-2", "active", "draft", 50.0)])
    assert run(drift, T0) == ApplyResult(opened=2)
    first = state(drift)
    assert {p: f["status"] for p, f in first.items()} == {"P-1": "open", "P-2": "open"}
    assert first["P-1"]["first_seen"] == first["P-1"]["last_seen"] == T0
    assert first["P-1"]["impact_amount"] == Decimal("100.00") and first["P-1"]["impact_currency"] == "EUR"
    assert first["P-1"]["systems"] == ["psa", "erp"] and first["P-1"]["left_trace_id"] == "ltP-1"

    # Re-detected with a new right-hand value: same fingerprint, last_seen and values move.
    put(drift, [("P-1", "active", "on hold", 120.0), ("P-2", "active", "draft", 50.0)])
    assert run(drift, T0 + timedelta(hours=1)) == ApplyResult(updated=2)
    second = state(drift)
    assert drift.query("SELECT count() FROM findings FINAL")[0][0] == 2
    assert second["P-1"]["fingerprint"] == first["P-1"]["fingerprint"]
    assert (second["P-1"]["first_seen"], second["P-1"]["last_seen"]) == (T0, T0 + timedelta(hours=1))
    assert (second["P-1"]["right_value"], second["P-1"]["impact_amount"]) == ("on hold", Decimal("120.00"))

    # P-2 disappears: auto-resolved, keeping its last values; P-1 persists.
    put(drift, [("P-1", "active", "on hold", 120.0)])
    assert run(drift, T0 + timedelta(hours=2)) == ApplyResult(updated=1, resolved=1)
    third = state(drift)
    assert (third["P-2"]["status"], third["P-2"]["resolution"]) == ("resolved", "auto")
    assert third["P-2"]["resolved_at"] == T0 + timedelta(hours=2)
    assert third["P-2"]["last_seen"] == T0 + timedelta(hours=1) and third["P-2"]["right_value"] == "draft"

    # Still gone: nothing is written for it again.
    assert run(drift, T0 + timedelta(hours=3)) == ApplyResult(updated=1)

    # P-2 comes back: reopened, with its history (first_seen, count), not a new finding.
    put(drift, [("P-1", "active", "on hold", 120.0), ("P-2", "active", "draft", 50.0)])
    assert run(drift, T0 + timedelta(hours=4)) == ApplyResult(updated=1, reopened=1)
    fourth = state(drift)["P-2"]
    assert (fourth["status"], fourth["transition"], fourth["reopened_count"]) == ("open", "reopened", 1)
    assert fourth["resolved_at"] is None and fourth["resolution"] == "" and fourth["first_seen"] == T0
    assert drift.query("SELECT count() FROM findings FINAL")[0][0] == 2


def test_acknowledged_stays_acknowledged_while_the_drift_persists(drift: Store) -> None:
    put(drift, [("P-1", "a", "b", 1.0)])
    run(drift, T0)
    fp = state(drift)["P-1"]["fingerprint"]
    assert findings.acknowledge(drift, fp, now=T0 + timedelta(minutes=5)) == "acknowledged"
    assert run(drift, T0 + timedelta(hours=1)) == ApplyResult(updated=1)
    after = state(drift)["P-1"]
    assert after["status"] == "acknowledged" and after["acknowledged_at"] == T0 + timedelta(minutes=5)
    assert after["last_seen"] == T0 + timedelta(hours=1)

    put(drift, [])
    assert run(drift, T0 + timedelta(hours=2)) == ApplyResult(resolved=1)
    put(drift, [("P-1", "a", "b", 1.0)])
    assert run(drift, T0 + timedelta(hours=3)) == ApplyResult(reopened=1)
    back = state(drift)["P-1"]
    assert back["status"] == "open" and back["acknowledged_at"] is None  # a new occurrence needs a new ack


def test_silence_hides_until_its_time_then_the_finding_is_open_again(drift: Store) -> None:
    put(drift, [("P-1", "a", "b", 1.0), ("P-2", "a", "b", 1.0)])
    run(drift, T0)
    fp = state(drift)["P-1"]["fingerprint"]
    until = T0 + timedelta(hours=2)
    assert findings.silence(drift, fp, until, now=T0 + timedelta(minutes=1)) == "silenced"

    assert run(drift, T0 + timedelta(hours=1)) == ApplyResult(updated=2)
    assert {p: (f["status"], f["transition"]) for p, f in state(drift).items()} == {
        "P-1": ("silenced", "updated"), "P-2": ("open", "updated")}

    # Readers count it as open as soon as the silence ends, even before the next run.
    open_at = lambda at: drift.query(  # noqa: E731
        f"SELECT countIf({findings.effective_status_sql('{at:DateTime64(6)}')} = 'open') FROM findings FINAL",
        {"at": at})[0][0]
    assert (open_at(until - timedelta(seconds=1)), open_at(until + timedelta(seconds=1))) == (1, 2)

    assert run(drift, T0 + timedelta(hours=3)) == ApplyResult(updated=2)
    p1 = state(drift)["P-1"]
    assert (p1["status"], p1["transition"], p1["silenced_until"]) == ("open", "unsilenced", None)


def test_a_silenced_finding_that_resolves_and_returns_stays_silenced_within_the_window(drift: Store) -> None:
    put(drift, [("P-1", "a", "b", 1.0)])
    run(drift, T0)
    fp = state(drift)["P-1"]["fingerprint"]
    findings.silence(drift, fp, T0 + timedelta(days=1), now=T0)
    put(drift, [])
    assert run(drift, T0 + timedelta(hours=1)) == ApplyResult(resolved=1)
    put(drift, [("P-1", "a", "b", 1.0)])
    assert run(drift, T0 + timedelta(hours=2)) == ApplyResult(reopened=1)
    assert state(drift)["P-1"]["status"] == "silenced"  # flapping drift does not page during a silence


def test_manual_actions_insert_versions_and_refuse_what_does_not_apply(drift: Store) -> None:
    put(drift, [("P-1", "a", "b", 1.0)])
    run(drift, T0)
    fp = state(drift)["P-1"]["fingerprint"]
    assert findings.assign(drift, fp, "ops@firm.example", now=T0 + timedelta(minutes=1)) == "open"
    assert findings.resolve(drift, fp, "fixed in the ERP", now=T0 + timedelta(minutes=2)) == "resolved"
    resolved = findings.get(drift, fp)
    assert resolved is not None
    assert (resolved["status"], resolved["resolution"], resolved["resolution_reason"], resolved["assignee"]) == (
        "resolved", "manual", "fixed in the ERP", "ops@firm.example")
    with pytest.raises(FindingError, match="it is resolved"):
        findings.acknowledge(drift, fp)
    with pytest.raises(FindingError, match="not in the future"):
        findings.silence(drift, fp, T0, now=T0 + timedelta(minutes=3))
    with pytest.raises(FindingError, match="no finding"):
        findings.acknowledge(drift, "0" * 64)

    # Resolved by hand but still there at the next run: reopened.
    assert run(drift, T0 + timedelta(hours=1)) == ApplyResult(reopened=1)
    assert findings.resolve(drift, fp, "again", now=T0 + timedelta(hours=2)) == "resolved"
    assert findings.reopen(drift, fp, now=T0 + timedelta(hours=3)) == "open"
    final = findings.get(drift, fp)
    assert final is not None and (final["status"], final["reopened_count"], final["assignee"]) == (
        "open", 2, "ops@firm.example")
    # Every action was one more version of the same finding (merges may already have folded them).
    assert drift.query("SELECT count() FROM findings FINAL")[0][0] == 1


def test_actions_sort_after_the_version_they_replace_even_with_a_clock_behind(drift: Store) -> None:
    put(drift, [("P-1", "a", "b", 1.0)])
    run(drift, T0)
    fp = state(drift)["P-1"]["fingerprint"]
    findings.acknowledge(drift, fp, now=T0 - timedelta(hours=1))
    assert state(drift)["P-1"]["status"] == "acknowledged"


SCOPED = "WHERE project IN (SELECT project FROM changed)"


@pytest.mark.parametrize("scope_kind", ["keys", "sql"])
def test_an_incremental_run_ends_in_the_full_runs_state_for_the_keys_it_covers(drift: Store, scope_kind: str) -> None:
    base = [("P-1", "a", "b", 1.0), ("P-2", "a", "b", 2.0), ("P-4", "a", "b", 4.0), ("P-5", "a", "b", 5.0)]
    put(drift, base)
    run(drift, T0, "full")
    run(drift, T0, "incremental")
    fp = state(drift, "incremental")["P-5"]["fingerprint"]
    findings.acknowledge(drift, fp, now=T0 + timedelta(minutes=1))
    findings.acknowledge(drift, state(drift, "full")["P-5"]["fingerprint"], now=T0 + timedelta(minutes=1))

    # Since then: P-1 fixed, P-2 changed, P-3 new, P-5 changed (acknowledged); P-4 untouched.
    put(drift, [("P-2", "a", "c", 2.5), ("P-3", "x", "y", 3.0), ("P-4", "a", "b", 4.0), ("P-5", "a", "z", 5.0)])
    changed = ["P-1", "P-2", "P-3", "P-5"]
    drift.command("CREATE TABLE changed (project String) ENGINE = Memory")
    drift.insert_rows("changed", [(p,) for p in changed], ["project"])
    scope = (Scope.of_keys({"project_id": p} for p in changed) if scope_kind == "keys"
             else Scope("SELECT map('project_id', project) AS keys FROM changed", {}))

    t1 = T0 + timedelta(hours=1)
    assert run(drift, t1, "full") == ApplyResult(updated=3, resolved=1, opened=1)
    assert run(drift, t1, "incremental", where=SCOPED, scope=scope) == ApplyResult(updated=2, resolved=1, opened=1)

    compared = ("status", "transition", "left_value", "right_value", "impact_amount", "first_seen", "last_seen",
                "resolved_at", "resolution", "acknowledged_at", "reopened_count")
    full, incremental = state(drift, "full"), state(drift, "incremental")
    assert {p: [full[p][c] for c in compared] for p in changed} == {
        p: [incremental[p][c] for c in compared] for p in changed}
    assert {p: f["status"] for p, f in incremental.items()} == {
        "P-1": "resolved", "P-2": "open", "P-3": "open", "P-4": "open", "P-5": "acknowledged"}
    # Out of scope: neither resolved nor touched by the incremental run.
    assert incremental["P-4"]["last_seen"] == T0 and full["P-4"]["last_seen"] == t1


def test_fingerprint_is_stable_across_key_order_and_tells_rule_kind_field_and_keys_apart(store: Store) -> None:
    def fp(rule: str, kind: str, field: str, keys_sql: str) -> str:
        sql = f"SELECT {findings.fingerprint_sql('{r:String}', '{k:String}', '{f:String}', keys_sql)}"
        return store.query(sql, {"r": rule, "k": kind, "f": field})[0][0]

    same = fp("r", "mismatch", "status", "map('project_id', 'P-1', 'month', '2025-03')")
    assert same == fp("r", "mismatch", "status", "map('month', '2025-03', 'project_id', 'P-1')")
    assert len(same) == 64 and same == same.lower()
    others = {fp("r2", "mismatch", "status", "map('project_id', 'P-1', 'month', '2025-03')"),
              fp("r", "missing_left", "status", "map('project_id', 'P-1', 'month', '2025-03')"),
              fp("r", "mismatch", "budget", "map('project_id', 'P-1', 'month', '2025-03')"),
              fp("r", "mismatch", "status", "map('project_id', 'P-1')"),
              # a value that spells out another key/value pair does not collide with it
              fp("r", "mismatch", "status", "map('project_id', 'P-1'', ''month'', ''2025-03')")}
    assert same not in others and len(others) == 5


def test_key_order_in_the_candidates_does_not_duplicate_a_finding(drift: Store) -> None:
    sql = ("SELECT 'stuck' AS kind, '' AS field, {m:String} = 'a' ? map('x', '1', 'y', '2') : map('y', '2', 'x', '1') "
           "AS keys, ['psa'] AS systems, '' AS left_value, '' AS right_value, 0 AS impact_amount, '' AS "
           "impact_currency, '' AS left_trace_id, '' AS left_span_id, '' AS right_trace_id, '' AS right_span_id, "
           "'' AS detail")
    assert findings.apply_run(drift, "wf", "1", "low", sql, {"m": "a"}, run_id="1", now=T0).opened == 1
    assert findings.apply_run(drift, "wf", "1", "low", sql, {"m": "b"}, run_id="2",
                              now=T0 + timedelta(minutes=1)) == ApplyResult(updated=1)


def test_a_problem_yielded_twice_in_one_run_is_one_finding(drift: Store) -> None:
    put(drift, [("P-1", "a", "b", 1.0)])
    doubled = CANDIDATES.replace("WHERE_CLAUSE", "") + " UNION ALL " + CANDIDATES.replace("WHERE_CLAUSE", "")
    assert findings.apply_run(drift, "r", "1", "low", doubled, PARAMS, run_id="1", now=T0) == ApplyResult(opened=1)


def test_rule_and_version_and_severity_come_from_the_run(drift: Store) -> None:
    put(drift, [("P-1", "a", "b", 1.0)])
    findings.apply_run(drift, "r", "v1", "low", CANDIDATES.replace("WHERE_CLAUSE", ""), PARAMS, run_id="1", now=T0)
    findings.apply_run(drift, "r", "v2", "critical", CANDIDATES.replace("WHERE_CLAUSE", ""), PARAMS, run_id="2",
                       now=T0 + timedelta(minutes=1))
    f = state(drift, "r")["P-1"]
    assert (f["rule_version"], f["severity"], f["run_id"]) == ("v2", "critical", "2")


def test_reserved_parameter_names_and_contract_errors_are_refused(drift: Store) -> None:
    with pytest.raises(FindingError, match="reserved prefix"):
        findings.apply_run(drift, "r", "1", "low", "SELECT 1", {"sw_now": 1}, run_id="x")
    with pytest.raises(StoreError):
        findings.apply_run(drift, "r", "1", "low", "SELECT 'mismatch' AS kind", None, run_id="x")
    put(drift, [("P-1", "a", "b", 1.0)])
    with pytest.raises(StoreError, match="unknown kind"):
        findings.apply_run(drift, "r", "1", "low", CANDIDATES.replace("'mismatch'", "'mismatched'").replace(
            "WHERE_CLAUSE", ""), PARAMS, run_id="x")
    columns = findings.candidate_columns(drift, CANDIDATES.replace("WHERE_CLAUSE", ""), PARAMS)
    assert columns == list(findings.CANDIDATE_COLUMNS)


AGGREGATE = """
SELECT 'aggregate_mismatch' AS kind, 'hours' AS field, map('project_id', project, 'period', period) AS keys,
       ['psa', 'erp'] AS systems, '' AS left_value, '' AS right_value, 0 AS impact_amount, '' AS impact_currency,
       '' AS left_trace_id, '' AS left_span_id, '' AS right_trace_id, '' AS right_span_id, '' AS detail
FROM leak WHERE project != {p0:String}
"""


def test_a_scope_on_some_key_names_covers_every_finding_with_those_values(store: Store) -> None:
    store.command("CREATE TABLE leak (project String, period String) ENGINE = MergeTree ORDER BY project")
    store.insert_rows("leak", [("P-1", "2025-01"), ("P-1", "2025-02"), ("P-2", "2025-01")], ["project", "period"])
    params = {"p0": "none"}
    findings.apply_run(store, "leak", "1", "high", AGGREGATE, params, run_id="1", now=T0)
    store.command("TRUNCATE TABLE leak")

    # The scope binds a parameter of the same name as the rule's: each keeps its own value.
    scope = Scope("SELECT map('project_id', {p0:String}) AS keys", {"p0": "P-1"}, key_names=("project_id",))
    result = findings.apply_run(store, "leak", "1", "high", AGGREGATE, params, run_id="2",
                                now=T0 + timedelta(hours=1), scope=scope)
    assert result == ApplyResult(resolved=2)
    assert sorted(store.query("SELECT keys['project_id'], keys['period'], status FROM findings FINAL")) == [
        ("P-1", "2025-01", "resolved"), ("P-1", "2025-02", "resolved"), ("P-2", "2025-01", "open")]
