"""Container probe without curl (python:slim has none): exit 0 when healthy, 1 otherwise.

    healthcheck.py http PATH [PORT]   GET http://127.0.0.1:PORT/PATH answers 2xx
                                      (PORT defaults to SYNCWATCH_PORT, else 4318)
    healthcheck.py store              the ClickHouse server answers and the schema is current
                                      (the reconciler has no HTTP port; this is its readiness)

Copied into the image as /app/healthcheck.py by deploy/Dockerfile.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 4.0


def http_ok(path: str, port: str) -> bool:
    url = f"http://127.0.0.1:{port}/{path.lstrip('/')}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return False


def store_ok() -> bool:
    from syncwatch import schema
    from syncwatch.errors import SyncwatchError
    from syncwatch.settings import Settings
    from syncwatch.store import Store

    try:
        store = Store.open(Settings())
        try:
            return schema.is_current(store)
        finally:
            store.close()
    except (SyncwatchError, ValueError) as exc:  # ValueError: pydantic's, for a malformed SYNCWATCH_* value
        print(f"store: {exc}", file=sys.stderr)
        return False


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "http":
        port = argv[2] if len(argv) > 2 else os.environ.get("SYNCWATCH_PORT", "4318")
        return 0 if http_ok(argv[1], port) else 1
    if argv == ["store"]:
        return 0 if store_ok() else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
