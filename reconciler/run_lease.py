"""A run lease per rule in ClickHouse, so two reconciler processes never run one rule at once.

Rule sharding (reconciler/rule_shards.py) already gives every rule one owner; the lease is the guard
for when the configuration is wrong (two pods with one index, replica counts that differ during a
rollout, a manual `syncwatch reconcile --once` next to the schedule). ClickHouse has no atomic
compare-and-set, so the lease is a protocol over plain inserts (docs/decisions/0010-cluster-schema.md):

1. insert a claim row; its ``claimed_at`` is the server's clock (DEFAULT now64);
2. give up if that insert took longer than half the settle time (see 4);
3. wait ``settle`` seconds, then read the rule's live claims (not released, not expired);
4. run only if our claim is the earliest. A later claimant starts its wait after ours was stored
   (step 2 bounds how late that can be), so it sees ours and yields; an earlier one that we
   cannot see would have had to take longer than step 2 allows.

It holds while clock skew between the ClickHouse nodes that stamp claims stays under settle / 2 and
a stored row is visible to the next read (one replica per shard: the store's load_balancing). Expiry
(``ttl``, renewed every ttl / 3 while the run lasts) frees the rule of a process that died.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from syncwatch.errors import StoreError
from syncwatch.store import Store

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0
TTL_SECONDS = 300.0

_CLAIM = ("INSERT INTO rule_leases (rule, claim_id, holder, expires_at, released, version) "
          "SELECT {rule:String}, {claim:String}, {holder:String}, "
          "now64(6) + toIntervalMillisecond({ttl_ms:UInt32}), 0, 1")
# A new version of our own claim: renewed (released 0, a later expiry) or released (1, expiring now).
_NEXT_VERSION = ("INSERT INTO rule_leases (rule, claim_id, holder, claimed_at, expires_at, released, version) "
                 "SELECT rule, claim_id, holder, claimed_at, now64(6) + toIntervalMillisecond({ttl_ms:UInt32}), "
                 "{released:UInt8}, version + 1 FROM rule_leases FINAL "
                 "WHERE rule = {rule:String} AND claim_id = {claim:String} AND released = 0")
_LIVE = ("SELECT claim_id, holder, claimed_at FROM rule_leases FINAL WHERE rule = {rule:String} "
         "AND released = 0 AND expires_at > now64(6) ORDER BY claimed_at, claim_id")


def lease_for(store: Store, share: object = "") -> RunLease | None:
    """The lease of a reconciler on ``store``; None on the embedded store, which one process owns (its
    scheduler never runs a rule twice at once: max_instances=1), so no other process can contend."""
    if store.dsn.startswith("chdb:"):
        return None
    holder = f"{socket.gethostname()}:{os.getpid()}" + (f" (share {share})" if share else "")
    return RunLease(store, holder)


@dataclass
class Claim:
    rule: str
    claim_id: str
    won: bool = False
    reason: str = ""


class RunLease:
    """Claims of one process (``holder`` names it in the table and in the others' log lines)."""

    def __init__(self, store: Store, holder: str, *, settle: float = SETTLE_SECONDS, ttl: float = TTL_SECONDS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if ttl <= 3 * settle:
            raise ValueError(f"lease ttl {ttl:g} s must exceed three settle times ({3 * settle:g} s)")
        self.store, self.holder, self.settle, self.ttl, self._sleep = store, holder, settle, ttl, sleep

    @contextmanager
    def claim(self, rule: str) -> Iterator[Claim]:
        """Yield a Claim whose ``won`` says whether to run; the claim is renewed meanwhile and released after."""
        claim = Claim(rule, uuid.uuid4().hex)
        stop = threading.Event()
        renewer: threading.Thread | None = None
        try:
            self._contend(claim)
            if claim.won:
                renewer = threading.Thread(target=self._renew, args=(claim, stop), daemon=True,
                                           name=f"lease-{rule}")
                renewer.start()
            yield claim
        finally:
            stop.set()
            if renewer is not None:
                renewer.join()
            self._write(claim, released=True)

    def _contend(self, claim: Claim) -> None:
        began = time.monotonic()
        try:
            self.store.command(_CLAIM, self._params(claim))
        except StoreError as exc:
            claim.reason = f"could not claim the rule: {exc}"
            return
        took = time.monotonic() - began
        if took > self.settle / 2:
            claim.reason = f"storing the claim took {took:.1f} s, too long to be sure no one else claimed it"
            return
        self._sleep(self.settle)
        try:
            live = self.store.query(_LIVE, {"rule": claim.rule})
        except StoreError as exc:
            claim.reason = f"could not read the rule's claims: {exc}"
            return
        first = live[0] if live else None
        claim.won = first is not None and first[0] == claim.claim_id
        if not claim.won:
            claim.reason = (f"rule {claim.rule!r} is being run by {first[1]} (claimed at {first[2]})" if first
                            else "our claim expired before it was read")

    def _renew(self, claim: Claim, stop: threading.Event) -> None:
        while not stop.wait(self.ttl / 3):
            self._write(claim, released=False)

    def _write(self, claim: Claim, *, released: bool) -> None:
        params = {**self._params(claim), "released": int(released)}
        if released:
            params["ttl_ms"] = 0
        try:
            self.store.command(_NEXT_VERSION, params)
        except StoreError as exc:  # an unreleased claim expires after ttl; a failed renewal is retried
            log.warning("lease of rule %s (%s): %s", claim.rule, "release" if released else "renewal", exc)

    def _params(self, claim: Claim) -> dict[str, object]:
        return {"rule": claim.rule, "claim": claim.claim_id, "holder": self.holder, "ttl_ms": int(self.ttl * 1000)}
