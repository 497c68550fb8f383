"""Findings: apply one rule run's candidates to the findings table, and the lifecycle actions.

The whole state change of a run is one ``INSERT ... SELECT`` inside ClickHouse: the run's
candidates FULL JOIN the rule's current findings (``FINAL``), and every fingerprint that changes
gets a new row version (the table is a ReplacingMergeTree on ``updated_at``). Nothing is pulled
into Python but the counts.

Lifecycle (``status``)::

    (new) --detected--> open --acknowledge--> acknowledged
    open / acknowledged / silenced --not detected (in scope)--> resolved (resolution 'auto')
    resolved --detected again--> open (reopened; 'silenced' while a silence is still running)
    silenced --detected after silenced_until--> open (transition 'unsilenced')

A candidate is one row of the rule's SELECT with the columns of ``CANDIDATE_COLUMNS``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from reconciler.rule_locks import holding
from syncwatch.errors import SyncwatchError
from syncwatch.store import Store

CANDIDATE_COLUMNS = (
    "kind", "field", "keys", "systems", "left_value", "right_value", "impact_amount", "impact_currency",
    "left_trace_id", "left_span_id", "right_trace_id", "right_span_id", "detail",
)
KINDS = frozenset({"missing_left", "missing_right", "mismatch", "aggregate_mismatch", "stuck", "sla_breach",
                   "failed_step"})
STATUSES = ("open", "acknowledged", "silenced", "resolved")
# Transitions after which a notification is due (when the new status is 'open'); alert sinks
# read `SELECT ... FROM findings WHERE run_id = ... AND transition IN ...`.
ALERTING_TRANSITIONS = ("opened", "reopened", "unsilenced")

# Written in the INSERT's column order; every SELECT below produces exactly these, in order.
FINDING_COLUMNS = (
    "fingerprint", "rule", "rule_version", "kind", "field", "keys", "systems", "left_value", "right_value",
    "severity", "impact_amount", "impact_currency", "status", "assignee", "silenced_until", "first_seen",
    "last_seen", "resolved_at", "left_trace_id", "left_span_id", "right_trace_id", "right_span_id", "detail",
    "updated_at", "run_id", "transition", "resolution", "resolution_reason", "reopened_count", "acknowledged_at",
)

# How long a lifecycle action waits for a run of the same rule to finish writing (rule_locks).
ACTION_LOCK_TIMEOUT_SECONDS = 30.0

# Our parameters share the namespace of the rule's parameters; the prefix keeps them apart.
_PREFIX = "sw_"
_NOW = "{sw_now:DateTime64(6, 'UTC')}"


def key_identity_sql(keys: str) -> str:
    """A canonical text of a keys map, independent of the order its pairs were written in.

    toString of a tuple quotes and escapes every string, so no value can imitate a separator.
    """
    return f"toString(arraySort(arrayZip(mapKeys({keys}), mapValues({keys}))))"


def fingerprint_sql(rule: str, kind: str, field: str, keys: str) -> str:
    """SQL for the stable fingerprint: rule + sorted keys + kind + field, SHA-256 in hex."""
    return f"lower(hex(SHA256(toString(tuple({rule}, {kind}, {field}, {key_identity_sql(keys)})))))"


def effective_status_sql(now: str = "now64(6)") -> str:
    """Status as readers should count it: an expired silence is open even before the next run."""
    return f"if(status = 'silenced' AND ifNull(silenced_until <= {now}, 1), 'open', status)"


class FindingError(SyncwatchError):
    """A finding does not exist, or a lifecycle action does not apply to its status."""


class FindingNotFoundError(FindingError):
    """No finding has the fingerprint."""


@dataclass(frozen=True)
class Scope:
    """The keys an incremental run looked at; findings outside it are neither re-checked nor resolved.

    ``sql`` selects one column ``keys`` (Map(String, String)), with its bound ``parameters``.
    With ``key_names``, a finding is in scope when its keys restricted to those names are a
    scope row (e.g. scope on project_id covers every period of an aggregate rule's findings);
    without, its keys must equal a scope row. A full run has no scope (``None``).
    """

    sql: str
    parameters: Mapping[str, Any]
    key_names: tuple[str, ...] | None = None

    @classmethod
    def of_keys(cls, keys: Iterable[Mapping[str, str]], key_names: tuple[str, ...] | None = None) -> Scope:
        # Map parameters do not bind through every backend (chDB refuses them); JSON text does.
        texts = [json.dumps(dict(k), ensure_ascii=False) for k in keys]
        return cls("SELECT arrayJoin(arrayMap(j -> JSONExtract(j, 'Map(String, String)'), "
                   "{keys_json:Array(String)})) AS keys", {"keys_json": texts}, key_names)

    def namespaced(self) -> tuple[str, dict[str, Any]]:
        """SQL and parameters renamed under sw_scope_, so they cannot clash with the rule's own."""
        sql, params = self.sql, {}
        for name, value in self.parameters.items():
            sql = re.sub(r"\{\s*" + re.escape(name) + r"\s*:", "{sw_scope_" + name + ":", sql)
            params["sw_scope_" + name] = value
        if self.key_names is not None:
            params["sw_scope_names"] = list(self.key_names)
        return _strip(sql), params

    def contains_sql(self, keys: str) -> str:
        """SQL: is the finding whose keys map is ``keys`` in this scope?"""
        sql, _ = self.namespaced()
        if self.key_names is not None:
            keys = f"mapFilter((k, v) -> has({{sw_scope_names:Array(String)}}, k), {keys})"
        return f"{key_identity_sql(keys)} IN (SELECT {key_identity_sql('keys')} FROM ({sql}))"


@dataclass(frozen=True)
class ApplyResult:
    """What one run did. ``updated`` counts re-detections, including silences that expired."""

    opened: int = 0
    updated: int = 0
    resolved: int = 0
    reopened: int = 0
    rows_scanned: int | None = None  # from the query summary; None when the backend reports none


def apply_run(store: Store, rule: str, rule_version: str, severity: str, sql: str,
              parameters: Mapping[str, Any] | None = None, *, run_id: str, scope: Scope | None = None,
              now: datetime | None = None, settings: Mapping[str, int | str] | None = None) -> ApplyResult:
    """Apply the candidates of one run of ``rule`` (its SELECT ``sql``) to the findings table.

    Idempotent per state: running the same candidates twice changes only last_seen. An
    incremental run (with ``scope``) and a full run leave the keys in scope in the same state.
    ``settings`` (e.g. max_execution_time) are appended to the statement; names and values
    must be plain identifiers and numbers.
    """
    params = _merge(parameters)
    if scope is not None:
        params.update(scope.namespaced()[1])
    params.update(sw_rule=rule, sw_version=rule_version, sw_severity=severity, sw_run=run_id,
                  sw_now=_utc(now))
    # The rule's lock spans the read of the current findings and the insert of their new versions,
    # so a lifecycle action cannot slip in between and be overwritten (reconciler/rule_locks.py).
    with holding(store, rule):
        summary = store.command(_apply_sql(_strip(sql), scope, settings), params)
    return replace(counts(store, rule, run_id), rows_scanned=_rows_read(summary))


def counts(store: Store, rule: str, run_id: str) -> ApplyResult:
    """The transitions one run wrote (its rows are the newest versions, so they are still there)."""
    rows = store.query("SELECT transition, count() FROM findings WHERE rule = {r:String} AND run_id = {id:String} "
                       "GROUP BY transition", {"r": rule, "id": run_id})
    by = dict(rows)
    return ApplyResult(opened=by.get("opened", 0), updated=by.get("updated", 0) + by.get("unsilenced", 0),
                       resolved=by.get("resolved", 0), reopened=by.get("reopened", 0))


def candidate_columns(store: Store, sql: str, parameters: Mapping[str, Any] | None = None) -> list[str]:
    """The column names a candidate SELECT returns, without running it (for checks and errors)."""
    return [row[0] for row in store.query(f"DESCRIBE TABLE ({_strip(sql)})", dict(parameters or {}))]


def _apply_sql(sql: str, scope: Scope | None, settings: Mapping[str, int | str] | None) -> str:
    in_scope = "1" if scope is None else scope.contains_sql("f.keys")
    return f"""INSERT INTO findings ({', '.join(FINDING_COLUMNS)})
SELECT
    if(c.present, c.fp, f.fingerprint),
    {{sw_rule:String}},
    if(c.present, {{sw_version:String}}, f.rule_version),
    if(c.present, c.c_kind, f.kind),
    if(c.present, c.c_field, f.field),
    if(c.present, c.c_keys, f.keys),
    if(c.present, c.c_systems, f.systems),
    if(c.present, c.c_left_value, f.left_value),
    if(c.present, c.c_right_value, f.right_value),
    if(c.present, {{sw_severity:String}}, f.severity),
    if(c.present, c.c_impact, f.impact_amount),
    if(c.present, c.c_currency, f.impact_currency),
    multiIf(o_transition = 'resolved', 'resolved', o_transition = 'updated', f.status,
            ifNull(f.silenced_until > {_NOW}, 0), 'silenced', 'open'),
    f.assignee,
    if(o_transition = 'unsilenced', NULL, f.silenced_until),
    if(f.present, f.first_seen, {_NOW}),
    if(c.present, {_NOW}, f.last_seen),
    multiIf(o_transition = 'resolved', {_NOW}, c.present, NULL, f.resolved_at),
    if(c.present, c.c_left_trace_id, f.left_trace_id),
    if(c.present, c.c_left_span_id, f.left_span_id),
    if(c.present, c.c_right_trace_id, f.right_trace_id),
    if(c.present, c.c_right_span_id, f.right_span_id),
    if(c.present, c.c_detail, f.detail),
    -- a version must sort after the one it replaces even if this host's clock is behind
    greatest({_NOW}, f.updated_at + toIntervalMicrosecond(1)),
    {{sw_run:String}},
    multiIf(c.present AND NOT f.present, 'opened',
            c.present AND f.status = 'resolved', 'reopened',
            c.present AND f.status = 'silenced' AND ifNull(f.silenced_until <= {_NOW}, 1), 'unsilenced',
            c.present, 'updated',
            f.status != 'resolved' AND {in_scope}, 'resolved',
            '') AS o_transition,
    multiIf(o_transition = 'resolved', 'auto', c.present, '', f.resolution),
    multiIf(o_transition = 'resolved', 'no longer detected', c.present, '', f.resolution_reason),
    f.reopened_count + (o_transition = 'reopened'),
    if(o_transition IN ('opened', 'reopened'), NULL, f.acknowledged_at)
FROM ({_candidates_sql(sql)}) AS c
FULL OUTER JOIN (
    SELECT 1 AS present, *
    FROM findings FINAL WHERE rule = {{sw_rule:String}}
) AS f ON c.fp = f.fingerprint
WHERE o_transition != ''
SETTINGS {_settings_sql({"join_use_nulls": 0, **(settings or {})})}"""


def _candidates_sql(sql: str) -> str:
    # Casts to the findings column types so that if(c, candidate, finding) has one type. A rule
    # that yields the same problem twice counts once (LIMIT 1 BY).
    return f"""SELECT 1 AS present,
        {fingerprint_sql('{sw_rule:String}', 'kind', 'field', 'keys')} AS fp,
        CAST(kind, 'String') AS c_kind, CAST(field, 'String') AS c_field,
        CAST(keys, 'Map(LowCardinality(String), String)') AS c_keys,
        CAST(systems, 'Array(LowCardinality(String))') AS c_systems,
        CAST(left_value, 'String') AS c_left_value, CAST(right_value, 'String') AS c_right_value,
        toDecimal64(ifNotFinite(toFloat64(impact_amount), 0), 2) AS c_impact,
        CAST(impact_currency, 'String') AS c_currency,
        CAST(left_trace_id, 'String') AS c_left_trace_id, CAST(left_span_id, 'String') AS c_left_span_id,
        CAST(right_trace_id, 'String') AS c_right_trace_id, CAST(right_span_id, 'String') AS c_right_span_id,
        CAST(detail, 'String') AS c_detail
    FROM ({sql})
    -- a compiler bug must fail the run loudly, not store findings nobody can route
    WHERE throwIf(c_kind NOT IN ({", ".join(f"'{k}'" for k in sorted(KINDS))}),
                  'a candidate row has an unknown kind (see reconciler.findings.KINDS)') = 0
    LIMIT 1 BY fp"""


# --- lifecycle actions: each inserts one new version of one finding --------------------------

_LIFECYCLE: dict[str, tuple[frozenset[str], dict[str, str]]] = {
    "acknowledged": (frozenset({"open", "silenced"}),
                     {"status": "'acknowledged'", "acknowledged_at": _NOW}),
    "assigned": (frozenset(STATUSES), {"assignee": "{sw_assignee:String}"}),
    "resolved": (frozenset({"open", "acknowledged", "silenced"}),
                 {"status": "'resolved'", "resolution": "'manual'", "resolution_reason": "{sw_reason:String}",
                  "resolved_at": _NOW}),
    "silenced": (frozenset({"open", "acknowledged", "silenced"}),
                 {"status": "'silenced'", "silenced_until": "{sw_until:DateTime64(6, 'UTC')}"}),
    "reopened": (frozenset({"resolved", "acknowledged", "silenced"}),
                 {"status": "'open'", "silenced_until": "NULL", "resolved_at": "NULL", "acknowledged_at": "NULL",
                  "resolution": "''", "resolution_reason": "''",
                  "reopened_count": "reopened_count + (status = 'resolved')"}),
}


def acknowledge(store: Store, fingerprint: str, *, now: datetime | None = None) -> str:
    """Someone is on it: the finding stays acknowledged for as long as the drift persists."""
    return _act(store, fingerprint, "acknowledged", {}, now)


def assign(store: Store, fingerprint: str, assignee: str, *, now: datetime | None = None) -> str:
    return _act(store, fingerprint, "assigned", {"sw_assignee": assignee}, now)


def resolve(store: Store, fingerprint: str, reason: str, *, now: datetime | None = None) -> str:
    """Resolved by hand. If the next run still detects the drift, the finding is reopened."""
    return _act(store, fingerprint, "resolved", {"sw_reason": reason}, now)


def silence(store: Store, fingerprint: str, until: datetime, *, now: datetime | None = None) -> str:
    """Not alerted and not counted as open until ``until``; open again at the first run after."""
    moment = now or datetime.now(UTC)
    if _utc(until) <= _utc(moment):
        raise FindingError(f"cannot silence {fingerprint} until {until.isoformat()}: that is not in the future")
    return _act(store, fingerprint, "silenced", {"sw_until": _utc(until)}, moment)


def reopen(store: Store, fingerprint: str, *, now: datetime | None = None) -> str:
    return _act(store, fingerprint, "reopened", {}, now)


def get(store: Store, fingerprint: str) -> dict[str, Any] | None:
    """The current version of one finding, or None."""
    columns, rows = store.query_columns(
        f"SELECT {', '.join(FINDING_COLUMNS)} FROM findings FINAL WHERE fingerprint = {{fp:String}}",
        {"fp": fingerprint})
    return dict(zip(columns, rows[0], strict=True)) if rows else None


def _act(store: Store, fingerprint: str, action: str, params: dict[str, Any], now: datetime | None,
         timeout: float | None = None) -> str:
    allowed, changes = _LIFECYCLE[action]
    found = store.query("SELECT rule FROM findings FINAL WHERE fingerprint = {fp:String}", {"fp": fingerprint})
    if not found:
        raise FindingNotFoundError(f"no finding with fingerprint {fingerprint!r}")
    rule = found[0][0]  # a fingerprint belongs to one rule for good: safe to read before locking
    with holding(store, rule, ACTION_LOCK_TIMEOUT_SECONDS if timeout is None else timeout):
        # The status is read under the lock: a run cannot change it between this check and the insert.
        status = store.query("SELECT status FROM findings FINAL WHERE rule = {r:String} AND fingerprint = {fp:String}",
                             {"r": rule, "fp": fingerprint})[0][0]
        if status not in allowed:
            raise FindingError(f"cannot mark finding {fingerprint} {action}: it is {status} "
                               f"(allowed from {', '.join(sorted(allowed))})")
        changes = {**changes, "transition": f"'{action}'", "run_id": "''",
                   "updated_at": f"greatest({_NOW}, updated_at + toIntervalMicrosecond(1))"}
        select = ", ".join(changes.get(col, col) for col in FINDING_COLUMNS)
        store.command(f"INSERT INTO findings ({', '.join(FINDING_COLUMNS)}) SELECT {select} FROM findings FINAL "
                      "WHERE rule = {sw_rule:String} AND fingerprint = {sw_fp:String}",
                      {**params, "sw_rule": rule, "sw_fp": fingerprint, "sw_now": _utc(now)})
    return changes["status"].strip("'") if "status" in changes else status


def _merge(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    clash = sorted(n for n in parameters or {} if n.startswith(_PREFIX))
    if clash:
        raise FindingError(f"query parameters {clash} use the reserved prefix {_PREFIX!r}: rename them")
    return dict(parameters or {})


def _rows_read(summary: Any) -> int | None:
    # A server reports the rows an INSERT ... SELECT read in its summary; chDB reports 0 there,
    # which would be a lie, so 0 is recorded as unknown.
    read = int((getattr(summary, "summary", None) or {}).get("read_rows", 0) or 0)
    return read or None


def _settings_sql(settings: Mapping[str, int | str]) -> str:
    # Settings come from code (the runner), not from rule files; still, only plain names and
    # numbers are let into the SQL text.
    for name, value in settings.items():
        if not name.replace("_", "").isalnum() or not str(value).replace(".", "", 1).isdigit():
            raise FindingError(f"invalid query setting {name}={value!r}")
    return ", ".join(f"{name} = {value}" for name, value in settings.items())


def _strip(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def _utc(moment: datetime | None) -> datetime:
    # Bound as DateTime64(6, 'UTC') text, which carries no zone: convert, then drop tzinfo.
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment
