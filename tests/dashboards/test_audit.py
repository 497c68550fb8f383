"""Audit page: follow a business object by key or trace id (Gantt + table), the audit log with its
chain status (a tampered row shows as broken), and exports readable by polars."""

from __future__ import annotations

import io

import httpx
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboards.views.audit import selector
from tests.conftest import LiveServer
from tests.dashboards.apptest import APP, TIMEOUT, assert_clean, element_types, signed_in, texts
from tests.dashboards.conftest import SeededApi
from tests.dashboards.test_triage import open_findings


def search(at: AppTest, text: str) -> AppTest:
    at.text_input(key="audit_query").input(text)
    next(b for b in at.button if b.label == "Show timeline").click().run()
    assert_clean(at)
    return at


@pytest.mark.parametrize("by", ["key", "key name and value", "trace id"])
def test_follow_a_business_object(dashboard_env: SeededApi, by: str) -> None:
    finding = open_findings(dashboard_env, kind="mismatch")[0]
    name, value = next(iter(finding["keys"].items()))
    text = {"key": value, "key name and value": f"{name}:{value}", "trace id": finding["left_trace_id"]}[by]
    at = search(signed_in(dashboard_env, "auditor", "audit"), text)
    assert element_types(at)["vega_lite_chart"] == 1  # the Gantt of spans and events across systems
    table = at.dataframe[0].value
    assert {"event", "span"} <= set(table["kind"])
    assert len(set(table["system"])) >= 2
    assert list(table["at"]) == sorted(table["at"])


def test_nothing_found_is_a_message(dashboard_env: SeededApi) -> None:
    at = search(signed_in(dashboard_env, "auditor", "audit"), "NO-SUCH-KEY-0")
    assert texts(at.info) == ["Nothing in any system for NO-SUCH-KEY-0."]


def test_audit_log_lists_actions_with_an_intact_chain(dashboard_env: SeededApi) -> None:
    finding = open_findings(dashboard_env, kind="stuck")[5]
    httpx.post(f"{dashboard_env.base_url}/api/v1/findings/{finding['fingerprint']}/annotate",
               json={"note": "seen by audit test"}, timeout=30,
               headers={"Authorization": f"Bearer {dashboard_env.tokens['ops']}"}).raise_for_status()
    at = signed_in(dashboard_env, "auditor", "audit")
    assert any(s.startswith("Audit chain intact") for s in texts(at.success))
    at.text_input(key="audit_fingerprint").input(finding["fingerprint"]).run()
    log = at.dataframe[0].value
    assert list(log["action"]) == ["annotated"] and list(log["actor"]) == ["ops tester"]


def test_exports_download_and_read_back(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "auditor", "audit")
    next(b for b in at.button if b.label == "Prepare findings CSV").click().run()
    assert_clean(at)
    assert any(b.label == "Save findings.csv" for b in at.download_button)
    csv = pl.read_csv(io.BytesIO(at.session_state["export_findings_csv"][1]))
    assert len(csv) > 0 and "fingerprint" in csv.columns
    next(b for b in at.button if b.label == "Prepare audit Parquet").click().run()
    audit = pl.read_parquet(io.BytesIO(at.session_state["export_audit_parquet"][1]))
    assert "hash" in audit.columns


def test_ops_follows_objects_but_does_not_read_the_audit_log(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "ops", "audit")
    assert any("may not read the audit log" in c for c in texts(at.caption))
    assert not [b for b in at.button if b.label.startswith("Prepare")]


def test_a_tampered_audit_row_shows_the_chain_broken(live_server: LiveServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    audit = live_server.app.state.audit
    for n in range(3):
        audit.append("ana", "ops", "acknowledged", f"{n:064x}", {"n": n})
    live_server.store.command("ALTER TABLE actions UPDATE outcome = 'rejected' WHERE seq = 2 "
                              "SETTINGS mutations_sync = 1")
    _, token = live_server.app.state.users.create("auditor", "auditor")
    monkeypatch.setenv("SYNCWATCH_API_URL", live_server.base_url)
    monkeypatch.delenv("SYNCWATCH_DASHBOARD_TOKEN", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["sw_token"] = token
    at.run()
    at.switch_page(str(APP.parent / "views/audit.py")).run()
    assert not at.exception
    assert any("Audit chain BROKEN" in e for e in texts(at.error)), texts(at.error)
    breaks = at.dataframe[0].value
    assert 2 in list(breaks["seq"])


def test_search_text_means_a_trace_id_or_a_key() -> None:
    assert selector("4BF92F3577B34DA6A3CE929D0E0E4736") == {"trace_id": ["4bf92f3577b34da6a3ce929d0e0e4736"]}
    assert selector("project_id:P-17") == {"key": ["project_id:P-17"]}


def test_a_high_impact_finding_is_one_click_away(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "auditor", "audit")
    picks = at.pills(key="audit_pick")
    first = picks.options[0]
    picks.set_value(first).run()
    assert_clean(at)
    assert at.text_input(key="audit_query").value == first
    assert element_types(at)["vega_lite_chart"] == 1
