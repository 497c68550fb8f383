"""Audit tampering the existing chain tests (tests/api/test_audit_*.py) leave out: a replayed
(duplicated) row, a forged row slipped in with its own correct hash, swapped rows, and a tail cut
off after an evidence pack or export recorded the head."""

from __future__ import annotations

from reconciler.audit import AuditLog, verify_entries
from syncwatch.store import Store
from tests.conftest import ADMIN_TOKEN, Harness

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
COLUMNS = "seq, at, actor, role, action, finding_fingerprint, parameters, outcome, prev_hash, hash"


def _log(store: Store, n: int = 5) -> AuditLog:
    log = AuditLog(store)
    for i in range(n):
        log.append("olga", "ops", "acknowledged", f"fp{i}", {"note": f"n{i}"})
    return log


def _breaks(h: Harness) -> list[int]:
    verify = h.client.get("/api/v1/audit/verify", headers=ADMIN).json()
    assert verify["ok"] is (not verify["breaks"])
    return [b["seq"] for b in verify["breaks"]]


def test_a_replayed_row_is_detected(harness: Harness) -> None:
    _log(harness.store)
    harness.store.command(f"INSERT INTO actions ({COLUMNS}) SELECT {COLUMNS} FROM actions WHERE seq = 2")
    assert _breaks(harness)


def test_a_forged_row_with_its_own_valid_hash_is_detected(harness: Harness) -> None:
    entries = _log(harness.store).entries()
    forged = entries[2].__class__(**{**entries[2].as_dict(), "actor": "mallory"})
    digest = forged.expected_hash()
    harness.store.command("ALTER TABLE actions UPDATE actor = 'mallory', hash = {h:String} WHERE seq = 3 "
                          "SETTINGS mutations_sync = 1", {"h": digest})
    assert [e.actor for e in AuditLog(harness.store).entries()][2] == "mallory"
    assert _breaks(harness) == [4]  # the forged row is self-consistent; its successor no longer links


def test_swapped_rows_are_detected(harness: Harness) -> None:
    entries = _log(harness.store).entries()
    swapped = [entries[0], entries[2], entries[1], *entries[3:]]
    assert not verify_entries(swapped).ok


def test_a_cut_tail_is_detected_against_a_recorded_head(harness: Harness) -> None:
    """The chain alone cannot see its last rows removed; the head hash an evidence pack, an export or
    a previous verify handed out can: the chain no longer reaches it."""
    log = _log(harness.store)
    recorded = harness.client.get("/api/v1/audit/verify", headers=ADMIN).json()["head_hash"]
    harness.store.command("ALTER TABLE actions DELETE WHERE seq >= 4 SETTINGS mutations_sync = 1")
    after = harness.client.get("/api/v1/audit/verify", headers=ADMIN).json()
    assert after["ok"] and after["head_hash"] != recorded
    assert recorded not in {e.hash for e in log.entries()}
