"""A store for `syncwatch bench api`: the time-to-bill process at scale, and a findings backlog.

Generated inside ClickHouse (INSERT ... SELECT FROM numbers). Timesheet n is approved at an even
pace over the last 180 days; invoice m bills timesheets 5m..5m+4, is created 10 days after the
last of them and posted a day later; one invoice in a hundred is never created (stuck time).
Events carry the keys and dimensions the shipped mappings would have given them, so the shipped
KPI rules (rules/packs/professional_services/kpis.yaml) evaluate them as they would live data.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.findings import FINDING_COLUMNS
from syncwatch import schema
from syncwatch.store import Store

PER_INVOICE = 5
EVENT_COLUMNS = ("type, source, id, system, specversion, time, subject, datacontenttype, dataschema, trace_id, "
                 "span_id, keys, data, extensions, received_at")
_REGION = "['EMEA', 'NA', 'APAC'][n % 3 + 1]"
_ENTITY = "['Acme UK Ltd', 'Acme GmbH', 'Acme Inc'][n % 3 + 1]"
_APPROVED_AT = "{start:DateTime64(6, 'UTC')} + toIntervalMicrosecond(toUInt64(n * {step_us:Float64}))"

APPROVED_SQL = f"""
INSERT INTO events ({EVENT_COLUMNS})
SELECT 'psa.timesheet.approved', '/psa/bench', concat('ta-', toString(n)), 'psa', '1.0', {_APPROVED_AT}, '',
       'application/json', '', lower(hex(sipHash128(n, 'ts'))), lower(hex(cityHash64(n, 'ts'))),
       map('timesheet_id', concat('T-', toString(n)), 'project_id', concat('P-', toString(n % 20000)),
           'person_id', concat('E-', toString(n % 5000)), 'region', {_REGION}, 'legal_entity', {_ENTITY}),
       concat('{{"timesheet_id":"T-', toString(n), '","billable_amount":', toString(500 + n % 1500),
              ',"currency":"EUR","region":"', {_REGION}, '"}}'),
       map(), {_APPROVED_AT}
FROM (SELECT number AS n FROM numbers({{timesheets:UInt64}}))
"""

# an invoice's time: 10 days after its last timesheet; its id and the timesheets it bills
_INVOICE_AT = ("{start:DateTime64(6, 'UTC')} + toIntervalMicrosecond(toUInt64((m * 5 + 4) * {step_us:Float64}))"
               " + toIntervalDay(10)")
_INVOICE_ROWS = """
FROM (SELECT number AS m FROM numbers(intDiv({timesheets:UInt64}, 5)))
WHERE cityHash64(m, 'lost') % 100 != 0 AND {invoice_at} + toIntervalDay({after:UInt8}) < {now:DateTime64(6, 'UTC')}
"""
CREATED_SQL = f"""
INSERT INTO events ({EVENT_COLUMNS})
SELECT 'billing.invoice.created', '/billing/bench', concat('ic-', toString(m)), 'billing', '1.0', {_INVOICE_AT}, '',
       'application/json', '', lower(hex(sipHash128(m, 'inv'))), lower(hex(cityHash64(m, 'inv'))),
       map('invoice_id', concat('I-', toString(m)),
           'timesheet_ids', toJSONString(arrayMap(i -> concat('T-', toString(m * 5 + i)), range(5))),
           'project_id', concat('P-', toString(m * 5 % 20000))),
       concat('{{"invoice_id":"I-', toString(m), '","total":', toString(5000 + m % 500), ',"currency":"EUR"}}'),
       map(), {_INVOICE_AT}
{_INVOICE_ROWS.replace("{invoice_at}", _INVOICE_AT).replace("{after:UInt8}", "0")}
"""
POSTED_SQL = f"""
INSERT INTO events ({EVENT_COLUMNS})
SELECT 'erp.invoice.posted', '/erp/bench', concat('ip-', toString(m)), 'erp', '1.0', {_INVOICE_AT} + toIntervalDay(1),
       '', 'application/json', '', lower(hex(sipHash128(m, 'post'))), lower(hex(cityHash64(m, 'post'))),
       map('invoice_id', concat('I-', toString(m))),
       concat('{{"invoice_id":"I-', toString(m), '","amount":', toString(5000 + m % 500), ',"currency":"EUR"}}'),
       map(), {_INVOICE_AT} + toIntervalDay(1)
{_INVOICE_ROWS.replace("{invoice_at}", _INVOICE_AT).replace("{after:UInt8}", "1")}
"""

_RULES = "['time_to_bill', 'billing_leakage', 'psa_vs_erp_projects', 'hr_vs_psa_cost_rates']"
FINDINGS_SQL = f"""
INSERT INTO findings ({", ".join(FINDING_COLUMNS)})
SELECT lower(hex(SHA256(toString(n)))), {_RULES}[n % 4 + 1], 'bench', ['stuck', 'mismatch', 'missing_right'][n % 3 + 1],
       'status', map('timesheet_id', concat('T-', toString(n * 7))), ['psa', 'erp'], 'a', 'b',
       ['low', 'medium', 'high', 'critical'][n % 4 + 1], toDecimal64(n % 100000, 2), 'EUR',
       ['open', 'open', 'acknowledged', 'resolved'][n % 4 + 1], '', NULL,
       {{now:DateTime64(6, 'UTC')}} - toIntervalSecond(n % 8000000), {{now:DateTime64(6, 'UTC')}}, NULL,
       '', '', '', '', 'generated for the benchmark', {{now:DateTime64(6, 'UTC')}}, 'bench', 'opened', '', '', 0, NULL
FROM (SELECT number AS n FROM numbers({{findings:UInt64}}))
"""


def generate(store: Store, events: int, findings: int, start: datetime, now: datetime) -> dict[str, int]:
    """About `events` events (timesheets : invoices : postings = 5 : 1 : 1) and `findings` findings."""
    timesheets = events * PER_INVOICE // (PER_INVOICE + 2)
    params = {"timesheets": timesheets, "start": start, "now": now,
              "step_us": (now - start).total_seconds() * 1e6 / max(1, timesheets) * 0.9}
    for sql in (APPROVED_SQL, CREATED_SQL, POSTED_SQL):
        store.command(sql, params)
    store.command(FINDINGS_SQL, {"findings": findings, "now": now})
    schema.apply_ddl(store, "OPTIMIZE TABLE events FINAL")
    schema.apply_ddl(store, "OPTIMIZE TABLE findings FINAL")
    counts = dict(store.query("SELECT type, count() FROM events GROUP BY type"))
    return {**counts, "findings": int(store.query("SELECT count() FROM findings")[0][0])}
