"""The demo feed: deterministic, coherent, faults as the knobs say and as the ground truth logs,
payloads valid against rules/schemas, and an end-to-end run through the real collector."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import fastjsonschema
import httpx
import pytest

from syncwatch.simulator.faults import (
    AMOUNT_MISMATCH,
    COST_RATE_MISMATCH,
    DELAYED_SYNC,
    DUPLICATE,
    FAILED_CALL,
    FAULT_TYPES,
    LOST_MESSAGE,
    REORDERED,
    SCHEMA_BREAK,
    UNBILLED_TIMESHEET,
    WRONG_LEGAL_ENTITY,
    FaultKnobs,
    JsonlLog,
    read_ground_truth,
)
from syncwatch.simulator.feed import SYSTEMS, Batch, Feed, FeedConfig, FeedStats, generate, run_feed
from syncwatch.simulator.transport import Transport, retry_after

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "rules" / "schemas"
START = date(2025, 1, 6)
EVENT_TYPES = {"crm.account.created", "crm.opportunity.won", "erp.customer.created", "psa.project.created",
               "psa.project.staffed", "psa.assignment.created", "time.entry.submitted", "psa.timesheet.approved",
               "billing.invoice.created", "erp.invoice.posted", "hris.cost_rate.changed", "integration.sync.failed",
               "hris.person.hired", "psa.resource.created"}


def config(days: int = 70, **knobs: float) -> FeedConfig:
    return FeedConfig(seed=11, consultants=24, clients=8, days=days, start_date=START, faults=FaultKnobs(**knobs))


def run(cfg: FeedConfig) -> tuple[Feed, list[Batch]]:
    feed = Feed(cfg)
    return feed, list(feed.batches())


def events(batches: list[Batch]) -> list[dict[str, Any]]:
    return [e for b in batches if b.kind == "events" for e in b.items]


def records(batches: list[Batch], system: str, entity: str) -> list[dict[str, Any]]:
    return [r for b in batches if b.kind == "records" and (b.system, b.entity) == (system, entity) for r in b.items]


def latest(batches: list[Batch], system: str, entity: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in records(batches, system, entity):
        if r["key"] not in out or r["version"] > out[r["key"]]["version"]:
            out[r["key"]] = r
    return {k: r["fields"] for k, r in out.items()}


def of_type(batches: list[Batch], event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events(batches) if e["type"] == event_type]


# -- determinism -------------------------------------------------------------------------------------

def test_same_seed_gives_the_same_feed_and_truth() -> None:
    cfg = FeedConfig(seed=5, consultants=15, clients=5, days=40, fault_rate=0.2, start_date=START)
    first, again = Feed(cfg), Feed(cfg)
    assert list(first.batches()) == list(again.batches())
    assert first.truth.faults == again.truth.faults and first.truth.faults
    other = list(generate(FeedConfig(seed=6, consultants=15, clients=5, days=40, fault_rate=0.2, start_date=START)))
    assert other != list(generate(cfg))


def test_batches_respect_size_and_kinds() -> None:
    cfg = FeedConfig(seed=1, consultants=20, clients=6, days=30, events_per_batch=25, start_date=START)
    batches = list(generate(cfg))
    assert {b.kind for b in batches} == {"events", "records", "spans"}
    assert all(len(b.items) <= 25 for b in batches if b.kind != "spans")
    assert {b.system for b in batches if b.kind != "spans"} <= set(SYSTEMS)
    assert all(e["source"] == f"/{b.system}" or e["source"].startswith(f"/{b.system}/")
               for b in batches if b.kind == "events" for e in b.items)
    days = [b.day for b in batches]
    assert days == sorted(days) and days[0] == START


# -- the business process, without faults ------------------------------------------------------------

def test_clean_feed_is_a_coherent_business_process() -> None:
    feed, batches = run(config(days=100))
    assert not feed.truth.faults
    won = {d["opportunity_id"] for d in of_type(batches, "crm.opportunity.won")}
    projects = of_type(batches, "psa.project.created")
    assert won and {p["opportunity_id"] for p in projects} <= won
    assert len(won - {p["opportunity_id"] for p in projects}) <= 2  # only deals won in the last days wait
    assert latest(batches, "psa", "project").keys() == latest(batches, "erp", "project").keys()
    for pid, erp in latest(batches, "erp", "project").items():
        assert erp["legal_entity"] == latest(batches, "psa", "project")[pid]["legal_entity"]
    billing, erp = latest(batches, "billing", "invoice"), latest(batches, "erp", "invoice")
    assert billing and billing.keys() == erp.keys()
    assert all(erp[k]["amount"] == v["amount"] for k, v in billing.items())
    hris, psa = latest(batches, "hris", "person"), latest(batches, "psa", "person")
    assert hris == psa
    invoiced = {t for inv in billing.values() for t in inv["timesheet_ids"]}
    last_run = max(inv["issue_date"] for inv in billing.values())[:7]
    due = {k for k, t in latest(batches, "psa", "timesheet").items()
           if t["status"] == "approved" and t["billable"] and t["period"] < last_run}
    assert due <= invoiced
    for inv in of_type(batches, "billing.invoice.created"):
        assert math.isclose(inv["amount"], sum(line["amount"] for line in inv["lines"]), abs_tol=0.011)


def test_events_and_records_point_at_integration_spans() -> None:
    _, batches = run(config(days=45))
    spans = [s for b in batches if b.kind == "spans" for s in b.items]
    span_ids = {(s.context.trace_id, s.context.span_id) for s in spans}
    for event in events(batches):
        _, trace_id, span_id, flags = event["traceparent"].split("-")
        assert len(trace_id) == 32 and len(span_id) == 16 and flags == "01"
        if event["source"] != "/psa" or event["type"] != "psa.assignment.created":  # the PSA's own, unseen span
            assert (int(trace_id, 16), int(span_id, 16)) in span_ids, event["type"]
    services = {s.service for s in spans}
    assert {"crm-to-erp-sync", "psa-to-billing-sync", "hris-to-psa-sync", "time-capture-sync"} <= services
    assert all(s.end >= s.start for s in spans)
    roots = {s.context.span_id for s in spans}
    assert all(s.parent_id == 0 or s.parent_id in roots for s in spans)


# -- payloads against rules/schemas -------------------------------------------------------------------

def _validators() -> dict[str, Any]:
    if not SCHEMAS.is_dir() or not any(SCHEMAS.glob("*.json")):
        pytest.skip("rules/schemas not present")
    return {p.name.removesuffix(".json"): fastjsonschema.compile(json.loads(p.read_text()))
            for p in SCHEMAS.glob("*.json")}


def _invalid(validators: dict[str, Any], event: dict[str, Any]) -> str | None:
    try:
        validators[event["type"]](event["data"])
    except fastjsonschema.JsonSchemaValueException as exc:
        return exc.message
    return None


def test_every_event_type_is_valid_against_its_schema() -> None:
    validators = _validators()
    _, batches = run(config(days=75, failed_call=0.5))  # failed calls that give up send integration.sync.failed
    seen = Counter(e["type"] for e in events(batches))
    assert set(seen) == EVENT_TYPES
    assert validators.keys() >= EVENT_TYPES
    problems = {(e["type"], reason) for e in events(batches) if (reason := _invalid(validators, e))}
    assert not problems


def test_mappings_find_the_business_keys() -> None:
    registry = pytest.importorskip("collector.event_registry").EventRegistry.load(REPO / "rules")
    _, batches = run(config(days=45, failed_call=0.5))
    expected = {"crm.opportunity.won": {"opportunity_id", "client_id"}, "erp.customer.created": {"client_id"},
                "psa.project.created": {"project_id", "opportunity_id", "client_id"},
                "psa.project.staffed": {"assignment_ids"}, "time.entry.submitted": {"timesheet_id"},
                "psa.timesheet.approved": {"time_entry_ids"}, "billing.invoice.created": {"timesheet_ids"},
                "erp.invoice.posted": {"invoice_id", "customer_id", "project_id"},
                "integration.sync.failed": {"object_id", "integration"}}
    for event in events(batches):
        keys = registry.keys(event["type"], event["data"])
        assert expected.get(event["type"], set()) <= keys.keys(), event["type"]


def test_schema_breaking_faults_fail_validation() -> None:
    validators = _validators()
    feed, batches = run(config(days=30, schema_break=1.0))
    assert all(_invalid(validators, e) for e in events(batches))
    assert len(feed.truth.of(SCHEMA_BREAK)) == len(events(batches))


# -- faults: knobs, ground truth, and what they do to the output --------------------------------------

@pytest.mark.parametrize("kind", FAULT_TYPES)
def test_fault_counts_follow_the_knob(kind: str) -> None:
    feed, _ = run(config(days=90, **{kind: 0.3}))
    n, k = feed.truth.eligible[kind], len(feed.truth.of(kind))
    assert n >= 10, f"too few chances for {kind}"
    assert abs(k - 0.3 * n) <= 4 * math.sqrt(n * 0.3 * 0.7) + 1, (k, n)
    assert set(feed.truth.counts()) == {kind}
    assert all(f.systems and f.keys and f.day >= START.isoformat() for f in feed.truth.faults)


@pytest.mark.parametrize("kind", [DUPLICATE, UNBILLED_TIMESHEET, AMOUNT_MISMATCH, WRONG_LEGAL_ENTITY])
def test_a_knob_at_one_hits_every_chance(kind: str) -> None:
    feed, _ = run(config(days=60, **{kind: 1.0}))
    assert len(feed.truth.of(kind)) == feed.truth.eligible[kind] > 0


def test_uniform_rate_is_shared_by_competing_faults() -> None:
    knobs = FaultKnobs.uniform(0.06)
    assert knobs.duplicate == knobs.lost_message == pytest.approx(0.02)
    assert knobs.amount_mismatch == knobs.unbilled_timesheet == 0.06
    with pytest.raises(ValueError, match="duplicate"):
        FaultKnobs(duplicate=1.5)


def test_every_recorded_fault_is_visible_in_the_output() -> None:
    knobs = {kind: 0.15 for kind in FAULT_TYPES} | {AMOUNT_MISMATCH: 0.5, WRONG_LEGAL_ENTITY: 0.5}
    feed, batches = run(config(days=120, **knobs))
    truth = feed.truth
    assert all(truth.of(kind) for kind in FAULT_TYPES), truth.counts()
    sent = Counter((e["source"], e["id"]) for e in events(batches))
    for fault in truth.of(DUPLICATE):
        assert sum(n for (_, i), n in sent.items() if i == fault.keys["event_id"]) == 2
    day_of = {e["id"]: b.day for b in batches if b.kind == "events" for e in b.items}
    for fault in truth.of(REORDERED):
        assert day_of[fault.keys["event_id"]] > date.fromisoformat(fault.day)
    erp_invoices = latest(batches, "erp", "invoice")
    for fault in truth.of(AMOUNT_MISMATCH):
        assert erp_invoices[fault.keys["invoice_id"]]["amount"] == fault.detail["erp"] != fault.detail["billing"]
    erp_projects = latest(batches, "erp", "project")
    for fault in truth.of(WRONG_LEGAL_ENTITY):
        assert erp_projects[fault.keys["project_id"]]["legal_entity"] == fault.detail["erp"] != fault.detail["psa"]
    psa_rates = {(r["key"], r["fields"]["cost_rate"]) for r in records(batches, "psa", "person")}
    for fault in truth.of(COST_RATE_MISMATCH):
        assert (fault.keys["person_id"], fault.detail["psa"]) in psa_rates
    invoiced = {t for inv in latest(batches, "billing", "invoice").values() for t in inv["timesheet_ids"]}
    assert not {f.keys["timesheet_id"] for f in truth.of(UNBILLED_TIMESHEET)} & invoiced
    for fault in truth.of(LOST_MESSAGE):
        if fault.detail["integration"] == "billing-to-erp-sync":
            assert fault.keys["invoice_id"] not in erp_invoices
        if fault.detail["integration"] == "crm-to-psa-sync":
            assert fault.keys["project_id"] not in latest(batches, "psa", "project")
    failed = [e["data"] for e in events(batches) if e["type"] == "integration.sync.failed"]
    gave_up = [f for f in truth.of(FAILED_CALL) if f.detail["gave_up"]]
    assert len(failed) >= len(gave_up) - len(truth.of(SCHEMA_BREAK))
    error_spans = [s for b in batches if b.kind == "spans" for s in b.items if s.error]
    assert len(error_spans) >= sum(f.detail["attempts"] - (not f.detail["gave_up"]) for f in truth.of(FAILED_CALL))
    for fault in truth.of(DELAYED_SYNC):
        assert fault.detail["days"] >= 2


def test_faults_stop_at_faults_until() -> None:
    cfg = config(days=60, lost_message=0.3, unbilled_timesheet=0.5)
    cfg.faults_until = START + timedelta(days=30)
    feed, _ = run(cfg)
    assert feed.truth.faults and all(f.day < "2025-02-05" for f in feed.truth.faults)
    everything, _ = run(config(days=60, lost_message=0.3, unbilled_timesheet=0.5))
    assert feed.truth.eligible[LOST_MESSAGE] < everything.truth.eligible[LOST_MESSAGE]


def test_new_hires_reach_the_psa_and_their_time_is_invoiced_by_name() -> None:
    feed, batches = run(config(days=90))
    hired = {d["person_id"] for d in of_type(batches, "hris.person.hired")}
    opening = {p.person_id for p in feed.firm.people[:24]}
    assert hired and not hired & opening and hired <= latest(batches, "psa", "person").keys()
    resources = {d["person_id"] for d in of_type(batches, "psa.resource.created")}
    assert resources == opening | hired  # the PSA announces every resource once
    billed = {line["person_id"] for inv in of_type(batches, "billing.invoice.created") for line in inv["lines"]}
    approved = {d["person_id"] for d in of_type(batches, "psa.timesheet.approved") if d["billable_amount"] > 0}
    assert billed <= approved and billed & hired


def test_sync_faults_name_when_and_what_they_touched() -> None:
    feed, batches = run(config(days=75, lost_message=0.3))
    invoices = {d["invoice_id"]: d for d in of_type(batches, "billing.invoice.created")}
    lost = [f for f in feed.truth.of(LOST_MESSAGE) if f.detail["integration"] == "billing-to-erp-sync"]
    assert lost and all(f.detail["at"].startswith(f.day) for f in feed.truth.faults)
    for fault in lost:
        lines = invoices[fault.keys["invoice_id"]]["lines"]
        assert fault.detail["timesheet_ids"] == [line["timesheet_id"] for line in lines]
        assert fault.detail["person_ids"] == sorted({line["person_id"] for line in lines})


def test_ground_truth_log_round_trips(tmp_path: Path) -> None:
    feed = Feed(FeedConfig(seed=2, consultants=10, clients=4, days=20, fault_rate=0.3, start_date=START))
    log = JsonlLog(tmp_path / "truth" / "faults.jsonl")
    feed.truth.listeners.append(log)
    list(feed.batches())
    log.close()
    assert read_ground_truth(log.path) == feed.truth.faults


# -- transport ----------------------------------------------------------------------------------------

def test_retry_after_header() -> None:
    assert retry_after("3", 1.0) == 3.0
    assert retry_after(None, 1.5) == 1.5
    assert retry_after("soon", 2.0) == 2.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1.0) == 0.0  # a date in the past: go now


def test_transport_honors_retry_after_then_counts_the_batch() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["authorization"])
        if len(calls) < 3:
            return httpx.Response(503 if len(calls) == 1 else 429, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"accepted": 2, "quarantined": 1, "rejected": 0})

    stats = FeedStats()
    client = httpx.Client(base_url="http://collector.test", transport=httpx.MockTransport(handler))
    transport = Transport("http://collector.test", {"crm": "k-crm", "telemetry": "k-tel"}, stats, http=client)
    transport.send(Batch("events", "crm", [{"id": "1"}, {"id": "2"}, {"id": "3"}], START))
    transport.close()
    assert calls == ["Bearer k-crm"] * 3
    assert (stats.retries, stats.events_sent, stats.accepted, stats.quarantined) == (2, 3, 2, 1)


def test_run_feed_needs_a_key_per_system() -> None:
    with pytest.raises(KeyError, match="billing"):
        run_feed("http://127.0.0.1:9", {s: "k" for s in SYSTEMS if s != "billing"} | {"telemetry": "k"},
                 config(days=1))


# -- end to end, through the real collector ------------------------------------------------------------

@pytest.mark.slow
def test_feed_lands_in_the_store(live_server: Any, tmp_path: Path) -> None:
    tokens = {s: live_server.key(s, "events", "records") for s in SYSTEMS}
    tokens["telemetry"] = live_server.key("telemetry", "telemetry")
    truth_path = tmp_path / "faults.jsonl"
    knobs = FaultKnobs(schema_break=0.05, duplicate=0.05, failed_call=0.1, amount_mismatch=0.3)
    cfg = FeedConfig(seed=4, consultants=12, clients=4, days=40, start_date=START, faults=knobs,
                     events_per_batch=100, ground_truth_path=truth_path)
    seen: list[int] = []
    stats = run_feed(live_server.base_url, tokens, cfg, progress=lambda s: seen.append(s.days))
    live_server.flush()
    assert seen == list(range(1, 41)) and stats.failed_requests == stats.spans_failed == 0
    truth = read_ground_truth(truth_path)
    assert stats.faults_injected == len(truth) and stats.faults == dict(Counter(f.fault for f in truth))
    _, batches = run(cfg)  # the same feed, to know exactly what was sent
    sent = {(e["source"], e["id"]) for e in events(batches)}
    broken = {f.keys["event_id"] for f in truth if f.fault == SCHEMA_BREAK}
    store = live_server.store

    def count(sql: str) -> int:
        return int(store.query(sql)[0][0])

    assert count("SELECT count() FROM events FINAL") == len({k for k in sent if k[1] not in broken})
    assert count("SELECT count() FROM quarantine WHERE kind = 'event'") == len(broken) == stats.quarantined > 0
    assert stats.events_sent == len(events(batches)) and stats.rejected == 0
    keys = {(b.system, b.entity, r["key"]) for b in batches if b.kind == "records" for r in b.items}
    assert count("SELECT count() FROM records FINAL") == len(keys)
    spans = [s for b in batches if b.kind == "spans" for s in b.items]
    assert stats.spans_sent == len(spans) == count("SELECT count() FROM otel_traces")
    assert count("SELECT count() FROM otel_traces WHERE StatusCode = 'Error'") == sum(1 for s in spans if s.error)
    linked = count("SELECT count() FROM events FINAL WHERE (trace_id, span_id) IN "
                   "(SELECT TraceId, SpanId FROM otel_traces)")
    assert linked >= 0.8 * count("SELECT count() FROM events FINAL")
    services = {row[0] for row in store.query("SELECT DISTINCT ServiceName FROM otel_traces")}
    assert {"crm-to-psa-sync", "time-capture-sync", "hris-to-psa-sync"} <= services
    approved = count("SELECT count() FROM records FINAL WHERE system = 'psa' AND entity = 'timesheet' "
                     "AND fields['status'] = 'approved'")
    assert approved > 0


def test_run_feed_stops_when_asked(live_server: Any) -> None:
    tokens = {"*": live_server.key("*", "events", "records", "telemetry")}
    stop = threading.Event()
    cfg = FeedConfig(seed=3, consultants=6, clients=2, days=None, fault_rate=0.0, start_date=START, pace=0.01)
    stats = run_feed(live_server.base_url, tokens, cfg, stop, progress=lambda s: s.days >= 3 and stop.set())
    assert stats.days == 3 and stats.events_sent > 0 and stats.failed_requests == 0
