"""GET /api/v1/export/findings|timeline|audit?format=csv|parquet: files an analyst opens in a
spreadsheet or polars. Each takes the same filters as its list endpoint; each export is recorded in
the audit log (who exported what, how many rows).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ConfigDict, Field

from collector.api.access import User, require
from collector.api.audit_log import AuditFilter
from collector.api.export_files import MEDIA_TYPES, Format, chunks, filename
from collector.api.findings_query import FINGERPRINT, FindingFilter, where_sql
from collector.api.timeline import DEFAULT_LIMIT, KEY_HELP, MAX_LIMIT, selector
from collector.api.timeline_sql import timeline_sql
from reconciler.findings import effective_status_sql
from reconciler.sql import Params
from syncwatch.store import Store

router = APIRouter(prefix="/export", tags=["exports"])
MAX_ROWS = 1_000_000  # a bigger extract belongs in a ClickHouse client, not an HTTP download
FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}, "description": "the file"}}
_NOW = "{now:DateTime64(6, 'UTC')}"
# at as the exact text the chain hashes, so an exported log can be re-verified from the file
_AT_TEXT = "formatDateTime(at, '%Y-%m-%dT%H:%i:%S.%fZ', 'UTC') AS at"


class FindingsExportQuery(FindingFilter):
    """The findings list's filter, plus the file format (unknown parameters are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format = Field("csv", description="csv or parquet")

    def filter(self) -> FindingFilter:
        return FindingFilter.model_validate(self.model_dump(include=set(FindingFilter.model_fields)))


def findings_export_sql(f: FindingFilter, now: datetime) -> tuple[str, dict[str, Any]]:
    """The filter applies inside, on the stored columns; the outside flattens keys and systems under
    the same names (an alias must not shadow a column the filter reads)."""
    where, params = where_sql(f)
    sql = ("SELECT fingerprint, rule, rule_version, kind, field, toJSONString(keys) AS keys,\n"
           "       arrayStringConcat(systems, ',') AS systems, left_value, right_value, severity, impact_amount,\n"
           "       impact_currency, effective_status AS status, assignee, silenced_until, first_seen, last_seen,\n"
           "       resolved_at, resolution, resolution_reason, reopened_count, left_trace_id, right_trace_id,\n"
           "       detail, updated_at\n"
           f"FROM (SELECT *, {effective_status_sql(_NOW)} AS effective_status FROM findings FINAL WHERE {where})\n"
           "ORDER BY impact_amount DESC, fingerprint LIMIT {max_rows:UInt32}")
    # DateTime64 parameters are bound as text without a zone: naive UTC
    return sql, {**params, "now": now.astimezone(UTC).replace(tzinfo=None), "max_rows": MAX_ROWS}


def timeline_export_sql(sql: str) -> str:
    return ("SELECT kind, system, at, start, end, title, status, toJSONString(ids) AS ids, "
            f"toJSONString(detail) AS detail FROM (\n{sql}\n) ORDER BY at, kind")


def audit_export_sql(f: AuditFilter) -> tuple[str, dict[str, Any]]:
    p = Params()
    columns = "seq, " + _AT_TEXT + ", actor, toString(role) AS role, toString(action) AS action, " \
        "finding_fingerprint, parameters, outcome, prev_hash, hash"
    sql = f"SELECT {columns} FROM actions {f.where(p)} ORDER BY seq LIMIT {p(MAX_ROWS, 'UInt32')}"
    return sql, p.values


def _send(request: Request, user: User, what: str, fmt: Format, table: pa.Table,
          filters: dict[str, Any]) -> StreamingResponse:
    now = datetime.now(UTC)
    request.app.state.audit.append(user.name, user.role, "exported", "",
                                   {"what": what, "format": fmt, "rows": table.num_rows, "filters": filters})
    name = filename(what, fmt, now)
    return StreamingResponse(chunks(table, fmt), media_type=MEDIA_TYPES[fmt],
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/findings", summary="Findings matching the list's filters, as CSV or Parquet",
            response_class=StreamingResponse, responses=FILE_RESPONSE)
def export_findings(request: Request, query: Annotated[FindingsExportQuery, Query()],
                    user: User = Depends(require("export"))) -> StreamingResponse:
    store: Store = request.app.state.store
    sql, params = findings_export_sql(query.filter(), datetime.now(UTC))
    table = store.query_arrow(sql, params)
    filters = query.filter().model_dump(exclude_none=True, mode="json")
    return _send(request, user, "findings", query.format, table, filters)


@router.get("/timeline", summary="A business object's timeline, as CSV or Parquet", response_class=StreamingResponse,
            responses=FILE_RESPONSE)
def export_timeline(request: Request, key: list[str] = Query([], description=KEY_HELP),
                    trace_id: list[str] = Query([], description="W3C trace id (32 hex digits); repeat for several"),
                    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="most items of each kind"),
                    fmt: Format = Query("csv", alias="format", description="csv or parquet"),
                    user: User = Depends(require("export"))) -> StreamingResponse:
    sql, params = timeline_sql(selector(request, key, trace_id), limit)
    table = request.app.state.store.query_arrow(timeline_export_sql(sql), params)
    return _send(request, user, "timeline", fmt, table, {"key": key, "trace_id": trace_id})


@router.get("/audit", summary="The audit log (filtered like GET /audit), as CSV or Parquet",
            response_class=StreamingResponse, responses=FILE_RESPONSE)
def export_audit(request: Request,
                 fingerprint: str | None = Query(None, pattern=FINGERPRINT, description="finding fingerprint"),
                 actor: str | None = Query(None, max_length=200), action: str | None = Query(None, max_length=64),
                 fmt: Format = Query("csv", alias="format", description="csv or parquet"),
                 user: User = Depends(require("export"))) -> StreamingResponse:
    f = AuditFilter(fingerprint, actor, action)
    sql, params = audit_export_sql(f)
    table = request.app.state.store.query_arrow(sql, params)
    return _send(request, user, "audit", fmt, table,
                 {k: v for k, v in (("fingerprint", fingerprint), ("actor", actor), ("action", action)) if v})
