"""The markdown of `syncwatch bench reconcile`: one table with every size side by side, stuck instances, targets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler import record_mirror
from syncwatch.bench.figures import machine_line

GiB = 2**30
NAMES = {
    "polars-lazy": "polars lazy join",
    "datacompy-polars": "datacompy (polars)",
    "datacompy-pandas": "datacompy (pandas)",
}


def _mem(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


def _rate(n: int, seconds: float) -> str:
    rate = n / seconds
    return f"{rate / 1e6:.2f} M" if rate >= 1e6 else f"{rate / 1e3:,.0f} k"


def _exact(r: dict[str, Any]) -> str:
    if r["exact"]:
        return "exact set"
    return f"NOT exact: {r['unexpected']} unexpected, {r['missed']} missed, {r['duplicates']} duplicates"


def _cells(sizes: list[dict[str, Any]], cell: Callable[[dict[str, Any]], str]) -> str:
    return " | ".join(cell(s) for s in sizes)


def _baseline(name: str, show: Callable[[int, dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
    """A cell of baseline `name` at one size: `show(n, its result)`, or why it did not run."""

    def cell(s: dict[str, Any]) -> str:
        b = s["baselines"].get(name)
        if b is None:
            return "not run"
        return f"skipped: {b['skipped']}" if "skipped" in b else show(s["rows_per_side"], b)

    return cell


def _agrees(b: dict[str, Any]) -> str:
    return "counts = injected" if b["counts_equal_injected"] else f"counts differ: {b['counts']}"


def _sizes_table(sizes: list[dict[str, Any]]) -> list[str]:
    """Every size in one table: a column per size, a row per figure."""
    head = " | ".join(f"{s['rows_per_side']:,} x {s['rows_per_side']:,}" for s in sizes)
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("Syncwatch (compiled rule on chDB): seconds", lambda s: f"{s['syncwatch']['seconds']:.2f}"),
        ("Syncwatch: rows/s per side", lambda s: _rate(s["rows_per_side"], s["syncwatch"]["seconds"])),
        ("Syncwatch: peak RSS (above the process's base)", lambda s: f"{_mem(s['syncwatch']['peak_rss_bytes'])} "
         f"(+{_mem(s['syncwatch']['peak_rss_bytes'] - s['syncwatch']['rss_before_bytes'])})"),
        ("Syncwatch: drift found", lambda s: f"{s['syncwatch']['findings']:,} of {sum(s['injected'].values()):,} "
         f"injected, {_exact(s['syncwatch'])}"),
    ]
    for name, label in NAMES.items():
        rows += [
            (f"{label}: seconds (rows/s per side)",
             _baseline(name, lambda n, b: f"{b['seconds']:.2f} ({_rate(n, b['seconds'])})")),
            (f"{label}: peak RSS", _baseline(name, lambda n, b: _mem(b["peak_rss_bytes"]))),
            (f"{label}: drift found", _baseline(name, lambda n, b: f"{sum(b['counts'].values()):,}, {_agrees(b)}")),
            (f"Syncwatch faster than {label} by", _baseline(name, lambda n, b: f"{b['syncwatch_faster_by']:.1f}x")),
        ]
    rows += [
        (f"incremental run after the changes, as scheduled (from {record_mirror.MIN_RECORDS:,} records: "
         "mirror update + run): seconds",
         lambda s: f"{s['incremental']['seconds']:.3f} "
         f"({s['incremental']['changed_records']:,} changed records)"),
        ("incremental run: findings vs the full run's on the changed keys",
         lambda s: f"{s['incremental']['findings']:,}, {_exact(s['incremental'])}"),
        ("the same run reading records instead of the mirror: seconds",
         lambda s: f"{s['incremental']['records_path_seconds']:.3f} "
         f"({'exact' if s['incremental']['records_path_exact'] else '**not exact**'})"
         if "records_path_seconds" in s["incremental"] else "not run"),
        ("record mirror build, once per rule definition and week: seconds",
         lambda s: "not used (fewer records)" if s["incremental"].get("mirror_build_seconds", 0) is None
         else f"{s['incremental']['mirror_build_seconds']:.1f}" if "mirror_build_seconds" in s["incremental"]
         else "not run"),
        ("full run after the changes: seconds", lambda s: f"{s['incremental']['full_run_seconds']:.2f}"),
        ("Parquet export for the baselines (not counted): seconds",
         lambda s: f"{s['baselines']['export_seconds']:.1f}" if "export_seconds" in s["baselines"] else "not run"),
    ]
    return [
        "### Records per system, side by side",
        "",
        f"| | {head} |",
        "|---|" + "---:|" * len(sizes),
        *(f"| {label} | {_cells(sizes, cell)} |" for label, cell in rows),
        "",
        "Syncwatch: the median of " + ", ".join(
            f"{len(s['syncwatch']['runs'])} runs at {s['rows_per_side']:,} "
            f"({', '.join(f'{t:.2f}' for t in s['syncwatch']['runs'])} s)" for s in sizes)
        + "; the incremental run also the median of its runs. Baselines read a Parquet export of both sides; "
        "their time includes reading it.",
    ]


def _stuck(st: dict[str, Any]) -> list[str]:
    rule, final, plain = st["compiled_rule"], st["final"], st["no_final"]
    rows = st.get("compiled_rule_rows")
    rows_text = (f"; with every column of its finding rows {rows['seconds']:.3f} s ({_exact(rows)})" if rows else "")
    lines = [
        "### Stuck workflow instances",
        "",
        f"{st['events']:,} events of {st['instances']:,} instances (a.start, 8 x a.step2, a.end), "
        f"{st['expected']:,} stuck.",
        "",
    ]
    if kept := st.get("scheduled_run"):
        fold, after, kept_rows = st["progress_fold"], st["scheduled_run_after_fold"], st["scheduled_run_rows"]
        lines += [
            "A scheduled run reads the per-instance progress that runs keep (`workflow_progress`, about one row "
            f"per instance and step). A full run builds it from every event: {st['progress_build_seconds']:.2f} s. "
            f"An incremental run folds in the events received since the last update ({fold['events']:,} new "
            f"events: {fold['seconds']:.3f} s) and then decides which instances have which finding (all its "
            f"finding kinds, stuck ones kept): {after['seconds']:.3f} s ({after['found']:,} found, {_exact(after)}, "
            f"peak RSS {_mem(after['peak_rss_bytes'])}); before the fold {kept['seconds']:.3f} s ({_exact(kept)}). "
            f"With every column of its finding rows (latest trace and span ids, systems, detail), as the runner "
            f"stores them: {kept_rows['seconds']:.3f} s ({_exact(kept_rows)}).",
            "",
        ]
    lines.append(
        f"The same rule reading every event instead: {rule['seconds']:.3f} s ({_exact(rule)}){rows_text}. "
        f"Hand-written floor over the events, one GROUP BY of the correlation key with minIf/countIf per step: "
        f"{final['seconds']:.3f} s with FINAL ({_exact(final)}), {plain['seconds']:.3f} s without FINAL "
        f"({_exact(plain)})."
    )
    return [*lines, *_kpi_lines(st.get("kpis", {}), st.get("kpi_state_refresh_seconds"))]


def _kpi_lines(kpis: dict[str, Any], refresh: float | None) -> list[str]:
    if not kpis:
        return []
    lines = ["", "KPI requests over the same events (whole range, no dimension), per request, reading the "
             "per-instance workflow state"
             + (f" (one refresh of it, as the reconciler runs on its schedule: {refresh:.2f} s)" if refresh else "")
             + ":", "", "| KPI | p50 | p95 | value |", "|---|---:|---:|---|"]
    for name, k in kpis.items():
        value = "; ".join(f"{r.get('stat', '')} {r.get('value')}" for r in k["rows"][:3])
        lines.append(f"| {name} | {k['p50_seconds'] * 1000:.0f} ms | {k['p95_seconds'] * 1000:.0f} ms | {value} |")
    return lines


def _targets(report: dict[str, Any]) -> list[str]:
    t = report["targets"]
    size = next((s for s in report["sizes"] if s["rows_per_side"] == report["target_rows"]), None)
    rows: list[tuple[str, str, str, bool | None]] = []
    if size:
        ours, bl = size["syncwatch"], size["baselines"]
        rows += [
            (
                "10M x 10M full run",
                f"<= {t['full_seconds']} s",
                f"{ours['seconds']:.2f} s",
                ours["seconds"] <= t["full_seconds"],
            ),
            (
                "peak RSS of that run",
                f"<= {t['full_peak_rss_gib']} GiB",
                f"{ours['peak_rss_bytes'] / GiB:.2f} GiB",
                ours["peak_rss_bytes"] <= t["full_peak_rss_gib"] * GiB,
            ),
        ]
        for name, key in (("datacompy-polars", "vs_datacompy_polars"), ("datacompy-pandas", "vs_datacompy_pandas")):
            b = bl.get(name, {})
            ratio = b.get("syncwatch_faster_by")
            rows.append(
                (
                    f"faster than {NAMES[name]}",
                    f">= {t[key]}x",
                    f"{ratio:.1f}x" if ratio else b.get("skipped", "not run"),
                    ratio >= t[key] if ratio else None,
                )
            )
        inc = size["incremental"]["seconds"]
        rows.append(
            (
                "incremental after 10k changes",
                f"<= {t['incremental_seconds']} s",
                f"{inc:.3f} s",
                inc <= t["incremental_seconds"],
            )
        )
    if st := report["stuck"]:
        rows += _stuck_targets(st, t["stuck_seconds"])
    if not rows:
        return []
    met = {True: "yes", False: "**no**", None: "n/a"}
    return [
        "### Targets (issue 3)",
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {met[d]} |" for a, b, c, d in rows),
    ]


def _stuck_targets(st: dict[str, Any], goal: float) -> list[tuple[str, str, str, bool]]:
    """A scheduled (incremental) run: folding in the new events plus detecting; without kept
    progress (reports before it), the rule reading every event."""
    over = f"stuck detection over {st['events']:,} events"
    if "scheduled_run" not in st:
        pairs = [(over, st["compiled_rule"]["seconds"])]
        if "compiled_rule_rows" in st:
            pairs.append(("the same, with every column of the finding rows", st["compiled_rule_rows"]["seconds"]))
        return [(label, f"<= {goal} s", f"{secs:.3f} s", secs <= goal) for label, secs in pairs]
    fold = st["progress_fold"]["seconds"]
    pairs = [(f"{over}, an incremental run (fold {st['progress_fold']['events']:,} new events + detect)",
              st["scheduled_run_after_fold"]["seconds"]),
             ("the same, with every column of the finding rows", st["scheduled_run_rows"]["seconds"])]
    return [(label, f"<= {goal} s", f"{fold:.3f} + {secs:.3f} = {fold + secs:.3f} s", fold + secs <= goal)
            for label, secs in pairs]


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"{machine_line(m)} "
        "Rule psa_vs_erp_projects (status enum with a value map, budget within 1%, legal entity "
        "case/whitespace-insensitive); ~1% of keys missing on each side, ~1% with one mismatched field, "
        "~1% with differences inside the tolerances. Syncwatch and each baseline run in a process of their own, "
        "apart from the one that generated the data; peak RSS is that whole process's (for Syncwatch, in brackets: "
        "above its RSS before the runs, which holds the embedded engine). "
        f"Load average {m['load_1m_after']:.2f} at the end.",
        "",
    ]
    if report["sizes"]:
        lines += [*_sizes_table(report["sizes"]), ""]
    if report["stuck"]:
        lines += [*_stuck(report["stuck"]), ""]
    lines += _targets(report)
    return "\n".join(lines).rstrip()
