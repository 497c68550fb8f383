"""Every /api/v1 route refuses query parameters it does not take, naming them and what it takes."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_TOKEN, Harness

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize(("url", "unknown", "takes"), [
    ("/api/v1/export/audit?format=csv&limit=5&offset=-7", "limit, offset", "action, actor, fingerprint, format"),
    ("/api/v1/kpis/summary?bucket=year", "bucket", "end, start"),
    ("/api/v1/audit?foo=1", "foo", "action, actor, fingerprint, limit, offset"),
    ("/api/v1/rules?foo=1", "foo", "none"),
    ("/api/v1/findings?sort=age&srot=age", "srot", "assignee, key, kind"),
])
def test_an_unknown_query_parameter_is_a_400_that_names_it(harness: Harness, url: str, unknown: str,
                                                           takes: str) -> None:
    response = harness.client.get(url, headers=ADMIN)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in ("unknown_parameter", "invalid_request"), error
    assert unknown.split(", ")[0] in error["message"]
    if error["code"] == "unknown_parameter":
        path = url.split("?")[0]
        assert f"unknown query parameter(s) {unknown}; GET {path} takes: {takes}" in error["message"]


def test_known_parameters_still_work(harness: Harness) -> None:
    for url in ("/api/v1/audit?limit=5&offset=0", "/api/v1/export/audit?format=csv",
                "/api/v1/integrations/health?window=1h", "/api/v1/findings?status=open&limit=1"):
        assert harness.client.get(url, headers=ADMIN).status_code == 200, url


@pytest.mark.parametrize(("url", "message"), [
    ("/api/v1/audit?fingerprint=xyz", "fingerprint"),
    ("/api/v1/export/audit?fingerprint=xyz", "fingerprint"),
    ("/api/v1/findings?min_age=36501d", "ages go back at most 36500 days"),
])
def test_bad_values_name_the_parameter_in_plain_words(harness: Harness, url: str, message: str) -> None:
    response = harness.client.get(url, headers=ADMIN)
    assert response.status_code == 400 and message in response.json()["error"]["message"], response.text
    assert "datetime." not in response.text
