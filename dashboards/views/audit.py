"""Audit: one business object end to end (by business key or trace id) as a Gantt chart of spans and
events across systems, the hash-chained audit log with its verification, and downloads.

Reads GET /api/v1/timeline, /audit, /audit/verify and /export/{findings|timeline|audit}.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import charts, ui
from dashboards.client import ApiError
from dashboards.formatting import instant

TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
AUDIT_PAGE = 50
EXPORT_FORMATS = {"CSV": ("csv", "text/csv"), "Parquet": ("parquet", "application/vnd.apache.parquet")}


def selector(text: str) -> dict[str, list[str]]:
    """What the search box means: 32 hex digits are a trace id, anything else a business key
    (`name:value`, or a bare value under any key name).

    >>> selector("4bf92f3577b34da6a3ce929d0e0e4736"), selector("project_id:P-17"), selector(" P-17 ")
    ({'trace_id': ['4bf92f3577b34da6a3ce929d0e0e4736']}, {'key': ['project_id:P-17']}, {'key': ['P-17']})
    """
    text = text.strip()
    return {"trace_id": [text.lower()]} if TRACE_ID.match(text) else {"key": [text]}


def _pick() -> None:
    st.session_state["audit_query"] = st.session_state.get("audit_pick") or ""


def suggestions() -> None:
    """The objects of the findings with the most business impact, one click away."""
    if not ui.me().may("findings:read"):
        return
    try:
        items = ui.get("findings", {"status": ["open", "acknowledged"], "limit": 8}, tier="live")["items"]
    except ApiError:
        return  # only a shortcut: the search box works without it
    options = list(dict.fromkeys(f"{name}:{value}" for f in items for name, value in sorted(f["keys"].items())[:1]))
    if options:
        st.pills("Or follow the object of a high-impact finding", options, key="audit_pick", on_change=_pick)


def timeline_section() -> None:
    st.subheader("Follow a business object")
    suggestions()
    with st.form("audit_search"):
        text = st.text_input("Business key or trace id", key="audit_query",
                             placeholder="P-17, project_id:P-17 or a 32-digit trace id")
        st.form_submit_button("Show timeline", type="primary")
    if not text.strip():
        st.caption("Search for a project, opportunity, invoice, timesheet or person id to see every system's "
                   "events, the integration spans that carried them, findings and actions, in time order.")
        return
    params = selector(text)
    with ui.api_errors(f"the timeline of {text.strip()}"):
        timeline = ui.get("timeline", params, tier="standard")
        items = timeline["items"]
        if not items:
            st.info(f"Nothing in any system for {text.strip()}.")
            return
        counts = ", ".join(f"{n} {kind}s" for kind, n in timeline["counts"].items() if n)
        st.caption(f"{counts} across {len({i['system'] for i in items})} systems")
        if timeline.get("truncated"):
            st.warning(f"Only the first items of these kinds are shown: {', '.join(timeline['truncated'])}")
        built = charts.gantt(charts.timeline_rows(items))
        if built is not None:
            st.altair_chart(built, width="stretch")
        table = pd.DataFrame([{"at": instant(i["at"]), "kind": i["kind"], "system": i["system"], "what": i["title"],
                               "status": i["status"],
                               "ids": ", ".join(f"{k}={v}" for k, v in i["ids"].items() if v)} for i in items])
        st.dataframe(table, hide_index=True, width="stretch")
        if ui.me().may("export"):
            downloads("timeline", params, f"timeline-{re.sub(r'[^A-Za-z0-9_.-]+', '_', text.strip())}")


def chain_status() -> None:
    verification = ui.get("audit/verify", tier="live")
    if verification["ok"]:
        st.success(f"Audit chain intact: {verification['checked']:,} entries verified; head hash "
                   f"`{verification['head_hash'][:16]}…`", icon=":material/verified:")
        return
    st.error(f"Audit chain BROKEN: {len(verification['breaks'])} problem(s) in {verification['checked']:,} entries. "
             "Stored rows were altered, removed or reordered.", icon=":material/gpp_bad:")
    st.dataframe(pd.DataFrame(verification["breaks"]), hide_index=True, width="stretch")


def audit_log_section() -> None:
    st.subheader("Audit log")
    if not ui.me().may("audit:read"):
        st.caption(f"Your role ({ui.me().role}) may not read the audit log.")
        return
    with ui.api_errors("the audit chain status"):
        chain_status()
    actor_col, action_col, fp_col = st.columns(3)
    params: dict[str, Any] = {
        "actor": actor_col.text_input("Actor", key="audit_actor").strip(),
        "action": action_col.text_input("Action", key="audit_action").strip(),
        "fingerprint": fp_col.text_input("Finding fingerprint", key="audit_fingerprint").strip(),
    }
    with ui.api_errors("the audit log"):
        total = ui.get("audit", {**params, "limit": 1}, tier="live")["total"]
        pages = max(1, -(-total // AUDIT_PAGE))
        page = st.number_input(f"Page (of {pages}; {total:,} entries)", 1, pages, pages, key="audit_page")
        entries = ui.get("audit", {**params, "limit": AUDIT_PAGE, "offset": (page - 1) * AUDIT_PAGE},
                         tier="live")["entries"]
        if entries:
            frame = pd.DataFrame(entries)
            frame["hash"] = frame["hash"].str[:12]
            frame["prev_hash"] = frame["prev_hash"].str[:12]
            st.dataframe(frame[["seq", "at", "actor", "role", "action", "finding_fingerprint", "parameters",
                                "outcome", "prev_hash", "hash"]], hide_index=True, width="stretch")
        else:
            st.caption("No entries match.")
    if ui.me().may("export"):
        downloads("audit", {k: v for k, v in params.items() if v}, "audit-log")


def downloads(what: str, params: dict[str, Any], stem: str) -> None:
    """Buttons that fetch an export when asked (exports can be large), then offer it for download."""
    columns = st.columns(len(EXPORT_FORMATS) + 2)
    for column, (label, (fmt, mime)) in zip(columns, EXPORT_FORMATS.items(), strict=False):
        state = f"export_{what}_{fmt}"
        if column.button(f"Prepare {what} {label}", key=f"prepare_{state}", icon=":material/download:"):
            try:
                st.session_state[state] = (repr(params), ui.client().download(f"export/{what}",
                                                                             {**params, "format": fmt}))
            except ApiError as exc:
                ui.show_error(exc, f"the {what} export")
        ready = st.session_state.get(state)
        if ready and ready[0] == repr(params):
            column.download_button(f"Save {stem}.{fmt}", ready[1], file_name=f"{stem}.{fmt}", mime=mime,
                                   key=f"save_{state}", icon=":material/save:")


def main() -> None:
    st.title("Audit")
    timeline_section()
    st.divider()
    audit_log_section()
    if ui.me().may("export"):
        st.divider()
        st.subheader("Findings export")
        downloads("findings", {}, "findings")


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import its helpers
    main()
