"""Pure summaries for `syncwatch bench load`: per-phase figures, RSS trend, recovery, the table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from syncwatch.bench.figures import percentile

MIB = 2**20
# A phase-3 second counts as recovered when at least this share of its requests was accepted.
RECOVERED_SHARE = 0.99


@dataclass(frozen=True)
class Sent:
    """One request as the load client saw it. status 0: no answer (connection error or timeout)."""

    phase: str
    at: float  # seconds since the phase began, when the request was sent
    latency_ms: float
    status: int
    retry_after: bool


def phase_summary(name: str, target_rps: float, seconds: float, sent: Sequence[Sent]) -> dict[str, object]:
    statuses = Counter(s.status for s in sent)
    ok = [s for s in sent if 200 <= s.status < 300]
    refused = [s for s in sent if s.status in (429, 503)]
    latencies = [s.latency_ms for s in ok]
    return {
        "phase": name, "target_rps": round(target_rps, 1), "seconds": round(seconds, 1), "sent": len(sent),
        "sent_rps": round(len(sent) / seconds, 1) if seconds else 0.0,
        "accepted": len(ok), "status_429": statuses[429], "status_503": statuses[503],
        "other_status": sum(n for code, n in statuses.items() if code not in (0, 429, 503) and not 200 <= code < 300),
        "no_answer": statuses[0],
        "refusals_without_retry_after": sum(not s.retry_after for s in refused),
        "accepted_share": round(len(ok) / len(sent), 4) if sent else 0.0,
        "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
    }


def recovered_after(sent: Sequence[Sent], seconds: float) -> float | None:
    """Seconds into the phase after which every whole second had RECOVERED_SHARE accepted; None if never."""
    per_second: dict[int, list[bool]] = {}
    for s in sent:
        per_second.setdefault(int(s.at), []).append(200 <= s.status < 300)
    last_bad = -1
    for second in range(int(seconds)):
        answers = per_second.get(second, [])
        if not answers or sum(answers) / len(answers) < RECOVERED_SHARE:
            last_bad = second
    return None if last_bad >= int(seconds) - 1 else float(last_bad + 1)


def rss_trend(samples: Sequence[tuple[float, int]]) -> dict[str, object]:
    """Min/max, first vs last third, and the least-squares slope after the first third, of
    (seconds, bytes) samples."""
    if len(samples) < 3:
        return {"samples": len(samples)}
    mib = [b / MIB for _, b in samples]
    third = len(mib) // 3
    first, last = max(mib[:third]), max(mib[-third:])
    return {
        "samples": len(samples), "min_mib": round(min(mib)), "max_mib": round(max(mib)),
        "first_third_max_mib": round(first), "last_third_max_mib": round(last),
        # after the first third: the warm-up (caches, the first segment) is growth that stops
        "slope_mib_per_min": round(slope([t for t, _ in samples[third:]], mib[third:]) * 60, 2),
        # flat: the last third peaks no more than 10% above the first (warm-up caches fill early)
        "flat": last <= first * 1.10,
    }


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 when xs do not vary)."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def markdown(report: dict) -> str:
    m, cfg = report["machine"], report["config"]
    lines = [
        f"Measured {m['date']} on {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, load average "
        f"{report['load_average_before']} before the run; batches of {cfg['batch']} CloudEvents, sustained "
        f"{cfg['rate']:,} events/s ({cfg['rate'] / cfg['batch']:.0f} requests/s), burst x{cfg['burst_factor']} "
        f"(open loop: the client does not back off); server max_inflight_requests {cfg['max_inflight']}, "
        f"spool {cfg['spool_mib']} MiB.",
        "",
        "| phase | target req/s | sent req/s | accepted | 429 | 503 | other | no answer | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in report["phases"]:
        lines.append(f"| {p['phase']} ({p['seconds']:.0f} s) | {p['target_rps']:,.0f} | {p['sent_rps']:,.0f} | "
                     f"{p['accepted']:,} | {p['status_429']:,} | {p['status_503']:,} | {p['other_status']:,} | "
                     f"{p['no_answer']:,} | {_ms(p['p50_ms'])} | {_ms(p['p99_ms'])} |")
    rss, d = report["rss_sustained"], report["delivery"]
    refusals = sum(p["status_429"] + p["status_503"] for p in report["phases"])
    missing = sum(p["refusals_without_retry_after"] for p in report["phases"])
    lines += [
        "",
        f"Server RSS during the sustained phase (sampled every second): {rss.get('min_mib')}-{rss.get('max_mib')} MiB, "
        f"first-third max {rss.get('first_third_max_mib')} MiB, last-third max {rss.get('last_third_max_mib')} MiB, "
        f"slope after the first third {rss.get('slope_mib_per_min')} MiB/min: "
        f"{'flat' if rss.get('flat') else 'NOT flat'}. "
        f"Peak RSS over the whole run {report['rss_peak_mib']} MiB.",
        f"Refusals (429/503): {refusals:,}, {missing:,} without Retry-After. Server "
        f"{'alive' if report['server_alive'] else 'CRASHED'} after the burst; back to "
        f">= {RECOVERED_SHARE:.0%} accepted per second {_recovery(report['recovered_after_s'])}.",
        f"Delivery: {d['acked_events']:,} events acknowledged, {d['stored_events']:,} stored ({d['stored_unique']:,} "
        f"distinct ids), {d['acked_not_stored']} acknowledged batches missing, {d['partial_batches']} stored in part, "
        f"{d['refused_but_stored']} refused batches stored, {d['no_answer']} batches without an answer: "
        f"{'exactly once' if report['exactly_once'] else 'NOT exactly once'}.",
    ]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _recovery(seconds: float | None) -> str:
    return "never within the recovery phase" if seconds is None else f"{seconds:.0f} s after the burst ended"
