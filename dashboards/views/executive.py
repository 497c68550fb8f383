"""Executive: KPI tiles against the previous period, revenue at risk, trends, SLA compliance,
distributions and breakdowns by region, legal entity and service line.

Reads GET /api/v1/kpis, /kpis/summary and /kpis/{name} (trend buckets, per-dimension breakdown).
Which section a KPI appears in follows its metric (durations, SLA and completion rates, ratios),
so a KPI added to the rule pack shows up without a change here.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import streamlit as st

from dashboards import charts, ui
from dashboards.formatting import kpi_change, kpi_value, money

PERIODS = {"7 days": (7, "day"), "30 days": (30, "day"), "90 days": (90, "week"), "180 days": (180, "week")}
BUSINESS_DIMENSIONS = ("region", "legal_entity", "service_line")
RATE_METRICS = ("sla_compliance", "completion_rate")
# The dimension a duration's distribution is spread over, per KPI: the business object it is about.
DISTRIBUTION_DIMENSION_ORDER = ("project_id", "client_id", "person_id", "region")


def period_params(days: int, today: datetime | None = None) -> dict[str, str]:
    """[today + 1 day - days, today + 1 day) at midnight UTC: stable all day, so reads stay cached."""
    day = (today or datetime.now(UTC)).date()
    end = datetime.combine(day + timedelta(days=1), time(), UTC)
    return {"start": (end - timedelta(days=days)).isoformat(), "end": end.isoformat()}


def kpi(name: str, period: dict[str, str], **view: str) -> dict[str, Any]:
    return ui.get(f"kpis/{name}", {**period, **view}, tier="kpi")


STAT_LABELS = {"p50": "median", "p90": "p90", "mean": "mean"}


def title_of(name: str, unit: str = "") -> str:
    """A KPI's name as a title, without a trailing unit (the value carries it): time_to_bill_hours ->
    'Time to bill'."""
    if unit and name.endswith(f"_{unit}"):
        name = name[: -len(unit) - 1]
    return name.replace("_", " ").capitalize()


def revenue_at_risk(risk: list[dict[str, Any]]) -> None:
    """One card: the largest currency as the figure, the others beside it (no FX rates: never summed)."""
    box = st.container(border=True)
    if not risk:
        box.metric("Revenue at risk", "none", help="No open or acknowledged finding carries a business impact.")
        return
    first, *others = sorted(risk, key=lambda r: r["amount"], reverse=True)
    findings = sum(r["findings"] for r in risk)
    left, right = box.columns([1, 2])
    left.metric("Revenue at risk", money(first["amount"], first["currency"]),
                help="Business impact of the open and acknowledged findings, per currency.")
    right.markdown(" · ".join(f"**{money(r['amount'], r['currency'])}**" for r in others) or "&nbsp;")
    right.caption(f"{findings:,} open or acknowledged findings carry an impact; amounts in different currencies "
                  "are shown side by side, never added up.")


def tile_help(tile: dict[str, Any]) -> str:
    stat = STAT_LABELS.get(tile["stat"])
    return (f"{tile['description']}{f' ({stat})' if stat else ''}. Previous period: "
            f"{kpi_value(tile['previous'], tile['unit'])} ({tile['previous_count']:,} instances); "
            f"this period {tile['count']:,}.")


def tiles(summary: dict[str, Any]) -> None:
    revenue_at_risk(summary.get("revenue_at_risk") or [])
    cards = summary["tiles"]
    per_row = min(len(cards), 3) or 1
    for row in range(0, len(cards), per_row):
        for column, tile in zip(st.columns(per_row), cards[row:row + per_row], strict=False):
            color = {"lower": "inverse", "higher": "normal"}.get(tile.get("better") or "", "off")
            column.metric(title_of(tile["name"], tile["unit"]), kpi_value(tile["value"], tile["unit"]),
                          kpi_change(tile["change"], tile["unit"], tile["value"]), delta_color=color, border=True,
                          help=tile_help(tile))


def chart(container: Any, built: Any, empty: str) -> None:
    if built is None:
        container.caption(empty)
    else:
        container.altair_chart(built, width="stretch")


def trends(catalogue: list[dict[str, Any]], period: dict[str, str], bucket: str) -> None:
    st.subheader("Trends")
    columns = st.columns(2)
    for index, info in enumerate(catalogue):
        box = columns[index % 2].container(border=True)
        box.markdown(f"**{info['description']}**")
        with ui.api_errors(f"the trend of {info['name']}"):
            values = kpi(info["name"], period, bucket=bucket)
            chart(box, charts.trend(values["trend"], info["unit"]), "No data in this period.")


def sla(catalogue: list[dict[str, Any]], period: dict[str, str], bucket: str) -> None:
    rates = [k for k in catalogue if k["metric"] in RATE_METRICS]
    if not rates:
        return
    st.subheader("SLA compliance and completion")
    for column, info in zip(st.columns(len(rates)), rates, strict=True):
        box = column.container(border=True)
        box.markdown(f"**{info['description']}**")
        with ui.api_errors(f"{info['name']}"):
            values = kpi(info["name"], period, bucket=bucket)
            overall = next((p for p in values["values"] if p["stat"] == info["stats"][0]), None)
            box.metric(title_of(info["name"]), kpi_value(overall["value"] if overall else None, "ratio"))
            chart(box, charts.trend(values["trend"], "ratio"), "No data in this period.")


def distributions(catalogue: list[dict[str, Any]], period: dict[str, str]) -> None:
    """Durations across the objects they measure: how many projects (clients...) have each median."""
    durations = [k for k in catalogue if k["metric"] == "duration"
                 and any(d in k["dimensions"] for d in DISTRIBUTION_DIMENSION_ORDER)]
    if not durations:
        return
    st.subheader("Distributions")
    columns = st.columns(max(1, min(2, len(durations))))
    for index, info in enumerate(durations):
        box = columns[index % len(columns)].container(border=True)
        dimension = next(d for d in DISTRIBUTION_DIMENSION_ORDER if d in info["dimensions"])
        what = dimension.removesuffix("_id")
        box.markdown(f"**{info['description']}**: median per {what}")
        with ui.api_errors(f"the distribution of {info['name']}"):
            per = kpi(info["name"], period, dimension=dimension)
            chart(box, charts.histogram(per["breakdown"], info["unit"], info["stats"][0], what),
                  f"Fewer than two {what}s with data in this period.")


def breakdowns(catalogue: list[dict[str, Any]], period: dict[str, str]) -> None:
    offered = [d for d in BUSINESS_DIMENSIONS if any(d in k["dimensions"] for k in catalogue)]
    if not offered:
        return
    st.subheader("Breakdowns")
    dimension = st.segmented_control("By", offered, default=offered[0], key="exec_dimension",
                                     format_func=lambda d: d.replace("_", " ")) or offered[0]
    having = [k for k in catalogue if dimension in k["dimensions"]]
    columns = st.columns(max(1, min(2, len(having))))
    for index, info in enumerate(having):
        box = columns[index % len(columns)].container(border=True)
        box.markdown(f"**{info['description']}** by {dimension.replace('_', ' ')}")
        with ui.api_errors(f"{info['name']} by {dimension}"):
            values = kpi(info["name"], period, dimension=dimension)
            chart(box, charts.breakdown(values["breakdown"], info["unit"], info["stats"][0], dimension,
                                        info.get("better")), "No data in this period.")


def main() -> None:
    st.title("Executive")
    choice = st.segmented_control("Period", list(PERIODS), default="30 days", key="exec_period") or "30 days"
    days, bucket = PERIODS[choice]
    period = period_params(days)
    with ui.api_errors("the KPIs"):
        summary = ui.get("kpis/summary", period, tier="kpi")
        as_of = min((t["as_of"] for t in summary["tiles"] if t.get("as_of")), default=None)
        fresh = f" Workflow KPIs as of {as_of[11:19]} UTC." if as_of else ""
        st.caption(f"{summary['start'][:10]} to {summary['end'][:10]} against the {days} days before; "
                   f"arrows show the change, green when it is an improvement.{fresh}")
        tiles(summary)
        catalogue = ui.get("kpis", tier="kpi")
        trends([k for k in catalogue if k["metric"] not in RATE_METRICS], period, bucket)
        sla(catalogue, period, bucket)
        distributions(catalogue, period)
        breakdowns(catalogue, period)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import its helpers
    main()
