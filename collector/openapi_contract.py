"""What FastAPI cannot see of the routes, written into the OpenAPI document.

Routes refuse requests by raising IngestHTTPError, and the ingest routes read their bodies raw (for
speed and limits), so neither shows in the generated document. These pure functions add them, so
clients and schemathesis (tests/security) know every status and body: 400 (our validation handler,
never FastAPI's 422), 401/403 on authenticated routes, 404 where a path names a thing, 409 for
conflicting actions, the ingest routes' 413/415/429/503, and the ingest request bodies.
"""

from __future__ import annotations

import copy
from typing import Any

ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    }},
}
# OTLP/HTTP answers failures with a google.rpc.Status in the request's encoding (JSON or protobuf).
STATUS_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"},
                   "details": {"type": "array", "items": {"type": "object"}}},
}
REASONS = {
    400: "Invalid request: the message names the parameter or field",
    401: "Missing, malformed, unknown, revoked or expired credential",
    403: "The credential lacks the scope or permission (permission refusals are audited), or speaks for "
         "another system",
    404: "No such thing",
    409: "The action conflicts with the current state",
    413: "Body over the limit, before or after decompression",
    415: "Unsupported Content-Type or Content-Encoding",
    429: "Too many concurrent requests (Retry-After)",
    503: "Spool full or store unavailable (Retry-After)",
}
OTLP_PATHS = ("/v1/traces", "/v1/logs", "/v1/metrics")
INGEST_PATHS = (*OTLP_PATHS, "/v1/events", "/v1/records/{system}/{entity}")
INGEST_ERRORS = (400, 401, 403, 413, 415, 429, 503)
PLAIN_TEXT = {"/metrics": "text/plain"}
_TEXT = {"type": "string", "minLength": 1}
CLOUD_EVENT = {
    "type": "object", "required": ["specversion", "id", "source", "type"],
    "properties": {"specversion": {"type": "string", "enum": ["1.0"]}, "id": _TEXT, "source": _TEXT, "type": _TEXT,
                   "subject": {"type": "string"}, "time": {"type": "string", "format": "date-time"},
                   "datacontenttype": {"type": "string"}, "traceparent": {"type": "string"}, "data": {}},
}
SNAPSHOT = {
    "type": "object", "required": ["key"],
    "properties": {"key": _TEXT, "version": {"type": "integer", "minimum": 0},
                   "updated_at": {"type": "string", "format": "date-time"}, "deleted": {"type": "boolean"},
                   "fields": {"type": "object"}, "traceparent": {"type": "string"}},
}
BINARY = {"type": "string", "format": "binary"}
REQUEST_BODIES: dict[str, dict[str, Any]] = {
    "/v1/events": {"application/cloudevents+json": {"schema": CLOUD_EVENT},
                   "application/cloudevents-batch+json": {"schema": {"type": "array", "items": CLOUD_EVENT}}},
    "/v1/records/{system}/{entity}": {"application/json": {"schema": {"type": "array", "items": SNAPSHOT}},
                                      "application/x-ndjson": {"schema": BINARY}},
    **{path: {"application/x-protobuf": {"schema": BINARY}, "application/json": {"schema": {"type": "object"}}}
       for path in ("/v1/traces", "/v1/logs", "/v1/metrics")},
}
PATH_SEGMENT = {"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$"}


def error_statuses(path: str, method: str, secured: bool) -> tuple[int, ...]:
    """What an operation may answer besides success (pure: the table tests/security checks)."""
    if path in INGEST_PATHS:
        return INGEST_ERRORS + ((404,) if "{" in path else ())
    if path in ("/readyz",):
        return (503,)
    statuses = {400}
    if secured:
        statuses |= {401, 403}
    if "{" in path or path.startswith("/api/v1/findings/bulk/"):
        statuses.add(404)  # a bulk action names findings too
    if method in ("post", "delete") and path.startswith(("/api/v1/findings", "/api/v1/replays", "/api/v1/users")):
        statuses.add(409)
    if path == "/api/v1/findings/{fingerprint}/replay" or path == "/api/v1/findings/bulk/replay":
        statuses.add(503)  # a replay target that cannot be reached
    return tuple(sorted(statuses))


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of `spec` with every operation's error answers (and plain-text /metrics) documented."""
    spec = copy.deepcopy(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["OtlpStatus"] = STATUS_SCHEMA
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in error_statuses(path, method, bool(operation.get("security"))):
                responses.setdefault(str(status), _response(path, status))
            if path in PLAIN_TEXT:
                responses["200"]["content"] = {PLAIN_TEXT[path]: {"schema": {"type": "string"}}}
            if path in REQUEST_BODIES and "requestBody" not in operation:
                operation["requestBody"] = {"required": True, "content": REQUEST_BODIES[path]}
            for parameter in operation.get("parameters", []):
                if path == "/v1/records/{system}/{entity}" and parameter["in"] == "path":
                    parameter["schema"] = PATH_SEGMENT
    return spec


def _response(path: str, status: int) -> dict[str, Any]:
    if path in OTLP_PATHS:
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/OtlpStatus"}},
                   "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}
    else:
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {"description": REASONS[status], "content": content}
