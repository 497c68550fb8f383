"""The ASGI fast path serves the hot ingest routes; the OpenAPI document still describes them."""

from __future__ import annotations

import pytest

from tests.conftest import Harness


@pytest.mark.parametrize("path", ["/v1/records/crm", "/v1/records/crm/project/extra", "/v1/records//project"])
def test_malformed_records_paths_are_404_json(harness: Harness, path: str) -> None:
    token = harness.key("crm", "records")
    response = harness.client.post(path, json=[], headers=harness.auth(token))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_fast_path_leaves_other_methods_and_routes_to_fastapi(harness: Harness) -> None:
    assert harness.client.get("/v1/events").status_code == 405
    assert harness.client.get("/healthz").json() == {"status": "ok"}


def test_openapi_documents_ingest_routes_with_bearer_auth(harness: Harness) -> None:
    schema = harness.client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for path in ("/v1/events", "/v1/records/{system}/{entity}", "/api/v1/admin/query"):
        assert schema["paths"][path]["post"]["security"] == [{"apiKey": []}], path
