"""The per-instance workflow state KPIs read: what a refresh stores, when a reader refreshes, that
old generations go and a changed rule never reads rows of its old shape, and the scheduled jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler import compile_kpi, service, workflow_state
from reconciler.rule_shards import Share
from syncwatch.store import Store
from tests.reconciler.records import NOW
from tests.reconciler.test_compile_kpi import COMPLETION, DURATION, KPIS, LOADED, MAY, WORKFLOWS, H, _four, _instance
from tests.reconciler.test_compile_workflow import EVENT_COLUMNS, Events

TTB = WORKFLOWS["time_to_bill"]
DIMS = ["region"]


def stored(store: Store) -> dict[str, tuple[list[int], str]]:
    rows = store.query("SELECT ck, has, dims['region'] FROM workflow_instances WHERE generation = "
                       "(SELECT max(generation) FROM workflow_state_refreshes)")
    return {ck: (list(has), region) for ck, has, region in rows}


def generations(store: Store) -> list[int]:
    return [g for (g,) in store.query("SELECT DISTINCT generation FROM workflow_instances ORDER BY generation")]


def p50(store: Store, **kw: object) -> tuple[float, int]:
    rows = compile_kpi.evaluate(store, DURATION, WORKFLOWS, MAY, MAY + 31 * 24 * H, **kw)
    found = next(r for r in rows if r["stat"] == "p50")
    return round(found["value"], 6), found["count"]


def test_a_refresh_stores_each_started_instance_with_its_steps_and_dimensions(store: Store) -> None:
    _four(Events()).write(store)
    Events().add("billing.invoice.created", MAY, {"invoice_id": "INV-X", "timesheet_ids": ["TS-NOBODY"]}).write(store)
    workflow_state.refresh(store, TTB, DIMS)
    # an invoice of a timesheet never approved starts no instance; TS-3 was never posted
    assert stored(store) == {"TS-1": ([1, 1, 1], "EU"), "TS-2": ([1, 1, 1], "EU"), "TS-3": ([1, 1, 0], "US"),
                             "TS-4": ([1, 1, 1], "EU")}


def test_a_reader_refreshes_only_when_events_arrived_and_the_state_is_older_than_allowed(store: Store) -> None:
    events = _four(Events())
    events.write(store)
    first = workflow_state.ensure_fresh(store, TTB, DIMS)
    assert first.refreshed and first.as_of is not None
    assert not workflow_state.ensure_fresh(store, TTB, DIMS).refreshed  # nothing new: current
    assert p50(store, state_dimensions=DIMS, max_staleness=None) == (4.0, 3)

    written = len(events.rows)
    _instance(events, 5, MAY + 72 * H, 20 * H, "EU", H)
    store.insert_rows("events", events.rows[written:], EVENT_COLUMNS)
    # within the staleness bound the reader keeps the state it has (the new instance is not in it)
    assert not workflow_state.ensure_fresh(store, TTB, DIMS, timedelta(hours=1)).refreshed
    assert p50(store, state_dimensions=DIMS, max_staleness=None) == (4.0, 3)
    # past it (0: any age), new events make it refresh, and the KPI counts the new instance
    assert workflow_state.ensure_fresh(store, TTB, DIMS).refreshed
    assert p50(store, state_dimensions=DIMS, max_staleness=None) == (7.0, 4)


def test_each_refresh_writes_a_generation_and_keeps_only_the_previous_one(store: Store) -> None:
    _four(Events()).write(store)
    for _ in range(4):
        workflow_state.refresh(store, TTB, DIMS)
    kept = generations(store)
    listed = [g for (g,) in store.query("SELECT generation FROM workflow_state_refreshes ORDER BY generation")]
    assert len(kept) == 2 and kept == listed[-2:]
    assert p50(store, state_dimensions=DIMS, max_staleness=None) == (4.0, 3)


def test_a_changed_rule_or_dimension_set_reads_its_own_state(store: Store) -> None:
    _four(Events()).write(store)
    workflow_state.refresh(store, TTB, DIMS)
    assert workflow_state.definition(TTB, ["region", "client_id"]) != workflow_state.definition(TTB, DIMS)
    longer = TTB.model_copy(update={"steps": TTB.steps[:2]})
    assert workflow_state.definition(longer, DIMS) != workflow_state.definition(TTB, DIMS)
    # a shape never refreshed has no state: the KPI is empty rather than read from another shape
    assert compile_kpi.evaluate(store, DURATION, WORKFLOWS, MAY, MAY + 31 * 24 * H,
                                state_dimensions=["region", "client_id"], max_staleness=None) == []
    # and its first reader refreshes it
    assert p50(store, state_dimensions=["region", "client_id"]) == (4.0, 3)


def test_breakdown_by_a_dimension_of_the_state(store: Store) -> None:
    _four(Events()).write(store)
    rows = compile_kpi.evaluate(store, DURATION, WORKFLOWS, MAY, MAY + 31 * 24 * H, dimension="region",
                                state_dimensions=["region", "project_id"])
    assert {(r["dimension"], round(r["value"], 6)) for r in rows if r["stat"] == "p50"} == {("EU", 3.0), ("US", 10.0)}


def test_the_scheduler_refreshes_each_workflow_that_kpis_read_once_across_replicas(store: Store) -> None:
    jobs = service.kpi_state_jobs(store, LOADED, timedelta(seconds=30))
    read = sorted({k.workflow for k in KPIS.values() if k.enabled and k.workflow})
    assert sorted(j.name for j in jobs) == [f"kpi-state:{w}" for w in read]
    assert all(j.schedule == timedelta(seconds=30) for j in jobs)
    shares = [service.kpi_state_jobs(store, LOADED, timedelta(seconds=30), share=Share(i, 3)) for i in range(3)]
    assert sorted(j.name for share in shares for j in share) == sorted(j.name for j in jobs)

    _four(Events()).write(store)
    ttb = next(j for j in jobs if j.name == "kpi-state:time_to_bill")
    ttb.run()
    dims = workflow_state.dimensions_for(KPIS.values(), "time_to_bill")
    assert store.query("SELECT count() FROM workflow_state_refreshes WHERE definition = {d:String}",
                       {"d": workflow_state.definition(TTB, dims)})[0][0] == 1
    assert datetime.now(UTC) - workflow_state.ensure_fresh(store, TTB, dims).as_of < timedelta(minutes=1)


def test_one_query_answers_the_three_views_as_three_queries_do(store: Store) -> None:
    events = _four(Events())
    for day in (2, 3, 40):
        events.error_span(f"trace-{day}", MAY + day * 24 * H, "POST /projects")
    events.write(store)
    for rule in (DURATION, COMPLETION, KPIS["integration_failure_rate"]):
        start, end = datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)
        dimension = rule.dimensions[0]
        views = compile_kpi.evaluate_views(store, rule, WORKFLOWS, start, end, dimension, "month", now=NOW)
        separate = {"overall": compile_kpi.evaluate(store, rule, WORKFLOWS, start, end, now=NOW),
                    "trend": compile_kpi.evaluate(store, rule, WORKFLOWS, start, end, bucket="month", now=NOW),
                    "breakdown": compile_kpi.evaluate(store, rule, WORKFLOWS, start, end, dimension, now=NOW)}
        for view, rows in separate.items():
            got = [(r["stat"], r["value"], r["count"]) + ((r["bucket"],) if view == "trend" else ())
                   + ((r["dimension"],) if view == "breakdown" else ()) for r in views[view]]
            want = [(r["stat"], r["value"], r["count"]) + ((r["bucket"],) if view == "trend" else ())
                    + ((r["dimension"],) if view == "breakdown" else ()) for r in rows]
            assert got == want, (rule.name, view)
        assert (views["trend"] and views["breakdown"]) or rule.ratio  # the pack's spans are not in this store
