"""Injection strings through every query parameter of every API operation: 400 naming the parameter
or an answer, never a 500, and every table as it was. Text filters that match nothing answer empty."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from collector.app import create_app
from syncwatch.settings import Settings
from tests.api.story import Story, act, write_story
from tests.conftest import ADMIN_TOKEN, Harness
from tests.security.routes import PATH_VALUES
from tests.security.test_rule_injection import hostile

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLASSICS = ["' OR '1'='1", "1; DROP TABLE events", "1) UNION SELECT name FROM system.tables --", "{limit:UInt32}",
            "%(limit)s", "`events`", "\x00", "-1", "1e309", "99999999999999999999", "../../etc/passwd", "\u202e",
            "SLEEP(10)", "' AND 1=(SELECT throwIf(1)) --"]
values = st.sampled_from(CLASSICS) | hostile


def query_parameters() -> list[tuple[str, str]]:
    """(path, parameter) for every query parameter of every GET operation, from the OpenAPI document."""
    spec = create_app(Settings()).openapi()
    return sorted((path.format(**PATH_VALUES), p["name"]) for path, ops in spec["paths"].items()
                  for method, op in ops.items() if method == "get"
                  for p in op.get("parameters", []) if p["in"] == "query")


PARAMETERS = query_parameters()


def table_rows(h: Harness) -> dict[str, int]:
    h.flush()
    rows = h.store.query("SELECT name, total_rows FROM system.tables WHERE database = currentDatabase() "
                         "AND total_rows IS NOT NULL AND name != 'actions'")  # exports are audited on purpose
    return {str(n): int(r) for n, r in rows}


@pytest.fixture
def seeded(harness: Harness) -> Iterator[tuple[Harness, Story]]:
    story = write_story(harness.store)
    act(harness.store, story.breach, "acknowledge")
    yield harness, story


def test_every_query_parameter_is_covered() -> None:
    assert len(PARAMETERS) >= 25
    assert ("/api/v1/findings", "rule") in PARAMETERS and ("/api/v1/export/audit", "actor") in PARAMETERS


@settings(max_examples=200, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(target=st.sampled_from(PARAMETERS), value=values)
def test_an_injection_string_in_any_query_parameter(seeded: tuple[Harness, Story], target: tuple[str, str],
                                                   value: str) -> None:
    harness, _ = seeded
    path, name = target
    before = table_rows(harness)
    response = harness.client.get(path, params={name: value}, headers=ADMIN)
    where = f"GET {path}?{name}={value!r}: {response.status_code} {response.content[:300]!r}"
    assert response.status_code in (200, 400, 404), where
    if response.status_code == 400:
        assert name in response.json()["error"]["message"], where
    event(f"{response.status_code}")
    assert table_rows(harness) == before, where


# Text filters of the list endpoints: an injection string is a value that matches nothing.
EMPTY_WHEN_UNMATCHED: list[tuple[str, str, Any]] = [
    ("/api/v1/findings", "rule", lambda body: body["items"]),
    ("/api/v1/findings", "assignee", lambda body: body["items"]),
    ("/api/v1/audit", "actor", lambda body: body["entries"]),
    ("/api/v1/audit", "action", lambda body: body["entries"]),
    ("/api/v1/timeline", "key", lambda body: body["items"]),
]


def test_an_injection_string_in_a_text_filter_matches_nothing(seeded: tuple[Harness, Story]) -> None:
    harness, _ = seeded
    for path, name, items in EMPTY_WHEN_UNMATCHED:
        everything = {"key": "timesheet_id:TS-3"} if name == "key" else {}
        assert items(harness.client.get(path, params=everything, headers=ADMIN).json()), f"{path}: nothing to leak"
        for value in [*CLASSICS[:5], "' OR 1=1 --", "%", "_", ".*"]:
            sent = f"timesheet_id:{value}" if name == "key" else value
            response = harness.client.get(path, params={name: sent}, headers=ADMIN)
            assert response.status_code in (200, 400), (path, name, value, response.text)
            if response.status_code == 200:
                assert items(response.json()) == [], (path, name, value, response.text[:300])
