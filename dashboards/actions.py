"""Action buttons and forms on findings, single and bulk, with the outcome of each shown afterwards.

Every action is a POST to the API, which checks the role, applies the lifecycle and appends to the
audit log; this module only collects the parameters and reports what the API answered. After an
action the session's cached reads are bypassed (refresh epoch), so the queue shows the new state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import ui
from dashboards.client import ApiError
from dashboards.formatting import instant, money

FEEDBACK_KEY = "sw_action_feedback"


@dataclass(frozen=True)
class ActionSpec:
    path: str  # the API's verb: /findings/{fp}/<path>
    label: str
    permission: str
    allowed_from: frozenset[str] | None  # statuses the action applies to (None: any)
    icon: str


ACTIONS = {
    spec.path: spec for spec in (
        ActionSpec("acknowledge", "Acknowledge", "findings:act", frozenset({"open", "silenced"}),
                   ":material/thumb_up:"),
        ActionSpec("recheck", "Re-check now", "findings:act", None, ":material/autorenew:"),
        ActionSpec("reopen", "Reopen", "findings:act", frozenset({"resolved", "acknowledged", "silenced"}),
                   ":material/undo:"),
        ActionSpec("assign", "Assign", "findings:act", None, ":material/person_add:"),
        ActionSpec("annotate", "Add note", "findings:act", None, ":material/edit_note:"),
        ActionSpec("silence", "Silence", "findings:silence", frozenset({"open", "acknowledged", "silenced"}),
                   ":material/notifications_off:"),
        ActionSpec("resolve", "Resolve", "findings:act", frozenset({"open", "acknowledged", "silenced"}),
                   ":material/check_circle:"),
        ActionSpec("replay", "Replay", "findings:act", frozenset({"open", "acknowledged", "silenced"}),
                   ":material/send:"),
    )
}
BUTTONS = ("acknowledge", "recheck", "reopen")
FORMS = ("assign", "annotate", "silence", "resolve", "replay")


def allowed(action: str, status: str | None = None) -> bool:
    spec = ACTIONS[action]
    return ui.me().may(spec.permission) and (status is None or spec.allowed_from is None
                                              or status in spec.allowed_from)


def silence_until(day: date) -> str:
    """End of the chosen day, UTC: 'silence until Friday' means through Friday."""
    return datetime.combine(day + timedelta(days=1), time(), UTC).isoformat()


def _remember(level: str, text: str, table: list[dict[str, Any]] | None = None) -> None:
    st.session_state[FEEDBACK_KEY] = (level, text, table or [])


def feedback() -> None:
    """The outcome of the last action, shown once after the rerun it caused."""
    found = st.session_state.pop(FEEDBACK_KEY, None)
    if not found:
        return
    level, text, table = found
    {"success": st.success, "warning": st.warning, "error": st.error}[level](text)
    if table:
        st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")


def _refused(exc: ApiError, label: str) -> None:
    if exc.status == 409:
        _remember("warning", f"{label} does not apply: {exc.message}")
    elif exc.status == 503:
        _remember("warning", f"{label} could not run now (a rule run holds the finding): {exc.message}. Try again.")
    elif exc.forbidden:
        _remember("error", f"{label} refused: {exc.message}")
    else:
        _remember("error", f"{label} failed: {exc.message}")


def perform(fingerprint: str, action: str, body: dict[str, Any] | None = None) -> None:
    label = ACTIONS[action].label
    try:
        if action == "replay":
            _report_replay(ui.client().replay(fingerprint, **(body or {})))
        else:
            result = ui.client().act(fingerprint, action, body)
            outcome = "" if result["outcome"] == "ok" else f" ({result['outcome']})"
            _remember("success", f"{label}{outcome}: the finding is now **{result['status']}** "
                                 f"(audit entry #{result['audit_seq']}).")
    except ApiError as exc:
        _refused(exc, label)
    ui.bump_epoch()
    st.rerun()


REPLAY_LEVELS = {"dry_run": "success", "delivered": "success", "pending_approval": "warning", "failed": "error",
                 "rejected": "warning", "delivering": "warning"}


def replay_requests(replay: dict[str, Any]) -> list[dict[str, Any]]:
    """What a replay sends (or would send) where, one row per request, with its delivery result."""
    results = {r.get("idempotency_key"): r for r in replay.get("results") or []}
    rows = []
    for request in replay.get("requests") or []:
        result = results.get(request.get("idempotency_key"), {})
        rows.append({"event": request.get("event_type"), "event id": request.get("event_id"),
                     "method": request.get("method"), "url": request.get("url"),
                     "idempotency key": request.get("idempotency_key"),
                     "answer": result.get("status", ""), "error": result.get("error", "")})
    return rows


def _report_replay(replay: dict[str, Any]) -> None:
    _remember(REPLAY_LEVELS.get(replay["state"], "warning"),
              f"Replay {replay['replay_id']} to **{replay['target']}** ({replay['state'].replace('_', ' ')}): "
              f"{replay['message']}", replay_requests(replay))


def perform_bulk(action: str, selection: dict[str, Any], body: dict[str, Any] | None = None) -> None:
    label = ACTIONS[action].label
    try:
        result = ui.client().act_bulk(action, {**selection, **(body or {})})
    except ApiError as exc:
        _refused(exc, label)
    else:
        failures = [{"finding": r["fingerprint"][:12], "answer": r["status_code"], "why": r["message"]}
                    for r in result["results"] if not r["ok"]]
        level = "success" if not failures else ("warning" if result["succeeded"] else "error")
        _remember(level, f"{label}: {result['succeeded']} of {result['selected']} findings done"
                         f"{f', {len(failures)} refused' if failures else ''} (batch {result['batch']}).", failures)
    ui.bump_epoch()
    st.rerun()


def _form_fields(action: str, key: str) -> dict[str, Any] | None:
    """The inputs of an action that takes parameters; returns its body, or None while incomplete."""
    if action == "assign":
        who = st.radio("To", ["person", "team"], horizontal=True, key=f"{key}_to")
        name = st.text_input("Name", key=f"{key}_name", placeholder="ana.lopez or billing-ops").strip()
        return {"assignee" if who == "person" else "team": name} if name else None
    if action == "annotate":
        note = st.text_area("Note", key=f"{key}_note", height=80).strip()
        return {"note": note} if note else None
    if action == "silence":
        day = st.date_input("Until the end of", value=date.today() + timedelta(days=7), key=f"{key}_until",
                            min_value=date.today(), max_value=date.today() + timedelta(days=365))
        reason = st.text_input("Reason", key=f"{key}_reason").strip()
        return {"until": silence_until(day), "reason": reason}
    if action == "resolve":
        reason = st.text_input("Reason (what was fixed where)", key=f"{key}_reason").strip()
        return {"reason": reason} if reason else None
    if action == "replay":
        target = st.text_input("Target system", key=f"{key}_target",
                               placeholder="empty: the system missing the data").strip()
        force = st.checkbox("Force: replay again although an earlier replay was delivered", key=f"{key}_force")
        dry_run = st.checkbox("Dry run: only show what would be sent where", value=True, key=f"{key}_dry_run")
        return {"dry_run": dry_run, "force": force, **({"target": target} if target else {})}
    return {}


def single(finding: dict[str, Any]) -> None:
    """Buttons and forms for one finding; only what the role may do and the status allows."""
    fp, status = finding["fingerprint"], finding["status"]
    buttons = [a for a in BUTTONS if allowed(a, status)]
    forms = [a for a in FORMS if allowed(a, status)]
    if not buttons and not forms:
        st.caption(f"Your role ({ui.me().role}) takes no action on a {status} finding.")
        return
    for column, action in zip(st.columns(max(1, len(buttons))), buttons, strict=False):
        spec = ACTIONS[action]
        if column.button(spec.label, key=f"act_{action}", icon=spec.icon, width="stretch"):
            perform(fp, action)
    if forms:
        for tab, action in zip(st.tabs([ACTIONS[a].label for a in forms]), forms, strict=True):
            with tab, st.form(f"form_{action}", border=False):
                body = _form_fields(action, f"single_{action}")
                if st.form_submit_button(ACTIONS[action].label, icon=ACTIONS[action].icon, key=f"submit_{action}"):
                    if body is None:
                        st.warning("Fill in the fields first.")
                    else:
                        perform(fp, action, body)


def bulk(selection: dict[str, Any], count: int) -> None:
    """One action on a selection (`fingerprints` or `filter`), with per-finding outcomes."""
    offered = [a for a in (*BUTTONS, *FORMS) if allowed(a)]
    if not offered:
        st.caption(f"Your role ({ui.me().role}) takes no bulk actions.")
        return
    action = st.selectbox("Action", offered, format_func=lambda a: ACTIONS[a].label, key="bulk_action")
    with st.form("bulk_form", border=False):
        body = _form_fields(action, f"bulk_{action}")
        go = st.form_submit_button(f"{ACTIONS[action].label} {count} finding{'s' if count != 1 else ''}",
                                   type="primary", key="bulk_submit", disabled=count == 0)
    if go:
        if body is None:
            st.warning("Fill in the fields first.")
        else:
            perform_bulk(action, selection, body)


def approvals() -> None:
    """Replays waiting for a second ops user (four-eyes): approve (then delivered) or reject."""
    pending = ui.get("replays", {"state": "pending_approval"}, tier="live")
    if not pending:
        st.caption("No replay is waiting for approval.")
        return
    for replay in pending:
        box = st.container(border=True)
        box.markdown(f"**{replay['rule']}** · {money(replay['impact_amount'], replay['impact_currency'])} · "
                     f"{len(replay['requests'])} request(s) to **{replay['target']}**, requested by "
                     f"{replay['requested_by']} at {instant(replay['requested_at'])}")
        box.dataframe(pd.DataFrame(replay_requests(replay)), hide_index=True, width="stretch")
        if not allowed("replay"):
            continue
        approve, reject, reason = box.columns([1, 1, 3])
        why = reason.text_input("Reason to reject", key=f"reject_reason_{replay['replay_id']}",
                                label_visibility="collapsed", placeholder="reason to reject")
        if approve.button("Approve", key=f"approve_{replay['replay_id']}", type="primary", icon=":material/done_all:"):
            _decide(replay["replay_id"], True)
        if reject.button("Reject", key=f"reject_{replay['replay_id']}", icon=":material/block:"):
            _decide(replay["replay_id"], False, why.strip() or "rejected in the triage view")


def _decide(replay_id: str, approve: bool, reason: str = "") -> None:
    label = "Approval" if approve else "Rejection"
    try:
        _report_replay(ui.client().decide_replay(replay_id, approve, reason))
    except ApiError as exc:
        _refused(exc, label)
    ui.bump_epoch()
    st.rerun()
