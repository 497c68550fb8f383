"""GET /api/v1/timeline: one business object end to end, across every system, in time order."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from collector.api.access import User, require
from collector.api.params import as_utc, bad_parameter
from collector.api.timeline_sql import COLUMNS, KINDS, Selector, timeline_sql
from collector.event_registry import EventRegistry
from syncwatch.store import Store

router = APIRouter(tags=["timeline"])
_NAME = re.compile(r"^[A-Za-z_][\w.-]{0,127}$")
_TRACE = re.compile(r"^[0-9a-f]{32}$")
MAX_SELECTORS = 10
MAX_VALUE = 256
DEFAULT_LIMIT, MAX_LIMIT = 1000, 10_000
KEY_HELP = ("business key as name:value (project_id:P-17), or :value for the value under any key name; "
            "repeat for several")


class TimelineItem(BaseModel):
    kind: Literal["event", "record", "span", "finding", "action"]
    system: str = Field(description="source system (events, records), integration (spans), systems (findings)")
    at: datetime
    start: datetime | None = Field(description="spans and findings: when it began")
    end: datetime | None = Field(description="spans: start + duration; findings: resolved or last seen")
    title: str
    status: str
    ids: dict[str, str]
    detail: dict[str, str]


class Timeline(BaseModel):
    keys: list[str]
    trace_ids: list[str]
    items: list[TimelineItem]
    counts: dict[str, int]
    truncated: list[str] = Field(description="kinds that reached `limit` items: there may be more")


def parse_key(text: str) -> tuple[str, str]:
    """`name:value` -> (name, value); `:value` or a bare value -> ('', value): the value under any key name.
    Everything after the first colon is the value, so `:urn:x:1` finds the value `urn:x:1`."""
    name, sep, value = text.partition(":")
    if not sep:
        name, value = "", text
    if name and not _NAME.match(name):
        raise bad_parameter("key", f"{name!r} is not a key name (letters, digits, _ . -); {KEY_HELP}")
    if not value or len(value) > MAX_VALUE:
        raise bad_parameter("key", f"{text!r} needs a value of 1 to {MAX_VALUE} characters; {KEY_HELP}")
    return name, value


def parse_trace(text: str) -> str:
    trace = text.strip().lower()
    if not _TRACE.match(trace):
        raise bad_parameter("trace_id", f"{text!r} is not a W3C trace id (32 hexadecimal digits)")
    return trace


def many_keys(registry: EventRegistry) -> dict[str, tuple[str, ...]]:
    """Key names that some event types store as a JSON array (a path with `[]`), with those types."""
    found: dict[str, list[str]] = {}
    for event_type, mapping in registry.mappings.items():
        for name, path in mapping.keys.items():
            if "[]" in path:
                found.setdefault(name, []).append(event_type)
    return {name: tuple(sorted(types)) for name, types in found.items()}


def selector(request: Request, key: list[str], trace_id: list[str]) -> Selector:
    if not key and not trace_id:
        raise bad_parameter("key", f"give key (a {KEY_HELP}) or trace_id")
    if len(key) + len(trace_id) > MAX_SELECTORS:
        raise bad_parameter("key", f"at most {MAX_SELECTORS} keys and trace ids together")
    return Selector(tuple(parse_key(k) for k in key), tuple(parse_trace(t) for t in trace_id),
                    many_keys(request.app.state.registry))


def timeline_rows(store: Store, sel: Selector, limit: int) -> list[dict[str, Any]]:
    sql, params = timeline_sql(sel, limit)
    return [dict(zip(COLUMNS, row, strict=True)) for row in store.query(sql, params)]


def build(rows: list[dict[str, Any]], key: list[str], trace_id: list[str], limit: int) -> Timeline:
    counts = Counter(r["kind"] for r in rows)
    items = [TimelineItem(**{**r, "at": as_utc(r["at"]), "start": as_utc(r["start"]), "end": as_utc(r["end"])})
             for r in rows]
    return Timeline(keys=key, trace_ids=trace_id, items=items, counts={k: counts.get(k, 0) for k in KINDS},
                    truncated=[k for k in KINDS if counts.get(k, 0) >= limit])


@router.get("/timeline", summary="A business object end to end: events, records, spans, findings and actions")
def get_timeline(request: Request, key: list[str] = Query([], description=KEY_HELP),
                 trace_id: list[str] = Query([], description="W3C trace id (32 hex digits); repeat for several"),
                 limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="most items of each kind"),
                 _: User = Depends(require("timeline:read"))) -> Timeline:
    sel = selector(request, key, trace_id)
    return build(timeline_rows(request.app.state.store, sel, limit), key, trace_id, limit)
