"""Every findings, actions, replay and users endpoint, for every role: allowed, or 403 with an audit entry.

Table-driven from collector.api.access.PERMISSIONS, so a change of the permission table changes
what is expected here too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.api.access import PERMISSIONS, ROLES
from tests.api.people import people_of, project_findings
from tests.conftest import Harness

FP = "{fp}"
REPLAY = "0" * 20
SOON = (datetime.now(UTC) + timedelta(days=1)).isoformat()
SELECT = {"fingerprints": [FP]}
# (method, path, body, permission)
ENDPOINTS: list[tuple[str, str, Any, str]] = [
    ("GET", "/findings", None, "findings:read"),
    ("GET", f"/findings/{FP}", None, "findings:read"),
    ("POST", f"/findings/{FP}/acknowledge", None, "findings:act"),
    ("POST", f"/findings/{FP}/assign", {"team": "t"}, "findings:act"),
    ("POST", f"/findings/{FP}/annotate", {"note": "n"}, "findings:act"),
    ("POST", f"/findings/{FP}/silence", {"until": SOON}, "findings:silence"),
    ("POST", f"/findings/{FP}/resolve", {"reason": "r"}, "findings:act"),
    ("POST", f"/findings/{FP}/reopen", None, "findings:act"),
    ("POST", f"/findings/{FP}/recheck", None, "findings:act"),
    ("POST", f"/findings/{FP}/replay", None, "findings:act"),
    ("POST", "/findings/bulk/acknowledge", SELECT, "findings:act"),
    ("POST", "/findings/bulk/assign", {**SELECT, "assignee": "a"}, "findings:act"),
    ("POST", "/findings/bulk/annotate", {**SELECT, "note": "n"}, "findings:act"),
    ("POST", "/findings/bulk/silence", {**SELECT, "until": SOON}, "findings:silence"),
    ("POST", "/findings/bulk/resolve", {**SELECT, "reason": "r"}, "findings:act"),
    ("POST", "/findings/bulk/reopen", SELECT, "findings:act"),
    ("POST", "/findings/bulk/recheck", SELECT, "findings:act"),
    ("POST", "/findings/bulk/replay", SELECT, "findings:act"),
    ("GET", "/replays", None, "findings:read"),
    ("GET", f"/replays/{REPLAY}", None, "findings:read"),
    ("POST", f"/replays/{REPLAY}/approve", None, "findings:act"),
    ("POST", f"/replays/{REPLAY}/reject", {"reason": "r"}, "findings:act"),
    ("GET", "/users", None, "users:admin"),
    ("POST", "/users", {"name": "someone", "role": "executive"}, "users:admin"),
    ("DELETE", "/users/0123456789ab", None, "users:admin"),
]


def _fill(value: Any, fp: str) -> Any:
    return json.loads(json.dumps(value).replace(FP, fp)) if value is not None else None


@pytest.mark.parametrize("role", ROLES)
def test_every_endpoint_for_every_role(harness: Harness, role: str) -> None:
    people = people_of(harness)
    fp = project_findings(harness)["P-18"]
    who = next(name for name, r in {"ana": "ops", "cleo": "auditor", "dan": "executive", "eve": "admin"}.items()
               if r == role)
    audit = harness.app.state.audit
    for method, template, body, permission in ENDPOINTS:
        path = f"/api/v1{template.replace(FP, fp)}"
        response = harness.client.request(method, path, json=_fill(body, fp), headers=people.as_(who))
        where = f"{role} {method} {template}"
        if role in PERMISSIONS[permission]:
            assert response.status_code not in (401, 403, 500), f"{where}: {response.status_code} {response.text}"
            continue
        assert response.status_code == 403, f"{where}: {response.status_code} {response.text}"
        assert permission in response.json()["error"]["message"], where
        entry = audit.entries()[-1]
        assert (entry.actor, entry.role, entry.action, entry.outcome) == (who, role, "denied", "403 forbidden"), where
        assert json.loads(entry.parameters) == {"method": method, "path": path, "permission": permission}, where
    assert audit.verify().ok


def test_every_endpoint_wants_a_token(harness: Harness) -> None:
    for method, template, body, _ in ENDPOINTS:
        response = harness.client.request(method, f"/api/v1{template.replace(FP, 'ab' * 32)}", json=body)
        assert response.status_code == 401, f"{method} {template}: {response.status_code}"
