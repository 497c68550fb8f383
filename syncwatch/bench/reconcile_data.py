"""Generated benchmark data, made inside ClickHouse (INSERT ... SELECT FROM numbers(N)), and its ground truth.

Record key n gets a bucket `cityHash64(n) % 1000`; the bucket alone decides what was injected, so the
expected findings are a query over numbers(N) with the same expression, never a list kept in Python:

    bucket   0-9    the ERP lacks the project          -> missing_right
    bucket  10-19   the PSA lacks the project          -> missing_left
    bucket  20-23   ERP budget 5% higher               -> mismatch budget   (tolerance is 1%)
    bucket  24-26   ERP status ON_HOLD                 -> mismatch status
    bucket  27-29   ERP legal entity another company   -> mismatch legal_entity
    bucket  30-39   tolerated: budget 0.5% higher, legal entity upper case with a trailing space
    otherwise       equal up to tolerances (ERP status codes are upper case, PSA 'lost' is ERP 'CANCELLED')

Workflow events: instance i has a.start, eight a.step2 and a.end, an hour apart, two days ago; when
`cityHash64(i) % 100 = 0` its a.end never came (stuck).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from syncwatch import schema
from syncwatch.store import Store

# The shipped rule rules/packs/professional_services/psa_vs_erp_projects.yaml, copied so that the
# generator and its ground truth cannot drift from the rule they are measured with.
RULE_YAML = """\
name: psa_vs_erp_projects
kind: reconcile
severity: high
key_name: project_id
key_normalize: [trim, upper]
left: {system: psa, entity: project}
right: {system: erp, entity: project}
missing: both
grace: 4h
compare:
  - field: status
    type: enum
    tolerance: {case_insensitive: true}
    value_map: {lost: cancelled}
  - field: budget
    type: decimal
    tolerance: {relative: 1%}
  - field: legal_entity
    type: string
    tolerance: {case_insensitive: true, ignore_whitespace: true}
impact: {field: budget, currency_field: currency}
"""
COMPARED = ("budget", "status", "legal_entity")

_BUCKET = "cityHash64(number) % 1000"
_CENTS = "(100000 + number % 9900000)"  # budgets 1,000.00 .. 99,999.99
_ENTITIES = "['Acme UK Ltd', 'Acme GmbH', 'Acme Inc'][number % 3 + 1]"
_SIDES = {
    "psa": {
        "absent": "b BETWEEN 10 AND 19",
        "cents": _CENTS,
        "status": "['active', 'closed', 'lost', 'planned'][number % 4 + 1]",
        "legal_entity": _ENTITIES,
    },
    "erp": {
        "absent": "b < 10",
        "cents": f"multiIf(b BETWEEN 20 AND 23, intDiv({_CENTS} * 105, 100), "
        f"b BETWEEN 30 AND 39, {_CENTS} + intDiv({_CENTS} * 5, 1000), {_CENTS})",
        "status": "if(b BETWEEN 24 AND 26, 'ON_HOLD', ['ACTIVE', 'CLOSED', 'CANCELLED', 'PLANNED'][number % 4 + 1])",
        "legal_entity": f"multiIf(b BETWEEN 27 AND 29, 'Acme Holdings BV', b BETWEEN 30 AND 39, "
        f"concat(upper({_ENTITIES}), ' '), {_ENTITIES})",
    },
}

EXPECTED_SQL = f"""
SELECT multiIf(b < 10, 'missing_right', b < 20, 'missing_left', 'mismatch') AS kind,
       multiIf(b < 20, '', b < 24, 'budget', b < 27, 'status', 'legal_entity') AS field,
       concat('P-', toString(number)) AS key
FROM numbers({{n:UInt64}})
WHERE ({_BUCKET} AS b) < 30
"""

# records keep trace and span ids as 24 bytes (migration 0011)
RECORD_COLUMNS = "system, entity, key, version, updated_at, deleted, fields, ids, received_at"


def side_sql(system: str) -> str:
    """INSERT of one system's N project records (parameters n, at).

    The base is stored at `at` too, not when the benchmark writes it: it stands for records a firm
    stored long before the runs it times, so the record mirror's update before an incremental run
    reads only what changed since (it reaches back INGEST_LAG past its last update)."""
    s = _SIDES[system]
    budget = "concat(toString(intDiv(c, 100)), '.', leftPad(toString(c % 100), 2, '0'))"
    return f"""
INSERT INTO records ({RECORD_COLUMNS}, stored_at)
SELECT '{system}', 'project', concat('P-', toString(number)), 1, {{at:DateTime64(6, 'UTC')}}, 0,
       map('budget', {budget}, 'status', {s["status"]}, 'legal_entity', {s["legal_entity"]},
           'currency', ['EUR', 'GBP', 'USD'][number % 3 + 1]),
       concat(sipHash128(number, '{system}'), substring(sipHash128(number, '{system}', 'span'), 1, 8)),
       {{at:DateTime64(6, 'UTC')}}, {{at:DateTime64(6, 'UTC')}}
FROM (SELECT number, {_BUCKET} AS b, {s["cents"]} AS c FROM numbers({{n:UInt64}}))
WHERE NOT ({s["absent"]})
"""


def generate_records(store: Store, n: int, at: datetime) -> None:
    """Both systems' snapshots of n projects (less the injected gaps), merged to one part per side."""
    for system in _SIDES:
        store.command(side_sql(system), {"n": n, "at": at})
    schema.apply_ddl(store, "OPTIMIZE TABLE records FINAL")


def expected_counts(store: Store, n: int) -> dict[str, int]:
    rows = store.query(f"SELECT if(kind = 'mismatch', field, kind), count() FROM ({EXPECTED_SQL}) GROUP BY 1", {"n": n})
    return {name: count for name, count in rows}


CHANGE_SQL = f"""
INSERT INTO records ({RECORD_COLUMNS})
SELECT system, entity, key, version + 1, {{at:DateTime64(6, 'UTC')}}, deleted,
       mapUpdate(fields, map('budget', '1.00')), ids, {{at:DateTime64(6, 'UTC')}}
FROM records FINAL
WHERE system = 'psa' AND entity = 'project' AND deleted = 0 AND cityHash64(key, 'change') % {{step:UInt64}} = 0
LIMIT {{changes:UInt64}}
"""


def change_records(store: Store, n: int, changes: int, at: datetime) -> int:
    """New versions of `changes` PSA projects with a budget of 1.00 (a mismatch unless the ERP lacks it)."""
    step = max(1, n // (changes * 2))  # twice as many candidates as needed, so LIMIT always fills
    store.command(CHANGE_SQL, {"at": at, "step": step, "changes": changes})
    return int(
        store.query("SELECT count() FROM records WHERE received_at >= {at:DateTime64(6, 'UTC')}", {"at": at})[0][0]
    )


EXPORT_SQL = """
SELECT key, fields['budget'] AS budget, fields['status'] AS status, fields['legal_entity'] AS legal_entity,
       fields['currency'] AS currency
FROM records FINAL
WHERE system = {system:String} AND entity = 'project' AND deleted = 0
"""

# -- workflow events ---------------------------------------------------------------------------------

STEPS_PER_INSTANCE = 10
STUCK = "cityHash64({}) % 100 = 0"  # of the instance number
EVENTS_SQL = f"""
INSERT INTO events (type, source, id, system, specversion, time, subject, datacontenttype, dataschema,
                    trace_id, span_id, keys, data, extensions, received_at)
SELECT multiIf(step = 0, 'a.start', step = {STEPS_PER_INSTANCE - 1}, 'a.end', 'a.step2'), '/bench/a',
       toString(number), 'bench', '1.0', {{at:DateTime64(6, 'UTC')}} + toIntervalSecond(step * 3600),
       '', 'application/json', '', lower(hex(sipHash128(instance))), lower(hex(cityHash64(number))),
       map('instance_id', concat('I-', toString(instance))), '{{}}', map(), {{received:DateTime64(6, 'UTC')}}
FROM (SELECT number, intDiv(number, {STEPS_PER_INSTANCE}) AS instance, number % {STEPS_PER_INSTANCE} AS step
      FROM numbers({{offset:UInt64}}, {{n:UInt64}}))
WHERE NOT (step = {STEPS_PER_INSTANCE - 1} AND {STUCK.format("instance")})
"""
EXPECTED_STUCK_SQL = f"""
SELECT concat('I-', toString(number)) AS instance FROM numbers({{instances:UInt64}})
WHERE {STUCK.format("number")}
"""
# The workflow rule the benchmark compiles and runs: a.end is due 12 hours after a.start, and the
# eight a.step2 events in between are a repeatable step (so all 10 events of an instance are read).
WORKFLOW_YAML = """\
name: bench_stuck
kind: workflow
severity: high
key_name: instance_id
steps:
  - {name: start, event_type: a.start, key: instance_id}
  - {name: work, event_type: a.step2, key: instance_id, repeatable: true}
  - {name: end, event_type: a.end, key: instance_id, sla: {within: 12h, after: start}}
"""
# KPIs of that workflow, as the dashboards ask for them (timed per request, p95 over repeats).
KPIS_YAML = """\
- name: bench_cycle_time
  kind: kpi
  unit: hours
  duration: {workflow: bench_stuck, from_step: start, to_step: end, stats: [p50, p90, mean]}
- name: bench_completion
  kind: kpi
  unit: ratio
  completion_rate: {workflow: bench_stuck}
- name: bench_sla_compliance
  kind: kpi
  unit: ratio
  sla_compliance: {workflow: bench_stuck}
"""
# The same question hand-written, as the floor the compiled rule is compared with: one pass,
# grouped by the correlation key, the first time of each step per instance.
STUCK_SQL = """
SELECT instance FROM (
    SELECT keys['instance_id'] AS instance, minIf(time, type = 'a.start') AS started,
           countIf(type = 'a.start') AS starts, countIf(type = 'a.end') AS ends
    FROM events {final}
    WHERE type IN ('a.start', 'a.step2', 'a.end')
    GROUP BY instance
)
WHERE starts > 0 AND ends = 0 AND started < {cutoff:DateTime64(6, 'UTC')}
"""


def generate_events(store: Store, n_events: int, at: datetime) -> int:
    store.command(EVENTS_SQL, {"n": n_events, "at": at, "offset": 0, "received": at})
    schema.apply_ddl(store, "OPTIMIZE TABLE events FINAL")
    return int(store.query("SELECT count() FROM events")[0][0])


def more_events(store: Store, after: int, n_events: int, at: datetime, received: datetime) -> int:
    """`n_events` events of new instances (numbered after the first `after` events) starting at `at`:
    none is due yet when `at` is less than the SLA (12 hours) ago, so the stuck set stays the same."""
    store.command(EVENTS_SQL, {"n": n_events, "at": at, "offset": after, "received": received})
    return int(store.query("SELECT count() FROM events WHERE received_at = {r:DateTime64(6, 'UTC')}",
                           {"r": received})[0][0])


def stuck_cutoff(now: datetime) -> datetime:
    """An instance is stuck when a.start is older than the SLA of a.end (12 hours) and a.end never came."""
    return now - timedelta(hours=12)
