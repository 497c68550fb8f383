"""A rule run and a lifecycle action on the same finding at the same time: neither update is lost.

The run is made slow on purpose (sleepEachRow in its candidates) and goes through a second Store
on the same database, so without the rule lock the action's INSERT would land while the run's
INSERT ... SELECT is between reading the findings and writing them. The action is issued only once
the run's statement is seen executing in system.processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from reconciler import findings, rule_locks
from reconciler.rule_locks import RuleBusyError
from syncwatch.store import Store

T0 = datetime(2025, 3, 1, 9, 0)
RULE = "race_rule"
CANDIDATES = """
SELECT 'mismatch' AS kind, 'status' AS field, map('project_id', project) AS keys, ['psa', 'erp'] AS systems,
       left AS left_value, right AS right_value, 1.0 AS impact_amount, 'EUR' AS impact_currency,
       '' AS left_trace_id, '' AS left_span_id, '' AS right_trace_id, '' AS right_span_id, '' AS detail
FROM drift WHERE sleepEachRow({pause:Float64}) = 0
"""


@pytest.fixture
def other_store(chdb_dsn: str, database: str, store: Store) -> Iterator[Store]:
    second = Store(chdb_dsn, database)  # its own clients: its statements run beside the first store's
    yield second
    second.close()


def _run(store: Store, right: str, now: datetime, pause: float = 0.0) -> None:
    store.command("TRUNCATE TABLE drift")
    store.insert_rows("drift", [("P-1", "active", right)], ["project", "left", "right"])
    findings.apply_run(store, RULE, "v1", "high", CANDIDATES, {"pause": pause}, run_id=f"run-{now}", now=now)


def _wait_until_running(store: Store) -> None:
    """Until the slow run's INSERT executes. (This query's own text names both markers too, and the
    values may be bound into it client-side: hence the exclusion of itself.)"""
    deadline = time.monotonic() + 30
    sql = ("SELECT count() FROM system.processes WHERE query LIKE '%INSERT INTO findings%' "
           "AND query LIKE '%sleepEachRow%' AND query NOT LIKE '%system.processes%'")
    while not store.query(sql)[0][0]:
        assert time.monotonic() < deadline, "the slow run never started"
        time.sleep(0.02)


@pytest.fixture
def finding(store: Store) -> str:
    store.command("CREATE TABLE drift (project String, left String, right String) ENGINE = MergeTree ORDER BY project")
    _run(store, "closed", T0)
    [(fp,)] = store.query("SELECT fingerprint FROM findings FINAL")
    return fp


@pytest.mark.parametrize("run_clock", ["ahead_of_the_action", "behind_the_action"])
def test_a_run_and_an_action_interleaved_keep_both_updates(store: Store, other_store: Store, finding: str,
                                                           run_clock: str) -> None:
    # Whichever clock is ahead, the version written second must be built on the first one.
    run_at, act_at = ((T0 + timedelta(hours=2), T0 + timedelta(hours=1)) if run_clock == "ahead_of_the_action"
                      else (T0 + timedelta(hours=1), T0 + timedelta(hours=2)))
    errors: list[BaseException] = []

    def slow_run() -> None:
        try:
            _run(other_store, "on hold", run_at, pause=1.5)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    runner = threading.Thread(target=slow_run)
    runner.start()
    _wait_until_running(store)
    findings.acknowledge(store, finding, now=act_at)
    runner.join(30)
    assert not errors

    after = findings.get(store, finding)
    assert after is not None
    # the run's update (the new right-hand value, last_seen) and the action's (acknowledged) both stand
    assert (after["status"], after["right_value"], after["last_seen"]) == ("acknowledged", "on hold", run_at)
    assert after["acknowledged_at"] is not None


def test_an_action_refuses_a_resolved_finding_even_if_the_run_resolving_it_was_in_flight(
        store: Store, other_store: Store, finding: str) -> None:
    def resolving_run() -> None:
        # one row that the run sleeps on and then filters out: the run is slow and finds nothing
        # (an empty table would let the sleep run on no row and the run end before it is seen)
        other_store.command("TRUNCATE TABLE drift")
        other_store.command("INSERT INTO drift VALUES ('elsewhere', 'x', 'x')")
        findings.apply_run(other_store, RULE, "v1", "high",
                           CANDIDATES.rstrip() + " AND project = 'none'", {"pause": 1.5},
                           run_id="resolving", now=T0 + timedelta(hours=1))

    runner = threading.Thread(target=resolving_run)
    runner.start()
    _wait_until_running(store)
    with pytest.raises(findings.FindingError, match="it is resolved"):
        findings.acknowledge(store, finding, now=T0 + timedelta(hours=2))
    runner.join(30)
    after = findings.get(store, finding)
    assert after is not None and after["status"] == "resolved"


def test_an_action_gives_up_after_its_timeout_while_a_run_holds_the_rule(store: Store, finding: str) -> None:
    lock = rule_locks.lock_for(store, RULE)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    try:
        with pytest.raises(RuleBusyError, match="being updated by a rule run"):
            findings._act(store, finding, "acknowledged", {}, None, timeout=0.05)
    finally:
        release.set()
        holder.join(30)
    assert findings.acknowledge(store, finding) == "acknowledged"
