"""The audit chain: appends link, verification finds any altered, removed or reordered row."""

from __future__ import annotations

import itertools

from reconciler.audit import GENESIS, AuditLog, verify_entries
from syncwatch.store import Store


def _log(store: Store, n: int = 4) -> AuditLog:
    log = AuditLog(store)
    for i in range(n):
        log.append(f"user{i}", "ops", "acknowledged", f"fp{i}", {"note": f"n{i}", "z": 1})
    return log


def test_appends_chain_and_verify(store: Store) -> None:
    log = _log(store)
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert entries[0].parameters == '{"note":"n0","z":1}'
    result = log.verify()
    assert result.ok and result.checked == 4 and result.head_hash == entries[-1].hash
    assert [e.seq for e in log.entries(fingerprint="fp2")] == [3]


def test_an_altered_row_is_detected(store: Store) -> None:
    log = _log(store)
    store.command("ALTER TABLE actions UPDATE outcome = 'rejected' WHERE seq = 2 SETTINGS mutations_sync = 1")
    result = log.verify()
    assert not result.ok
    assert [(b.seq, "altered" in b.problem) for b in result.breaks] == [(2, True)]


def test_a_removed_row_is_detected(store: Store) -> None:
    log = _log(store)
    store.command("ALTER TABLE actions DELETE WHERE seq = 3 SETTINGS mutations_sync = 1")
    result = log.verify()
    assert not result.ok and {b.seq for b in result.breaks} == {4}


def test_a_rewritten_row_with_a_recomputed_hash_breaks_the_next_link(store: Store) -> None:
    log = _log(store)
    entries = log.entries()
    forged = entries[1].__class__(**{**entries[1].as_dict(), "actor": "mallory"})
    forged = forged.__class__(**{**forged.as_dict(), "hash": forged.expected_hash()})
    result = verify_entries([entries[0], forged, *entries[2:]])
    assert not result.ok and [b.seq for b in result.breaks] == [3]


def test_a_sub_range_verifies_from_the_hash_before_it(store: Store) -> None:
    entries = _log(store).entries()
    assert verify_entries(entries[2:], start_prev=entries[1].hash, start_seq=3).ok
    assert not verify_entries(entries[2:], start_prev=GENESIS, start_seq=3).ok
