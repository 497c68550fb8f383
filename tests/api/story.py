"""A small, coherent business story written straight into the store, then reconciled by the real rules.

Project P-17 of client C-9 (deal OPP-1, won in the CRM for 1,000 EUR; the ERP project's budget says
900): one contract-value mismatch finding. Timesheets TS-1 and TS-2 of P-17 were approved, invoiced
together as INV-1 and posted; TS-3 was approved 50 days ago and never invoiced: a time_to_bill SLA
breach worth 500 EUR. The integrations that carried them left spans (one in error), and an ops user
acknowledged the breach.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.audit import AuditLog
from reconciler.loader import LoadedRule, load_rules
from reconciler.service import run_one
from syncwatch.store import Store

REPO = Path(__file__).resolve().parents[2]
EVENT_COLUMNS = ["type", "source", "id", "system", "time", "subject", "trace_id", "span_id", "keys", "data",
                 "received_at"]
SPAN_COLUMNS = ["Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind", "ServiceName",
                "SpanAttributes", "Duration", "StatusCode", "StatusMessage"]
RECORD_COLUMNS = ["system", "entity", "key", "version", "updated_at", "deleted", "fields", "trace_id", "span_id",
                  "received_at"]
TRACE_TS1 = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_INV1 = "0af7651916cd43dd8448eb211c80319c"
TRACE_OPP1 = "5c1f6a7b8d9e0f1a2b3c4d5e6f708192"


def rules() -> dict[str, LoadedRule]:
    return {r.name: r for r in load_rules(REPO / "rules")}


@dataclass
class Story:
    now: datetime
    mismatch: str  # fingerprint of the contract-value finding
    breach: str  # fingerprint of TS-3's time_to_bill finding


def event(type_: str, at: datetime, keys: dict[str, Any], data: dict[str, Any], trace: str = "",
           lag: timedelta = timedelta(seconds=30)) -> tuple[Any, ...]:
    system = type_.split(".")[0]
    text = {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in keys.items()}
    ident = f"{type_}:{next(iter(keys.values()))}"
    return (type_, f"/{system}/app", ident, system, at, "", trace, "00f067aa0ba902b7" if trace else "", text,
            json.dumps(data), at + lag)


def span(trace: str, span_id: str, parent: str, name: str, service: str, at: datetime, millis: int,
          attrs: dict[str, str], error: str = "") -> tuple[Any, ...]:
    return (at.replace(tzinfo=None), trace, span_id, parent, name, "Client", service, attrs, millis * 1_000_000,
            "Error" if error else "Ok", error)


def write_story(store: Store, now: datetime | None = None) -> Story:
    now = now or datetime.now(UTC)
    day = timedelta(days=1)
    # The day's events start at 08:00 so that none crosses midnight into the next day's trend bucket
    # whatever the hour the tests run at.
    t0 = (now - 5 * day).replace(hour=8)
    old = now - 50 * day  # beyond time_to_bill's 42-day invoicing SLA
    ts = {"project_id": "P-17", "person_id": "E-1"}
    money = {"billable_amount": 500.0, "currency": "EUR"}
    events = [
        event("crm.opportunity.won", now - 10 * day, {"opportunity_id": "OPP-1", "client_id": "C-9", "region": "EMEA"},
               {"opportunity_id": "OPP-1", "amount": 1000, "currency": "EUR"}, TRACE_OPP1),
        event("psa.timesheet.approved", t0, {"timesheet_id": "TS-1", **ts}, money, TRACE_TS1),
        event("psa.timesheet.approved", t0 + timedelta(hours=1), {"timesheet_id": "TS-2", **ts}, money),
        event("billing.invoice.created", t0 + timedelta(hours=4),
               {"invoice_id": "INV-1", "project_id": "P-17", "timesheet_ids": ["TS-1", "TS-2"]}, {}, TRACE_INV1),
        event("erp.invoice.posted", t0 + timedelta(hours=6), {"invoice_id": "INV-1", "project_id": "P-17"}, {},
               TRACE_INV1, lag=timedelta(minutes=5)),
        event("psa.timesheet.approved", old, {"timesheet_id": "TS-3", **ts}, money),
    ]
    store.insert_rows("events", events, EVENT_COLUMNS)
    sync = "psa-to-billing-sync"
    spans = [
        span(TRACE_TS1, "a1b2c3d4e5f60718", "", "sync timesheet", sync, t0 + timedelta(seconds=5), 120,
              {"timesheet.id": "TS-1", "project.id": "P-17", "peer.service": "billing"}),
        span(TRACE_TS1, "b1b2c3d4e5f60718", "a1b2c3d4e5f60718", "POST /api/v1/timesheets", sync,
              t0 + timedelta(seconds=6), 80, {"timesheet.id": "TS-1", "peer.service": "billing"},
              "503 Service Unavailable"),
        span(TRACE_INV1, "c1b2c3d4e5f60718", "", "sync invoice", "billing-to-erp-sync", t0 + timedelta(hours=5), 40,
              {"invoice.id": "INV-1", "peer.service": "erp"}),
        span("ffffffffffffffffffffffffffffffff", "d1b2c3d4e5f60718", "", "sync unrelated", "crm-to-erp-sync",
              t0, 10, {"opportunity.id": "OPP-99"}),
    ]
    store.insert_rows("otel_traces", spans, SPAN_COLUMNS)
    records = [
        ("crm", "opportunity", "OPP-1", 1, old, 0, {"stage": "Closed Won", "amount": "1000", "currency": "EUR"},
         TRACE_OPP1, "", old),
        ("erp", "project", "PRJ-1", 1, old, 0, {"opportunity_id": "OPP-1", "budget": "900", "currency": "EUR"},
         "", "", old),
    ]
    store.insert_rows("records", records, RECORD_COLUMNS)
    store.insert_rows("quarantine", [(now - timedelta(minutes=5), "event", "psa", "/psa/app", "bad-1",
                                      "psa.timesheet.approved", "data.hours: must be a number", "{}", "b1")],
                      ["received_at", "kind", "system", "source", "item_id", "type", "reason", "payload", "batch_id"])
    store.insert_rows("ingest_batches", [("b1", now - timedelta(minutes=5), "events", "psa", "k", 40, 1, 0, 9000),
                                         ("b2", now - timedelta(minutes=2), "events", "crm", "k", 20, 0, 0, 4000)],
                      ["batch_id", "received_at", "kind", "system", "key_id", "accepted", "quarantined", "rejected",
                       "bytes"])
    pack = rules()
    for name in ("crm_vs_erp_contract_value", "time_to_bill"):
        assert run_one(store, pack[name], full=True).ok
    return Story(now, _fingerprint(store, "crm_vs_erp_contract_value"), _fingerprint(store, "time_to_bill",
                                                                                        "TS-3"))


def _fingerprint(store: Store, rule: str, key: str = "") -> str:
    rows = store.query("SELECT fingerprint FROM findings FINAL WHERE rule = {r:String} "
                       "AND ({k:String} = '' OR has(mapValues(keys), {k:String}))", {"r": rule, "k": key})
    assert len(rows) == 1, (rule, key, rows)
    return str(rows[0][0])


def act(store: Store, fingerprint: str, *actions: str) -> None:
    log = AuditLog(store)
    for action in actions:
        log.append("olga", "ops", action, fingerprint, {"note": f"{action} by test"})


def tokens(app: Any) -> dict[str, str]:
    """One user token per role, made through the app's user directory."""
    from collector.api.access import ROLES

    return {role: app.state.users.create(f"{role} tester", role)[1] for role in ROLES}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
