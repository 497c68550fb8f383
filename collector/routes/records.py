"""Record snapshots: POST /v1/records/{system}/{entity} as a JSON array or NDJSON."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from collector.auth import ANY_SYSTEM, BEARER_AUTH, authorize
from collector.decode_records import decode_records
from collector.errors import IngestHTTPError
from collector.ingest import accept
from collector.routes.responses import summary_response

router = APIRouter(tags=["ingest"])
PREFIX = "/v1/records/"


@router.post(
    "/v1/records/{system}/{entity}",
    summary="Ingest record snapshots (latest version per key wins)",
    description="Body: a JSON array (application/json) or NDJSON (application/x-ndjson) of objects "
    '`{"key", "version" | "updated_at", "fields", "deleted"?, "traceparent"?}`.',
    openapi_extra=BEARER_AUTH,
)
async def post_records(system: str, entity: str, request: Request) -> Response:
    return await handle_records(request, system, entity)


async def handle_path(request: Request) -> Response:
    """The fast path's entry (collector/fastpath.py): system and entity from the raw path."""
    parts = request.url.path[len(PREFIX):].split("/")
    if len(parts) != 2 or not all(parts):
        raise IngestHTTPError(404, "not_found", f"no route {request.url.path}; use {PREFIX}{{system}}/{{entity}}")
    return await handle_records(request, parts[0], parts[1])


async def handle_records(request: Request, system: str, entity: str) -> Response:
    principal = authorize(request, "records")
    if principal.system not in (ANY_SYSTEM, system):
        raise IngestHTTPError(
            403, "source_not_allowed", f"API key {principal.key_id} speaks for {principal.system!r}, not {system!r}"
        )
    content_type = request.headers.get("content-type", "")
    decoded = await accept(
        request, principal, "record", lambda body, ctx: decode_records(body, content_type, system, entity, ctx)
    )
    return summary_response(decoded)
