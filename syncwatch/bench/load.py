"""`syncwatch bench load`: sustained ingest, a 10x burst and recovery, then exactly-once delivery.

A server runs as a child process with its own embedded store (bench/serverproc.py). An asyncio
httpx client sends batches of CloudEvents on an open-loop schedule (request n leaves at
start + n / rate, whether or not earlier ones were answered, up to a connection cap), so a burst
really arrives faster than the server can take it, as it would from many integrations at once.

Phases: sustained rate R for T seconds (server RSS sampled every second: is it flat?), a burst
at factor x R (how many 429/503, each with Retry-After? does the server stay up?), R again (how
soon is every request accepted again?). Then, after the spool drains, every batch is checked
against the store: each acknowledged batch stored whole and once, no refused batch stored.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx

from syncwatch.bench.ingest import CE_BATCH, PLACEHOLDER, event_template, machine
from syncwatch.bench.load_figures import MIB, Sent, markdown, phase_summary, recovered_after, rss_trend
from syncwatch.bench.serverproc import ServerProcess, rss_bytes

PAGE = 10_000  # rows per admin query (its limit)


@dataclass(frozen=True)
class LoadConfig:
    rate: int = 10_000  # events/s in the sustained and recovery phases
    batch: int = 100
    seconds: float = 180.0
    burst_seconds: float = 20.0
    burst_factor: float = 10.0
    recover_seconds: float = 30.0
    max_inflight: int = 64  # the server's max_inflight_requests during the run
    spool_mib: int = 512
    connections: int = 512  # the client's cap on requests in flight

    def __post_init__(self) -> None:
        if self.rate < 1 or self.batch < 1 or min(self.seconds, self.burst_seconds, self.recover_seconds) <= 0:
            raise click.BadParameter("rate, batch and every phase's seconds must be positive")
        if self.burst_factor < 1 or self.max_inflight < 1 or self.spool_mib < 1 or self.connections < 1:
            raise click.BadParameter("burst factor, max inflight, spool MiB and connections must be >= 1")


@dataclass
class Client:
    """The load client's state: where to send, and what became of every batch."""

    url: str
    headers: dict[str, str]
    template: bytes
    gate: asyncio.Semaphore
    sent: list[Sent] = field(default_factory=list)
    outcome: dict[str, str] = field(default_factory=dict)  # batch id -> acked | refused | unknown


def run(config: LoadConfig, out_dir: str | None = "bench-results") -> dict[str, object]:
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="syncwatch-load-") as tmp:
        server = ServerProcess(Path(tmp), "load-admin-" + os.urandom(8).hex(), {
            "SYNCWATCH_MAX_INFLIGHT_REQUESTS": str(config.max_inflight),
            "SYNCWATCH_SPOOL_MAX_BYTES": str(config.spool_mib * MIB)})
        server.start()
        try:
            report = asyncio.run(_drive(server, config))
            report["server_alive"] = report["server_alive"] and server.proc is not None and server.proc.poll() is None
            server.wait_drained(timeout=300)
            report["delivery"] = verify(server, report.pop("outcome"), config.batch)  # type: ignore[arg-type]
        finally:
            server.stop()
    report.update(machine=machine(), load_average_before=load_before, load_average_after=round(os.getloadavg()[0], 2),
                  config=config.__dict__)
    d = report["delivery"]
    report["exactly_once"] = not (d["acked_not_stored"] or d["partial_batches"] or d["refused_but_stored"]  # type: ignore[index]
                                  or d["stored_unexplained"] or d["stored_events"] != d["stored_unique"])  # type: ignore[index]
    if out_dir:
        _write(report, Path(out_dir))
    return report


async def _drive(server: ServerProcess, config: LoadConfig) -> dict[str, object]:
    token = server.key("psa", "events")
    client = Client(f"{server.url}/v1/events", {"Authorization": f"Bearer {token}", "Content-Type": CE_BATCH},
                    event_template(config.batch), asyncio.Semaphore(config.connections))
    rss: list[tuple[str, float, int]] = []
    rps = config.rate / config.batch
    plan = [("sustained", rps, config.seconds), ("burst", rps * config.burst_factor, config.burst_seconds),
            ("recovery", rps, config.recover_seconds)]
    limits = httpx.Limits(max_connections=config.connections, max_keepalive_connections=config.connections)
    phases, recovery = [], None
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        for number, (name, target, seconds) in enumerate(plan):
            click.echo(f"{name}: {target:,.0f} requests/s of {config.batch} events for {seconds:.0f} s ...")
            sampler = asyncio.create_task(_sample_rss(server, name, rss))
            took = await _phase(http, client, name, str(number), target, seconds)
            sampler.cancel()
            mine = [s for s in client.sent if s.phase == name]
            phases.append(phase_summary(name, target, took, mine))
            if name == "recovery":
                recovery = recovered_after(mine, seconds)
    alive = await _alive(server)
    sustained = [(t, b) for phase, t, b in rss if phase == "sustained"]
    return {"phases": phases, "rss_sustained": rss_trend(sustained),
            "rss_samples_mib": [(phase, round(t, 1), round(b / MIB)) for phase, t, b in rss],
            "rss_peak_mib": round(max((b for _, _, b in rss), default=0) / MIB), "recovered_after_s": recovery,
            "server_alive": alive, "outcome": client.outcome}


async def _phase(http: httpx.AsyncClient, client: Client, name: str, prefix: str, rps: float, seconds: float) -> float:
    """Send on schedule for `seconds`; returns when every request sent has been answered."""
    loop = asyncio.get_running_loop()
    start, tasks, n = loop.time(), set(), 0
    # The phase ends on the clock, not on a request count: a client that cannot keep the
    # schedule (a busy machine, the connection cap) sends fewer, and says so in sent req/s.
    while (elapsed := loop.time() - start) < seconds:
        delay = n / rps - elapsed
        if delay > 0:
            await asyncio.sleep(delay)
        await client.gate.acquire()
        batch_id = f"{prefix}{n:0{len(PLACEHOLDER) - len(prefix)}d}"
        task = asyncio.create_task(_send(http, client, name, start, batch_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    sending = loop.time() - start
    await asyncio.gather(*list(tasks))
    return sending


async def _send(http: httpx.AsyncClient, client: Client, phase: str, phase_start: float, batch_id: str) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    body = client.template.replace(PLACEHOLDER, batch_id.encode())
    try:
        response = await http.post(client.url, content=body, headers=client.headers)
        status, retry_after = response.status_code, "retry-after" in response.headers
    except httpx.HTTPError:
        status, retry_after = 0, False
    finally:
        client.gate.release()
    client.sent.append(Sent(phase, began - phase_start, (loop.time() - began) * 1000, status, retry_after))
    client.outcome[batch_id] = _outcome(status)


def _outcome(status: int) -> str:
    """What a status says about the batch: 2xx stored, 4xx and 503 not stored, anything else unknown."""
    if 200 <= status < 300:
        return "acked"
    if 400 <= status < 500 or status == 503:
        return "refused"
    return "unknown"


async def _sample_rss(server: ServerProcess, phase: str, into: list[tuple[str, float, int]]) -> None:
    started = time.monotonic()
    while server.proc is not None and server.proc.poll() is None:
        try:
            into.append((phase, time.monotonic() - started, rss_bytes(server.proc.pid)))
        except OSError:
            return
        await asyncio.sleep(1.0)


async def _alive(server: ServerProcess) -> bool:
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            return (await http.get(f"{server.url}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


def verify(server: ServerProcess, outcome: dict[str, str], batch: int) -> dict[str, int]:
    """Compare what the client was told with what the store holds, batch by batch."""
    stored_events, stored_unique = server.query("SELECT count(), uniqExact(id) FROM events")[0]
    (partial,) = server.query(f"SELECT count() FROM (SELECT substring(id, 1, {len(PLACEHOLDER)}) AS b, count() AS c "
                              f"FROM events GROUP BY b HAVING c != {int(batch)})")[0]
    stored = stored_batches(server)
    acked = {b for b, o in outcome.items() if o == "acked"}
    refused = {b for b, o in outcome.items() if o == "refused"}
    unknown = {b for b, o in outcome.items() if o == "unknown"}
    return {"acked_batches": len(acked), "acked_events": len(acked) * batch, "stored_events": int(stored_events),
            "stored_unique": int(stored_unique), "partial_batches": int(partial),
            "acked_not_stored": len(acked - stored), "refused_but_stored": len(refused & stored),
            "no_answer": len(unknown), "no_answer_stored": len(unknown & stored),
            "stored_unexplained": len(stored - acked - refused - unknown)}


def stored_batches(server: ServerProcess) -> set[str]:
    """Every batch id in the store, read in pages (the admin query returns at most 10,000 rows)."""
    batches: set[str] = set()
    offset = 0
    while True:
        rows = server.query(f"SELECT DISTINCT substring(id, 1, {len(PLACEHOLDER)}) AS b FROM events "
                            f"ORDER BY b LIMIT {PAGE} OFFSET {offset}")
        batches.update(str(row[0]) for row in rows)
        if len(rows) < PAGE:
            return batches
        offset += PAGE


def _write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (out / "load.md").write_text(table + "\n")
    click.echo(json.dumps({k: report[k] for k in ("phases", "rss_sustained", "delivery", "exactly_once")}, indent=2))
    click.echo("\n" + table)
