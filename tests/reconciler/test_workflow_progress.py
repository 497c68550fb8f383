"""The progress a workflow rule's runs keep (reconciler.workflow_progress), on the real embedded store.

An incremental update folds in only the events received since the last one; whatever order and
batches the events arrive in, the findings read from the progress must equal those read from every
event (the rows themselves: values, trace ids, systems and impact, not only which findings).
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from reconciler import compile_workflow, service, workflow_progress
from reconciler.loader import LoadedRule, load_text
from reconciler.model import WorkflowRule
from reconciler.runner import INGEST_LAG
from syncwatch.bench import reconcile_data as bench
from syncwatch.store import Store
from tests.reconciler.records import NOW
from tests.reconciler.test_compile_workflow import PACK, Events, days, quote_events, timesheet_events

FIRST_UPDATE = days(30)


def _rows(store: Store, rule: WorkflowRule, *, state: bool) -> list[tuple[Any, ...]]:
    compiled = compile_workflow.compile(rule, now=NOW, state=state)
    return sorted(tuple(map(repr, row)) for row in store.query(compiled.sql, compiled.parameters))


def _received(events: Events, at: Any) -> Events:
    return Events([(*row[:-1], at) for row in events.rows])


def _deliver_in_two(store: Store, rule: WorkflowRule, events: Events, seed: int) -> None:
    """A random half of the events (and no error span) before the first update, the rest after it,
    with a few of the first half delivered again (the same event ids: stored once, folded twice)."""
    rng = random.Random(seed)
    late = [rng.random() < 0.5 for _ in events.rows]
    early = [r for r, x in zip(events.rows, late, strict=True) if not x]
    _received(Events(early), days(40)).write(store)
    assert workflow_progress.update(store, rule, full=True, now=FIRST_UPDATE).full
    again = rng.sample(early, min(3, len(early)))
    rest = [r for r, x in zip(events.rows, late, strict=True) if x]
    later = _received(Events(rest + again), NOW - timedelta(hours=1))
    later.spans = events.spans
    later.write(store)
    update = workflow_progress.update(store, rule, full=False, now=NOW)
    assert (update.full, update.since) == (False, FIRST_UPDATE - INGEST_LAG)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("name", "events"), [("time_to_bill", timesheet_events), ("quote_to_project", quote_events)])
def test_incremental_updates_equal_reading_every_event(store: Store, name: str, events: Any, seed: int) -> None:
    # time_to_bill: a posted invoice whose link (invoice created) arrives in the later half is tied
    # to its timesheets only then; quote_to_project: error spans arrive after the events of their trace
    rule = PACK[name]
    _deliver_in_two(store, rule, events(), seed)
    expected = _rows(store, rule, state=False)
    assert expected  # the data has findings to compare
    assert _rows(store, rule, state=True) == expected
    workflow_progress.update(store, rule, full=False, now=NOW + timedelta(minutes=1))  # the same events again
    assert _rows(store, rule, state=True) == expected


def test_events_received_before_the_last_update_less_the_lag_wait_for_a_full_update(store: Store) -> None:
    rule = PACK["time_to_bill"]
    timesheet_events().write(store)
    workflow_progress.update(store, rule, full=True, now=NOW)
    stuck = {r for r in _rows(store, rule, state=True) if "'stuck'" in r[0]}
    # TS-3's invoice, stored now but received (by the collector's clock) before the last update's lag
    (Events().add("billing.invoice.created", days(1), {"invoice_id": "INV-9", "timesheet_ids": ["TS-3"]},
                  received=NOW - INGEST_LAG - timedelta(seconds=1)).write(store))
    workflow_progress.update(store, rule, full=False, now=NOW + timedelta(minutes=15))
    assert {r for r in _rows(store, rule, state=True) if "'stuck'" in r[0]} == stuck
    workflow_progress.update(store, rule, full=True, now=NOW + timedelta(minutes=30))
    assert _rows(store, rule, state=True) == _rows(store, rule, state=False)
    assert len({r for r in _rows(store, rule, state=True) if "'stuck'" in r[0]}) == len(stuck) - 1


def _generations(store: Store) -> list[tuple[str, int]]:
    return store.query("SELECT DISTINCT definition, generation FROM workflow_progress ORDER BY generation")


def test_a_full_update_replaces_the_generation_and_keeps_the_previous_one(store: Store) -> None:
    rule = PACK["time_to_bill"]
    timesheet_events().write(store)
    built = [workflow_progress.update(store, rule, full=True, now=NOW + timedelta(minutes=i)) for i in range(3)]
    assert [g for _, g in _generations(store)] == [built[1].generation, built[2].generation]
    assert len({u.generation for u in built}) == 3
    folded = workflow_progress.update(store, rule, full=False, now=NOW + timedelta(minutes=5))
    assert (folded.full, folded.generation) == (False, built[2].generation)
    assert _rows(store, rule, state=True) == _rows(store, rule, state=False)


def test_a_changed_rule_builds_its_own_progress_and_never_reads_the_old(store: Store) -> None:
    rule = PACK["time_to_bill"]
    timesheet_events().write(store)
    workflow_progress.update(store, rule, full=True, now=NOW)
    changed = rule.model_copy(update={"steps": rule.steps[:2]})  # posted is no longer a step
    assert compile_workflow.progress_definition(changed) != compile_workflow.progress_definition(rule)
    assert _rows(store, changed, state=True) == []  # nothing built for it yet
    first = workflow_progress.update(store, changed, full=False, now=NOW)
    assert first.full  # an incremental update without progress builds it
    assert _rows(store, changed, state=True) == _rows(store, changed, state=False)
    assert {d for d, _ in _generations(store)} == {compile_workflow.progress_definition(r) for r in (rule, changed)}


def test_a_full_run_drops_the_progress_of_an_earlier_definition_nothing_updated_for_a_week(store: Store) -> None:
    rule = PACK["time_to_bill"]
    edited = rule.model_copy(update={"steps": rule.steps[:2]})
    old, new = (compile_workflow.progress_definition(r) for r in (rule, edited))
    timesheet_events().write(store)
    workflow_progress.update(store, rule, full=True, now=NOW)
    workflow_progress.update(store, edited, full=True, now=NOW)
    assert {d for d, _ in _generations(store)} == {old, new}  # another reconciler may still run the old one
    store.command("ALTER TABLE workflow_progress_updates UPDATE finished_at = finished_at - toIntervalDay(8) "
                  "WHERE definition = {d:String} SETTINGS mutations_sync = 2", {"d": old})
    workflow_progress.update(store, edited, full=False, now=NOW)  # only a full run drops
    assert {d for d, _ in _generations(store)} == {old, new}
    workflow_progress.update(store, edited, full=True, now=NOW)
    assert {d for d, _ in _generations(store)} == {new}
    assert _rows(store, edited, state=True) == _rows(store, edited, state=False)


def test_scheduled_runs_keep_the_progress_and_find_what_arrives_later(store: Store) -> None:
    loaded = LoadedRule(PACK["time_to_bill"], "v1", "time_to_bill.yaml", 1)
    timesheet_events().write(store)
    full = service.run_one(store, loaded, full=True, now=NOW)
    assert (full.error, full.full, full.opened) == ("", True, 6)
    # TS-3 is invoiced at last: the next (incremental) run resolves its stuck finding
    (Events().add("billing.invoice.created", days(1), {"invoice_id": "INV-9", "timesheet_ids": ["TS-3"]},
                  received=NOW + timedelta(minutes=1)).write(store))
    later = service.run_one(store, loaded, now=NOW + timedelta(minutes=15))
    assert (later.error, later.full, later.resolved) == ("", False, 1)
    open_stuck = store.query("SELECT keys['timesheet_id'] FROM findings FINAL WHERE rule = 'time_to_bill' "
                             "AND kind = 'stuck' AND status = 'open' ORDER BY 1")
    assert [r[0] for r in open_stuck] == sorted(["TS-5", "x'); DROP TABLE events; --"])


def test_a_failed_update_is_the_runs_recorded_error(store: Store) -> None:
    loaded = LoadedRule(PACK["time_to_bill"], "v1", "time_to_bill.yaml", 1)
    store.command("DROP TABLE workflow_progress")
    result = service.run_one(store, loaded, full=True, now=NOW)
    assert "workflow_progress" in result.error
    assert store.query("SELECT error FROM rule_runs WHERE rule = 'time_to_bill'")[0][0] == result.error


@pytest.mark.slow
def test_a_full_build_bigger_than_an_insert_block_is_one_part_and_finds_every_stuck_instance(store: Store) -> None:
    # 4M events of 400k instances (1.2M progress rows): more than the engine's default insert block
    # (1,048,449 rows), which cut a build into parts that every run then read more slowly
    rule = load_text(bench.WORKFLOW_YAML, "bench_stuck.yaml")[0].rule
    events = bench.generate_events(store, 4_000_000, NOW - timedelta(days=2))
    update = workflow_progress.update(store, rule, full=True, now=NOW)
    parts = store.query(
        "SELECT rows FROM system.parts WHERE database = currentDatabase() AND table = 'workflow_progress' "
        "AND active AND partition LIKE {g:String}", {"g": f"%{update.generation}%"})
    assert len(parts) == 1 and parts[0][0] > 1_048_449, parts
    compiled = compile_workflow.compile(rule, now=NOW, state=True)
    found = {row[0] for row in store.query(
        f"SELECT keys['instance_id'] FROM ({compiled.sql}) WHERE kind = 'stuck'", compiled.parameters)}
    expected = {row[0] for row in store.query(bench.EXPECTED_STUCK_SQL, {"instances": 400_000})}
    assert events > 3_990_000 and len(expected) > 3_000 and found == expected
