"""Whatever a client sends to the findings and action routes, the answer is never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.people import people_of, project_findings
from tests.conftest import Harness

ACTIONS = ["acknowledge", "assign", "annotate", "silence", "resolve", "reopen", "recheck", "replay"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
bodies = st.dictionaries(st.sampled_from(["assignee", "team", "note", "until", "reason", "dry_run", "force", "target",
                                          "fingerprints", "filter", "status", "x"]), json_values, max_size=4)


@pytest.fixture
def ctx(harness: Harness) -> tuple[Harness, dict[str, str], str]:
    people = people_of(harness)
    return harness, people.as_("ana"), project_findings(harness)["P-18"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=st.sampled_from(ACTIONS), bulk=st.booleans(), body=bodies | json_values)
def test_no_body_makes_a_500(ctx: tuple[Harness, dict[str, str], str], action: str, bulk: bool, body: Any) -> None:
    harness, auth, fp = ctx
    path = f"/api/v1/findings/bulk/{action}" if bulk else f"/api/v1/findings/{fp}/{action}"
    response = harness.client.post(path, json=body, headers=auth)
    assert response.status_code < 500, (path, body, response.text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["status", "rule", "kind", "system", "severity", "min_age", "max_age",
                                               "key", "assignee", "sort", "order", "limit", "offset"]),
                              st.text(max_size=25) | st.integers(), max_size=4))
def test_no_query_makes_a_500(ctx: tuple[Harness, dict[str, str], str], params: dict[str, Any]) -> None:
    harness, auth, _ = ctx
    response = harness.client.get("/api/v1/findings", params=params, headers=auth)
    assert response.status_code in (200, 400), (params, response.text)


def test_a_failing_store_is_503_not_500(ctx: tuple[Harness, dict[str, str], str]) -> None:
    harness, auth, fp = ctx
    harness.store.command("RENAME TABLE findings TO findings_away")
    try:
        listed = harness.client.get("/api/v1/findings", headers=auth)
        acted = harness.client.post(f"/api/v1/findings/{fp}/acknowledge", headers=auth)
    finally:
        harness.store.command("RENAME TABLE findings_away TO findings")
    assert listed.status_code == 503 and listed.headers["Retry-After"] == "5"
    assert acted.status_code == 503
