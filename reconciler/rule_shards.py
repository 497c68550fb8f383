"""Which rules this reconciler schedules when several run: deterministic rule sharding.

Replica ``index`` of ``replicas`` owns the rules whose stable hash modulo ``replicas`` is ``index``,
so the replicas of a StatefulSet (SYNCWATCH_RECONCILER_REPLICAS, and the pod ordinal as the index)
partition the pack without talking to each other: every rule is scheduled by exactly one of them.
The hash is SHA-256 of the rule's name, the same in every process and Python version (Python's
``hash()`` of a str is salted per process, which would give each replica a different partition).
A misconfiguration (two processes with one index, different replica counts during a rollout) is
caught by the run lease (reconciler/run_lease.py), not here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.loader import LoadedRule
from syncwatch.errors import SyncwatchError
from syncwatch.settings import Settings, check_share


def stable_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Share:
    """Replica ``index`` of ``replicas``; ``Share()`` is the whole pack (one reconciler)."""

    index: int = 0
    replicas: int = 1

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise SyncwatchError(f"reconciler_replicas is {self.replicas}: it must be at least 1")
        try:
            check_share(self.index, self.replicas)
        except ValueError as exc:
            raise SyncwatchError(str(exc)) from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> Share:
        try:
            index, replicas = settings.reconciler_share
        except ValueError as exc:  # an ordinal from HOSTNAME outside the replica count
            raise SyncwatchError(str(exc)) from exc
        return cls(index, replicas)

    def owns(self, rule_name: str) -> bool:
        return stable_hash(rule_name) % self.replicas == self.index

    def of(self, rules: Iterable[LoadedRule]) -> list[LoadedRule]:
        return [rule for rule in rules if self.owns(rule.name)]

    def __str__(self) -> str:
        return f"{self.index}/{self.replicas}"
