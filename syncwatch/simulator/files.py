"""The simulated firm written to files instead of sent: `syncwatch simulate --out DIR`.

Layout (one JSON document per line, in the order the feed would send them):

    events/<system>.jsonl           CloudEvents 1.0 (structured) as each system emits them
    records/<system>.<entity>.jsonl record snapshots, the body lines of /v1/records/<system>/<entity>
    spans.jsonl                     the integrations' spans (ids as 32/16 hex digits, times ISO 8601)
    ground_truth.jsonl              every injected fault
    summary.json                    the configuration and the counts

Memory stays bounded whatever the size: the feed is written a simulated day at a time, faults go
straight to the ground-truth file, and the simulator keeps only the state of open business objects
(people, live projects, timesheets not yet invoiced). Tens of millions of events take a long run
(`--target-events`), not more memory.

Events and records can be posted as they are: `curl --data-binary @records/psa.project.jsonl -H
'Content-Type: application/x-ndjson' .../v1/records/psa/project`.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson

from syncwatch.simulator.delivery import FeedConfig
from syncwatch.simulator.faults import JsonlLog
from syncwatch.simulator.feed import Feed
from syncwatch.simulator.spans import SpanSpec
from syncwatch.simulator.transport import Batch


def span_json(spec: SpanSpec) -> dict[str, Any]:
    return {
        "service": spec.service, "name": spec.name, "kind": spec.kind,
        "trace_id": f"{spec.context.trace_id:032x}", "span_id": f"{spec.context.span_id:016x}",
        "parent_span_id": f"{spec.parent_id:016x}" if spec.parent_id else "",
        "start": spec.start.isoformat(), "end": spec.end.isoformat(), "attributes": spec.attributes,
        "error": spec.error, "error_type": spec.error_type,
        "links": [{"trace_id": f"{c.trace_id:032x}", "span_id": f"{c.span_id:016x}"} for c in spec.links],
    }


def write_files(config: FeedConfig, out: Path, target_events: int | None = None) -> dict[str, Any]:
    """Generate the whole feed into `out` (created; existing files of the layout are replaced).

    With `target_events`, stop after the simulated day on which that many events have been written
    (`config.days` still caps the run), then write what is still in flight.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "events").mkdir(exist_ok=True)
    (out / "records").mkdir(exist_ok=True)
    feed = Feed(dataclasses.replace(config, pace=0.0))
    truth = JsonlLog(out / "ground_truth.jsonl")
    faults: Counter[str] = Counter()
    feed.truth.listeners += [truth, lambda fault: faults.update([fault.fault])]
    feed.truth.keep = False  # the file holds them
    counts: Counter[str] = Counter()
    days = 0
    with ExitStack() as files:
        handles: dict[str, IO[bytes]] = {}

        def handle(name: str) -> IO[bytes]:
            if name not in handles:
                handles[name] = files.enter_context((out / name).open("wb"))
            return handles[name]

        def write(batches: list[Batch]) -> None:
            for batch in batches:
                if batch.kind == "spans":
                    target, lines = handle("spans.jsonl"), [span_json(s) for s in batch.items]
                elif batch.kind == "events":
                    target, lines = handle(f"events/{batch.system}.jsonl"), list(batch.items)
                else:
                    target, lines = handle(f"records/{batch.system}.{batch.entity}.jsonl"), list(batch.items)
                for line in lines:
                    target.write(orjson.dumps(line, default=str) + b"\n")
                counts[batch.kind] += len(lines)

        try:
            for d in feed.days():
                write(feed.run_day(d))
                days += 1
                if target_events is not None and counts["events"] >= target_events:
                    break
            write(feed.drain())
        finally:
            truth.close()
    summary = {"seed": config.seed, "consultants": config.consultants, "clients": config.clients,
               "days": days, "fault_rate": config.fault_rate,
               "start_date": feed.start.isoformat(), "events": counts["events"],
               "records": counts["records"], "spans": counts["spans"], "faults": dict(sorted(faults.items()))}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
