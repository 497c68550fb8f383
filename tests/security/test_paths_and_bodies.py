"""Path traversal through exports, evidence and the records path; oversize bodies and decompression
bombs on every ingest route."""

from __future__ import annotations

import gzip
import io
import re
import zipfile
import zlib

import pytest

from tests.api.story import write_story
from tests.conftest import ADMIN_TOKEN, Harness

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TRAVERSALS = ["../../../../etc/passwd", "/etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
              "..\\..\\windows\\win.ini", "....//....//etc/passwd", "file:///etc/passwd", "a/../../b",
              "\x00/etc/passwd"]
SAFE_NAME = re.compile(r'^attachment; filename="[A-Za-z0-9_.-]+"$')


def _no_file_leaked(response: object) -> None:
    assert response.status_code < 500, response.text  # type: ignore[attr-defined]
    assert b"root:" not in response.content  # type: ignore[attr-defined]
    disposition = response.headers.get("content-disposition")  # type: ignore[attr-defined]
    if disposition:
        assert SAFE_NAME.match(disposition) and ".." not in disposition, disposition


def test_traversal_in_export_parameters(harness: Harness) -> None:
    for value in TRAVERSALS:
        _export_parameters(harness, value)


def _export_parameters(harness: Harness, value: str) -> None:
    c = harness.client
    answers = {
        "format": c.get("/api/v1/export/findings", params={"format": value}, headers=ADMIN),
        "audit format": c.get("/api/v1/export/audit", params={"format": value}, headers=ADMIN),
        "timeline format": c.get("/api/v1/export/timeline", params={"key": "a:b", "format": value}, headers=ADMIN),
    }
    for where, response in answers.items():
        assert response.status_code == 400 and "format" in response.json()["error"]["message"], where
    # as filter values they are plain data: bound, matching nothing, in a file with the server's own name
    for response in (c.get("/api/v1/export/audit", params={"fingerprint": value[:128], "actor": value}, headers=ADMIN),
                     c.get("/api/v1/export/timeline", params={"key": f"project_id:{value}"}, headers=ADMIN),
                     c.get("/api/v1/export/findings", params={"rule": value}, headers=ADMIN)):
        _no_file_leaked(response)
        assert response.status_code in (200, 400), response.text


def test_traversal_in_path_parameters(harness: Harness) -> None:
    key = harness.auth(harness.key("crm", "records"))
    for raw in TRAVERSALS:
        _path_parameters(harness, key, raw.replace("\x00", "%00"))  # a URL cannot carry a raw NUL
    assert harness.count("SELECT count() FROM records") == 0


def _path_parameters(harness: Harness, key: dict[str, str], value: str) -> None:
    c = harness.client
    for response in (c.get(f"/api/v1/findings/{value}/evidence", headers=ADMIN),
                     c.get(f"/api/v1/findings/{value}", headers=ADMIN),
                     c.get(f"/api/v1/rules/{value}/runs", headers=ADMIN),
                     c.get(f"/api/v1/kpis/{value}", headers=ADMIN)):
        _no_file_leaked(response)
        assert response.status_code in (400, 404), (value, response.status_code, response.text)
    for path in (f"/v1/records/{value}/project", f"/v1/records/crm/{value}"):
        response = c.post(path, content=b"[]", headers={**key, "Content-Type": "application/json"})
        assert response.status_code in (400, 403, 404), (path, response.text)


def test_evidence_and_exports_name_their_files_themselves(harness: Harness) -> None:
    story = write_story(harness.store)
    response = harness.client.get(f"/api/v1/findings/{story.breach}/evidence", headers=ADMIN)
    assert response.status_code == 200
    _no_file_leaked(response)
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert names and all(re.fullmatch(r"[a-z_]+\.(json|yaml)", n) for n in names), names
    for kind in ("findings", "audit"):
        _no_file_leaked(harness.client.get(f"/api/v1/export/{kind}?format=parquet", headers=ADMIN))


INGEST = [
    ("/v1/events", "application/cloudevents-batch+json", "events"),
    ("/v1/records/crm/project", "application/json", "records"),
    ("/v1/traces", "application/json", "telemetry"),
    ("/v1/logs", "application/json", "telemetry"),
    ("/v1/metrics", "application/json", "telemetry"),
]
LIMIT = 100_000


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data, 9)


@pytest.mark.parametrize(("path", "content_type", "scope"), INGEST, ids=[p for p, _, _ in INGEST])
def test_oversize_bodies_and_bombs_are_413_on_every_ingest_route(harness: Harness, path: str, content_type: str,
                                                                 scope: str) -> None:
    harness.app.state.settings.max_body_bytes = LIMIT
    headers = {**harness.auth(harness.key("crm", scope)), "Content-Type": content_type}
    filler = b"[" + b" " * (LIMIT * 50) + b"]"  # valid JSON once inflated: only the size is wrong
    cases = {
        "oversize": (b"[" + b" " * (LIMIT + 10) + b"]", {}),
        "oversize, chunked (no Content-Length)": (iter([b"[", b" " * (LIMIT + 10), b"]"]), {}),
        "gzip bomb": (gzip.compress(filler), {"Content-Encoding": "gzip"}),
        "deflate bomb": (_deflate(filler), {"Content-Encoding": "deflate"}),
        "gzip bomb, upper-case encoding": (gzip.compress(filler), {"Content-Encoding": "GZIP"}),
    }
    for case, (body, extra) in cases.items():
        response = harness.client.post(path, content=body, headers={**headers, **extra})
        assert response.status_code == 413, (case, response.status_code, response.text[:200])
        assert "exceeds the limit of 100000 bytes" in response.text, (case, response.text[:200])
    assert harness.count("SELECT count() FROM events") + harness.count("SELECT count() FROM records") == 0
    assert harness.count("SELECT count() FROM otel_traces") + harness.count("SELECT count() FROM otel_logs") == 0
