"""The tamper-evident audit log: every action appends one row whose hash covers the row and the
hash of the row before it, so changing, removing or reordering any stored row breaks the chain.

The chain lives in the `actions` table (MergeTree ORDER BY seq). Appends in one process are
serialized by a lock (seq and prev_hash come from the current tail).

>>> first = chain_hash(1, "2026-01-01T00:00:00.000000Z", "ana", "ops", "acknowledged", "fp", "{}", "ok", GENESIS)
>>> len(first), first == chain_hash(1, "2026-01-01T00:00:00.000000Z", "ana", "ops", "acknowledged", "fp", "{}",
...                                  "ok", GENESIS)
(64, True)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from syncwatch.store import Store

GENESIS = "0" * 64
AUDIT_COLUMNS = ("seq", "at", "actor", "role", "action", "finding_fingerprint", "parameters", "outcome",
                 "prev_hash", "hash")


def canonical_json(value: Any) -> str:
    """The one text form of action parameters that is stored and hashed (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def instant_text(moment: datetime) -> str:
    """Microsecond UTC text: what DateTime64(6, 'UTC') stores, so a re-read row hashes the same."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_hash(seq: int, at: str, actor: str, role: str, action: str, fingerprint: str, parameters: str,
               outcome: str, prev_hash: str) -> str:
    body = canonical_json([seq, at, actor, role, action, fingerprint, parameters, outcome, prev_hash])
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str  # instant_text form
    actor: str
    role: str
    action: str
    finding_fingerprint: str
    parameters: str  # canonical_json form
    outcome: str
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return chain_hash(self.seq, self.at, self.actor, self.role, self.action, self.finding_fingerprint,
                          self.parameters, self.outcome, self.prev_hash)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    head_hash: str
    breaks: tuple[ChainBreak, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "head_hash": self.head_hash,
                "breaks": [asdict(b) for b in self.breaks]}


def verify_entries(entries: Iterable[AuditEntry], *, start_prev: str = GENESIS, start_seq: int = 1) -> Verification:
    """Check a run of consecutive entries: each hash matches its content, links to the one before,
    and seq counts up by one. `start_prev`/`start_seq` let a sub-range (an evidence pack) be checked
    against the hash of the entry before it."""
    breaks: list[ChainBreak] = []
    prev, expected_seq, checked = start_prev, start_seq, 0
    for entry in entries:
        checked += 1
        if entry.seq != expected_seq:
            breaks.append(ChainBreak(entry.seq, f"sequence gap or repeat: expected seq {expected_seq}"))
        if entry.prev_hash != prev:
            breaks.append(ChainBreak(entry.seq, "prev_hash does not match the hash of the entry before"))
        if entry.expected_hash() != entry.hash:
            breaks.append(ChainBreak(entry.seq, "hash does not match the entry's content (row altered)"))
        prev, expected_seq = entry.hash, entry.seq + 1
    return Verification(not breaks, checked, prev, tuple(breaks))


class AuditLog:
    """Appends to and reads the chain in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()

    def append(self, actor: str, role: str, action: str, fingerprint: str = "",
               parameters: Mapping[str, Any] | None = None, outcome: str = "ok",
               at: datetime | None = None) -> AuditEntry:
        with self._lock:
            tail = self.store.query("SELECT seq, hash FROM actions ORDER BY seq DESC LIMIT 1")
            seq, prev = (int(tail[0][0]) + 1, str(tail[0][1])) if tail else (1, GENESIS)
            moment = (at or datetime.now(UTC)).astimezone(UTC)
            params = canonical_json(dict(parameters or {}))
            text = instant_text(moment)
            digest = chain_hash(seq, text, actor, role, action, fingerprint, params, outcome, prev)
            row = [seq, moment, actor, role, action, fingerprint, params, outcome, prev, digest]
            self.store.insert_rows("actions", [row], list(AUDIT_COLUMNS))
            return AuditEntry(seq, text, actor, role, action, fingerprint, params, outcome, prev, digest)

    def entries(self, *, fingerprint: str | None = None, limit: int | None = None,
                offset: int = 0) -> list[AuditEntry]:
        """Entries in chain order, optionally only those about one finding."""
        where, params = "", {}
        if fingerprint is not None:
            where, params = "WHERE finding_fingerprint = {fp:String}", {"fp": fingerprint}
        page = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
        rows = self.store.query(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM actions {where} ORDER BY seq{page}", params)
        return [entry_from_row(row) for row in rows]

    def verify(self) -> Verification:
        return verify_entries(self.entries())


def entry_from_row(row: Sequence[Any]) -> AuditEntry:
    seq, at, actor, role, action, fingerprint, parameters, outcome, prev, digest = row
    moment = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return AuditEntry(int(seq), instant_text(moment), actor, role, action, fingerprint, parameters, outcome,
                      prev, digest)
