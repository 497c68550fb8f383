"""Per-instance workflow state for KPIs: computed inside ClickHouse, stored, read on request.

A workflow KPI needs each instance's step arrivals. Grouping every step event by correlation key on
each request costs seconds at 10M events (issue 4: 1.7-3.9 s per KPI request), so the grouping runs
once per refresh into `workflow_instances` and requests read the result (one row per instance).

Freshness: a refresh records the events table's row count and latest received_at as it starts (its
token). A reader whose state is older than its staleness bound and whose token no longer matches
refreshes first; the scheduler refreshes in the background so that requests rarely do. The state has
no clock in it: SLA deadlines are compared with `now` when a KPI reads it.

A refresh regroups every instance (full). That is the same work one KPI request used to do, now paid
once per refresh interval instead of once per request.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.compile_reconcile import CompiledRule
from reconciler.compile_workflow import step_events
from reconciler.model import WorkflowRule
from reconciler.model_kpi import KpiRule
from reconciler.sql import JOIN_SETTINGS, Params
from syncwatch import schema
from syncwatch.store import Store

__all__ = ["Freshness", "definition", "dimensions_for", "drop_generation", "drop_generations", "ensure_fresh",
           "instances", "refresh", "refresh_sql"]

_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Freshness:
    """What a KPI was computed from: the state as of `as_of`, and whether this call refreshed it."""

    as_of: datetime | None
    refreshed: bool


def definition(rule: WorkflowRule, dimensions: Sequence[str]) -> str:
    """A short hash of everything the state rows depend on: the key name, the steps, the dimensions."""
    shape = {"key": rule.key_name, "steps": [s.model_dump(mode="json") for s in rule.steps],
             "dims": sorted(set(dimensions))}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def dimensions_for(kpis: Iterable[KpiRule], workflow: str) -> list[str]:
    """Every dimension the enabled KPIs over `workflow` break down by: one state serves them all."""
    return sorted({d for k in kpis if k.enabled and k.workflow == workflow for d in k.dimensions})


def _dims(dimensions: Sequence[str]) -> list[str]:
    return sorted(set(dimensions))


def _selection(p: Params, rule: WorkflowRule, index: int, dimensions: Sequence[str]) -> str:
    """Step `index`'s events as (s, ck, time, v0, v1, ...): only the first step carries dimension
    values (a dimension is the event's key of that name, else its data field of that name)."""
    names = _dims(dimensions)
    if index == 0:
        values = [f"if(mapContains(keys, {p(d)}), keys[{p(d)}], JSONExtractString(data, {p(d)})) AS v{j}"
                  for j, d in enumerate(names)]
    else:
        values = [f"'' AS v{j}" for j in range(len(names))]
    columns = ", ".join(["time", *values])
    carried = ", ".join(["e.time AS time", *(f"e.v{j} AS v{j}" for j in range(len(names)))])
    return step_events(p, rule, rule.steps[index], index, columns, carried)


def refresh_sql(rule: WorkflowRule, dimensions: Sequence[str], generation: int) -> CompiledRule:
    """INSERT ... SELECT of every started instance's state as generation `generation`."""
    p = Params()
    n, names = len(rule.steps), _dims(dimensions)
    union = "\n            UNION ALL\n            ".join(_selection(p, rule, i, dimensions) for i in range(n))
    has = ", ".join(f"toUInt8(countIf(s = {i}) > 0)" for i in range(n))
    first = ", ".join(f"minIf(time, s = {i})" for i in range(n))
    last = ", ".join(f"maxIf(time, s = {i})" for i in range(n))
    pairs = ", ".join(f"{p(d)}, argMinIf(v{j}, time, s = 0)" for j, d in enumerate(names))
    dims = f"map({pairs})" if names else "CAST(map(), 'Map(String, String)')"
    sql = (
        "INSERT INTO workflow_instances (workflow, definition, generation, first0, ck, has, first, last, dims)\n"
        f"SELECT {p(rule.name)}, {p(definition(rule, dimensions))}, {p(generation, 'UInt64')},\n"
        f"       minIf(time, s = 0), ck, [{has}], [{first}], [{last}], {dims}\n"
        f"FROM (\n            {union}\n        )\n"
        "GROUP BY ck HAVING countIf(s = 0) > 0\n"
        f"{JOIN_SETTINGS}"
    )
    return CompiledRule(sql, p.values)


def instances(p: Params, rule: WorkflowRule, dimensions: Sequence[str], dimension: str | None,
              frame: tuple[str, str]) -> str:
    """The current generation's instances of `rule` whose first step is in `frame`, as the per-step
    columns compile_workflow's derivations read: ck, has{i}, first{i}, last{i}, and `dim` (the value
    of `dimension`, or '')."""
    cols = [f"has[{i + 1}] AS has{i}, first[{i + 1}] AS first{i}, last[{i + 1}] AS last{i}"
            for i in range(len(rule.steps))]
    dim = f"dims[{p(dimension)}]" if dimension else "''"
    w, d = p(rule.name), p(definition(rule, dimensions))
    current = (f"(SELECT max(generation) FROM workflow_state_refreshes "
               f"WHERE workflow = {w} AND definition = {d})")
    return (f"SELECT ck, {', '.join(cols)}, {dim} AS dim\n"
            f"        FROM workflow_instances\n"
            f"        WHERE workflow = {w} AND definition = {d} AND generation = {current}\n"
            f"          AND first0 >= {frame[0]} AND first0 < {frame[1]}")


def _token(store: Store) -> tuple[int, datetime]:
    count, received = store.query("SELECT count(), max(received_at) FROM events")[0]
    return int(count), received


def _last(store: Store, rule: WorkflowRule, shape: str) -> tuple[int, datetime, datetime] | None:
    rows = store.query(
        "SELECT events, received_max, started_at FROM workflow_state_refreshes "
        "WHERE workflow = {w:String} AND definition = {d:String} ORDER BY generation DESC LIMIT 1",
        {"w": rule.name, "d": shape})
    if not rows:
        return None
    started = rows[0][2]
    return int(rows[0][0]), rows[0][1], started if started.tzinfo else started.replace(tzinfo=UTC)


def _lock(store: Store, rule: WorkflowRule, shape: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((store.database, rule.name, shape), threading.Lock())


def refresh(store: Store, rule: WorkflowRule, dimensions: Sequence[str], now: datetime | None = None) -> datetime:
    """Write a new generation of every instance's state, list it, and drop the generations before
    the previous one (a reader that picked the previous one a moment ago still finds it).
    Returns the refresh's start: the state's as-of time."""
    now = now or datetime.now(UTC)
    token = _token(store)
    generation = time.time_ns() // 1000
    shape = definition(rule, dimensions)
    compiled = refresh_sql(rule, dimensions, generation)
    store.command(compiled.sql, compiled.parameters)
    params = {"w": rule.name, "d": shape, "g": generation}
    count = store.query("SELECT count() FROM workflow_instances WHERE workflow = {w:String} "
                        "AND definition = {d:String} AND generation = {g:UInt64}", params)[0][0]
    store.insert_rows("workflow_state_refreshes",
                      [(rule.name, shape, generation, token[0], token[1], now, datetime.now(UTC), int(count))],
                      ["workflow", "definition", "generation", "events", "received_max", "started_at",
                       "refreshed_at", "instances"])
    drop_generations(store, "workflow_instances", rule.name, shape)
    return now


def drop_generations(store: Store, table: str, workflow: str, shape: str) -> None:
    """Drop the partitions of `table` (partitioned by workflow, definition, generation) older than
    the two newest generations of (`workflow`, `shape`)."""
    rows = store.query(f"SELECT DISTINCT generation FROM {table} WHERE workflow = {{w:String}} "
                       "AND definition = {d:String} ORDER BY generation DESC", {"w": workflow, "d": shape})
    for (generation,) in rows[2:]:
        drop_generation(store, table, workflow, shape, int(generation))


def drop_generation(store: Store, table: str, workflow: str, shape: str, generation: int) -> None:
    # partition values are literals in ALTER ... DROP PARTITION; all three are ours (a rule name
    # checked at load, a hex hash, an integer), quoted all the same
    partition = f"({_quote(workflow)}, {_quote(shape)}, {int(generation)})"
    schema.apply_ddl(store, f"ALTER TABLE {table} DROP PARTITION {partition}")


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ensure_fresh(store: Store, rule: WorkflowRule, dimensions: Sequence[str],
                 max_staleness: timedelta = timedelta(0)) -> Freshness:
    """Refresh `rule`'s state unless it is current (no event stored since its last refresh) or
    younger than `max_staleness`. One refresh at a time per workflow and shape in this process:
    a second caller waits and then finds the state current."""
    shape = definition(rule, dimensions)
    with _lock(store, rule, shape):
        last = _last(store, rule, shape)
        if last is not None:
            events, received, started = last
            if datetime.now(UTC) - started <= max_staleness or (events, received) == _token(store):
                return Freshness(started, refreshed=False)
        return Freshness(refresh(store, rule, dimensions), refreshed=True)

