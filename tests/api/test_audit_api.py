"""The audit log over HTTP: pages, filters, and verification that finds a tampered row."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.audit import AuditLog
from tests.api.story import bearer
from tests.conftest import ADMIN_TOKEN, Harness

ADMIN = bearer(ADMIN_TOKEN)


FP = ["0" * 64, "1" * 64]  # two findings' fingerprints


@pytest.fixture
def log(harness: Harness) -> AuditLog:
    audit: AuditLog = harness.app.state.audit
    for i in range(5):
        audit.append("ana" if i % 2 else "ben", "ops", "acknowledged" if i < 3 else "resolved", FP[i % 2],
                     {"i": i})
    return audit


def page(harness: Harness, **params: Any) -> dict[str, Any]:
    response = harness.client.get("/api/v1/audit", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def test_pages_in_chain_order(harness: Harness, log: AuditLog) -> None:
    first = page(harness, limit=2)
    assert first["total"] == 5 and [e["seq"] for e in first["entries"]] == [1, 2]
    assert [e["seq"] for e in page(harness, limit=2, offset=4)["entries"]] == [5]
    assert page(harness, offset=50)["entries"] == []
    entry = first["entries"][1]
    assert entry["prev_hash"] == first["entries"][0]["hash"] and entry["parameters"] == '{"i":1}'
    assert entry["at"].endswith("Z") and len(entry["hash"]) == 64


FILTERS: list[tuple[dict[str, str], list[int]]] = [
    ({"actor": "ana"}, [2, 4]),
    ({"action": "resolved"}, [4, 5]),
    ({"fingerprint": FP[0]}, [1, 3, 5]),
    ({"fingerprint": FP[0], "action": "resolved", "actor": "ben"}, [5]),
    ({"actor": "nobody"}, []),
]


def test_filters(harness: Harness, log: AuditLog) -> None:
    for params, seqs in FILTERS:
        body = page(harness, **params)
        assert [e["seq"] for e in body["entries"]] == seqs and body["total"] == len(seqs), params


def test_verify_is_ok_then_finds_a_tampered_row(harness: Harness, log: AuditLog) -> None:
    verify = harness.client.get("/api/v1/audit/verify", headers=ADMIN).json()
    assert verify == {"ok": True, "checked": 5, "head_hash": log.entries()[-1].hash, "breaks": []}
    harness.store.command("ALTER TABLE actions UPDATE actor = 'mallory' WHERE seq = 3 SETTINGS mutations_sync = 1")
    verify = harness.client.get("/api/v1/audit/verify", headers=ADMIN).json()
    assert not verify["ok"] and verify["checked"] == 5
    assert [b["seq"] for b in verify["breaks"]] == [3] and "altered" in verify["breaks"][0]["problem"]


def test_verify_finds_a_removed_row(harness: Harness, log: AuditLog) -> None:
    harness.store.command("ALTER TABLE actions DELETE WHERE seq = 2 SETTINGS mutations_sync = 1")
    verify = harness.client.get("/api/v1/audit/verify", headers=ADMIN).json()
    assert not verify["ok"] and [b["seq"] for b in verify["breaks"]] == [3, 3]


def test_an_empty_log_verifies(harness: Harness) -> None:
    verify = harness.client.get("/api/v1/audit/verify", headers=ADMIN).json()
    assert verify["ok"] and verify["checked"] == 0 and page(harness)["total"] == 0


BAD_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"offset": -1}, "offset"), ({"offset": 10**19}, "offset"),
    ({"actor": "x" * 201}, "actor"),
]


def test_bad_parameters(harness: Harness) -> None:
    for params, name in BAD_REQUESTS:
        response = harness.client.get("/api/v1/audit", params=params, headers=ADMIN)
        assert response.status_code == 400 and name in response.json()["error"]["message"], params
