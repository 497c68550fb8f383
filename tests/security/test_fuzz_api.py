"""Schemathesis over every operation of the OpenAPI document, with valid and invalid credentials."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.security.fuzz import fuzz

# (the route matrix tries every kind of bad credential on every route; here two, under fuzzed input)
BAD = {
    "none": {},
    "unknown user": {"Authorization": "Bearer swu_0123456789ab_" + "0" * 48},
}


def spec_of(live: LiveServer) -> dict:
    return httpx.get(f"{live.base_url}/openapi.json", timeout=30).json()


def report(outcome: object) -> str:
    failures = outcome.failures  # type: ignore[attr-defined]
    return f"{len(failures)} failures:\n" + "\n".join(failures[:25])


def test_fuzz_every_operation_as_admin(live_server: LiveServer) -> None:
    outcome = fuzz(spec_of(live_server), live_server.base_url, {"Authorization": f"Bearer {ADMIN_TOKEN}"},
                   live_server.store, live_server.flush, examples=3)
    print(f"admin: {outcome.calls} requests, statuses {dict(sorted(outcome.statuses.items()))}")
    assert not outcome.failures, report(outcome)
    assert outcome.calls > 100


def test_fuzz_every_operation_with_bad_credentials(live_server: LiveServer) -> None:
    for name, headers in BAD.items():
        before = live_server.store.query("SELECT sum(total_rows) FROM system.tables WHERE database = currentDatabase()")
        outcome = fuzz(spec_of(live_server), live_server.base_url, headers, live_server.store, live_server.flush,
                       examples=2)
        print(f"{name}: {outcome.calls} requests, statuses {dict(sorted(outcome.statuses.items()))}")
        assert not outcome.failures, report(outcome)
        public = {200}  # /healthz, /readyz, /metrics
        assert set(outcome.statuses) <= {401} | public, (name, outcome.statuses)
        live_server.flush()
        after = live_server.store.query("SELECT sum(total_rows) FROM system.tables WHERE database = currentDatabase()")
        assert after == before, name


@pytest.mark.slow
def test_fuzz_every_operation_at_length(live_server: LiveServer) -> None:
    outcome = fuzz(spec_of(live_server), live_server.base_url, {"Authorization": f"Bearer {ADMIN_TOKEN}"},
                   live_server.store, live_server.flush, examples=40)
    print(f"admin, long: {outcome.calls} requests, statuses {dict(sorted(outcome.statuses.items()))}")
    assert not outcome.failures, report(outcome)


def test_the_document_states_every_error_answer(live_server: LiveServer) -> None:
    spec = spec_of(live_server)
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            statuses = set(op["responses"])
            where = f"{method.upper()} {path}"
            assert "422" not in statuses, where  # validation errors are 400 here
            if op.get("security"):
                assert {"400", "401", "403"} <= statuses, where
            if path.startswith("/v1/"):
                assert {"413", "415", "429", "503"} <= statuses and op["requestBody"]["content"], where
    assert set(spec["components"]["schemas"]["Error"]["properties"]) == {"error"}
