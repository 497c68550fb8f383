"""The professional-services pack against the simulator's ground truth, end to end.

A small seeded firm with faults of every kind is fed through the real collector (HTTP, spool,
writer) into chDB; the whole pack runs once in full; its findings must equal, as sets, the findings
the injected faults imply (pack_truth.py): no finding without a fault behind it, no fault consequence
missed. Faults stop 95 days before the feed ends, longer than any SLA or grace period of the pack,
so at the end every consequence is due and the clean process in flight is not. The expectations and
the scoring are the ones `syncwatch bench accuracy` reports (syncwatch/bench/pack_truth.py,
accuracy_score.py).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from reconciler import compile_kpi, service
from reconciler.loader import load_rules
from reconciler.model import WorkflowRule
from reconciler.model_kpi import KpiRule
from syncwatch.bench.accuracy import stored_findings
from syncwatch.bench.accuracy_score import score
from syncwatch.bench.delivered import Delivered
from syncwatch.bench.pack_truth import UNCOVERED, Finding, expected, touched, unseen
from syncwatch.simulator.faults import (
    AMOUNT_MISMATCH,
    DUPLICATE,
    FAILED_CALL,
    FAULT_TYPES,
    REORDERED,
    SCHEMA_BREAK,
    Fault,
    FaultKnobs,
    read_ground_truth,
)
from syncwatch.simulator.feed import SYSTEMS, Feed, FeedConfig, run_feed
from syncwatch.store import Store
from tests.conftest import REPO, LiveServer

pytestmark = pytest.mark.slow

START, DAYS, FAULT_DAYS = date(2025, 1, 6), 165, 70
NOW = datetime.combine(START + timedelta(days=DAYS), time(), UTC)  # the firm's present when the feed ends
# per eligible step; higher for the rarer steps (invoices, projects, people) so every kind occurs
KNOBS = FaultKnobs(lost_message=0.06, duplicate=0.02, reordered=0.02, delayed_sync=0.08, amount_mismatch=0.25,
                   cost_rate_mismatch=0.15, wrong_legal_entity=0.15, unbilled_timesheet=0.03, failed_call=0.08,
                   schema_break=0.01)
# the collector absorbs these: an event delivered twice is stored once, and rules order steps by
# event time, not arrival
ABSORBED = {DUPLICATE, REORDERED}
assert set(UNCOVERED) == ABSORBED
PACK = [r for r in load_rules(REPO / "rules") if "professional_services" in r.path]


def _explain(missing: set[Finding], extra: set[Finding], want: dict[Finding, list[Fault]]) -> str:
    lines = [f"missed {f} (from {[(x.fault, x.keys, x.detail) for x in want[f]]})" for f in sorted(missing)]
    return "\n".join(lines + [f"no fault behind {f}" for f in sorted(extra)])


@pytest.fixture(scope="module")
def config() -> FeedConfig:
    return FeedConfig(seed=12, consultants=30, clients=8, days=DAYS, start_date=START, faults=KNOBS,
                      faults_until=START + timedelta(days=FAULT_DAYS), events_per_batch=500)


def test_findings_equal_the_consequences_of_the_injected_faults(live_server: LiveServer, config: FeedConfig,
                                                                 tmp_path: Any) -> None:
    tokens = {s: live_server.key(s, "events", "records") for s in SYSTEMS} | {
        "telemetry": live_server.key("telemetry", "telemetry")}
    config.ground_truth_path = tmp_path / "faults.jsonl"
    stats = run_feed(live_server.base_url, tokens, config)
    live_server.flush()
    assert stats.failed_requests == stats.spans_failed == 0
    feed = Feed(config)  # the same seed again: what exactly was sent, and the truth of it
    batches = list(feed.batches())
    faults = feed.truth.faults
    assert read_ground_truth(config.ground_truth_path) == faults
    assert {f.fault for f in faults} == set(FAULT_TYPES), "every kind of fault is injected"
    quarantined = {f.keys["event_id"] for f in faults if f.fault == SCHEMA_BREAK}
    store = live_server.store
    assert {r[0] for r in store.query("SELECT item_id FROM quarantine WHERE kind = 'event'")} == quarantined

    results = service.run_rules(store, service.runnable(PACK), full=True, now=NOW)
    assert [r.error for r in results if r.error] == []
    delivered = Delivered(batches, quarantined)
    want = expected(faults, delivered, NOW)
    found = stored_findings(store, PACK)
    assert found == set(want), _explain(set(want) - found, found - set(want), want)
    assert {rule for rule, *_ in found} == {r.name for r in service.runnable(PACK)}, "every rule is put to the test"

    _kpis_agree_with_the_truth(store, delivered, faults, found)
    unexplained = [(f.fault, f.keys, f.detail) for f in faults
                   if not any(f in behind for behind in want.values()) and not unseen(f, delivered)]
    assert unexplained == [], "faults that should have left a finding"
    injected = Counter(f.fault for f in faults)
    detected = Counter(f.fault for f in faults if any(f in behind for behind in want.values()))
    report = {kind: (detected[kind], injected[kind]) for kind in FAULT_TYPES}
    reasons = Counter((f.fault, unseen(f, delivered)) for f in faults if f.fault not in detected or
                      not any(f in behind for behind in want.values()))
    print("\nfault type: faults with findings / injected; the others, and why", *(
        f"{k}: {v[0]}/{v[1]}" + "".join(f"\n      {n} {why}" for (t, why), n in sorted(reasons.items()) if t == k)
        for k, v in report.items()), sep="\n  ")
    assert {k for k, (seen, _) in report.items() if not seen} == ABSORBED
    assert all(not touched(f, delivered) for f in faults if f.fault in ABSORBED)
    assert detected[FAILED_CALL] > 0
    scored = score(faults, delivered, want, found)  # what the bench reports, on the same run
    assert scored.exact and scored.unexplained == [] and (scored.precision, scored.recall) == (1.0, 1.0)
    covered = [t for t in scored.types if t.covered and t.expected_findings]
    assert {t.fault for t in scored.types if not t.covered} == ABSORBED and covered
    assert all((t.precision, t.recall, t.detected) == (1.0, 1.0, t.must_find) for t in covered)


def _kpis_agree_with_the_truth(store: Store, d: Delivered, faults: list[Fault], found: set[Finding]) -> None:
    """Invoice accuracy and straight-through billing over the whole feed, against their definitions
    applied to what was delivered and the ground truth."""
    kpis = {r.name: r.rule for r in PACK if isinstance(r.rule, KpiRule)}
    workflows = {r.name: r.rule for r in PACK if isinstance(r.rule, WorkflowRule)}
    start = datetime.combine(START, time(), UTC)

    def value(name: str) -> tuple[float, int]:
        (row,) = compile_kpi.evaluate(store, kpis[name], workflows, start, NOW + timedelta(days=7), now=NOW)
        return round(row["value"], 9), row["count"]

    posted = {str(e.data["invoice_id"]) for e in d.of("erp.invoice.posted")}
    wrong = {f.keys["invoice_id"] for f in faults if f.fault == AMOUNT_MISMATCH} & posted
    assert wrong and value("invoice_accuracy") == (round(1 - len(wrong) / len(posted), 9), len(posted))
    flagged = {dict(keys)["timesheet_id"] for _, _, _, keys in found if dict(keys).keys() == {"timesheet_id"}}
    sheets = {sheet for sheet, events in d.approvals.items() if d.billable(events)}
    complete = {s for s in sheets if any(d.postings.get(str(i.data["invoice_id"]))
                                         for i in d.invoices_of_timesheet.get(s, []))}
    settled = complete | (sheets & flagged)
    assert value("straight_through_billing") == (round(len(complete - flagged) / len(settled), 9), len(settled))
