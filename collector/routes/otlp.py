"""OTLP/HTTP ingest: POST /v1/traces, /v1/logs and /v1/metrics, protobuf or JSON.

Per the OTLP specification (https://opentelemetry.io/docs/specs/otlp/#otlphttp-response) every
answer is a protobuf message in the request's encoding: Export*ServiceResponse on success (with
partial_success when items were refused), google.rpc.Status on failure, including failures of
authentication, which is why these routes use their own route class.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute

from collector.auth import Principal, require_scope
from collector.decode_otlp import (
    decode_logs,
    decode_metrics,
    decode_traces,
    encode_export_response,
    encode_status,
    response_media_type,
)
from collector.decoded import DecodeContext, Decoded
from collector.errors import IngestHTTPError
from collector.ingest import accept

log = logging.getLogger("syncwatch.collector.otlp")

# google.rpc.Code for each HTTP status we answer with (https://google.aip.dev/193#http11json-representation).
# The OTLP spec does not use Status.code, but clients may log it.
GRPC_CODES = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    413: 8,  # RESOURCE_EXHAUSTED, as gRPC itself answers a message over its size limit
    415: 3,  # INVALID_ARGUMENT
    429: 8,  # RESOURCE_EXHAUSTED
    500: 13,  # INTERNAL
    503: 14,  # UNAVAILABLE
}
UNKNOWN = 2

Decode = Callable[[bytes, str, DecodeContext], Decoded]


def status_response(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An OTLP/HTTP failure: google.rpc.Status in the request's encoding (JSON when it has none)."""
    media = response_media_type(request.headers.get("content-type", ""))
    body = encode_status(GRPC_CODES.get(status, UNKNOWN), message, media)
    return Response(body, status_code=status, headers=headers, media_type=media)


class OTLPRoute(APIRoute):
    """Answers every failure of the route, its dependencies (authentication) included, with a
    google.rpc.Status body instead of the service's JSON error body."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def otlp_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except IngestHTTPError as exc:
                return status_response(request, exc.status, exc.message, exc.headers)
            except HTTPException as exc:
                return status_response(request, exc.status_code, str(exc.detail), exc.headers)
            except Exception:
                log.exception("OTLP request to %s failed", request.url.path)
                return status_response(request, 500, "internal error; see the collector's log")

        return otlp_handler


router = APIRouter(tags=["ingest"], route_class=OTLPRoute)
TELEMETRY = Depends(require_scope("telemetry"))
DESCRIPTION = (
    "OTLP/HTTP {what}: Content-Type application/x-protobuf or application/json, optionally gzip-compressed. "
    "Items that cannot be stored are quarantined and reported in partial_success; failures are answered "
    "with a google.rpc.Status in the request's encoding."
)


@router.post("/v1/traces", summary="Ingest OTLP traces", description=DESCRIPTION.format(what="traces"))
async def post_traces(request: Request, principal: Principal = TELEMETRY) -> Response:
    return await _export(request, principal, "span", decode_traces)


@router.post("/v1/logs", summary="Ingest OTLP logs", description=DESCRIPTION.format(what="logs"))
async def post_logs(request: Request, principal: Principal = TELEMETRY) -> Response:
    return await _export(request, principal, "log", decode_logs)


@router.post("/v1/metrics", summary="Ingest OTLP metrics", description=DESCRIPTION.format(what="metrics"))
async def post_metrics(request: Request, principal: Principal = TELEMETRY) -> Response:
    return await _export(request, principal, "metric", decode_metrics)


async def _export(request: Request, principal: Principal, kind: str, decode: Decode) -> Response:
    content_type = request.headers.get("content-type", "")
    decoded = await accept(request, principal, kind, lambda body, ctx: decode(body, content_type, ctx))
    media = response_media_type(content_type)
    body = encode_export_response(kind, decoded.rejected, "; ".join(decoded.messages), media)
    return Response(body, status_code=200, media_type=media)
