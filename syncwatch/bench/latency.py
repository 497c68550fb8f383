"""`syncwatch bench latency`: from the moment an SLA deadline passes to the alert at a webhook.

A real `syncwatch serve` (embedded store, in-process reconciler) gets a rule pack of one workflow,
`bench.flow.started` -> `bench.flow.done` within SLA seconds, scheduled every `--every`, and an
alert config whose only sink is a webhook served by this process on loopback. Instances start
at a steady pace and never finish; each one's deadline is its start event's time + SLA. The
latency of an instance is the webhook's arrival time minus that deadline. It is bounded below by
nothing and above by the schedule interval plus one rule run plus the delivery.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import httpx

from syncwatch.bench.figures import machine, machine_line, percentile
from syncwatch.bench.serverproc import ServerProcess

MAPPING = """\
bench.flow.started:
  keys: {instance_id: data.instance_id}
bench.flow.done:
  keys: {instance_id: data.instance_id}
"""
ALERTS = """\
defaults: {renotify: 24h}
sinks:
  - {name: bench_webhook, type: webhook, url: "${SYNCWATCH_BENCH_WEBHOOK_URL}"}
routes:
  - sinks: [bench_webhook]
"""


def rule_yaml(sla_seconds: int, every_seconds: int) -> str:
    return f"""\
name: bench_latency
kind: workflow
severity: high
schedule: {{every: {every_seconds}s}}
key_name: instance_id
steps:
  - {{name: started, event_type: bench.flow.started, key: instance_id}}
  - {{name: done, event_type: bench.flow.done, key: instance_id, sla: {{within: {sla_seconds}s}}}}
"""


class Receiver:
    """A loopback webhook that records when each stuck instance's alert arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.posts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                receiver.posts += 1
                for finding in body.get("findings", []):
                    if finding.get("kind") == "stuck" and finding.get("alert_status") == "firing":
                        receiver.arrivals.setdefault(finding["keys"]["instance_id"], at)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _event(instance: str, at: datetime) -> dict[str, Any]:
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/bench/flows", "type": "bench.flow.started",
            "time": at.isoformat().replace("+00:00", "Z"), "datacontenttype": "application/json",
            "data": {"instance_id": instance}}


def run(instances: int, spread_seconds: float, sla_seconds: int, every_seconds: int, out_dir: str) -> dict[str, Any]:
    where, receiver = machine(), Receiver()
    with tempfile.TemporaryDirectory(prefix="syncwatch-latency-") as tmp:
        rules = Path(tmp) / "rules"
        (rules / "packs" / "bench").mkdir(parents=True)
        (rules / "mappings").mkdir()
        (rules / "mappings" / "bench.yaml").write_text(MAPPING)
        (rules / "packs" / "bench" / "latency.yaml").write_text(rule_yaml(sla_seconds, every_seconds))
        (rules / "alerts.yaml").write_text(ALERTS)
        server = ServerProcess(Path(tmp) / "data", "bench-admin-token", {
            "SYNCWATCH_RULES_DIR": str(rules), "SYNCWATCH_RECONCILE_IN_PROCESS": "true",
            "SYNCWATCH_BENCH_WEBHOOK_URL": receiver.url})
        server.start()
        try:
            deadlines = _feed(server, instances, spread_seconds, sla_seconds)
            wait_until = max(deadlines.values()) + every_seconds * 3 + 30
            while len(receiver.arrivals) < instances and time.time() < wait_until:
                time.sleep(0.2)
        finally:
            server.stop()
            receiver.close()
    latencies = [receiver.arrivals[k] - deadlines[k] for k in deadlines if k in receiver.arrivals]
    report = {
        "benchmark": "detection latency", "date": datetime.now(UTC).date().isoformat(), "machine": where,
        "instances": instances, "spread_seconds": spread_seconds, "sla_seconds": sla_seconds,
        "every_seconds": every_seconds, "alerted": len(latencies), "missed": instances - len(latencies),
        "webhook_posts": receiver.posts,
        "p50_seconds": statistics.median(latencies) if latencies else None,
        "p99_seconds": percentile(latencies, 0.99) if latencies else None,
        "max_seconds": max(latencies) if latencies else None,
        "min_seconds": min(latencies) if latencies else None,
    }
    _write(report, Path(out_dir))
    return report


def _feed(server: ServerProcess, instances: int, spread_seconds: float, sla_seconds: int) -> dict[str, float]:
    """Start instances at a steady pace; each one's deadline (epoch seconds) is its time + SLA."""
    token = server.key("bench", "events")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/cloudevents+json"}
    deadlines: dict[str, float] = {}
    pace = spread_seconds / max(1, instances)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        began = time.monotonic()
        for i in range(instances):
            time.sleep(max(0.0, began + i * pace - time.monotonic()))
            at = datetime.now(UTC)
            instance = f"I-{i}"
            response = client.post("/v1/events", content=json.dumps(_event(instance, at)))
            response.raise_for_status()
            deadlines[instance] = (at + timedelta(seconds=sla_seconds)).timestamp()
    return deadlines


def _write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.json").write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    lines = [
        f"{machine_line(m)} "
        f"{report['instances']:,} workflow instances started over {report['spread_seconds']:.0f} s, none finished; "
        f"SLA {report['sla_seconds']} s; rule scheduled every {report['every_seconds']} s; alerts to a loopback "
        "webhook.",
        "",
        "| alerted | missed | p50 | p99 | max | min |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {report['alerted']:,} | {report['missed']:,} | " + " | ".join(
            f"{report[k]:.2f} s" if report[k] is not None else "n/a"
            for k in ("p50_seconds", "p99_seconds", "max_seconds", "min_seconds")) + " |",
    ]
    text = "\n".join(lines) + "\n"
    (out / "latency.md").write_text(text)
    click.echo("\n" + text)
