"""The demo feed: a seeded simulator of a consulting firm's systems and integrations.

It sends realistic business events, record snapshots and integration spans, with injected
faults and a ground-truth log of them, through the platform's real ingest endpoints.

    from syncwatch.simulator import FeedConfig, run_feed
    stats = run_feed("http://127.0.0.1:4318", tokens, FeedConfig(seed=7, days=30))

Modules: entities.py and firm.py (the firm and its business process), payloads.py (what each
system says about it), delivery.py and feed.py (integrations, faults, batches), faults.py (knobs
and ground truth), spans.py and transport.py (telemetry and HTTP).
"""

from __future__ import annotations

from syncwatch.simulator.faults import FAULT_TYPES, Fault, FaultKnobs, GroundTruth, read_ground_truth
from syncwatch.simulator.feed import SYSTEMS, Batch, Feed, FeedConfig, FeedStats, generate, run_feed

__all__ = ["FAULT_TYPES", "SYSTEMS", "Batch", "Fault", "FaultKnobs", "Feed", "FeedConfig", "FeedStats",
           "GroundTruth", "generate", "read_ground_truth", "run_feed"]
