"""GET /api/v1/integrations/health: how each source system's data and integrations fare over a window.

Per source system:
    ingest rate      items accepted per second (ingest_batches: one row per acknowledged request)
    quarantine       items kept in quarantine (quarantine table) and their share of what arrived
    error spans      spans attributed to the system that ended in error; a span belongs to the system
                     it called (`peer.service`), else the system it wrote to (`syncwatch.system.target`)
    error rate       (error spans + quarantined items) / (spans + accepted + quarantined items)
    sync lag         received_at - event time of the system's events (p50, p95, in seconds)
Per integration (the spans' service.name): spans, errors, error rate, p95 duration.

Four small grouped queries, each on its table's time column (partition and min/max index pruning).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from collector.api.access import User, require
from collector.api.params import as_utc, window
from syncwatch.store import Store

router = APIRouter(tags=["integrations"])
_WINDOW_PARAMS = "{start:DateTime64(6, 'UTC')}"
SPAN_SYSTEM = ("coalesce(nullIf(SpanAttributes['peer.service'], ''), "
               "nullIf(SpanAttributes['syncwatch.system.target'], ''), '')")
SPAN_START = "Timestamp >= toDateTime64({start:DateTime64(6, 'UTC')}, 9)"

INGEST_SQL = ("SELECT system, count() AS batches, sum(accepted) AS accepted, sum(quarantined) AS quarantined_items, "
              "sum(rejected) AS rejected, max(received_at) AS last_received_at\n"
              f"FROM ingest_batches WHERE received_at >= {_WINDOW_PARAMS} GROUP BY system")
QUARANTINE_SQL = (f"SELECT system, count() AS quarantine_count FROM quarantine WHERE received_at >= {_WINDOW_PARAMS} "
                  "GROUP BY system")
# Approximate quantiles (reservoir sampling): lag is a health signal, not an invoice.
LAG_SQL = ("SELECT system, count() AS events, quantiles(0.5, 0.95)(dateDiff('millisecond', time, received_at)) AS lag\n"
           f"FROM events WHERE received_at >= {_WINDOW_PARAMS} GROUP BY system")
SYSTEM_SPANS_SQL = (f"SELECT {SPAN_SYSTEM} AS system, count() AS spans, countIf(StatusCode = 'Error') AS error_spans\n"
                    f"FROM otel_traces WHERE {SPAN_START} GROUP BY system HAVING system != ''")
INTEGRATION_SQL = ("SELECT ServiceName AS integration, count() AS spans,\n"
                   "       countIf(StatusCode = 'Error') AS error_spans,\n"
                   "       quantile(0.95)(Duration) / 1e6 AS p95_duration_ms, max(Timestamp) AS last_span_at\n"
                   f"FROM otel_traces WHERE {SPAN_START} GROUP BY ServiceName ORDER BY ServiceName")


class SystemHealth(BaseModel):
    system: str
    batches: int = 0
    accepted: int = 0
    rejected: int = 0
    ingest_rate_per_s: float = 0.0
    quarantine_count: int = 0
    quarantine_rate: float | None = Field(None, description="quarantined / (accepted + quarantined)")
    spans: int = 0
    error_spans: int = 0
    error_rate: float | None = Field(None, description="(error spans + quarantined) / (spans + accepted + quarantined)")
    events: int = Field(0, description="events received in the window (the sync lag sample)")
    sync_lag_p50_s: float | None = None
    sync_lag_p95_s: float | None = None
    last_received_at: datetime | None = None


class IntegrationHealth(BaseModel):
    integration: str
    spans: int
    error_spans: int
    error_rate: float
    p95_duration_ms: float
    last_span_at: datetime


class IntegrationsHealth(BaseModel):
    start: datetime
    end: datetime
    window_seconds: float
    systems: list[SystemHealth]
    integrations: list[IntegrationHealth]


def _rows(store: Store, sql: str, start: datetime) -> list[dict[str, Any]]:
    names, rows = store.query_columns(sql, {"start": start})
    return [dict(zip(names, row, strict=True)) for row in rows]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def system_health(parts: dict[str, dict[str, Any]], seconds: float) -> SystemHealth:
    p = parts
    accepted, quarantined = int(p.get("accepted", 0)), int(p.get("quarantine_count", 0))
    spans, errors = int(p.get("spans", 0)), int(p.get("error_spans", 0))
    lag = p.get("lag") or []
    has_lag = bool(p.get("events"))
    return SystemHealth(
        system=p["system"], batches=p.get("batches", 0), accepted=accepted, rejected=p.get("rejected", 0),
        ingest_rate_per_s=accepted / seconds, quarantine_count=quarantined,
        quarantine_rate=_share(quarantined, accepted + quarantined), spans=spans, error_spans=errors,
        error_rate=_share(errors + quarantined, spans + accepted + quarantined), events=p.get("events", 0),
        sync_lag_p50_s=lag[0] / 1000 if has_lag else None, sync_lag_p95_s=lag[1] / 1000 if has_lag else None,
        last_received_at=as_utc(p.get("last_received_at")))


def integrations_health(store: Store, length: timedelta, now: datetime) -> IntegrationsHealth:
    start = now - length
    merged: dict[str, dict[str, Any]] = {}
    for sql in (INGEST_SQL, QUARANTINE_SQL, LAG_SQL, SYSTEM_SPANS_SQL):
        for row in _rows(store, sql, start):
            merged.setdefault(row["system"], {}).update(row)
    seconds = length.total_seconds()
    integrations = [IntegrationHealth(**{**r, "error_rate": r["error_spans"] / r["spans"],
                                         "last_span_at": as_utc(r["last_span_at"])})
                    for r in _rows(store, INTEGRATION_SQL, start)]
    return IntegrationsHealth(start=start, end=now, window_seconds=seconds,
                              systems=[system_health(merged[s], seconds) for s in sorted(merged)],
                              integrations=integrations)


@router.get("/integrations/health", summary="Per source system: ingest rate, error rate, sync lag, quarantine")
def get_integrations_health(request: Request,
                            window_text: str = Query("1h", alias="window", description="15m, 1h, 24h, 7d (1m..90d)"),
                            _: User = Depends(require("health:read"))) -> IntegrationsHealth:
    return integrations_health(request.app.state.store, window(window_text), datetime.now(UTC))
