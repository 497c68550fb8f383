"""Rules and integrations: is every rule running and finding things, is every source system's data
arriving on time?

Reads GET /api/v1/rules, /rules/{name}/runs and /integrations/health.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboards import charts, ui
from dashboards.formatting import instant

STATUS_ICONS = {"ok": ":green[:material/check_circle:]", "failing": ":red[:material/error:]",
                "stale": ":orange[:material/schedule:]", "never_run": ":gray[:material/radio_button_unchecked:]"}
STATUS_COLORS = {"ok": "#dff3e4", "failing": "#fde2e1", "stale": "#fff1d6", "never_run": "#eeeeee",
                 "disabled": "#eeeeee"}
WINDOWS = ("15m", "1h", "24h", "7d", "30d")
LAG_COLUMNS = {"sync_lag_p50_s": "p50", "sync_lag_p95_s": "p95"}


def rules_table(rules: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in rules:
        last = r.get("last_run") or {}
        rows.append({
            "status": r["status"].replace("_", " "),
            "rule": r["name"], "kind": r["kind"], "severity": r["severity"], "schedule": r["schedule"],
            "last run": instant(last.get("started_at")), "duration ms": last.get("duration_ms"),
            "runs 24h": r["runs_24h"], "failures 24h": r["failures_24h"], "opened 24h": r["opened_24h"],
            "resolved 24h": r["resolved_24h"], "open findings": r["open_findings"],
            "p95 ms 24h": r.get("p95_duration_ms_24h"), "last error": r.get("last_error") or "",
        })
    return pd.DataFrame(rows)


def _status_style(value: str) -> str:
    color = STATUS_COLORS.get(value.replace(" ", "_"))
    return f"background-color: {color}" if color else ""


def lag_unit(seconds: list[float | None]) -> tuple[float, str]:
    """Seconds, hours or days, whichever reads best for the largest lag.

    >>> lag_unit([12.0, None]), lag_unit([float("nan"), 90_000.0]), lag_unit([400_000.0])
    ((1.0, 's'), (3600.0, 'h'), (86400.0, 'd'))
    """
    largest = max((s for s in seconds if s is not None and pd.notna(s)), default=0.0)
    if largest >= 2 * 86400:
        return 86400.0, "d"
    if largest >= 2 * 3600:
        return 3600.0, "h"
    return 1.0, "s"


def rule_health() -> None:
    st.subheader("Rule health")
    everything = ui.get("rules", tier="live")
    rules = [r for r in everything if r["kind"] != "kpi"]
    counts = pd.Series([r["status"] for r in rules], dtype=str).value_counts()
    for column, (status, icon) in zip(st.columns(len(STATUS_ICONS)), STATUS_ICONS.items(), strict=True):
        column.metric(f"{icon} {status.replace('_', ' ')}", int(counts.get(status, 0)), border=True)
    if not rules:
        st.info("No scheduled rules are loaded.")
        return
    st.dataframe(rules_table(rules).style.map(_status_style, subset=["status"]), hide_index=True, width="stretch",
                 column_config={"duration ms": st.column_config.NumberColumn(format="%.0f"),
                                "p95 ms 24h": st.column_config.NumberColumn(format="%.0f")})
    failing = [r for r in rules if r["status"] == "failing"]
    for r in failing:
        st.error(f"**{r['name']}** failed at {instant(r.get('last_error_at'))}: {r['last_error']}")
    kpis = len(everything) - len(rules)
    if kpis:
        st.caption(f"{kpis} KPI rules are evaluated on request (the Executive page), never scheduled.")
    name = st.selectbox("Recent runs of", [r["name"] for r in rules], key="health_rule")
    with ui.api_errors(f"the runs of {name}"):
        runs = ui.get(f"rules/{name}/runs", {"limit": 200}, tier="live")
        built = charts.runs(runs)
        if built is None:
            st.caption("This rule has not run yet.")
            return
        st.altair_chart(built, width="stretch")
        table = pd.DataFrame(runs)[["started_at", "full", "duration_ms", "opened", "updated", "resolved",
                                    "reopened", "error"]]
        table["started_at"] = table["started_at"].map(instant)
        st.dataframe(table.head(20), hide_index=True, width="stretch")


def integration_health() -> None:
    st.subheader("Integration health")
    window = st.segmented_control("Window", WINDOWS, default="24h", key="health_window") or "24h"
    health = ui.get("integrations/health", {"window": window}, tier="live")
    systems = health["systems"]
    if not systems:
        st.info(f"Nothing received in the last {window}.")
        return
    frame = pd.DataFrame(systems)
    frame["last_received_at"] = frame["last_received_at"].map(instant)
    frame["system"] = frame["system"].replace("*", "(any system)")
    factor, unit = lag_unit([*frame["sync_lag_p50_s"], *frame["sync_lag_p95_s"]])
    for column in LAG_COLUMNS:
        frame[column] = frame[column] / factor
    shown = {"system": "system", "ingest_rate_per_s": "items/s", "accepted": "accepted", "rejected": "rejected",
             "quarantine_count": "quarantined", "error_rate": "error rate", "sync_lag_p50_s": f"lag p50 ({unit})",
             "sync_lag_p95_s": f"lag p95 ({unit})", "events": "events", "last_received_at": "last received"}
    table = frame[[c for c in shown if c in frame]].rename(columns=shown)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"error rate": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                              format="percent"),
                                "items/s": st.column_config.NumberColumn(format="%.2f"),
                                f"lag p50 ({unit})": st.column_config.NumberColumn(format="%.1f"),
                                f"lag p95 ({unit})": st.column_config.NumberColumn(format="%.1f")})
    left, right = st.columns(2)
    left.markdown("**Sync lag** (received time minus event time)")
    built = charts.lag(frame.to_dict("records"), "system", LAG_COLUMNS, unit)
    if built is None:
        left.caption("No events in this window to measure the lag on.")
    else:
        left.altair_chart(built, width="stretch")
    integrations = health.get("integrations") or []
    right.markdown("**Integrations** (from their spans)")
    if integrations:
        spans = pd.DataFrame(integrations)
        spans["last_span_at"] = spans["last_span_at"].map(instant)
        right.dataframe(spans, hide_index=True, width="stretch",
                        column_config={"error_rate": st.column_config.ProgressColumn(
                            "error rate", min_value=0.0, max_value=1.0, format="percent"),
                            "p95_duration_ms": st.column_config.NumberColumn("p95 ms", format="%.0f")})
    else:
        right.caption("No integration spans in this window.")


def main() -> None:
    st.title("Rules and integrations")
    with ui.api_errors("rule health"):
        rule_health()
    with ui.api_errors("integration health"):
        integration_health()


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import its helpers
    main()
