"""Compile workflow rules to one parameterized ClickHouse query: stuck instances, SLA breaches, failures.

Every step (and failure signal) is a selection of events (FINAL) that yields correlation keys: a
plain key, a many key (a JSON array, unnested), or a key reached through an earlier step's events
(`via`, an inner join on a link table). The selections are stacked with UNION ALL (steps keyed
directly, each of an event type of its own, share one read) and grouped by correlation key,
with countIf / minIf / maxIf per step: a group-by measured at 0.16 s over 10M
events (issue 3). windowFunnel is not used: it miscounted against ground truth in a measurement.
The events are grouped twice: first for the keys of the instances with a finding, then, for those
keys only, with the columns of the finding rows (latest trace ids, systems, impact), which cost
more than finding the problems.

Per instance (a correlation key whose first step is present), with T(step) = its first arrival, or
its latest when the step is repeatable (the clock restarts with each repetition), and a step after
a repeatable anchor counting as done only if it arrived at or after the anchor's latest arrival:

    stuck        the first required step not done, its anchor done, and anchor + within < now
    sla_breach   a step done after anchor + within (left_value: the deadline, right_value: arrival)
    failed_step  a failure event, or an error span in the trace of a step event keyed directly (not
                 via), since the instance started and while it is not complete (all required steps
                 done); a linked event may be shared with an older instance (a client's customer
                 record), whose failures and traces are not this instance's

An incremental run (`since`) covers the instances with an event received since then, an error span
since then, or an SLA deadline that fell between `since` and `now`: the only ways a finding of an
instance can appear or go away. `scope()` selects those same keys for the findings lifecycle.

Scheduled runs (`state=True`) group kept progress instead of the events: `progress_sql` folds the
events into rows of (key, source, system) with each one's first and last arrival, latest trace and
first amount (reconciler.workflow_progress keeps them), and the per-instance columns are grouped
from those rows, ~1 per instance and step instead of every event. Error spans are joined at read
time, since a span may fail after its trace's events were folded in.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from reconciler.compile_reconcile import CompiledRule
from reconciler.findings import Scope
from reconciler.model import FailureEvent, Step, StepKey, WorkflowRule
from reconciler.sql import DATETIME, JOIN_SETTINGS, Params, filter_expr

__all__ = ["compile", "progress_definition", "progress_sql", "scope", "step_events", "step_rows"]

_NO_PROBLEM = "tuple('', '', '', '', toFloat64(0), '', '', '')"
_NO_AMOUNT = "toFloat64(0)"


def compile(rule: WorkflowRule, since: datetime | None = None, *, now: datetime | None = None,
            state: bool = False) -> CompiledRule:
    """The rule's query; `since` restricts it to the instances in scope of an incremental run. With
    `state`, it reads the rule's workflow_progress rows (brought up to date first by
    reconciler.workflow_progress.update) instead of every step event."""
    p, now = Params(), now or datetime.now(UTC)
    inner = _instances(p, rule, since, now, state=state)
    listed = _cases(p, rule, now)
    cases = ",\n            ".join(f"if({cond}, {tup}, {_NO_PROBLEM})" for cond, tup in listed)
    # the conditions, not notEmpty(problems), filter: the problem arrays are then built for the few
    # instances with a finding, not for every instance (1M instances, 10k stuck: ~15% of the run)
    any_problem = " OR ".join(f"({cond})" for cond, _ in listed) or "0"
    # Two passes over the events: the keys of the instances with a finding (ClickHouse computes only
    # the aggregates their conditions use), then every column of the finding rows for those keys
    # only. The latest trace ids and the systems of every instance cost more than finding the
    # problems (10M events: 0.87 s in one pass, 0.57 s in two).
    problem_keys = f"SELECT ck FROM (\n{inner}\n    )\n    WHERE in_scope AND ({any_problem})"
    rows = _instances(p, rule, since, now, only=problem_keys, state=state)
    sql = (
        "SELECT\n"
        "    problem.1 AS kind, problem.2 AS field, keys, systems, problem.3 AS left_value,\n"
        "    problem.4 AS right_value, problem.5 AS impact_amount, impact_currency,\n"
        "    left_trace_id, left_span_id, problem.7 AS right_trace_id, problem.8 AS right_span_id,\n"
        "    problem.6 AS detail\n"
        "FROM (\n"
        f"    SELECT map({p(rule.key_name)}, ck) AS keys, systems, {_currency(p, rule)} AS impact_currency,\n"
        "           last_trace AS left_trace_id, last_span AS left_span_id,\n"
        f"           arrayFilter(x -> x.1 != '', [\n            {cases}\n           ]) AS problems\n"
        f"    FROM (\n{rows}\n    )\n"
        f"    WHERE in_scope AND ({any_problem})\n"
        ")\nARRAY JOIN problems AS problem\n"
        f"{JOIN_SETTINGS}"
    )
    return CompiledRule(sql, p.values)


def scope(rule: WorkflowRule, since: datetime, now: datetime, *, state: bool = False) -> Scope:
    """The correlation keys an incremental run from `since` at `now` covers (the same as `compile`'s)."""
    p = Params()
    inner = _instances(p, rule, since, now, state=state)
    sql = f"SELECT map({p(rule.key_name)}, ck) AS keys FROM (\n{inner}\n) WHERE in_scope\n{JOIN_SETTINGS}"
    return Scope(sql, p.values)


# -- the event selections ------------------------------------------------------------------------------

def _keys(p: Params, item: StepKey) -> str:
    """The array of correlation (or link) keys one event yields."""
    value = f"keys[{p(item.key)}]"
    return f"JSONExtract({value}, 'Array(String)')" if item.many else f"[{value}]"


def _json(p: Params, field: str, type_: str) -> str:
    path = ", ".join(p(part) for part in field.split("."))
    return f"JSONExtract{type_}(data, {path})"


def _where(p: Params, item: Step | FailureEvent) -> str:
    """The item's type and filters. A filter field is the event's key of that name, else its data
    field, as text the way records store values (strings bare, numbers as JSON text, true/false);
    a JSON null counts as absent."""
    conds = [f"type = {p(item.event_type)}"]
    for f in item.filter:
        name, path = p(f.field), ", ".join(p(part) for part in f.field.split("."))
        data = (f"if(JSONType(data, {path}) = 'String', JSONExtractString(data, {path}), "
                f"JSONExtractRaw(data, {path}))")
        value = f"if(mapContains(keys, {name}), keys[{name}], {data})"
        present = f"(mapContains(keys, {name}) OR JSONType(data, {path}) != 'Null')"
        conds.append(filter_expr(p, f, value, present))
    return " AND ".join(conds)


def _extra_columns(p: Params, rule: WorkflowRule, source: int) -> tuple[str, str, str]:
    """amount, cur and msg of one source's rows: only the impact step and failures carry them."""
    n, impact = len(rule.steps), rule.impact
    mine = impact is not None and source < n and rule.steps[source].name == impact.step
    amount = _json(p, impact.field, "Float") if mine and impact else _NO_AMOUNT
    cur = _json(p, impact.currency_field, "String") if mine and impact and impact.currency_field else "''"
    failure = rule.failures.events[source - n] if source >= n else None
    msg = _json(p, failure.message_field, "String") if failure and failure.message_field else "''"
    return amount, cur, msg


def _extras(p: Params, rule: WorkflowRule, source: int) -> str:
    amount, cur, msg = _extra_columns(p, rule, source)
    return f"{amount} AS amount, {cur} AS cur, {msg} AS msg"


def _item(rule: WorkflowRule, source: int) -> Step | FailureEvent:
    n = len(rule.steps)
    return rule.steps[source] if source < n else rule.failures.events[source - n]


def _one_pass_sources(rule: WorkflowRule) -> list[int]:
    """The sources read together in one pass over events: keyed directly by one field, each of an
    event type no other of them has (so an event's type tells its source)."""
    direct = [s for s in range(len(rule.steps) + len(rule.failures.events))
              if _item(rule, s).via is None and not _item(rule, s).many]
    types = [_item(rule, s).event_type for s in direct]
    alone = [s for s in direct if types.count(_item(rule, s).event_type) == 1]
    return alone if len(alone) > 1 else []


def _one_pass(p: Params, rule: WorkflowRule, sources: list[int], since: str | None = None) -> str:
    """The events of several sources in one read, each row's source from its type and filters:
    three selections of 10M events cost ~10% more than one (bench reconcile, stuck instances)."""
    items = {s: _item(rule, s) for s in sources}

    def by_source(values: dict[int, str], default: str) -> str:
        if len(set(values.values())) == 1:
            return next(iter(values.values()))
        cases = ", ".join(f"s = {s}, {v}" for s, v in values.items() if v != default)
        return f"multiIf({cases}, {default})"

    source = "multiIf(" + ", ".join(f"{_where(p, item)}, {s}" for s, item in items.items()) + ", -1)"
    key = by_source({s: f"keys[{p(item.key)}]" for s, item in items.items()}, "''")
    extras = {s: _extra_columns(p, rule, s) for s in sources}
    amount, cur, msg = (by_source({s: e[i] for s, e in extras.items()}, default)
                        for i, default in enumerate((_NO_AMOUNT, "''", "''")))
    types = ", ".join(p(item.event_type) for item in items.values())
    return (f"SELECT {source} AS s, {key} AS ck, time, system, trace_id, span_id, received_at, "
            f"{amount} AS amount, {cur} AS cur, {msg} AS msg\n            FROM {_events(since)}"
            f"\n            WHERE type IN ({types}) AND s >= 0 AND ck != ''"
            + (f" AND received_at >= {since}" if since else ""))


def _selection(p: Params, rule: WorkflowRule, source: int, since: str | None = None) -> str:
    item = _item(rule, source)
    columns = f"time, system, trace_id, span_id, received_at, {_extras(p, rule, source)}"
    carried = "e.time, e.system, e.trace_id, e.span_id, e.received_at, e.amount, e.cur, e.msg"
    return step_events(p, rule, item, source, columns, carried, since)


def _events(since: str | None) -> str:
    """Every event once (FINAL), except when folding recent ones into kept progress: a redelivered
    event folds in as the same min and max, and FINAL over the whole table cost 0.2 s of a 0.21 s
    fold of 10k events into 10M. (A redelivery that changed the event's content folds in both
    versions until the next full run rebuilds the progress.)"""
    return "events" if since else "events FINAL"


def step_rows(p: Params, rule: WorkflowRule, since: str | None = None, sources: list[int] | None = None) -> str:
    """Every step and failure event of `rule` (or of `sources` alone) as (s, ck, time, system,
    trace_id, span_id, received_at, amount, cur, msg), stacked with UNION ALL; with `since`, only
    the rows it could add since then (see step_events)."""
    wanted = list(range(len(rule.steps) + len(rule.failures.events))) if sources is None else sources
    together = [s for s in _one_pass_sources(rule) if s in wanted]
    together = together if len(together) > 1 else []
    selections = [_one_pass(p, rule, together, since)] if together else []
    selections += [_selection(p, rule, s, since) for s in wanted if s not in together]
    return "\n            UNION ALL\n            ".join(selections)


def step_events(p: Params, rule: WorkflowRule, item: Step | FailureEvent, source: int, columns: str,
                carried: str, since: str | None = None) -> str:
    """One step's (or failure's) events as (s, ck, `columns`): keyed directly, or through `via` (an
    inner join on the linked step's events), where `carried` names `columns` on the joined side.
    With `since` (an SQL time), only the rows it could add since then: events received since, and
    for `via`, also older events that a link received since ties to an instance."""
    where, events = _where(p, item), _events(since)
    recent = f" AND received_at >= {since}" if since else ""
    if item.via is None and not item.many:  # one key per event: no ARRAY JOIN (~15% of a stuck run)
        return (f"SELECT {source} AS s, keys[{p(item.key)}] AS ck, {columns}\n            FROM {events}"
                f"\n            WHERE {where} AND ck != ''{recent}")
    if item.via is None:
        return (f"SELECT {source} AS s, ck, {columns}\n            FROM {events} ARRAY JOIN {_keys(p, item)}"
                f" AS ck\n            WHERE {where} AND ck != ''{recent}")
    linked = next(s for s in rule.steps if s.name == item.via.step)
    link = (f"SELECT DISTINCT keys[{p(item.via.key)}] AS lk, arrayJoin({_keys(p, linked)}) AS ck\n"
            f"                        FROM {events} WHERE {_where(p, linked)}")
    if since:
        link = (f"SELECT keys[{p(item.via.key)}] AS lk, arrayJoin({_keys(p, linked)}) AS ck,"
                " max(received_at) AS l_recv\n"
                f"                        FROM {events} WHERE {_where(p, linked)} GROUP BY lk, ck")
    return (
        f"SELECT {source} AS s, l.ck AS ck, {carried}\n"
        f"            FROM (SELECT arrayJoin({_keys(p, item)}) AS lk, {columns}\n"
        f"                  FROM {events} WHERE {where}) AS e\n"
        f"            INNER JOIN ({link}) AS l ON e.lk = l.lk\n"
        "            WHERE e.lk != '' AND l.ck != ''"
        + (f" AND (e.received_at >= {since} OR l.l_recv >= {since})" if since else "")
    )


def _error_spans(rule: WorkflowRule, join: str = "LEFT") -> str:
    if not rule.failures.error_spans:
        return ""
    return (
        f"\n        {join} JOIN (\n"
        "            SELECT TraceId AS tid, argMax(SpanId, Timestamp) AS e_span,\n"
        "                   argMax(SpanName, Timestamp) AS e_name,\n"
        "                   argMax(StatusMessage, Timestamp) AS e_msg, max(Timestamp) AS e_ts, 1 AS e_present\n"
        "            FROM otel_traces WHERE StatusCode = 'Error' GROUP BY TraceId\n"
        "        ) AS e ON h.trace_id = e.tid"
    )


# -- per instance ----------------------------------------------------------------------------------------

def _aggregates(rule: WorkflowRule) -> list[str]:
    n = len(rule.steps)
    cols = []
    for i in range(n):
        cols.append(f"countIf(s = {i}) > 0 AS has{i}, minIf(time, s = {i}) AS first{i}, "
                    f"maxIf(time, s = {i}) AS last{i}")
    for j in range(len(rule.failures.events)):
        f = n + j
        cols.append(f"countIf(s = {f}) > 0 AS fhas{j}, maxIf(time, s = {f}) AS ftime{j}, "
                    f"argMaxIf(trace_id, time, s = {f}) AS ftrace{j}, argMaxIf(span_id, time, s = {f}) AS fspan{j}, "
                    f"argMaxIf(msg, time, s = {f}) AS fmsg{j}")
    if rule.failures.error_spans:
        # only the traces of events keyed directly to the instance: an event reached via another
        # step may serve many instances (a client's customer record), and so may its trace
        direct = ", ".join(str(i) for i, step in enumerate(rule.steps) if step.via is None)
        on = f"e_present AND s IN ({direct}) AND trace_id != ''"
        cols.append(f"countIf({on}) > 0 AS ehas, argMaxIf(e_name, e_ts, {on}) AS ename, "
                    f"argMaxIf(e_msg, e_ts, {on}) AS emsg, argMaxIf(trace_id, e_ts, {on}) AS etrace, "
                    f"argMaxIf(e_span, e_ts, {on}) AS espan, argMaxIf(s, e_ts, {on}) AS estep, "
                    f"maxIf(e_ts, {on}) AS ets")
    cols += [f"argMaxIf(trace_id, time, s < {n}) AS last_trace, argMaxIf(span_id, time, s < {n}) AS last_span",
             f"arraySort(groupUniqArrayIf(system, s < {n})) AS systems, max(received_at) AS recv",
             f"argMinIf(amount, time, s = {_impact_step(rule)}) AS amount, maxIf(cur, cur != '') AS cur"]
    return cols


def _impact_step(rule: WorkflowRule) -> int:
    names = [s.name for s in rule.steps]
    return names.index(rule.impact.step) if rule.impact else 0


def _derived(p: Params, rule: WorkflowRule) -> list[str]:
    """T{i} (the step's clock), done{i}, arrive{i} and due{i} (the SLA deadline) per step; complete."""
    cols = []
    for i, step in enumerate(rule.steps):
        cols.append(f"{'last' if step.repeatable else 'first'}{i} AS T{i}")
        if i == 0:
            cols.append("has0 AS done0, first0 AS arrive0")
            continue
        a = rule.anchor(i)
        after_repeat = rule.steps[a].repeatable
        done = f"has{i} AND last{i} >= T{a}" if after_repeat else f"has{i}"
        cols.append(f"{done} AS done{i}, {'last' if after_repeat else 'T'}{i} AS arrive{i}")
        if step.sla:
            cols.append(f"T{a} + toIntervalSecond({p(int(step.sla.within.total_seconds()), 'Int64')}) AS due{i}")
    required = [f"done{i}" for i, s in enumerate(rule.steps) if not s.optional]
    cols.append(f"{' AND '.join(required)} AS complete")
    return cols


def _in_scope(p: Params, rule: WorkflowRule, since: datetime | None, now: str) -> str:
    if since is None:
        return "1"
    at = p.named("since", since, DATETIME)
    conds = [f"recv >= {at}"]
    if rule.failures.error_spans:
        conds.append(f"ets >= {at}")
    conds += [f"(due{i} >= {at} AND due{i} <= {now})" for i, s in enumerate(rule.steps) if s.sla]
    return " OR ".join(conds)


def _instances(p: Params, rule: WorkflowRule, since: datetime | None, now: datetime, only: str = "",
               state: bool = False) -> str:
    """One row per started instance: the per-step columns, `complete` and `in_scope`; with `only`
    (a query of correlation keys), the instances of those keys alone. With `state`, grouped from the
    rule's workflow_progress rows instead of its events."""
    at = p.named("now", now, DATETIME)
    per_instance = _from_state(p, rule, only) if state else _from_events(p, rule, only)
    return (
        f"    SELECT *, {', '.join(_derived(p, rule))},\n"
        f"           {_in_scope(p, rule, since, at)} AS in_scope\n"
        f"    FROM (\n{per_instance}\n    )"
    )


def _from_events(p: Params, rule: WorkflowRule, only: str) -> str:
    aggregates = ",\n               ".join(_aggregates(rule))
    return (
        f"        SELECT ck, {aggregates}\n"
        f"        FROM (\n            {step_rows(p, rule)}\n        ) AS h{_error_spans(rule)}\n"
        + (f"        WHERE ck IN ({only})\n" if only else "")
        + "        GROUP BY ck\n        HAVING has0"
    )


# -- per instance, from the state a run keeps (reconciler.workflow_progress) ------------------------------

def progress_definition(rule: WorkflowRule) -> str:
    """A short hash of the rule: progress rows are read only by the rule they were written for."""
    return hashlib.sha256(json.dumps(rule.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


# A full build writes its generation as one part, sorted, up to this many rows (~1 per instance and
# step; ~125 bytes each in memory while the part is written): its inserts used to cut it into parts
# of ~1M rows, and every run read those slower. At 10M events (3M rows) the stuck rule's finding rows
# took 0.17-0.19 s from one part against 0.31-0.39 s from three, deciding which instances 0.13-0.15 s
# against 0.16-0.19 s, and the same after folds added small parts beside it; the build took ~0.9 s
# more (3.7-4.0 s against 2.5-3.0 s) and its peak memory ~70 MB more (2.7 GB either way).
# The ORDER BY sorts on all cores rather than in the part writer; a bigger generation gets sorted
# parts of this size.
BUILD_PART_ROWS = 4_000_000


def progress_sql(rule: WorkflowRule, generation: int, since: datetime | None = None) -> CompiledRule:
    """INSERT ... SELECT of the rule's events into generation `generation` of workflow_progress: all
    of them, or with `since` those received since then (and older ones a link received since ties
    to an instance). Folding a row in twice changes nothing: every column is a min or a max."""
    p = Params()
    at = p.named("since", since, DATETIME) if since else None
    rows = step_rows(p, rule, at)
    order = "" if since else "ORDER BY ck, s, system\n"
    squash = "" if since else f", min_insert_block_size_rows = {BUILD_PART_ROWS}, min_insert_block_size_bytes = 0"
    sql = (
        "INSERT INTO workflow_progress (workflow, definition, generation, ck, s, system, first_time, last_time,\n"
        "                               received, latest, first_amount, currency)\n"
        f"SELECT {p(rule.name)}, {p(progress_definition(rule))}, {p(generation, 'UInt64')}, ck, s, system,\n"
        "       min(time), max(time), max(received_at),\n"
        "       tuple(max(time), argMax(trace_id, time), argMax(span_id, time), argMax(msg, time)),\n"
        "       tuple(min(time), argMin(amount, time)), max(cur)\n"
        f"FROM (\n            {rows}\n        )\n"
        f"GROUP BY ck, s, system\n{order}"
        # the rows are grouped already: merging the block on insert again took 5.0 s instead of 2.2 s
        # for 10M events (3M rows); argMax per value, not max of one tuple, 1.5 s instead of 5.7 s
        f"{JOIN_SETTINGS}, optimize_on_insert = 0{squash}"
    )
    return CompiledRule(sql, p.values)


def _progress(p: Params, rule: WorkflowRule) -> str:
    """The WHERE of the rule's rows in its current generation (the newest listed one)."""
    w, d = p(rule.name), p(progress_definition(rule))
    return (f"workflow = {w} AND definition = {d} AND generation = (SELECT max(generation) "
            f"FROM workflow_progress_updates WHERE workflow = {w} AND definition = {d})")


def _state_aggregates(rule: WorkflowRule) -> list[str]:
    """_aggregates' columns from progress rows (one per key, source and system)."""
    n = len(rule.steps)
    cols = [f"countIf(s = {i}) > 0 AS has{i}, minIf(first_time, s = {i}) AS first{i}, "
            f"maxIf(last_time, s = {i}) AS last{i}" for i in range(n)]
    for j in range(len(rule.failures.events)):
        f = n + j
        cols.append(f"countIf(s = {f}) > 0 AS fhas{j}, maxIf(last_time, s = {f}) AS ftime{j}, "
                    f"maxIf(latest, s = {f}) AS flatest{j}, flatest{j}.2 AS ftrace{j}, flatest{j}.3 AS fspan{j}, "
                    f"flatest{j}.4 AS fmsg{j}")
    cols += [f"maxIf(latest, s < {n}) AS latest_step, latest_step.2 AS last_trace, latest_step.3 AS last_span",
             f"arraySort(groupUniqArrayIf(system, s < {n})) AS systems, max(received) AS recv",
             f"minIf(first_amount, s = {_impact_step(rule)}).2 AS amount, maxIf(currency, currency != '') AS cur"]
    return cols


def _state_error_spans(p: Params, rule: WorkflowRule) -> str:
    """The error-span columns of _aggregates per instance, from events: a span may fail after the
    events of its trace were folded into the state, so this join is never part of it. Only the
    events whose trace has an error span are joined."""
    if not rule.failures.error_spans:
        return ""
    direct = [i for i, step in enumerate(rule.steps) if step.via is None]
    return (
        " AS st\n        LEFT JOIN (\n"
        "        SELECT ck, 1 AS ehas, argMax(e_name, e_ts) AS ename, argMax(e_msg, e_ts) AS emsg,\n"
        "               argMax(trace_id, e_ts) AS etrace, argMax(e_span, e_ts) AS espan, argMax(s, e_ts) AS estep,\n"
        "               max(e_ts) AS ets\n"
        f"        FROM (SELECT * FROM (\n            {step_rows(p, rule, sources=direct)}\n        )\n"
        "              WHERE trace_id != ''\n"
        "                AND trace_id IN (SELECT TraceId FROM otel_traces WHERE StatusCode = 'Error')) AS h"
        f"{_error_spans(rule, 'INNER')}\n"
        "        GROUP BY ck\n"
        "        ) AS er USING (ck)"
    )


def _from_state(p: Params, rule: WorkflowRule, only: str) -> str:
    aggregates = ",\n               ".join(_state_aggregates(rule))
    grouped = (
        f"        SELECT ck, {aggregates}\n"
        f"        FROM workflow_progress\n"
        f"        WHERE {_progress(p, rule)}"
        + (f"\n          AND ck IN ({only})" if only else "")
        + "\n        GROUP BY ck\n        HAVING has0"
    )
    errors = _state_error_spans(p, rule)
    return f"        SELECT * FROM (\n{grouped}\n        ){errors}" if errors else grouped


# -- findings ------------------------------------------------------------------------------------------

def _currency(p: Params, rule: WorkflowRule) -> str:
    if rule.impact is None:
        return "''"
    return p(rule.impact.currency) if rule.impact.currency else "cur"


def _tuple(kind: str, field: str, left: str, right: str, detail: str, trace: str = "''", span: str = "''",
           impact: str = "amount") -> str:
    return f"tuple('{kind}', {field}, {left}, {right}, toFloat64({impact}), {detail}, {trace}, {span})"


def _cases(p: Params, rule: WorkflowRule, now: datetime) -> list[tuple[str, str]]:
    impact = "amount" if rule.impact else "0"
    who = f"{p(rule.key_name)}, ' ', ck"
    cases = []
    for i, step in enumerate(rule.steps):
        if step.sla is None:
            continue
        a = rule.anchor(i)
        name, anchor, due = p(step.name), p(rule.steps[a].name), f"toString(due{i})"
        within = p(_duration(int(step.sla.within.total_seconds())))
        earlier = [f"done{j}" for j in range(1, i) if not rule.steps[j].optional]
        if not step.optional:
            conds = [f"NOT done{i}", *dict.fromkeys([f"done{a}", *earlier])]
            stuck = " AND ".join([*conds, f"due{i} < {p.named('now', now, DATETIME)}"])
            detail = (f"concat({who}, ': step ', {name}, ' (', {p(step.event_type)}, ') overdue since ', {due},"
                      f" ' (', {within}, ' after ', {anchor}, ')')")
            cases.append((stuck, _tuple("stuck", name, due, "''", detail, impact=impact)))
        late = f"done{i} AND done{a} AND arrive{i} > due{i}"
        detail = (f"concat({who}, ': step ', {name}, ' arrived ', toString(arrive{i}), ', ',"
                  f" toString(dateDiff('second', due{i}, arrive{i})), ' s after its deadline (', {within},"
                  f" ' after ', {anchor}, ')')")
        cases.append((late, _tuple("sla_breach", name, due, f"toString(arrive{i})", detail, impact=impact)))
    for j, failure in enumerate(rule.failures.events):
        name = p(failure.name)
        detail = (f"concat({who}, ': ', {name}, ' (', {p(failure.event_type)}, ') at ', toString(ftime{j}),"
                  f" if(fmsg{j} != '', concat(': ', fmsg{j}), ''))")
        cond = f"fhas{j} AND ftime{j} >= first0 AND NOT complete"
        cases.append((cond, _tuple("failed_step", name, "''", f"fmsg{j}", detail, f"ftrace{j}", f"fspan{j}",
                                   impact)))
    if rule.failures.error_spans:
        steps = p([s.name for s in rule.steps], "Array(String)")
        detail = f"concat({who}, ': error span ', ename, ' in the trace of step ', {steps}[estep + 1], ': ', emsg)"
        found = _tuple("failed_step", "ename", f"{steps}[estep + 1]", "emsg", detail, "etrace", "espan", impact)
        cases.append(("ehas AND ets >= first0 AND NOT complete", found))
    return cases


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
