"""The findings, actions, replay and users routes are documented: tags, summaries, response schemas, bearer auth."""

from __future__ import annotations

from tests.conftest import Harness

PREFIXES = ("/api/v1/findings", "/api/v1/replays", "/api/v1/users")


def test_routes_have_tags_summaries_and_response_models(harness: Harness) -> None:
    spec = harness.client.get("/openapi.json").json()
    # GET /findings/{fp}/evidence belongs to the query API (a zip download, documented there)
    ours = {path: ops for path, ops in spec["paths"].items()
            if path.startswith(PREFIXES) and not path.endswith("/evidence")}
    assert len(ours) >= 20
    for path, operations in ours.items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op.get("tags") and op.get("summary"), where
            ok = op["responses"].get("200") or op["responses"].get("201")
            assert ok and "schema" in ok["content"]["application/json"], where
            assert op["security"] == [{"userToken": []}], where
    replay = ours["/api/v1/findings/{fingerprint}/replay"]["post"]["responses"]
    assert "202" in replay
    assert "userToken" in spec["components"]["securitySchemes"]
