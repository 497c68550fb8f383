"""CloudEvents 1.0 over HTTP: structured, batch and binary content modes at POST /v1/events."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from collector.auth import BEARER_AUTH, authorize
from collector.decode_cloudevents import decode_events
from collector.ingest import accept
from collector.routes.responses import summary_response

router = APIRouter(tags=["ingest"])


@router.post(
    "/v1/events",
    summary="Ingest CloudEvents (structured, batch or binary mode)",
    description="Content-Type application/cloudevents+json (one event), application/cloudevents-batch+json "
    "(a JSON array), or binary mode: ce-* headers with the data as the body. Events are idempotent on "
    "(source, id). Events whose data fail the JSON Schema registered for their type are quarantined "
    "with the reason and reported in `messages`.",
    openapi_extra=BEARER_AUTH,
)
async def post_events(request: Request) -> Response:
    return await handle_events(request)


async def handle_events(request: Request) -> Response:
    principal = authorize(request, "events")
    content_type = request.headers.get("content-type", "")
    headers = request.headers
    registry = request.app.state.registry
    decoded = await accept(
        request, principal, "event", lambda body, ctx: decode_events(body, content_type, headers, ctx, registry)
    )
    return summary_response(decoded)
