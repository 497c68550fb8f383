"""The runner on the real embedded ClickHouse: runs are recorded, one rule's failure stops no other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler import runner
from reconciler.findings import Scope
from reconciler.runner import RuleJob
from syncwatch.store import Store

T0 = datetime(2025, 3, 1, 9, 0)


def candidates(source: str) -> str:
    return (f"SELECT 'missing_right' AS kind, '' AS field, map('project_id', id) AS keys, ['psa', 'erp'] AS systems, "
            f"id AS left_value, '' AS right_value, 0 AS impact_amount, '' AS impact_currency, '' AS left_trace_id, "
            f"'' AS left_span_id, '' AS right_trace_id, '' AS right_span_id, '' AS detail FROM {source}")


@dataclass(frozen=True)
class CompiledRule:
    """The shape compile_reconcile returns: an object with sql and parameters."""

    sql: str
    parameters: dict[str, Any]


def runs(store: Store) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in runner.recent_runs(store)}


def test_a_failing_rule_is_recorded_and_the_others_still_run(store: Store) -> None:
    store.command("CREATE TABLE missing (id String) ENGINE = MergeTree ORDER BY id")
    store.insert_rows("missing", [("P-1",), ("P-2",)], ["id"])

    def broken_compiler() -> CompiledRule:
        raise ValueError("rule psa_budget: unknown field 'budgte'")

    jobs = [
        RuleJob("bad_sql", "1", "high", (candidates("no_such_table"), {})),
        RuleJob("good_tuple", "1", "high", (candidates("missing WHERE id != {skip:String}"), {"skip": "P-2"})),
        RuleJob("bad_compile", "1", "low", broken_compiler),
        RuleJob("good_object", "3", "low", lambda: CompiledRule(candidates("missing"), {})),
    ]
    results = runner.run_all(store, jobs, full=True)

    assert [(r.rule, r.ok, r.opened) for r in results] == [
        ("bad_sql", False, 0), ("good_tuple", True, 1), ("bad_compile", False, 0), ("good_object", True, 2)]
    assert "no_such_table" in results[0].error and "StoreError" in results[0].error
    assert results[2].error == "ValueError: rule psa_budget: unknown field 'budgte'"

    recorded = runs(store)
    assert set(recorded) == {"bad_sql", "good_tuple", "bad_compile", "good_object"}
    assert {r: (v["opened"], v["updated"], v["resolved"], v["reopened"], v["full"], v["error"] == "")
            for r, v in recorded.items()} == {
        "bad_sql": (0, 0, 0, 0, 1, False), "good_tuple": (1, 0, 0, 0, 1, True),
        "bad_compile": (0, 0, 0, 0, 1, False), "good_object": (2, 0, 0, 0, 1, True)}
    assert recorded["good_object"]["rule_version"] == "3" and recorded["good_object"]["duration_ms"] > 0
    assert {r.run_id for r in results} == {v["run_id"] for v in recorded.values()}
    assert store.query("SELECT groupArray(run_id) FROM findings FINAL WHERE rule = 'good_object'")[0][0] == [
        results[3].run_id] * 2


def test_runs_count_what_they_did_and_the_watermark_is_the_last_success(store: Store) -> None:
    store.command("CREATE TABLE missing (id String) ENGINE = MergeTree ORDER BY id")
    store.insert_rows("missing", [("P-1",), ("P-2",)], ["id"])
    rule = (candidates("missing"), {})
    assert runner.last_success(store, "r") is None
    first = runner.run_rule(store, "r", "1", "high", rule, True, now=T0)
    store.command("TRUNCATE TABLE missing")
    store.insert_rows("missing", [("P-2",), ("P-3",)], ["id"])
    second = runner.run_rule(store, "r", "1", "high", rule, True, now=T0 + timedelta(hours=1))
    runner.run_rule(store, "r", "1", "high", ("SELECT nonsense", {}), True, now=T0 + timedelta(hours=2))

    assert (first.opened, second.opened, second.updated, second.resolved) == (2, 1, 1, 1)
    assert runner.last_success(store, "r") == (T0 + timedelta(hours=1)).replace(tzinfo=UTC)
    assert runner.last_success(store, "r", "2") is None
    assert [(r["opened"], r["updated"], r["resolved"], r["error"] != "") for r in runner.recent_runs(store, "r")] == [
        (0, 0, 0, True), (1, 1, 1, False), (2, 0, 0, False)]


def test_an_incremental_run_resolves_only_in_its_scope(store: Store) -> None:
    store.command("CREATE TABLE missing (id String) ENGINE = MergeTree ORDER BY id")
    store.insert_rows("missing", [("P-1",), ("P-2",), ("P-3",)], ["id"])
    rule = (candidates("missing"), {})
    runner.run_rule(store, "r", "1", "high", rule, True, now=T0)
    store.command("TRUNCATE TABLE missing")

    unscoped = runner.run_rule(store, "r", "1", "high", rule, False, now=T0 + timedelta(hours=1))
    assert (unscoped.ok, unscoped.resolved) == (True, 0)  # no scope: nothing it did not look at is resolved
    scoped = runner.run_rule(store, "r", "1", "high", rule, False, scope=Scope.of_keys([{"project_id": "P-2"}]),
                             now=T0 + timedelta(hours=2))
    assert scoped.resolved == 1
    assert dict(store.query("SELECT keys['project_id'], status FROM findings FINAL")) == {
        "P-1": "open", "P-2": "resolved", "P-3": "open"}
    assert [r["full"] for r in runner.recent_runs(store, "r")] == [0, 0, 1]


def test_a_rule_over_its_time_limit_is_cancelled_and_recorded(store: Store) -> None:
    slow = candidates("(SELECT toString(number) AS id FROM numbers(100000000000) WHERE sipHash64(number) = 0)")
    result = runner.run_rule(store, "slow", "1", "high", (slow, {}), True, timeout_seconds=1)
    assert not result.ok and "TIMEOUT_EXCEEDED" in result.error
    assert runs(store)["slow"]["error"] == result.error
