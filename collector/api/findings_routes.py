"""GET /api/v1/findings (the triage queue) and GET /api/v1/findings/{fingerprint} (one, in context)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import ConfigDict, Field

from collector.api import finding_context
from collector.api.access import User, require
from collector.api.finding_context import FindingDetail
from collector.api.findings_query import (
    FINGERPRINT,
    MAX_PAGE,
    FindingFilter,
    FindingPage,
    Order,
    SortKey,
    get_finding,
    list_findings,
)
from collector.api.in_thread import in_thread
from collector.api.rule_catalog import catalog_of
from collector.errors import IngestHTTPError

router = APIRouter(tags=["findings"])
Fingerprint = Annotated[str, Path(pattern=FINGERPRINT, description="The finding's fingerprint (64 hex digits).")]


class FindingsQuery(FindingFilter):
    """The filter plus sort and page, as query parameters (unknown parameters are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sort: SortKey = Field("impact", description="impact (business impact amount) or age (since first seen).")
    order: Order = Field("desc", description="desc: highest impact / oldest first.")
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=10_000_000)

    def filter(self) -> FindingFilter:
        return FindingFilter.model_validate(self.model_dump(include=set(FindingFilter.model_fields)))


@router.get("/findings", response_model=FindingPage, summary="Findings matching a filter, sorted, one page")
async def findings_page(query: Annotated[FindingsQuery, Query()],
                        request: Request, _: User = Depends(require("findings:read"))) -> FindingPage:
    store = request.app.state.store
    return await in_thread(list_findings, store, query.filter(), query.sort, query.order, query.limit,
                                   query.offset)


@router.get("/findings/{fingerprint}", response_model=FindingDetail,
            summary="One finding with its rule, side-by-side values, audit trail and notes")
async def finding_detail(fingerprint: Fingerprint, request: Request,
                         _: User = Depends(require("findings:read"))) -> FindingDetail:
    state = request.app.state
    return await in_thread(_detail, state, fingerprint)


def _detail(state: Any, fingerprint: str) -> FindingDetail:
    finding = get_finding(state.store, fingerprint)
    if finding is None:
        raise IngestHTTPError(404, "not_found", f"no finding with fingerprint {fingerprint!r}")
    catalog = catalog_of(state, state.settings.rules_dir)
    loaded = catalog.get(finding.rule)
    entries = state.audit.entries(fingerprint=fingerprint)
    return finding_context.detail(finding, loaded, "" if loaded else catalog.why_missing(finding.rule), entries)
