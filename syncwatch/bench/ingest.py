"""`syncwatch bench ingest`: HTTP request to queryable, against the raw insert ceiling, same run.

The server runs as a child process with its own embedded store, so its peak RSS is its own.
Batched scenarios use Python client threads (a few hundred requests/s), each with a keep-alive
connection of bench.http_load: the client shares the two cores with the server, so the leaner it is
the more of them the server gets (CPU per event at batches of 1,000: httpx 1.2-1.4 us, http.client
0.61-0.65, http_load 0.28-0.38). Single-event requests use wrk (Debian package, installed when
missing) because a Python client would be the bottleneck.
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import shutil
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from syncwatch.bench.ceiling import raw_insert_ceiling
from syncwatch.bench.figures import machine, machine_line
from syncwatch.bench.http_load import HttpLoadError, PostConnection
from syncwatch.bench.serverproc import ServerProcess

PLACEHOLDER = b"@@@@@@@@@@"  # 10 bytes, replaced per request to keep event ids unique
SPAN_MARK = b"\xfe\xed\xfa\xce"
CE_BATCH = "application/cloudevents-batch+json"


@dataclass
class Scenario:
    name: str
    protocol: str = ""  # "CloudEvents" or "OTLP spans"
    batch: int = 0  # items per request
    clients: int = 0
    client: str = "Python threads"  # or "wrk"
    items: int = 0
    requests: int = 0
    refused: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # "429 overloaded" -> count: why they were refused
    seconds: float = 0.0
    queryable_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    peak_rss_mib: int = 0  # the server's, sampled every 0.25 s during this scenario
    # CPU per item: the server's until the rows are queryable; the load's (client threads or wrk) while it sends.
    # Both run on the same cores, so the load's share is taken from the server.
    server_cpu_us: float = 0.0
    load_cpu_us: float = 0.0

    @property
    def rate(self) -> float:
        return self.items / self.queryable_seconds if self.queryable_seconds else 0.0

    def summarize(self) -> None:
        if self.latencies_ms:
            ordered = sorted(self.latencies_ms)
            self.p50_ms = statistics.median(ordered)
            self.p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def event_template(n: int, event_type: str = "psa.timesheet.approved") -> bytes:
    """A psa.timesheet.approved batch: JSON Schema validation and key mapping apply. Another
    type (no schema, no mapping) measures the pipeline without that per-event work."""
    events = [
        {"specversion": "1.0", "id": f"{PLACEHOLDER.decode()}-{i}", "source": "/psa/bench",
         "type": event_type, "time": "2026-11-25T10:00:00Z", "datacontenttype": "application/json",
         "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
         "data": {"timesheet_id": f"TS-{i}", "person_id": f"E-{i % 700}", "project_id": f"P-{i % 90}",
                  "period_start": "2026-11-16", "period_end": "2026-11-22", "hours": 38.5,
                  "billable_hours": 36.0, "approved_at": "2026-11-24T09:12:00Z", "approver_id": "M-12",
                  "region": "EMEA", "legal_entity": "ACME-DE", "service_line": "Cloud"}}
        for i in range(n)
    ]
    return json.dumps(events if n > 1 else events[0]).encode()


def span_template(n: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    spans = [
        Span(trace_id=SPAN_MARK + struct.pack(">QI", i, 1), span_id=SPAN_MARK + struct.pack(">I", i),
             name="sync timesheet", kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=now,
             end_time_unix_nano=now + 120_000_000,
             attributes=[KeyValue(key="timesheet.id", value=AnyValue(string_value=f"TS-{i}")),
                         KeyValue(key="http.response.status_code", value=AnyValue(int_value=200))])
        for i in range(n)
    ]
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="psa-to-billing")))
    return ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString()


def _pump(server: ServerProcess, path: str, headers: dict[str, str], template: bytes, per_request: int,
          unique: Callable[[bytes, int], bytes], deadline: float, result: Scenario, lock: threading.Lock) -> None:
    connection = PostConnection("127.0.0.1", server.port)
    try:
        n = 0
        while time.monotonic() < deadline:
            body = unique(template, n)
            began = time.perf_counter()
            try:
                answer = connection.post(path, headers, body)
                status = answer.status
                reason = "" if status == 200 else f"{status} {_error_code(answer.body)}".strip()
            except (HttpLoadError, OSError) as exc:  # counted as a refusal; the next request reconnects
                status, reason = 0, f"0 no answer: {exc}"
            elapsed = (time.perf_counter() - began) * 1000
            n += 1
            with lock:
                result.requests += 1
                result.latencies_ms.append(elapsed)
                if status == 200:
                    result.items += per_request
                else:
                    result.refused += 1
                    result.refusals[reason] = result.refusals.get(reason, 0) + 1
            if status in (0, 429, 503):
                time.sleep(0.05)
    finally:
        connection.close()


def _error_code(answer: bytes) -> str:
    """The error code of the collector's JSON error body, {"error": {"code": ...}} ('' without one)."""
    try:
        error = json.loads(answer).get("error")
    except (ValueError, AttributeError):
        return ""
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def run_threads(server: ServerProcess, name: str, path: str, token: str, content_type: str, template: bytes,
                per_request: int, clients: int, seconds: float, count_sql: str,
                unique: Callable[[bytes, int, int], bytes]) -> Scenario:
    result, lock = Scenario(name), threading.Lock()
    before = server.scalar(count_sql)
    server_cpu, load_cpu = server.cpu_seconds(), _cpu(resource.RUSAGE_SELF)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    start = time.monotonic()
    deadline = start + seconds
    threads = [
        threading.Thread(target=_pump, args=(server, path, headers, template, per_request,
                                             lambda t, n, c=c: unique(t, c, n), deadline, result, lock))
        for c in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.monotonic() - start
    load_cpu = _cpu(resource.RUSAGE_SELF) - load_cpu
    _wait_queryable(server, count_sql, before + result.items, start, result)
    _per_item(result, server.cpu_seconds() - server_cpu, load_cpu)
    return result


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _per_item(result: Scenario, server_cpu: float, load_cpu: float) -> None:
    if result.items:
        result.server_cpu_us = round(server_cpu / result.items * 1e6, 2)
        result.load_cpu_us = round(load_cpu / result.items * 1e6, 2)


def _wait_queryable(server: ServerProcess, count_sql: str, expected: int, start: float, result: Scenario) -> None:
    deadline = time.monotonic() + 300
    while server.scalar(count_sql) < expected:
        if time.monotonic() > deadline:
            raise click.ClickException(f"{result.name}: rows not queryable within 300 s")
        time.sleep(0.05)
    result.queryable_seconds = time.monotonic() - start
    result.summarize()


def unique_events(tag: str) -> Callable[[bytes, int, int], bytes]:
    """Ids `<tag><client><n>` (10 characters): unique across scenarios, or dedup would hide rows."""

    def make(template: bytes, client: int, n: int) -> bytes:
        return f"{tag}{client:02d}{n:07d}".encode().join(_pieces(template, PLACEHOLDER))

    return make


def unique_spans(template: bytes, client: int, n: int) -> bytes:
    return struct.pack(">I", (client + 1) << 24 | n).join(_pieces(template, SPAN_MARK))  # never an all-zero id


@functools.lru_cache(maxsize=16)
def _pieces(template: bytes, mark: bytes) -> list[bytes]:
    """The template cut at its marks: joining the pieces with a request's id is one copy, where
    replacing the marks searched the whole body each time (0.016 against 0.17 ms per 1,000 events)."""
    return template.split(mark)


WRK_SCRIPT = """
local counter, threads = 0, 0
-- ids are "<run>-<thread>-<n>": wrk's Lua random is not seeded, so ids from it would repeat in the
-- next run against the same server, and repeats are stored once (the counts would come out short)
function setup(thread) threads = threads + 1; thread:set("tid", "%(run)s-" .. threads) end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/cloudevents+json"
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  counter = counter + 1
  local body = string.format([==[%(body)s]==], tid .. "-" .. counter)
  return wrk.format(nil, "/v1/events", nil, body)
end
"""


def run_single_wrk(server: ServerProcess, token: str, clients: int, seconds: float) -> Scenario:
    wrk = _ensure_wrk()
    template = event_template(1).decode().replace("%", "%%").replace(PLACEHOLDER.decode(), "%s")
    result = Scenario(f"CloudEvents, single-event requests, {clients} clients", client="wrk")
    count_sql = "SELECT count() FROM events"
    before = server.scalar(count_sql)
    server_cpu, load_cpu = server.cpu_seconds(), _cpu(resource.RUSAGE_CHILDREN)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_SCRIPT % {"token": token, "body": template, "run": os.urandom(6).hex()})
    start = time.monotonic()
    out = subprocess.run([wrk, "-t2", f"-c{clients}", f"-d{int(seconds)}s", "--latency", server.url,
                          "-s", fh.name], capture_output=True, text=True, check=True).stdout
    result.seconds = time.monotonic() - start
    load_cpu = _cpu(resource.RUSAGE_CHILDREN) - load_cpu  # wrk, waited for
    os.unlink(fh.name)
    Path(tempfile.gettempdir(), "syncwatch-wrk.out").write_text(out)
    result.requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result.refused = int(non2xx.group(1)) if non2xx else 0
    result.items = result.requests - result.refused
    result.p50_ms = _wrk_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    result.p99_ms = _wrk_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    stored, queryable_at = _wait_until_stable(server, count_sql)
    result.items = stored - before  # wrk counts requests it cut off at the end; the store is the truth
    result.queryable_seconds = queryable_at - start
    _per_item(result, server.cpu_seconds() - server_cpu, load_cpu)
    return result


def _wait_until_stable(server: ServerProcess, count_sql: str) -> tuple[int, float]:
    """The final count, once it held for three polls, and when it was first seen: the rows were
    queryable then (the polls that confirm it are not part of the time to queryable)."""
    last, same, seen_at = -1, 0, time.monotonic()
    while same < 3:
        now = server.scalar(count_sql)
        if now == last:
            same += 1
        else:
            last, same, seen_at = now, 0, time.monotonic()
        time.sleep(0.1)
    return last, seen_at


def _wrk_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise click.ClickException("wrk is needed for the single-event scenario: apt-get install wrk")
    return found


def run(seconds: float, out_dir: str, sustain_seconds: float = 0.0) -> dict[str, object]:
    where = machine()
    click.echo("raw store insert ceiling (insert_arrow, 10k-row batches, embedded chDB) ...")
    ceiling = raw_insert_ceiling()
    with tempfile.TemporaryDirectory(prefix="syncwatch-bench-") as tmp:
        server = ServerProcess(Path(tmp), "bench-admin-" + os.urandom(8).hex())
        server.start()
        try:
            scenarios = _scenarios(server, seconds)
            sustained = _sustain(server, sustain_seconds) if sustain_seconds else None
        finally:
            server.stop()
    report = {"machine": where, "ceiling_rows_per_s": ceiling,
              "scenarios": [{**asdict(s), "rate_per_s": round(s.rate), "latencies_ms": None} for s in scenarios],
              "server_peak_rss_mib": round(server.peak_rss / 2**20), "sustained": sustained}
    _write(report, Path(out_dir))
    return report


# (protocol, items per request, clients, event type or None for spans, label suffix); every protocol at
# batch sizes 1, 100 and 1,000, and once without per-event schema work to show what it costs
PLANS = [
    ("CloudEvents", 1000, 4, "psa.timesheet.approved", ""),
    ("CloudEvents", 1000, 4, "psa.timesheet.note", ", type without schema or key mapping"),
    ("CloudEvents", 100, 8, "psa.timesheet.approved", ""),
    ("CloudEvents", 1, 16, "psa.timesheet.approved", ""),
    ("OTLP spans", 1000, 4, None, ""),
    ("OTLP spans", 100, 8, None, ""),
    ("OTLP spans", 1, 8, None, ""),
]


def _scenarios(server: ServerProcess, seconds: float) -> list[Scenario]:
    events_key, spans_key = server.key("psa", "events"), server.key("*", "telemetry")
    results = []
    for protocol, per, clients, event_type, suffix in PLANS:
        name = f"{protocol}, {'single-item requests' if per == 1 else f'batches of {per:,}'}{suffix}"
        click.echo(f"{name} ({clients} clients, {seconds:.0f} s) ...")
        mark = len(server.rss_samples)
        if event_type and per == 1:
            result = run_single_wrk(server, events_key, clients, seconds)  # a Python client would be the bottleneck
        elif event_type:
            result = run_threads(server, name, "/v1/events", events_key, CE_BATCH, event_template(per, event_type),
                                 per, clients, seconds, "SELECT count() FROM events", unique_events(str(len(results))))
        else:
            result = run_threads(server, name, "/v1/traces", spans_key, "application/x-protobuf", span_template(per),
                                 per, clients, seconds, "SELECT count() FROM otel_traces", unique_spans)
        result.name, result.protocol, result.batch, result.clients = name, protocol, per, clients
        result.peak_rss_mib = round(max((r for _, r in server.rss_samples[mark:]), default=0) / 2**20)
        results.append(result)
    return results


def _sustain(server: ServerProcess, seconds: float) -> dict[str, object]:
    """Batches of 1,000 events for `seconds`; RSS sampled throughout, to show it stays flat."""
    click.echo(f"sustained load: batches of 1,000 for {seconds:.0f} s ...")
    server.rss_samples.clear()
    key = server.key("psa", "events")
    result = run_threads(server, "sustained", "/v1/events", key, CE_BATCH, event_template(1000), 1000, 2,
                         seconds, "SELECT count() FROM events", unique_events("s"))
    rss = [r for _, r in server.rss_samples]
    third = max(1, len(rss) // 3)
    every_10s = [round(r / 2**20) for _, r in server.rss_samples[:: max(1, int(10 / 0.25))]]
    return {"seconds": round(result.seconds), "events_per_s": round(result.rate), "rss_every_10s_mib": every_10s,
            "rss_first_third_max_mib": round(max(rss[:third]) / 2**20),
            "rss_last_third_max_mib": round(max(rss[-third:]) / 2**20), "rss_peak_mib": round(max(rss) / 2**20)}


def markdown(report: dict) -> str:
    ceiling = report["ceiling_rows_per_s"]
    lines = [
        f"{machine_line(report['machine'])} Acknowledged = fsynced to the spool; items/s = items / (first request "
        "to all rows queryable); peak RSS is the server's during the scenario; ceiling = the raw store insert rate "
        "of the same rows (insert_arrow of 10k-row batches into the same embedded chDB, no HTTP), measured in the "
        "same run. CPU per item: the server process's (every thread) until its rows are queryable, and the load's "
        "(the client threads' process, or wrk) while it sends; both share the same cores.",
        "",
        "| scenario | batch | clients | items/s (to queryable) | % of ceiling | requests | refused | p50 ms | "
        "p99 ms | peak RSS MiB | server CPU µs/item | load CPU µs/item |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report["scenarios"]:
        roof = ceiling["spans" if s.get("protocol") == "OTLP spans" else "events"]
        client = " (wrk)" if s.get("client") == "wrk" else ""
        lines.append(f"| {s['name']} | {s.get('batch', '')} | {s.get('clients', '')}{client} | {s['rate_per_s']:,} | "
                     f"{s['rate_per_s'] / roof:.0%} | {s['requests']:,} | {s['refused']:,} | {s['p50_ms']:.1f} | "
                     f"{s['p99_ms']:.1f} | {s.get('peak_rss_mib', '')} | {_us(s, 'server_cpu_us')} | "
                     f"{_us(s, 'load_cpu_us')} |")
    lines += ["", f"Raw store insert ceiling: {ceiling['events']:,} event rows/s, {ceiling['spans']:,} span rows/s. "
              f"Server peak RSS over the whole run: {report['server_peak_rss_mib']} MiB. Batches and single-item OTLP "
              "requests come from Python client threads (keep-alive sockets, on the same two cores; single-item ones "
              "may be client-bound); single CloudEvents from wrk."]
    refusals = [f"{s['name']}: " + ", ".join(f"{n:,} x {why}" for why, n in s["refusals"].items())
                for s in report["scenarios"] if s.get("refusals")]
    if refusals:
        lines.append("Refused requests, by status and error: " + "; ".join(refusals) + ".")
    if report.get("sustained"):
        s = report["sustained"]
        lines.append(f"Sustained {s['seconds']} s at {s['events_per_s']:,} events/s: RSS max "
                     f"{s['rss_first_third_max_mib']} MiB in the first third, {s['rss_last_third_max_mib']} MiB "
                     f"in the last third (peak {s['rss_peak_mib']} MiB).")
    return "\n".join(lines)


def _us(scenario: dict, name: str) -> str:
    return f"{scenario[name]:.2f}" if scenario.get(name) else ""  # reports from before it was measured lack it


def _write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (out / "ingest.md").write_text(table + "\n")
    click.echo("\n" + table)
