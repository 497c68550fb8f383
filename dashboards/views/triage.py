"""Operations triage: the queue of findings and stuck workflows, most business impact (or oldest)
first, filters, a detail panel (side-by-side values, the object's timeline, its audit trail) and
actions on one finding or many.

Reads GET /api/v1/findings, /findings/{fp}, /timeline and /rules; acts through POST
/findings/{fp}/{action} and /findings/bulk/{action}.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboards import actions, charts, ui
from dashboards.client import ApiError
from dashboards.formatting import age, instant, keys_text, money

PAGE_SIZE = 50
STATUSES = ("open", "acknowledged", "silenced", "resolved")
KINDS = ("missing_left", "missing_right", "mismatch", "aggregate_mismatch", "stuck", "sla_breach", "failed_step")
WORKFLOW_KINDS = ("stuck", "sla_breach", "failed_step")
SEVERITIES = ("critical", "high", "medium", "low", "info")
SYSTEMS = ("crm", "psa", "erp", "hris", "time", "billing")
AGES = {"any age": None, "over 1 hour": "1h", "over 1 day": "1d", "over 3 days": "3d", "over 1 week": "1w"}
VIEWS = {"All findings": None, "Stuck workflows": list(WORKFLOW_KINDS),
         "Drift": ["missing_left", "missing_right", "mismatch", "aggregate_mismatch"]}
SORTS = {"Business impact": "impact", "Age": "age"}
SELECTION_KEY = "triage_selected"
PICK_KEY = "bulk_pick"
TIMELINE_LIMIT = 200


def filters() -> tuple[dict[str, Any], str]:
    """The filter widgets; returns the API's filter parameters and the sort."""
    top = st.columns([2, 2, 1])
    view = top[0].segmented_control("Show", list(VIEWS), default="All findings", key="triage_view") or "All findings"
    sort = top[1].segmented_control("Sort by", list(SORTS), default="Business impact", key="triage_sort")
    key = top[2].text_input("Business key", key="triage_key", placeholder="P-17").strip()
    row = st.columns([1.6, 1.4, 1.6, 1.2, 1.2])
    status = row[0].multiselect("Status", STATUSES, default=["open", "acknowledged"], key="triage_status")
    kinds = row[1].multiselect("Kind", KINDS, key="triage_kind")
    rules = row[2].multiselect("Rule", rule_names(), key="triage_rule")
    systems = row[3].multiselect("System", SYSTEMS, key="triage_system")
    severity = row[4].multiselect("Severity", SEVERITIES, key="triage_severity")
    min_age = st.select_slider("Age", list(AGES), key="triage_age")
    params: dict[str, Any] = {"status": status, "kind": kinds or VIEWS[view], "rule": rules, "system": systems,
                              "severity": severity, "min_age": AGES[min_age], "key": key or None}
    return {k: v for k, v in params.items() if v}, SORTS[sort or "Business impact"]


def rule_names() -> list[str]:
    if not ui.me().may("health:read"):
        return []
    try:
        return sorted(r["name"] for r in ui.get("rules", tier="standard") if r["kind"] != "kpi")
    except ApiError:
        return []  # the filter still works by the other criteria


def label(finding: dict[str, Any]) -> str:
    impact = money(finding["impact_amount"], finding["impact_currency"]) if finding["impact_amount"] else "no impact"
    return f"{finding['severity']} · {finding['rule']} · {finding['kind']} · {keys_text(finding['keys'])} · {impact}"


def queue_table(items: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "severity": f["severity"], "rule": f["rule"], "kind": f["kind"], "keys": keys_text(f["keys"]),
        "systems": ", ".join(f["systems"]), "impact": f["impact_amount"], "currency": f["impact_currency"],
        "age": age(f["age_seconds"]), "status": f["status"], "assignee": f["assignee"], "field": f["field"],
    } for f in items])


def summary() -> None:
    counts = {name: ui.get("findings", {**params, "limit": 1}, tier="live")["total"]
              for name, params in {"open": {"status": ["open"]}, "acknowledged": {"status": ["acknowledged"]},
                                   "stuck": {"status": ["open", "acknowledged"], "kind": list(WORKFLOW_KINDS)},
                                   "silenced": {"status": ["silenced"]}}.items()}
    labels = {"open": "Open", "acknowledged": "Acknowledged", "stuck": "Stuck workflows and SLA breaches",
              "silenced": "Silenced"}
    for column, (name, count) in zip(st.columns(len(counts)), counts.items(), strict=True):
        column.metric(labels[name], f"{count:,}", border=True)


def _remember_selection(items: list[dict[str, Any]]) -> None:
    rows = st.session_state["triage_queue"].selection.rows
    picked = [items[i]["fingerprint"] for i in rows if i < len(items)]
    st.session_state[SELECTION_KEY] = st.session_state[PICK_KEY] = picked


def queue(params: dict[str, Any], sort: str) -> list[dict[str, Any]]:
    total = ui.get("findings", {**params, "limit": 1}, tier="live")["total"]  # shared with bulk_panel's count
    pages = max(1, -(-total // PAGE_SIZE))
    head, pager = st.columns([4, 1])
    order = "highest" if sort == "impact" else "oldest"
    head.markdown(f"**{total:,} finding{'s' if total != 1 else ''}** match; sorted by {sort}, {order} first. "
                  "Select rows for a bulk action.")
    page = pager.number_input(f"Page of {pages}", 1, pages, 1, key="triage_page", label_visibility="collapsed")
    page_params = {**params, "sort": sort, "order": "desc", "limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE}
    items = ui.get("findings", page_params, tier="live")["items"]
    if not items:
        st.info("No findings match these filters.")
        return []
    st.dataframe(queue_table(items), hide_index=True, width="stretch", height=min(38 + 35 * len(items), 420),
                 key="triage_queue", on_select=lambda: _remember_selection(items), selection_mode="multi-row",
                 column_config={"impact": st.column_config.NumberColumn(format="%,.0f")})
    return items


def side_by_side(detail: dict[str, Any]) -> None:
    comparison = detail["comparison"]
    for column, side in zip(st.columns(2), (comparison["left"], comparison["right"]), strict=True):
        box = column.container(border=True)
        box.caption(side["label"] + (f" · {side['system']}" if side["system"] else ""))
        box.code(side["value"] or "(missing)", language=None)
        if side["trace_id"]:
            box.caption(f"trace {side['trace_id']}")
    if comparison["detail"]:
        st.caption(comparison["detail"])


def timeline(finding: dict[str, Any]) -> None:
    if not ui.me().may("timeline:read"):
        return
    keys = [f"{name}:{value}" for name, value in sorted(finding["keys"].items()) if value][:8]
    traces = [t for t in (finding["left_trace_id"], finding["right_trace_id"]) if t][:2]
    with ui.api_errors("the finding's timeline"):
        found = ui.get("timeline", {"key": keys, "trace_id": traces, "limit": TIMELINE_LIMIT}, tier="standard")
        built = charts.gantt(charts.timeline_rows(found["items"]))
        if built is None:
            st.caption("No events or spans found for these keys.")
        else:
            st.altair_chart(built, width="stretch")


def activity(detail: dict[str, Any]) -> None:
    entries = detail["audit"]
    if not entries:
        st.caption("No action taken on this finding yet.")
        return
    st.dataframe(pd.DataFrame([{"#": e["seq"], "at": instant(e["at"]), "who": f"{e['actor']} ({e['role']})",
                                "action": e["action"], "parameters": ", ".join(f"{k}={v}" for k, v in
                                                                              e["parameters"].items()),
                                "outcome": e["outcome"]} for e in entries]), hide_index=True, width="stretch")


def detail_panel(items: list[dict[str, Any]]) -> None:
    by_fp = {f["fingerprint"]: f for f in items}
    chosen = st.session_state.get(SELECTION_KEY) or []
    index = next((i for i, fp in enumerate(by_fp) if fp in chosen), 0)
    fingerprint = st.selectbox("Finding", list(by_fp), index=index, format_func=lambda fp: label(by_fp[fp]),
                               key="triage_finding")
    with ui.api_errors("the finding"):
        detail = ui.get(f"findings/{fingerprint}", tier="live")
        f = detail["finding"]
        facts = st.columns(4)
        facts[0].metric("Status", f["status"])
        facts[1].metric("Impact", money(f["impact_amount"], f["impact_currency"]) if f["impact_amount"] else "none")
        facts[2].metric("Age", age(f["age_seconds"]), help="Since the finding was first detected")
        facts[3].metric("Assignee", f["assignee"] or "nobody")
        rule = detail.get("rule")
        field = f", field {f['field']}" if f["field"] else ""
        reopened = f", reopened {f['reopened_count']} times" if f["reopened_count"] else ""
        st.markdown(f"**{f['rule']}** ({f['kind']}{field}) · {keys_text(f['keys'])} · "
                    f"first seen {instant(f['first_seen'])}, last seen {instant(f['last_seen'])}{reopened}")
        if rule:
            with st.expander(rule["description"] or "What the rule checks"):
                st.text(rule["explanation"])
                if not rule["version_matches"]:
                    st.warning(f"The rule changed since this finding was made (version {rule['finding_version']} "
                               f"then, {rule['version']} now).")
        elif detail.get("rule_problem"):
            st.warning(detail["rule_problem"])
        side_by_side(detail)
        st.markdown("**Timeline** of the business object")
        timeline(f)
        st.markdown("**Actions**")
        actions.single(f)
        if ui.me().may("export"):
            evidence(f["fingerprint"])
        st.markdown("**Activity**")
        activity(detail)
        for note in detail["annotations"]:
            st.info(f"{note['author']} ({note['role']}), {instant(note['at'])}: {note['note']}",
                    icon=":material/notes:")


def evidence(fingerprint: str) -> None:
    state = f"evidence_{fingerprint}"
    if st.button("Prepare evidence pack", icon=":material/inventory_2:", key="prepare_evidence"):
        try:
            st.session_state[state] = ui.client().download(f"findings/{fingerprint}/evidence")
        except ApiError as exc:
            ui.show_error(exc, "the evidence pack")
    if st.session_state.get(state):
        st.download_button("Save evidence pack (zip)", st.session_state[state], mime="application/zip",
                           file_name=f"evidence-{fingerprint[:12]}.zip", key="save_evidence", icon=":material/save:")


def bulk_panel(params: dict[str, Any], items: list[dict[str, Any]]) -> None:
    on_page = {f["fingerprint"]: f for f in items}
    scope = st.radio("Apply to", ["selected rows", "every finding matching the filters"], horizontal=True,
                     key="bulk_scope")
    if scope == "selected rows":
        # rows picked in the queue arrive here; a page change drops those no longer shown
        st.session_state[PICK_KEY] = [fp for fp in st.session_state.get(PICK_KEY) or [] if fp in on_page]
        chosen = st.multiselect("Selected findings", list(on_page), format_func=lambda fp: label(on_page[fp]),
                                key=PICK_KEY)
        actions.bulk({"fingerprints": chosen}, len(chosen))
    else:
        total = ui.get("findings", {**params, "limit": 1}, tier="live")["total"]
        st.caption("The API refuses a filter that matches more than 500 findings: narrow it first.")
        actions.bulk({"filter": params}, total)


def main() -> None:
    st.title("Operations triage")
    with ui.api_errors("the findings"):
        summary()
        params, sort = filters()
        actions.feedback()
        items = queue(params, sort)
        if not items:
            return
        details, many, waiting = st.tabs(["Finding detail", "Bulk action", "Replays awaiting approval"])
        with details:
            detail_panel(items)
        with many:
            bulk_panel(params, items)
        with waiting, ui.api_errors("the replays awaiting approval"):
            actions.approvals()


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import its helpers
    main()
