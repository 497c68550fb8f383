"""Exports as CSV and Parquet, read back with polars; the findings export honours the list's filters."""

from __future__ import annotations

import io
import json
from typing import Any

import polars as pl
import pytest

from reconciler import findings
from reconciler.audit import AuditEntry, verify_entries
from tests.api.story import Story, act, bearer, write_story
from tests.conftest import ADMIN_TOKEN, Harness

ADMIN = bearer(ADMIN_TOKEN)


@pytest.fixture
def story(harness: Harness) -> Story:
    return write_story(harness.store)


def download(harness: Harness, what: str, fmt: str, **params: Any) -> pl.DataFrame:
    response = harness.client.get(f"/api/v1/export/{what}", params={"format": fmt, **params}, headers=ADMIN)
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="syncwatch-') and disposition.endswith(f'.{fmt}"')
    data = io.BytesIO(response.content)
    return pl.read_csv(data) if fmt == "csv" else pl.read_parquet(data)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_findings_in_both_formats(harness: Harness, story: Story, fmt: str) -> None:
    frame = download(harness, "findings", fmt)
    assert frame["fingerprint"].to_list() == [story.mismatch, story.breach]  # highest impact first
    mismatch = frame.row(0, named=True)
    assert (mismatch["rule"], mismatch["kind"], mismatch["status"], mismatch["systems"]) == (
        "crm_vs_erp_contract_value", "mismatch", "open", "crm,erp")
    assert json.loads(mismatch["keys"]) == {"opportunity_id": "OPP-1"}
    assert float(mismatch["impact_amount"]) == 1000.0 and mismatch["impact_currency"] == "EUR"


@pytest.mark.parametrize(("params", "expected"), [
    ({"rule": "time_to_bill"}, ["breach"]),
    ({"kind": "mismatch,stuck"}, ["mismatch", "breach"]),
    ({"status": "resolved"}, ["mismatch"]),
    ({"key": "TS-3"}, ["breach"]),
    ({"system": "crm", "severity": "high"}, ["mismatch"]),
    ({"min_age": "1d"}, []),
])
def test_findings_filters(harness: Harness, story: Story, params: dict[str, str], expected: list[str]) -> None:
    findings.resolve(harness.store, story.mismatch, "fixed") if params.get("status") == "resolved" else None
    frame = download(harness, "findings", "parquet", **params)
    assert frame["fingerprint"].to_list() == [getattr(story, name) for name in expected]


@pytest.mark.parametrize(("params", "name"), [
    ({"status": "lost"}, "status"), ({"min_age": "2d", "max_age": "1d"}, "min_age"), ({"colour": "red"}, "colour"),
    ({"format": "xlsx"}, "format"),
])
def test_bad_findings_filters_are_400(harness: Harness, params: dict[str, str], name: str) -> None:
    response = harness.client.get("/api/v1/export/findings", params=params, headers=ADMIN)
    assert response.status_code == 400 and name in response.json()["error"]["message"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_timeline(harness: Harness, story: Story, fmt: str) -> None:
    act(harness.store, story.breach, "acknowledged")
    frame = download(harness, "timeline", fmt, key=":TS-3")
    assert frame["kind"].to_list() == ["event", "finding", "action"]
    assert json.loads(frame["ids"][1])["fingerprint"] == story.breach
    assert json.loads(frame["detail"][0])["timesheet_id"] == "TS-3"


def test_timeline_export_needs_a_key(harness: Harness) -> None:
    response = harness.client.get("/api/v1/export/timeline", headers=ADMIN)
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("key:")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_audit_log_rows_still_verify(harness: Harness, story: Story, fmt: str) -> None:
    act(harness.store, story.breach, "acknowledged", "assigned")
    act(harness.store, story.mismatch, "silenced")
    frame = download(harness, "audit", fmt)
    # `at` is the hashed text, so the file alone re-verifies the chain
    entries = [AuditEntry(**{**row, "seq": int(row["seq"])}) for row in frame.iter_rows(named=True)]
    assert [e.seq for e in entries] == [1, 2, 3] and verify_entries(entries).ok
    only = download(harness, "audit", fmt, fingerprint=story.mismatch)
    assert only["action"].to_list() == ["silenced"]


def test_every_export_is_audited(harness: Harness, story: Story) -> None:
    download(harness, "findings", "csv", rule="time_to_bill")
    download(harness, "audit", "parquet")
    exports = [e for e in harness.app.state.audit.entries() if e.action == "exported"]
    assert [json.loads(e.parameters)["what"] for e in exports] == ["findings", "audit"]
    first = json.loads(exports[0].parameters)
    assert first == {"filters": {"rule": ["time_to_bill"]}, "format": "csv", "rows": 1, "what": "findings"}
    assert exports[0].actor == "bootstrap"


def test_an_empty_export_is_a_valid_file(harness: Harness) -> None:
    assert download(harness, "findings", "parquet").height == 0
    response = harness.client.get("/api/v1/export/findings", headers=ADMIN)
    assert response.text.startswith('"fingerprint","rule"')


def test_csv_in_several_chunks_has_one_header() -> None:
    import pyarrow as pa

    from collector.api.export_files import CSV_BATCH_ROWS, csv_chunks, parquet_chunks

    table = pa.table({"n": list(range(2 * CSV_BATCH_ROWS + 5)), "s": ["a,\"b\""] * (2 * CSV_BATCH_ROWS + 5)})
    parts = list(csv_chunks(table))
    assert len(parts) == 3
    frame = pl.read_csv(io.BytesIO(b"".join(parts)))
    assert frame.height == table.num_rows and frame["s"][0] == 'a,"b"'
    assert pl.read_parquet(io.BytesIO(b"".join(parquet_chunks(table))))["n"].sum() == sum(range(table.num_rows))
