"""The notifier: after each rule run, alert the routed sinks about that run's findings.

The runner (or the service around it) calls ``notifier.after_run(store, rule, run_id)`` once a
run is applied. That call only puts the run on a bounded queue and returns: it never blocks
and never raises into reconciliation. A dispatcher thread then selects, in SQL, what each sink
must hear about:

- firing: findings the run wrote (``run_id``) whose effective status is open (acknowledged and
  silenced findings are not sent), of a severity routed to the sink, and which the sink has not
  been told about yet, or whose values changed (``digest``), or whose last notification is older
  than the sink's re-notify interval;
- resolved: findings, resolved by any means, that the sink was last told are firing.

Each sink has its own worker thread and queue, so a sink that is down does not delay the
others. A worker sends one notification per rule (chunked by the sink's batch_size), retries it
with exponential backoff (``alert_sinks.deliver``), then records the outcome per finding in
``alert_state``. A failed delivery keeps the sink's previous state with ``last_error``, so the
next run of the rule tries again; a full queue drops the notification (logged and counted) for
the same reason: nothing is marked sent that was not.

Usage::

    notifier = Notifier(load_alerts("rules/alerts.yaml"))
    result = run_rule(store, ...)
    notifier.notify(store, result)      # or after_run(store, result.rule, result.run_id)
    ...
    notifier.close(timeout=10)          # drains what is queued, then stops the threads
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from reconciler.alert_config import AlertConfig, load_alerts
from reconciler.alert_sinks import Alert, Outcome, SinkConfig, deliver, request_for
from reconciler.findings import effective_status_sql
from syncwatch.store import Store

log = logging.getLogger(__name__)

# Runs waiting for the dispatcher, and notifications waiting per sink; beyond these, new work
# is dropped (and picked up again by the rule's next run) rather than held in memory.
MAX_QUEUED_RUNS = 1000
MAX_QUEUED_NOTIFICATIONS = 200

STATE_COLUMNS = ("sink", "rule", "fingerprint", "state", "digest", "fired_at", "last_sent_at", "last_attempt_at",
                 "attempts", "last_status", "last_error", "version")
_FINDING = ("fingerprint", "rule", "rule_version", "kind", "field", "keys", "systems", "left_value", "right_value",
            "severity", "impact_amount", "impact_currency", "status", "transition", "first_seen", "last_seen",
            "resolved_at", "left_trace_id", "right_trace_id", "detail")
# What makes a firing finding "changed" for its sinks: the drift itself, not when it was seen.
_DIGEST = ("lower(hex(SHA256(toString(tuple(kind, field, left_value, right_value, severity, impact_amount, "
           "impact_currency)))))")


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class RunLike(Protocol):
    rule: str
    run_id: str


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Prior:
    state: str
    digest: str
    fired_at: datetime | None
    last_sent_at: datetime | None


@dataclass(frozen=True)
class _Job:
    store: Store
    rule: str
    alerts: list[Alert]
    prior: dict[str, _Prior]


@dataclass
class Stats:
    """Counters for /metrics: notifications sent, failed after every attempt, and dropped."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    by_sink: dict[str, int] = field(default_factory=dict)


class Notifier:
    """Sends alerts for rule runs in the background; see the module docstring."""

    def __init__(self, config: AlertConfig, *, clock: Clock = utcnow) -> None:
        self.config = config
        self.clock = clock
        self.stats = Stats()
        self._sinks = {s.name: s for s in config.enabled_sinks()}
        self._runs: queue.Queue[tuple[Store, str, str] | None] = queue.Queue(MAX_QUEUED_RUNS)
        self._queues: dict[str, queue.Queue[_Job | None]] = {
            name: queue.Queue(MAX_QUEUED_NOTIFICATIONS) for name in self._sinks}
        self._inflight: set[tuple[str, str]] = set()  # (sink, fingerprint) queued or being sent
        self._pending = 0
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._dispatch, name="alerts-dispatch", daemon=True)]
        self._threads += [threading.Thread(target=self._work, args=(name,), name=f"alerts-{name}", daemon=True)
                          for name in self._sinks]
        for thread in self._threads if self._sinks else []:  # no sinks, no threads: after_run is a no-op
            thread.start()

    @classmethod
    def from_file(cls, path: Path | str, *, clock: Clock = utcnow) -> Notifier:
        """A notifier for rules/alerts.yaml (no file: a notifier without sinks, which does nothing)."""
        return cls(load_alerts(path), clock=clock)

    def notify(self, store: Store, run: RunLike) -> None:
        self.after_run(store, run.rule, run.run_id)

    def after_run(self, store: Store, rule: str, run_id: str) -> None:
        """Queue the alerts of one run; returns at once and never raises."""
        if not self._sinks or self._stopping.is_set():
            return
        self._add_pending(1)
        try:
            self._runs.put_nowait((store, rule, run_id))
        except queue.Full:
            self._add_pending(-1)
            self.stats.dropped += 1
            log.warning("alert queue full: alerts of run %s of rule %s dropped (its next run sends them)",
                        run_id, rule)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued run is selected and every notification delivered or given up."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Drain within `timeout`, then stop; retries still waiting are abandoned (and logged)."""
        drained = self.flush(timeout)
        self._stopping.set()
        for q in [self._runs, *self._queues.values()]:
            with contextlib.suppress(queue.Full):  # a full queue is skipped through: see _dispatch, _work
                q.put_nowait(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.1, timeout))
        return drained

    # --- selection (dispatcher thread) -----------------------------------------------------

    def _dispatch(self) -> None:
        while (item := self._runs.get()) is not None:
            store, rule, run_id = item
            try:
                for name in self._sinks if not self._stopping.is_set() else []:
                    self._select_and_queue(store, name, rule, run_id)
            except Exception as exc:  # a store outage must not kill the dispatcher
                log.error("alerts for run %s of rule %s not selected: %s", run_id, rule, exc)
            finally:
                self._add_pending(-1)

    def _select_and_queue(self, store: Store, sink: str, rule: str, run_id: str) -> None:
        rows = select_alerts(store, self.config, sink, rule, run_id, self.clock())
        with self._idle:
            rows = [r for r in rows if (sink, r[0].fingerprint) not in self._inflight]
            if not rows:
                return
            self._inflight.update((sink, alert.fingerprint) for alert, _ in rows)
            self._pending += 1
        job = _Job(store, rule, [alert for alert, _ in rows], {a.fingerprint: p for a, p in rows})
        try:
            self._queues[sink].put_nowait(job)
        except queue.Full:
            self.stats.dropped += 1
            log.warning("alert sink %s is backed up: %d alerts of rule %s dropped (the next run sends them)",
                        sink, len(job.alerts), rule)
            self._done(sink, job)

    # --- delivery (one worker thread per sink) ---------------------------------------------

    def _work(self, name: str) -> None:
        sink = self._sinks[name]
        with httpx.Client(timeout=sink.timeout.total_seconds(), follow_redirects=False) as client:
            while (job := self._queues[name].get()) is not None:
                try:
                    for start in range(0, len(job.alerts) if not self._stopping.is_set() else 0, sink.batch_size):
                        self._send(client, sink, job, job.alerts[start:start + sink.batch_size])
                except Exception as exc:  # a bug in a payload must not kill the worker
                    log.exception("alert sink %s: notification for rule %s failed: %s", name, job.rule, exc)
                finally:
                    self._done(name, job)

    def _send(self, client: httpx.Client, sink: SinkConfig, job: _Job, alerts: list[Alert]) -> None:
        url, body = request_for(sink, job.rule, alerts, self.clock())
        outcome = deliver(client, url, body, sink.headers, sink.retry, self._stopping.wait)
        with self._idle:  # the counters are shared by the sink threads
            if outcome.ok:
                self.stats.sent += 1
                self.stats.by_sink[sink.name] = self.stats.by_sink.get(sink.name, 0) + 1
            else:
                self.stats.failed += 1
        if not outcome.ok:
            log.warning("alert sink %s: %d alerts of rule %s not delivered after %d attempts: %s",
                        sink.name, len(alerts), job.rule, outcome.attempts, outcome.error)
        try:
            job.store.insert_rows("alert_state", state_rows(sink.name, job.rule, alerts, job.prior, outcome,
                                                            self.clock()), STATE_COLUMNS)
        except Exception as exc:  # the store may be down; the sink's outcome is still logged above
            log.error("alert sink %s: could not record the delivery state of rule %s: %s", sink.name, job.rule, exc)

    def _done(self, sink: str, job: _Job) -> None:
        with self._idle:
            self._inflight.difference_update((sink, a.fingerprint) for a in job.alerts)
            self._pending -= 1
            self._idle.notify_all()

    def _add_pending(self, n: int) -> None:
        with self._idle:
            self._pending += n
            self._idle.notify_all()


def select_alerts(store: Store, config: AlertConfig, sink: str, rule: str, run_id: str,
                  now: datetime) -> list[tuple[Alert, _Prior]]:
    """What `sink` must hear about after run `run_id` of `rule`, with what it was told before."""
    severities = config.severities(sink, rule)
    renotify_before = _naive(now) - config.renotify(next(s for s in config.sinks if s.name == sink))
    columns, rows = store.query_columns(_SELECT, {
        "rule": rule, "run": run_id, "sink": sink, "all_severities": int(severities is None),
        "severities": severities or [], "before": renotify_before, "now": _naive(now)})
    result = []
    for row in rows:
        r = dict(zip(columns, row, strict=True))
        finding = {c: r[c] for c in _FINDING}
        alert = Alert(finding, "resolved" if r["status"] == "resolved" else "firing", r["digest"])
        result.append((alert, _Prior(r["s_state"], r["s_digest"], r["s_fired_at"], r["s_last_sent_at"])))
    return result


def state_rows(sink: str, rule: str, alerts: Sequence[Alert], prior: dict[str, _Prior], outcome: Outcome,
               now: datetime) -> list[list[Any]]:
    """One alert_state row per alert: the new state when delivered, the previous one with the error if not."""
    rows, version, at = [], time.time_ns(), _naive(now)
    for alert in alerts:
        p = prior[alert.fingerprint]
        if outcome.ok:
            fired = p.fired_at if p.state == "firing" else (at if alert.status == "firing" else p.fired_at)
            state = (alert.status, alert.digest, fired, at)
        else:
            state = (p.state, p.digest, p.fired_at, p.last_sent_at)
        rows.append([sink, rule, alert.fingerprint, *state, at, outcome.attempts, outcome.status,
                     outcome.error[:2000], version])
    return rows


def last_errors(store: Store, sink: str | None = None) -> list[dict[str, Any]]:
    """The latest delivery state per (sink, finding) whose last attempt failed, newest first (for health pages)."""
    columns, rows = store.query_columns(
        "SELECT sink, rule, fingerprint, state, attempts, last_status, last_error, last_attempt_at "
        "FROM alert_state FINAL WHERE last_error != '' AND ({sink:String} = '' OR sink = {sink:String}) "
        "ORDER BY last_attempt_at DESC LIMIT 1000", {"sink": sink or ""})
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _naive(moment: datetime) -> datetime:
    # Bound as DateTime64(6, 'UTC') text, which carries no zone: convert, then drop tzinfo.
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


_NOW = "{now:DateTime64(6, 'UTC')}"
_SELECT = f"""
SELECT {', '.join('f.' + c + ' AS ' + c for c in _FINDING)}, f.digest AS digest,
       s.state AS s_state, s.digest AS s_digest, s.fired_at AS s_fired_at, s.last_sent_at AS s_last_sent_at
FROM (
    SELECT {', '.join(_FINDING)}, {_DIGEST} AS digest, {effective_status_sql(_NOW)} AS effective
    FROM findings FINAL
    WHERE rule = {{rule:String}}
      AND (run_id = {{run:String}}
           OR (status = 'resolved' AND fingerprint IN (
               SELECT fingerprint FROM alert_state FINAL
               WHERE sink = {{sink:String}} AND rule = {{rule:String}} AND state = 'firing')))
) AS f
LEFT JOIN (
    SELECT fingerprint, state, digest, fired_at, last_sent_at FROM alert_state FINAL
    WHERE sink = {{sink:String}} AND rule = {{rule:String}}
) AS s ON f.fingerprint = s.fingerprint
WHERE (f.effective = 'open'
       AND ({{all_severities:UInt8}} OR has({{severities:Array(String)}}, f.severity))
       AND (s.state != 'firing' OR s.digest != f.digest
            OR ifNull(s.last_sent_at <= {{before:DateTime64(6, 'UTC')}}, 1)))
   OR (f.status = 'resolved' AND s.state = 'firing')
ORDER BY f.status = 'resolved', toString(f.keys), f.kind, f.field  -- firing first, then by keys
SETTINGS join_use_nulls = 0
"""

__all__ = ["Clock", "Notifier", "Stats", "last_errors", "select_alerts", "state_rows", "utcnow"]
