"""Security headers on every kind of answer, the docs pages' looser CSP, HSTS on https only, and CORS."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from collector.app import create_app
from collector.security_headers import API_CSP, DOCS_CSP, allowed_origins, header_set
from syncwatch.settings import Settings
from syncwatch.store import Store
from tests.conftest import ADMIN_TOKEN, Harness

CE = "application/cloudevents+json"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BASE = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


def assert_secured(response: object, csp: str = API_CSP) -> None:
    for name, value in BASE.items():
        assert response.headers.get(name) == value, (name, response.headers)  # type: ignore[attr-defined]
    assert response.headers["content-security-policy"] == csp  # type: ignore[attr-defined]
    assert "strict-transport-security" not in response.headers  # type: ignore[attr-defined]
    assert "access-control-allow-origin" not in response.headers  # type: ignore[attr-defined]


def test_every_kind_of_answer_carries_the_headers(harness: Harness) -> None:
    c = harness.client
    event = {"specversion": "1.0", "id": "h-1", "source": "/crm/x", "type": "crm.account.created",
             "data": {"account_id": "A", "name": "n", "region": "EMEA"}}
    key = harness.auth(harness.key("crm", "events", "telemetry"))
    answers = [
        c.get("/healthz"), c.get("/metrics"), c.get("/openapi.json"),
        c.get("/api/v1/me", headers=ADMIN), c.get("/api/v1/me"),  # 200 and 401
        c.get("/api/v1/findings?limit=abc", headers=ADMIN),  # 400
        c.get("/api/v1/nowhere"),  # 404 from the router
        c.post("/v1/events", content=json.dumps(event), headers={**key, "Content-Type": CE}),
        c.post("/v1/events", content=b"{"),  # the fast path's 401
        c.post("/v1/traces", content=b"", headers={**key, "Content-Type": "application/x-protobuf"}),
        c.get("/api/v1/export/audit?format=csv", headers=ADMIN),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 401, 400, 404, 200, 401, 200, 200]
    for answer in answers:
        assert_secured(answer)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_may_load_what_they_use_and_nothing_else(harness: Harness, path: str) -> None:
    response = harness.client.get(path)
    assert_secured(response, DOCS_CSP)
    sources = set(re.findall(r'(?:src|href)="?(https://[^/"\']+)', response.text))
    assert sources, "the docs page loads nothing from a CDN any more: tighten DOCS_CSP"
    for origin in sources:
        assert origin in DOCS_CSP, f"{path} loads {origin}, which its CSP does not allow"


def test_hsts_only_on_https_and_only_when_configured() -> None:
    names = lambda hs: {n.decode(): v.decode() for n, v in hs}  # noqa: E731
    assert "strict-transport-security" not in names(header_set("/", https=True, hsts_max_age=0))
    assert "strict-transport-security" not in names(header_set("/", https=False, hsts_max_age=3600))
    on = names(header_set("/api/v1/me", https=True, hsts_max_age=3600))
    assert on["strict-transport-security"] == "max-age=3600; includeSubDomains"


def app_with(settings: Settings, store: Store, **changes: object) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=changes), store=store), base_url="https://testserver")


def test_hsts_through_the_app_over_https(settings: Settings, store: Store) -> None:
    with app_with(settings, store, hsts_max_age=600) as client:
        assert client.get("/healthz").headers["strict-transport-security"] == "max-age=600; includeSubDomains"


def test_cors_is_off_by_default(harness: Harness) -> None:
    preflight = harness.client.options("/api/v1/me", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code >= 400 and "access-control-allow-origin" not in preflight.headers
    simple = harness.client.get("/api/v1/me", headers={**ADMIN, "Origin": "https://evil.example"})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_cors_allows_only_the_listed_origins(settings: Settings, store: Store) -> None:
    with app_with(settings, store, cors_allow_origins="https://ops.example.com, https://bi.example.com/") as client:
        ok = client.options("/api/v1/me", headers={"Origin": "https://bi.example.com",
                                                   "Access-Control-Request-Method": "GET",
                                                   "Access-Control-Request-Headers": "authorization"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://bi.example.com"
        assert "access-control-allow-credentials" not in ok.headers
        assert ok.headers["x-content-type-options"] == "nosniff"
        refused = client.options("/api/v1/me", headers={"Origin": "https://evil.example",
                                                        "Access-Control-Request-Method": "GET"})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        simple = client.get("/api/v1/me", headers={**ADMIN, "Origin": "https://ops.example.com"})
        assert simple.headers["access-control-allow-origin"] == "https://ops.example.com"
        other = client.get("/api/v1/me", headers={**ADMIN, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("setting", ["evil.example", "ftp://x", "https://ok.example,javascript:alert(1)"])
def test_a_bad_cors_origin_is_refused_at_start_with_the_setting_named(setting: str) -> None:
    with pytest.raises(ValueError, match="SYNCWATCH_CORS_ALLOW_ORIGINS"):
        allowed_origins(setting)
