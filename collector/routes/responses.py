"""Response bodies shared by the JSON ingest routes."""

from __future__ import annotations

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
