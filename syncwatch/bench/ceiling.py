"""The raw store insert rate: Arrow tables straight into embedded chDB, no HTTP, no spool."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime

import pyarrow as pa

from syncwatch import schema
from syncwatch.model import EVENTS, SCHEMAS, SPANS
from syncwatch.store import Store


def _events(n: int, offset: int) -> pa.Table:
    now = datetime.now(UTC)
    data = '{"timesheet_id":"TS-1","person_id":"E-1","project_id":"P-1","hours":38.5,"region":"EMEA"}'
    columns = {
        "type": ["psa.timesheet.approved"] * n, "source": ["/psa/bench"] * n,
        "id": [f"c-{offset + i}" for i in range(n)], "system": ["psa"] * n, "specversion": ["1.0"] * n,
        "time": [now] * n, "subject": [""] * n, "datacontenttype": ["application/json"] * n,
        "dataschema": [""] * n, "trace_id": ["4bf92f3577b34da6a3ce929d0e0e4736"] * n,
        "span_id": ["00f067aa0ba902b7"] * n, "keys": [[("timesheet_id", f"TS-{i}"), ("project_id", "P-1")]
                                                   for i in range(n)],
        "data": [data] * n, "extensions": [[]] * n, "received_at": [now] * n,
    }
    return pa.table(columns, schema=SCHEMAS[EVENTS])


def _spans(n: int, offset: int) -> pa.Table:
    now = time.time_ns()
    columns = {f.name: [] for f in SCHEMAS[SPANS]}
    for i in range(n):
        row = {"Timestamp": now, "TraceId": f"{offset + i:032x}", "SpanId": f"{offset + i:016x}", "ParentSpanId": "",
               "TraceState": "", "SpanName": "sync timesheet", "SpanKind": "Client", "ServiceName": "psa-to-billing",
               "ResourceAttributes": [("service.name", "psa-to-billing")], "ScopeName": "", "ScopeVersion": "",
               "SpanAttributes": [("timesheet.id", f"TS-{i}")], "Duration": 120_000_000, "StatusCode": "Ok",
               "StatusMessage": "", "Events.Timestamp": [], "Events.Name": [], "Events.Attributes": [],
               "Links.TraceId": [], "Links.SpanId": [], "Links.TraceState": [], "Links.Attributes": []}
        for k, v in row.items():
            columns[k].append(v)
    return pa.table(columns, schema=SCHEMAS[SPANS])


def raw_insert_ceiling(total: int = 300_000, batch: int = 10_000) -> dict[str, int]:
    """Rows/s of insert_arrow in `batch`-row inserts, for events and for spans."""
    with tempfile.TemporaryDirectory(prefix="syncwatch-ceiling-") as tmp:
        store = Store(f"chdb://{tmp}", "bench")
        schema.migrate(store)
        rates = {}
        for name, table, make in (("events", EVENTS, _events), ("spans", SPANS, _spans)):
            batches = [make(batch, i * batch) for i in range(total // batch)]
            began = time.perf_counter()
            for data in batches:
                store.insert_arrow(table, data)
            rates[name] = round(total / (time.perf_counter() - began))
        store.close()
    return rates
