"""Altair charts built from API answers (pure functions: rows in, chart out; no Streamlit, no HTTP)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import altair as alt
import pandas as pd

from dashboards.formatting import scale

HEIGHT = 240
# Streamlit fits a chart's axes and legend inside its height: heights below add room for them.
# One colour per kind of timeline item, the same on every page.
TIMELINE_COLORS = {"span": "#4c78a8", "span (error)": "#e45756", "event": "#54a24b", "finding": "#f58518",
                   "action": "#b279a2"}
GOOD, BAD, NEUTRAL = "#54a24b", "#e45756", "#4c78a8"


def _frame(points: Iterable[Mapping[str, Any]], unit: str) -> pd.DataFrame:
    frame = pd.DataFrame(list(points))
    factor, _ = scale(unit)
    if not frame.empty:
        frame["value"] = frame["value"].astype(float) * factor
    return frame


def trend(points: Iterable[Mapping[str, Any]], unit: str) -> alt.Chart | None:
    """KPI values per trend bucket, one line per stat (p50, p90, ...)."""
    frame = _frame(points, unit)
    if frame.empty:
        return None
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
    _, title = scale(unit)
    return (alt.Chart(frame, height=HEIGHT)
            .mark_line(point=True)
            .encode(x=alt.X("bucket:T", title=None),
                    y=alt.Y("value:Q", title=title, scale=alt.Scale(zero=False), axis=alt.Axis(format=",.4~g")),
                    color=alt.Color("stat:N", title=None, legend=alt.Legend(orient="top")),
                    tooltip=[alt.Tooltip("bucket:T", title="from"), "stat:N",
                             alt.Tooltip("value:Q", format=",.1f"), alt.Tooltip("count:Q", title="instances")]))


def breakdown(points: Iterable[Mapping[str, Any]], unit: str, stat: str, dimension: str,
              better: str | None = None, limit: int = 15) -> alt.Chart | None:
    """One stat per dimension value, best-to-worst as horizontal bars."""
    frame = _frame(points, unit)
    if frame.empty:
        return None
    frame = frame[frame["stat"] == stat].copy()
    if frame.empty:
        return None
    frame["dimension"] = frame["dimension"].fillna("").replace("", "(none)")
    frame = frame.sort_values("value", ascending=better != "higher").head(limit)
    _, title = scale(unit)
    color = {"lower": BAD, "higher": GOOD}.get(better or "", NEUTRAL)
    return (alt.Chart(frame, height=70 + 32 * len(frame))
            .mark_bar(color=color)
            .encode(y=alt.Y("dimension:N", sort="-x" if better != "lower" else "x", title=dimension),
                    x=alt.X("value:Q", title=f"{stat} ({title})"),
                    tooltip=[alt.Tooltip("dimension:N", title=dimension), alt.Tooltip("value:Q", format=",.1f"),
                             alt.Tooltip("count:Q", title="instances")]))


def histogram(points: Iterable[Mapping[str, Any]], unit: str, stat: str, what: str) -> alt.Chart | None:
    """The distribution of one stat across the values of a dimension (e.g. median time-to-bill per project)."""
    frame = _frame(points, unit)
    if frame.empty:
        return None
    frame = frame[frame["stat"] == stat]
    if len(frame) < 2:
        return None
    _, title = scale(unit)
    return (alt.Chart(frame, height=HEIGHT)
            .mark_bar(color=NEUTRAL)
            .encode(x=alt.X("value:Q", bin=alt.Bin(maxbins=20), title=f"{stat} per {what} ({title})"),
                    y=alt.Y("count():Q", title=f"{what}s"),
                    tooltip=[alt.Tooltip("count():Q", title=f"{what}s")]))


def money_bars(rows: Iterable[Mapping[str, Any]], category: str, amount: str = "amount",
               title: str = "impact") -> alt.Chart | None:
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return None
    return (alt.Chart(frame, height=70 + 32 * len(frame))
            .mark_bar(color=BAD)
            .encode(y=alt.Y(f"{category}:N", sort="-x", title=None), x=alt.X(f"{amount}:Q", title=title),
                    tooltip=[f"{category}:N", alt.Tooltip(f"{amount}:Q", format=",.0f")]))


def timeline_rows(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Timeline items of the API as Gantt rows: spans and findings last a while, the rest are instants."""
    rows = []
    for item in items:
        kind = item["kind"]
        if kind == "span" and str(item.get("status", "")).lower() == "error":
            kind = "span (error)"
        if kind == "record":
            kind = "event"  # a record snapshot is a fact a system reported, drawn like an event
        start = item.get("start") or item["at"]
        lane = {"finding": "Syncwatch findings", "action": "Syncwatch actions"}.get(kind, item["system"])
        rows.append({"kind": kind, "lane": lane or "(unknown)", "label": item["title"],
                     "start": start, "end": item.get("end") or start})
    return rows


def gantt(items: Iterable[Mapping[str, Any]]) -> alt.Chart | None:
    """A business object's timeline: spans as bars and events, findings, actions as points, one row
    per system (items carry start, end, lane, kind, label)."""
    frame = pd.DataFrame(list(items))
    if frame.empty:
        return None
    frame["start"] = pd.to_datetime(frame["start"], utc=True, format="ISO8601")
    frame["end"] = pd.to_datetime(frame["end"], utc=True, format="ISO8601")
    lanes = sorted(frame["lane"].unique())
    color = alt.Color("kind:N", title=None, legend=alt.Legend(orient="top"),
                      scale=alt.Scale(domain=list(TIMELINE_COLORS), range=list(TIMELINE_COLORS.values())))
    y = alt.Y("lane:N", title=None, sort=lanes)
    tooltip = ["kind:N", "lane:N", "label:N", alt.Tooltip("start:T", format="%Y-%m-%d %H:%M:%S"),
               alt.Tooltip("end:T", format="%Y-%m-%d %H:%M:%S")]
    # Spans last milliseconds, a business object lives for weeks: a span too short to see as a bar
    # at this scale is drawn as a point (zoom in to see it as a bar).
    visible = (frame["end"].max() - frame["start"].min()) / 400
    frame["bar"] = (frame["end"] - frame["start"]) > visible
    base = alt.Chart(frame)
    bars = base.transform_filter("datum.bar").mark_bar(height=14).encode(
        x=alt.X("start:T", title=None, scale=alt.Scale(padding=14)), x2="end:T", y=y, color=color, tooltip=tooltip)
    points = base.transform_filter("!datum.bar").mark_point(size=90, filled=True, opacity=0.8).encode(
        x="start:T", y=y, color=color, shape=alt.Shape("kind:N", legend=None), tooltip=tooltip)
    return (bars + points).properties(height=90 + 36 * len(lanes)).interactive(bind_y=False)


def lag(rows: Iterable[Mapping[str, Any]], source: str, columns: Mapping[str, str],
        unit: str = "s") -> alt.Chart | None:
    """Sync lag per source: one bar per statistic (columns maps a column to its label), in `unit`."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return None
    present = {c: label for c, label in columns.items() if c in frame}
    if not present:
        return None
    long = frame.melt(id_vars=[source], value_vars=list(present), var_name="stat", value_name="lag")
    long["stat"] = long["stat"].map(present)
    return (alt.Chart(long, height=90 + 22 * len(present) * len(frame))
            .mark_bar()
            .encode(y=alt.Y(f"{source}:N", title=None), yOffset="stat:N", x=alt.X("lag:Q", title=f"lag ({unit})"),
                    color=alt.Color("stat:N", title=None, legend=alt.Legend(orient="top")),
                    tooltip=[f"{source}:N", "stat:N", alt.Tooltip("lag:Q", format=",.1f", title=f"lag ({unit})")]))


def runs(rows: Iterable[Mapping[str, Any]]) -> alt.Chart | None:
    """Rule run durations over time; failed runs in red."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return None
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True, format="ISO8601")
    frame["outcome"] = frame["error"].map(lambda e: "failed" if e else "ok")
    return (alt.Chart(frame, height=HEIGHT)
            .mark_circle(size=60)
            .encode(x=alt.X("started_at:T", title=None, axis=alt.Axis(format="%b %d %H:%M")),
                    y=alt.Y("duration_ms:Q", title="duration (ms)"),
                    color=alt.Color("outcome:N", scale=alt.Scale(domain=["ok", "failed"], range=[NEUTRAL, BAD]),
                                    legend=alt.Legend(orient="top", title=None)),
                    tooltip=[alt.Tooltip("started_at:T", format="%Y-%m-%d %H:%M:%S"), "duration_ms:Q",
                             "opened:Q", "resolved:Q", "error:N"]))
