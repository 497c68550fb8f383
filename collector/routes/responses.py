"""Response bodies shared by the JSON ingest routes."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from collector.decoded import Decoded

MAX_MESSAGES = 100  # enough to fix a batch; a 10k-item batch of errors would bloat the response


def ingest_summary(decoded: Decoded) -> dict[str, object]:
    """What happened to each item: accepted, quarantined (kept, with the reasons), rejected."""
    body: dict[str, object] = {
        "accepted": decoded.accepted,
        "quarantined": decoded.quarantined,
        "rejected": decoded.rejected,
    }
    if decoded.messages:
        body["messages"] = decoded.messages[:MAX_MESSAGES]
    return body


def summary_response(decoded: Decoded) -> Response:
    """The 200 answer of the JSON ingest routes (orjson: this is on every request's path)."""
    return Response(orjson.dumps(ingest_summary(decoded)), media_type="application/json")
