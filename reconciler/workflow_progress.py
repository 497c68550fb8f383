"""The per-instance progress of workflow rules, kept by their runs: what stuck detection reads.

A workflow run needs each instance's first and last arrival per step. Grouping every step event
per run costs 0.46-0.50 s at 10M events (1M instances); the grouped rows (workflow_progress, about
one per instance and step) are kept instead, and a run groups those (0.15-0.2 s at the same size).

- A full run writes a new generation from every event, lists it, and drops the generations before
  the previous one (a reader that picked the previous one a moment ago still finds it). A full run
  at least hourly (service.FULL_RUN_EVERY) also repairs what incremental updates cannot see: an
  event stored more than the ingest lag after it was received, or one removed by retention.
- An incremental run folds the events received since the last update (less the ingest lag) into
  the current generation. Every progress column is a min or a max, so the overlap is harmless.
- Without a listed generation of the rule's current definition, any run builds one. A full run also
  drops the progress of the rule's earlier definitions that nothing updated for ABANDONED_AFTER.

The compiled query (compile_workflow.compile with state=True) reads the newest listed generation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.compile_workflow import progress_definition, progress_sql
from reconciler.model import WorkflowRule
from reconciler.runner import INGEST_LAG
from reconciler.workflow_state import drop_generation, drop_generations
from syncwatch.store import Store

__all__ = ["ABANDONED_AFTER", "Update", "update"]

# The progress of a rule's earlier definition is dropped once no update has written it this long.
ABANDONED_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class Update:
    """One update of a rule's progress: a new generation (`full`) or events folded in since `since`."""

    generation: int
    full: bool
    since: datetime | None
    seconds: float


def update(store: Store, rule: WorkflowRule, *, full: bool, now: datetime | None = None) -> Update:
    """Bring `rule`'s progress up to date as of `now` (the run's clock): rebuilt when `full` or when
    there is none for the rule's definition, else the events received since the last update."""
    began, now = time.perf_counter(), now or datetime.now(UTC)
    shape = progress_definition(rule)
    last = _last(store, rule.name, shape)
    if full or last is None:
        generation, since = time.time_ns() // 1000, None
    else:
        generation, since = last[0], last[1] - INGEST_LAG
    compiled = progress_sql(rule, generation, since)
    store.command(compiled.sql, compiled.parameters)
    store.insert_rows("workflow_progress_updates", [(rule.name, shape, generation, now, datetime.now(UTC))],
                      ["workflow", "definition", "generation", "started_at", "finished_at"])
    if since is None:
        drop_generations(store, "workflow_progress", rule.name, shape)
        _drop_abandoned(store, rule.name, shape)
    return Update(generation, since is None, since, time.perf_counter() - began)


def _drop_abandoned(store: Store, workflow: str, shape: str) -> None:
    """Drop the progress of the rule's other definitions (it was edited) that no update wrote for
    ABANDONED_AFTER: during a rollout, reconcilers running two versions of a rule each keep theirs."""
    kept = store.query("SELECT DISTINCT definition, generation FROM workflow_progress "
                       "WHERE workflow = {w:String} AND definition != {d:String}", {"w": workflow, "d": shape})
    if not kept:
        return
    recent = {row[0] for row in store.query(
        "SELECT DISTINCT definition FROM workflow_progress_updates WHERE workflow = {w:String} "
        "AND finished_at >= {t:DateTime64(6, 'UTC')}", {"w": workflow, "t": datetime.now(UTC) - ABANDONED_AFTER})}
    for definition, generation in kept:
        if definition not in recent:
            drop_generation(store, "workflow_progress", workflow, definition, int(generation))


def _last(store: Store, workflow: str, shape: str) -> tuple[int, datetime] | None:
    """The current generation and the start of its latest update."""
    rows = store.query(
        "SELECT generation, max(started_at) FROM workflow_progress_updates "
        "WHERE workflow = {w:String} AND definition = {d:String} "
        "GROUP BY generation ORDER BY generation DESC LIMIT 1", {"w": workflow, "d": shape})
    if not rows:
        return None
    started = rows[0][1]
    return int(rows[0][0]), started if started.tzinfo else started.replace(tzinfo=UTC)
