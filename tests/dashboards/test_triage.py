"""Operations triage: the queue with data, filters, the detail panel, single and bulk action round trips
through the real API (status changed, audit log appended), and what each role may do."""

from __future__ import annotations

from typing import Any

import httpx
from streamlit.testing.v1 import AppTest

from tests.dashboards.apptest import assert_clean, element_types, signed_in, texts
from tests.dashboards.conftest import SeededApi


def api_get(api: SeededApi, path: str, role: str = "ops", **params: Any) -> Any:
    response = httpx.get(f"{api.base_url}/api/v1/{path}", params=params,
                         headers={"Authorization": f"Bearer {api.tokens[role]}"}, timeout=30)
    response.raise_for_status()
    return response.json()


def open_findings(api: SeededApi, **params: Any) -> list[dict[str, Any]]:
    return api_get(api, "findings", status="open", limit=200, **params)["items"]


def focus(at: AppTest, finding: dict[str, Any]) -> AppTest:
    """Narrow the queue to the finding's business key and show it in the detail panel."""
    key = next(iter(finding["keys"].values()))
    at.text_input(key="triage_key").input(key).run()
    at.multiselect(key="triage_kind").set_value([finding["kind"]]).run()
    at.selectbox(key="triage_finding").set_value(finding["fingerprint"]).run()
    assert_clean(at)
    return at


def queue_rows(at: AppTest) -> Any:
    return at.dataframe[0].value


def test_the_queue_shows_findings_by_impact_with_counts(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "ops", "triage")
    open_total = api_get(dashboard_env, "findings", status="open", limit=1)["total"]
    assert at.metric[0].label == "Open" and at.metric[0].value == f"{open_total:,}"
    rows = queue_rows(at)
    assert 0 < len(rows) <= 50
    impacts = list(rows["impact"])
    assert impacts == sorted(impacts, reverse=True)
    assert set(rows["status"]) <= {"open", "acknowledged"}


def test_filters_narrow_the_queue(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "ops", "triage")
    at.segmented_control(key="triage_view").set_value("Stuck workflows").run()
    assert set(queue_rows(at)["kind"]) <= {"stuck", "sla_breach", "failed_step"}
    at.multiselect(key="triage_kind").set_value(["stuck"]).run()
    assert set(queue_rows(at)["kind"]) == {"stuck"}
    at.segmented_control(key="triage_sort").set_value("Age").run()
    assert_clean(at)
    finding = open_findings(dashboard_env, kind="stuck")[0]
    key = next(iter(finding["keys"].values()))
    at.text_input(key="triage_key").input(key).run()
    assert all(key in keys for keys in queue_rows(at)["keys"])
    at.multiselect(key="triage_severity").set_value(["info"]).run()
    assert "No findings match these filters." in texts(at.info)


def test_the_detail_panel_shows_both_sides_and_the_timeline(dashboard_env: SeededApi) -> None:
    finding = open_findings(dashboard_env, kind="mismatch")[0]
    at = focus(signed_in(dashboard_env, "ops", "triage"), finding)
    codes = texts(at.code)
    assert finding["left_value"] in codes and finding["right_value"] in codes
    assert element_types(at)["vega_lite_chart"] >= 1  # the business object's timeline
    assert [m.value for m in at.metric if m.label == "Status"] == ["open"]


def test_acknowledge_round_trip(dashboard_env: SeededApi) -> None:
    # The lowest-impact stuck instance: the other tests act on the first findings of a kind. (An SLA
    # breach, taken before, is not in every 120-day window the feed simulates up to today.)
    finding = open_findings(dashboard_env, kind="stuck")[-1]
    at = focus(signed_in(dashboard_env, "ops", "triage"), finding)
    next(b for b in at.button if b.label == "Acknowledge").click().run()
    assert_clean(at)
    assert any("now **acknowledged**" in s for s in texts(at.success)), texts(at.success)
    after = api_get(dashboard_env, f"findings/{finding['fingerprint']}")
    assert after["finding"]["status"] == "acknowledged"
    assert [(e["actor"], e["action"]) for e in after["audit"]] == [("ops tester", "acknowledged")]
    assert [m.value for m in at.metric if m.label == "Status"] == ["acknowledged"]  # the cache was bypassed


def test_assign_to_a_team_through_the_form(dashboard_env: SeededApi) -> None:
    finding = open_findings(dashboard_env, kind="stuck")[1]
    at = focus(signed_in(dashboard_env, "ops", "triage"), finding)
    at.radio(key="single_assign_to").set_value("team")
    at.text_input(key="single_assign_name").input("billing-ops")
    at.button(key="submit_assign").click().run()
    assert_clean(at)
    assert any("Assign" in s for s in texts(at.success))
    assert api_get(dashboard_env, f"findings/{finding['fingerprint']}")["finding"]["assignee"] == "team:billing-ops"


def test_bulk_action_reports_each_outcome(dashboard_env: SeededApi) -> None:
    first, second = open_findings(dashboard_env, kind="stuck")[2:4]
    headers = {"Authorization": f"Bearer {dashboard_env.tokens['ops']}"}
    httpx.post(f"{dashboard_env.base_url}/api/v1/findings/{first['fingerprint']}/acknowledge", json={},
               headers=headers, timeout=30).raise_for_status()
    at = signed_in(dashboard_env, "ops", "triage")
    at.multiselect(key="triage_status").set_value(["open", "acknowledged"]).run()
    at.multiselect(key="triage_kind").set_value(["stuck"]).run()
    at.multiselect(key="bulk_pick").set_value([first["fingerprint"], second["fingerprint"]]).run()
    at.selectbox(key="bulk_action").set_value("acknowledge").run()
    at.button(key="bulk_submit").click().run()
    assert_clean(at)
    assert any("1 of 2 findings done, 1 refused" in w for w in texts(at.warning)), texts(at.warning)
    assert api_get(dashboard_env, f"findings/{second['fingerprint']}")["finding"]["status"] == "acknowledged"


def test_bulk_note_on_every_finding_matching_the_filter(dashboard_env: SeededApi) -> None:
    finding = open_findings(dashboard_env, kind="missing_right")[0]
    key = next(iter(finding["keys"].values()))
    at = signed_in(dashboard_env, "ops", "triage")
    at.text_input(key="triage_key").input(key).run()
    at.multiselect(key="triage_kind").set_value(["missing_right"]).run()
    matching = api_get(dashboard_env, "findings", key=key, kind="missing_right", status=["open", "acknowledged"],
                       limit=1)["total"]
    at.radio(key="bulk_scope").set_value("every finding matching the filters").run()
    at.selectbox(key="bulk_action").set_value("annotate").run()
    at.text_area(key="bulk_annotate_note").input("checked with the ERP team")
    at.button(key="bulk_submit").click().run()
    assert_clean(at)
    assert any(f"{matching} of {matching} findings done" in s for s in texts(at.success)), texts(at.success)
    notes = api_get(dashboard_env, f"findings/{finding['fingerprint']}")["annotations"]
    assert [n["note"] for n in notes] == ["checked with the ERP team"]


def test_an_auditor_reads_the_queue_but_takes_no_action(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "auditor", "triage")
    assert len(queue_rows(at)) > 0
    assert not [b for b in at.button if b.label in ("Acknowledge", "Re-check now")]
    assert any("takes no action" in c for c in texts(at.caption))
    assert any(b.label == "Prepare evidence pack" for b in at.button)


def test_an_admin_may_silence_but_not_acknowledge(dashboard_env: SeededApi) -> None:
    at = signed_in(dashboard_env, "admin", "triage")
    labels = [b.label for b in at.button]
    assert "Acknowledge" not in labels and "Silence" in labels


def replay_form(at: AppTest, dry_run: bool) -> AppTest:
    if not dry_run:
        at.checkbox(key="single_replay_dry_run").uncheck()
    at.button(key="submit_replay").click().run()
    assert_clean(at)
    return at


def test_a_replay_dry_run_shows_what_would_be_sent_where(dashboard_env: SeededApi) -> None:
    finding = open_findings(dashboard_env, kind="missing_right")[0]
    sent_before = len(dashboard_env.receiver.requests)
    at = replay_form(focus(signed_in(dashboard_env, "ops", "triage"), finding), dry_run=True)
    assert any("(dry run)" in s and "nothing sent" in s for s in texts(at.success)), texts(at.success)
    plan = next(d.value for d in at.dataframe if "idempotency key" in d.value.columns)  # under the message
    assert len(plan) >= 1 and all(url.startswith(dashboard_env.receiver.url) for url in plan["url"])
    assert len(dashboard_env.receiver.requests) == sent_before


def test_a_large_replay_waits_for_a_second_ops_user(dashboard_env: SeededApi) -> None:
    # above the four-eyes threshold (10,000); workflow findings first, whose source events exist
    big = [f for f in open_findings(dashboard_env) if f["impact_amount"] > 10_000 and f["status"] == "open"]
    finding = sorted(big, key=lambda f: f["kind"] not in ("sla_breach", "stuck"))[0]
    at = replay_form(focus(signed_in(dashboard_env, "ops", "triage"), finding), dry_run=False)
    assert any("pending approval" in w for w in texts(at.warning)), texts(at.warning)
    pending = [r for r in api_get(dashboard_env, "replays", state="pending_approval")
               if r["fingerprint"] == finding["fingerprint"]]
    [replay] = pending
    at.button(key=f"approve_{replay['replay_id']}").click().run()  # the requester may not approve
    assert any(e.startswith("Approval refused") for e in texts(at.error)), texts(at.error)

    sent_before = len(dashboard_env.receiver.requests)
    reviewer = signed_in(dashboard_env, "ops2", "triage")
    reviewer.button(key=f"approve_{replay['replay_id']}").click().run()
    assert_clean(reviewer)
    assert any("(delivered)" in s for s in texts(reviewer.success)), texts(reviewer.success)
    delivered = dashboard_env.receiver.requests[sent_before:]
    assert delivered and all(r["idempotency_key"] for r in delivered)
    assert api_get(dashboard_env, f"replays/{replay['replay_id']}")["state"] == "delivered"
