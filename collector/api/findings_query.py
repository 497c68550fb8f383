"""Findings as the triage queue reads them: a filter, a sort, a page.

The SQL is built by pure functions (`list_sql`, `count_sql`) from a validated `FindingFilter`;
every request value is a bound `{name:Type}` parameter. `list_findings` is the one function here
that talks to the store; the findings routes and the exports both call it.

>>> sql, params = list_sql(FindingFilter(status=["open"], key="P-17"), "impact", "desc", 50, 0, _T0)
>>> "P-17" in sql, params["key"], params["status"]
(False, 'P-17', ['open'])
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from reconciler.findings import FINDING_COLUMNS, KINDS, STATUSES, effective_status_sql
from reconciler.model import Duration, Severity
from syncwatch.store import Store

__all__ = ["MAX_PAGE", "Finding", "FindingFilter", "FindingPage", "Order", "SortKey", "count_sql", "finding_from_row",
           "list_findings", "list_sql"]

MAX_PAGE = 1000
SortKey = Literal["impact", "age"]
Order = Literal["asc", "desc"]
Status = Literal["open", "acknowledged", "silenced", "resolved"]
Kind = Literal["missing_left", "missing_right", "mismatch", "aggregate_mismatch", "stuck", "sla_breach",
               "failed_step"]
_T0 = datetime(2026, 1, 1, tzinfo=UTC)  # for the doctest only
_NOW = "{now:DateTime64(6, 'UTC')}"
# A sort key's SQL and the direction that means "most urgent first" for it. Age is now - first_seen,
# so the oldest finding has the greatest age; the fingerprint makes every page boundary stable.
_SORT_SQL: dict[str, str] = {"impact": "impact_amount", "age": f"dateDiff('microsecond', first_seen, {_NOW})"}
assert set(STATUSES) == set(Status.__args__) and set(Kind.__args__) == KINDS  # type: ignore[attr-defined]


def _split(value: Any) -> Any:
    """Query strings give lists as repeated parameters or as one comma-separated value."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [part.strip() for item in value for part in str(item).split(",") if part.strip()]
    return value


FINGERPRINT = r"^[0-9a-f]{64}$"  # a finding's fingerprint: 64 hex digits
Term = Annotated[str, StringConstraints(min_length=1, max_length=200)]
MAX_AGE = timedelta(days=36500)


def _not_overflowing(value: Any) -> Any:
    """Refuse numbers too large for a timedelta before the duration parser meets them (it would overflow)."""
    digits = value if isinstance(value, str) else str(value) if isinstance(value, int) else ""
    if sum(c.isdigit() for c in digits) > 12:
        raise ValueError(f"{str(value)[:40]!r} is too long ago: ages go back at most {MAX_AGE.days} days")
    return value


def _within_a_century(age: timedelta) -> timedelta:
    if age > MAX_AGE:  # Field(le=...) would print the bound as Python: datetime.timedelta(days=36500)
        raise ValueError(f"ages go back at most {MAX_AGE.days} days")
    return age


# The rule language's duration ('90s', '2h', '3d', '1w', '1d12h'), bounded to a century.
Age = Annotated[Duration, BeforeValidator(_not_overflowing), AfterValidator(_within_a_century)]


StatusList = Annotated[list[Status], BeforeValidator(_split), Field(max_length=100)]
KindList = Annotated[list[Kind], BeforeValidator(_split), Field(max_length=100)]
SeverityList = Annotated[list[Severity], BeforeValidator(_split), Field(max_length=100)]
TermList = Annotated[list[Term], BeforeValidator(_split), Field(max_length=100)]


class FindingFilter(BaseModel):
    """Which findings: every given criterion must hold; a list matches any of its values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: StatusList | None = Field(None, description="Status as readers count it (an expired silence is open).")
    rule: TermList | None = Field(None, description="Rule name(s).")
    kind: KindList | None = Field(None, description="Finding kind(s), e.g. missing_right, mismatch, stuck.")
    system: TermList | None = Field(None, description="A system involved in the finding (crm, psa, erp...).")
    severity: SeverityList | None = Field(None, description="Severity of the rule that found it.")
    min_age: Age | None = Field(None, description="At least this old (since first seen), e.g. 2h, 3d, 1w.")
    max_age: Age | None = Field(None, description="At most this old (since first seen), e.g. 30m, 1d.")
    key: Term | None = Field(None, description="A business key value (P-17, OPP-3...): matches any key of the "
                             "finding.")
    assignee: Term | None = Field(None, description="Assigned to this person, or 'team:<name>' for a team.")

    @model_validator(mode="after")
    def _ages(self) -> FindingFilter:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is greater than max_age: no finding can match")
        return self


class Finding(BaseModel):
    """One finding as the API shows it; `status` is the effective status."""

    fingerprint: str
    rule: str
    rule_version: str
    kind: str
    field: str
    keys: dict[str, str]
    systems: list[str]
    left_value: str
    right_value: str
    severity: str
    impact_amount: float
    impact_currency: str
    status: str
    assignee: str
    silenced_until: datetime | None
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    resolution: str
    resolution_reason: str
    reopened_count: int
    left_trace_id: str
    left_span_id: str
    right_trace_id: str
    right_span_id: str
    detail: str
    updated_at: datetime
    transition: str = Field(description="What the latest version did: opened, updated, acknowledged, ...")
    age_seconds: float = Field(description="Seconds since first seen.")


class FindingPage(BaseModel):
    total: int = Field(description="Findings matching the filter, over all pages.")
    items: list[Finding]


def where_sql(f: FindingFilter) -> tuple[str, dict[str, Any]]:
    """The WHERE conditions of a filter (applied after FINAL) and their parameters; needs `now` bound."""
    conds: list[str] = []
    params: dict[str, Any] = {}

    def any_of(name: str, column: str, values: list[str] | None) -> None:
        if values:
            conds.append(f"has({{{name}:Array(String)}}, {column})")
            params[name] = list(values)

    any_of("status", effective_status_sql(_NOW), f.status)
    any_of("rule", "rule", f.rule)
    any_of("kind", "kind", f.kind)
    any_of("severity", "severity", f.severity)
    if f.system:
        conds.append("hasAny(systems, {system:Array(String)})")
        params["system"] = list(f.system)
    if f.min_age is not None:
        conds.append(f"first_seen <= {_NOW} - toIntervalSecond({{min_age:Int64}})")
        params["min_age"] = int(f.min_age.total_seconds())
    if f.max_age is not None:
        conds.append(f"first_seen >= {_NOW} - toIntervalSecond({{max_age:Int64}})")
        params["max_age"] = int(f.max_age.total_seconds())
    if f.key is not None:
        conds.append("has(mapValues(keys), {key:String})")
        params["key"] = f.key
    if f.assignee is not None:
        conds.append("assignee = {assignee:String}")
        params["assignee"] = f.assignee
    return " AND ".join(conds) or "1", params


def _columns() -> str:
    shown = [f"{effective_status_sql(_NOW)} AS status" if c == "status" else c for c in FINDING_COLUMNS]
    return ", ".join(shown) + f", dateDiff('microsecond', first_seen, {_NOW}) / 1e6 AS age_seconds"


def list_sql(f: FindingFilter, sort: SortKey, order: Order, limit: int, offset: int,
             now: datetime) -> tuple[str, dict[str, Any]]:
    """SELECT of one page of findings (FINAL: the latest version of each)."""
    if not 0 < limit <= MAX_PAGE or offset < 0:
        raise ValueError(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    where, params = where_sql(f)
    direction = "DESC" if order == "desc" else "ASC"
    sql = (f"SELECT {_columns()} FROM findings FINAL WHERE {where} "
           f"ORDER BY {_SORT_SQL[sort]} {direction}, fingerprint LIMIT {{limit:UInt32}} OFFSET {{offset:UInt64}}")
    return sql, {**params, "now": _naive_utc(now), "limit": limit, "offset": offset}


def count_sql(f: FindingFilter, now: datetime) -> tuple[str, dict[str, Any]]:
    where, params = where_sql(f)
    return f"SELECT count() FROM findings FINAL WHERE {where}", {**params, "now": _naive_utc(now)}


def fingerprints_sql(f: FindingFilter, limit: int, now: datetime) -> tuple[str, dict[str, Any]]:
    """The fingerprints a filter selects (bulk actions), most urgent (highest impact) first."""
    where, params = where_sql(f)
    sql = (f"SELECT fingerprint FROM findings FINAL WHERE {where} "
           "ORDER BY impact_amount DESC, fingerprint LIMIT {limit:UInt32}")
    return sql, {**params, "now": _naive_utc(now), "limit": limit}


def finding_from_row(row: dict[str, Any]) -> Finding:
    """A store row (the columns of `list_sql`) as a Finding; DateTime64 values come back naive UTC."""
    values = {k: _aware(v) if isinstance(v, datetime) else v for k, v in row.items()}
    values["impact_amount"] = float(values["impact_amount"] or Decimal(0))
    return Finding.model_validate(values)


def list_findings(store: Store, f: FindingFilter, sort: SortKey = "impact", order: Order = "desc",
                  limit: int = 50, offset: int = 0, *, now: datetime | None = None) -> FindingPage:
    """One page of the findings matching `f`, and how many match in all."""
    moment = now or datetime.now(UTC)
    sql, params = list_sql(f, sort, order, limit, offset, moment)
    columns, rows = store.query_columns(sql, params)
    total_sql, total_params = count_sql(f, moment)
    total = int(store.query(total_sql, total_params)[0][0])
    return FindingPage(total=total, items=[finding_from_row(dict(zip(columns, r, strict=True))) for r in rows])


def select_fingerprints(store: Store, f: FindingFilter, limit: int, *, now: datetime | None = None) -> list[str]:
    sql, params = fingerprints_sql(f, limit, now or datetime.now(UTC))
    return [row[0] for row in store.query(sql, params)]


def get_finding(store: Store, fingerprint: str, *, now: datetime | None = None) -> Finding | None:
    """The latest version of one finding, shaped like the list's items."""
    sql = f"SELECT {_columns()} FROM findings FINAL WHERE fingerprint = {{fp:String}}"
    columns, rows = store.query_columns(sql, {"fp": fingerprint, "now": _naive_utc(now or datetime.now(UTC))})
    return finding_from_row(dict(zip(columns, rows[0], strict=True))) if rows else None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _naive_utc(moment: datetime) -> datetime:
    # Bound as DateTime64(6, 'UTC') text, which carries no zone: convert, then drop tzinfo.
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment

