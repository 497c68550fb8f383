"""The `replays` table: one row version per state of a replay (migration 0006), and the rules that
read it: a finding already replayed and delivered is not replayed again unless forced, and a
finding has at most one replay waiting for approval or being delivered at a time.

State changes of a store's replays are serialized in this process by `changing`, so two approvals
of one pending replay cannot both deliver it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from syncwatch.store import Store

STATES = ("dry_run", "pending_approval", "delivering", "delivered", "failed", "rejected")
# A delivery takes at most replay.TOTAL_BUDGET_SECONDS; one still 'delivering' long after that was cut
# short (the process stopped) and must not block the finding's replays for ever.
STALE_DELIVERY = timedelta(minutes=10)
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class ReplayRecord:
    replay_id: str
    fingerprint: str
    rule: str
    target: str
    url: str
    source_systems: list[str]
    state: str
    dry_run: bool
    force: bool
    requested_by: str
    requested_by_id: str
    requested_role: str
    requested_at: datetime
    approved_by: str
    approved_by_id: str
    approved_at: datetime | None
    impact_amount: Decimal
    impact_currency: str
    plan: str  # JSON: the planned requests
    results: str  # JSON: the delivery results
    message: str
    updated_at: datetime

    def moved(self, state: str, message: str, **changes: Any) -> ReplayRecord:
        """The next version: a new state (and any other changed columns), stamped now."""
        # strictly after the version it replaces, even if this host's clock is behind
        stamp = max(datetime.now(UTC), _aware(self.updated_at) + timedelta(microseconds=1))
        return replace(self, state=state, message=message, updated_at=stamp, **changes)

    def planned(self) -> list[dict[str, Any]]:
        return list(json.loads(self.plan or "[]"))

    def delivered(self) -> list[dict[str, Any]]:
        return list(json.loads(self.results or "[]"))


COLUMNS = [f.name for f in fields(ReplayRecord)]


@contextmanager
def changing(store: Store) -> Iterator[None]:
    """Hold the lock of this store's replay state changes (check-then-write must not interleave)."""
    with _locks_guard:
        lock = _locks.setdefault((store.dsn, store.database), threading.Lock())
    with lock:
        yield


def record(store: Store, replay: ReplayRecord) -> None:
    row = [getattr(replay, c) for c in COLUMNS]
    row = [_naive(v) if isinstance(v, datetime) else v for v in row]
    row[COLUMNS.index("dry_run")], row[COLUMNS.index("force")] = int(replay.dry_run), int(replay.force)
    store.insert_rows("replays", [row], COLUMNS)


def get(store: Store, replay_id: str) -> ReplayRecord | None:
    found = _select(store, "replay_id = {id:String}", {"id": replay_id}, 1)
    return found[0] if found else None


def of_finding(store: Store, fingerprint: str) -> list[ReplayRecord]:
    return _select(store, "fingerprint = {fp:String}", {"fp": fingerprint}, 1000)


def listing(store: Store, state: str | None, fingerprint: str | None, limit: int) -> list[ReplayRecord]:
    return _select(store, "({state:String} = '' OR state = {state:String}) AND "
                          "({fp:String} = '' OR fingerprint = {fp:String})",
                   {"state": state or "", "fp": fingerprint or ""}, limit)


def repeat_refusal(previous: list[ReplayRecord], force: bool, now: datetime | None = None) -> str:
    """Why a new (non-dry) replay of a finding with these earlier replays must not start; '' if it may."""
    moment = now or datetime.now(UTC)
    busy = next((r for r in previous if r.state == "pending_approval" or (
        r.state == "delivering" and moment - _aware(r.updated_at) < STALE_DELIVERY)), None)
    if busy is not None:
        what = "awaits approval" if busy.state == "pending_approval" else "is being delivered"
        return f"replay {busy.replay_id} of this finding {what}; approve or reject it first"
    done = next((r for r in previous if r.state == "delivered"), None)
    if done is not None and not force:
        return (f"this finding was already replayed and delivered (replay {done.replay_id} by {done.requested_by} "
                f"at {_aware(done.updated_at).isoformat()}); send force: true to replay it again")
    return ""


def _select(store: Store, where: str, params: dict[str, Any], limit: int) -> list[ReplayRecord]:
    columns, rows = store.query_columns(
        f"SELECT {', '.join(COLUMNS)} FROM replays FINAL WHERE {where} ORDER BY requested_at DESC "
        "LIMIT {limit:UInt32}", {**params, "limit": limit})
    out = []
    for row in rows:
        values = dict(zip(columns, row, strict=True))
        values.update({k: _aware(v) for k, v in values.items() if isinstance(v, datetime)})
        values["dry_run"], values["force"] = bool(values["dry_run"]), bool(values["force"])
        out.append(ReplayRecord(**values))
    return out


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
