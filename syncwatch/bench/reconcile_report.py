"""The markdown of `syncwatch bench reconcile`: one table per size, stuck instances, targets."""

from __future__ import annotations

from typing import Any

GiB = 2**30
NAMES = {
    "polars-lazy": "polars lazy join",
    "datacompy-polars": "datacompy (polars)",
    "datacompy-pandas": "datacompy (pandas)",
}


def _mem(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e6:.2f} M"


def _exact(r: dict[str, Any]) -> str:
    if r["exact"]:
        return "exact set"
    return f"NOT exact: {r['unexpected']} unexpected, {r['missed']} missed, {r['duplicates']} duplicates"


def _size_table(s: dict[str, Any]) -> list[str]:
    n, ours, injected = s["rows_per_side"], s["syncwatch"], sum(s["injected"].values())
    lines = [
        f"### {n:,} x {n:,} records",
        "",
        "| engine | seconds | rows/s per side | peak RSS | drift found | Syncwatch faster by |",
        "|---|---:|---:|---:|---|---:|",
        f"| Syncwatch (compiled rule on chDB) | {ours['seconds']:.2f} | {_rate(n, ours['seconds'])} | "
        f"{_mem(ours['peak_rss_bytes'])} (+{_mem(ours['peak_rss_bytes'] - ours['rss_before_bytes'])}) | "
        f"{ours['findings']:,} of {injected:,} injected, {_exact(ours)} | |",
    ]
    for name, label in NAMES.items():
        b = s["baselines"].get(name)
        if b is None:
            continue
        if "skipped" in b:
            lines.append(f"| {label} | skipped: {b['skipped']} | | | | |")
            continue
        found = sum(b["counts"].values())
        agrees = "counts = injected" if b["counts_equal_injected"] else f"counts differ: {b['counts']}"
        lines.append(
            f"| {label} | {b['seconds']:.2f} | {_rate(n, b['seconds'])} | {_mem(b['peak_rss_bytes'])} | "
            f"{found:,}, {agrees} | {b['syncwatch_faster_by']:.1f}x |"
        )
    inc = s["incremental"]
    lines += [
        "",
        f"Syncwatch: median of {len(ours['runs'])} runs ({', '.join(f'{t:.2f}' for t in ours['runs'])} s); "
        f"process RSS {_mem(ours['rss_before_bytes'])} before the runs. Incremental run after "
        f"{inc['changed_records']:,} changed records: {inc['seconds']:.3f} s (median of {len(inc['runs'])}), "
        f"{inc['findings']:,} findings, the full run's findings on the changed keys: {_exact(inc)} "
        f"(the full run after the change: {inc['full_run_seconds']:.2f} s).",
    ]
    if "export_seconds" in s["baselines"]:
        export = s["baselines"]["export_seconds"]
        lines[-1] += (
            f" Baselines read a Parquet export of both sides (export {export:.1f} s, not counted);"
            " their time includes reading it."
        )
    return lines


def _stuck(st: dict[str, Any]) -> list[str]:
    rule, final, plain = st["compiled_rule"], st["final"], st["no_final"]
    return [
        "### Stuck workflow instances",
        "",
        f"{st['events']:,} events of {st['instances']:,} instances (a.start, 8 x a.step2, a.end), "
        f"{st['expected']:,} stuck. The compiled workflow rule (all its finding kinds, stuck ones kept): "
        f"{rule['seconds']:.3f} s ({rule['found']:,} found, {_exact(rule)}, peak RSS {_mem(rule['peak_rss_bytes'])}). "
        f"Hand-written floor, one GROUP BY of the correlation key with minIf/countIf per step: "
        f"{final['seconds']:.3f} s with FINAL ({_exact(final)}), {plain['seconds']:.3f} s without FINAL "
        f"({_exact(plain)}).",
        *_kpi_lines(st.get("kpis", {})),
    ]


def _kpi_lines(kpis: dict[str, Any]) -> list[str]:
    if not kpis:
        return []
    lines = ["", "KPI requests over the same events (whole range, no dimension), per request:", "",
             "| KPI | p50 | p95 | value |", "|---|---:|---:|---|"]
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
    if report["stuck"]:
        secs = report["stuck"]["compiled_rule"]["seconds"]
        rows.append(
            (
                f"stuck detection over {report['stuck']['events']:,} events",
                f"<= {t['stuck_seconds']} s",
                f"{secs:.3f} s",
                secs <= t["stuck_seconds"],
            )
        )
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


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Measured {m['date']} on {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}. "
        "Rule psa_vs_erp_projects (status enum with a value map, budget within 1%, legal entity "
        "case/whitespace-insensitive); ~1% of keys missing on each side, ~1% with one mismatched field, "
        "~1% with differences inside the tolerances. Peak RSS is the whole process's (for Syncwatch, in brackets: "
        "above the process's RSS before the runs, which holds the embedded engine and its caches). "
        f"Load average {m['load_1m_before']:.1f} before, {m['load_1m_after']:.1f} after.",
        "",
    ]
    for s in report["sizes"]:
        lines += [*_size_table(s), ""]
    if report["stuck"]:
        lines += [*_stuck(report["stuck"]), ""]
    lines += _targets(report)
    return "\n".join(lines).rstrip()
