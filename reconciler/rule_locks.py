"""One lock per rule of one store, shared by every writer of findings in this process.

A rule run (findings.apply_run) and a lifecycle action (findings._act) each write new versions of
a finding computed from the version they read. ClickHouse has no transactions, so two such
writers interleaving lose one's update: the run reads `open`, an action writes `acknowledged`,
the run then writes its `open` version with a later `updated_at` and the acknowledgement is gone
(or the other way round, the action hides what the run saw). Holding the rule's lock from the read
to the insert serializes them; whoever comes second reads the other's version and builds on it.

The registry is process-wide on purpose: the runner, the scheduler's threads and the API's
request threads may each hold their own `Store` object on the same database, and they must still
meet at the same lock. (A reconciler in another process, with a ClickHouse server, is not covered:
see docs/decisions/0006-findings-write-lock.md.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from syncwatch.errors import SyncwatchError
from syncwatch.store import Store

_registry: dict[tuple[str, str, str], threading.RLock] = {}
_registry_lock = threading.Lock()


class RuleBusyError(SyncwatchError):
    """The rule's findings are being written by someone else (a run) for longer than the caller waits."""


def lock_for(store: Store, rule: str) -> threading.RLock:
    """The lock of `rule`'s findings in `store`'s database (re-entrant: a holder may call apply_run)."""
    key = (store.dsn, store.database, rule)
    with _registry_lock:
        return _registry.setdefault(key, threading.RLock())


@contextmanager
def holding(store: Store, rule: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the rule's lock; with a timeout, raise RuleBusyError instead of waiting longer."""
    lock = lock_for(store, rule)
    if not lock.acquire(timeout=-1 if timeout is None else timeout):
        raise RuleBusyError(f"the findings of rule {rule!r} are being updated by a rule run; "
                            f"waited {timeout:g} s, try again shortly")
    try:
        yield
    finally:
        lock.release()
