"""The dashboards' only way to the platform: a small typed client of the /api/v1 HTTP API.

Every read and every action goes through here, so authorization and the audit trail stay in the
API. Errors become `ApiError`s carrying the API's own message, never a traceback:

>>> ApiError(403, "forbidden", "role 'executive' lacks the 'audit:read' permission").forbidden
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

# Reads are cheap on the demo data; exports and re-checks run a query over a whole table.
READ_TIMEOUT = 15.0
SLOW_TIMEOUT = 120.0
SLOW_ACTIONS = frozenset({"recheck", "replay"})  # they run a rule or deliver to another system

Params = Mapping[str, Any]


class ApiError(Exception):
    """A request the API refused or could not answer; `message` is fit to show a person."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def forbidden(self) -> bool:
        return self.status == 403

    @property
    def unauthorized(self) -> bool:
        return self.status == 401

    @property
    def unreachable(self) -> bool:
        return self.status == 0


@dataclass(frozen=True)
class Me:
    """The signed-in user as `GET /api/v1/me` describes it."""

    user_id: str
    name: str
    role: str
    permissions: tuple[str, ...]

    def may(self, permission: str) -> bool:
        return permission in self.permissions


def _clean(params: Params | None) -> dict[str, Any]:
    """Drop unset filters; lists stay lists (httpx repeats the parameter)."""
    return {k: v for k, v in (params or {}).items() if v not in (None, "", [], ())}


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return ApiError(response.status_code, str(error.get("code", "")), str(error.get("message", "")))
        detail = body.get("detail") if isinstance(body, dict) else None
        if response.status_code == 404 and detail == "Not Found":  # no such route, not a missing object
            return ApiError(404, "no_endpoint", f"the API has no endpoint {response.request.url.path}; "
                                                "is the server older than the dashboards?")
        if detail:
            return ApiError(response.status_code, "error", str(detail))
    except ValueError:
        pass
    text = response.text.strip()[:300] or response.reason_phrase
    return ApiError(response.status_code, "error", f"HTTP {response.status_code}: {text}")


class ApiClient:
    """One user's view of the API: base URL + that user's token (`swu_...`)."""

    def __init__(self, base_url: str, token: str, *, http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = http or httpx.Client(timeout=READ_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    # -- transport -------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Params | None = None, body: Any = None,
                timeout: float = READ_TIMEOUT) -> httpx.Response:
        url = f"{self.base_url}/api/v1/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            response = self._http.request(method, url, params=_clean(params), json=body, headers=headers,
                                          timeout=timeout)
        except httpx.TimeoutException:
            raise ApiError(0, "timeout", f"the API at {self.base_url} did not answer within {timeout:.0f} s") from None
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach the API at {self.base_url} ({exc}); "
                                             "is `syncwatch serve` running and SYNCWATCH_API_URL right?") from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def get(self, path: str, params: Params | None = None, *, timeout: float = READ_TIMEOUT) -> Any:
        return self.request("GET", path, params=params, timeout=timeout).json()

    def post(self, path: str, body: Any = None, *, params: Params | None = None,
             timeout: float = READ_TIMEOUT) -> Any:
        response = self.request("POST", path, params=params, body=body if body is not None else {}, timeout=timeout)
        return response.json() if response.content else {}

    def download(self, path: str, params: Params | None = None) -> bytes:
        return self.request("GET", path, params=params, timeout=SLOW_TIMEOUT).content

    # -- who -------------------------------------------------------------------------------------

    def me(self) -> Me:
        body = self.get("me")
        return Me(body["user_id"], body["name"], body["role"], tuple(body["permissions"]))

    # -- actions on findings -------------------------------------------------------------------------

    def act(self, fingerprint: str, action: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST /findings/{fp}/{action}: one action on one finding; answers the ActionResult."""
        timeout = SLOW_TIMEOUT if action in SLOW_ACTIONS else READ_TIMEOUT
        return self.post(f"findings/{fingerprint}/{action}", dict(body or {}), timeout=timeout)

    def act_bulk(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /findings/bulk/{action}: `body` holds `fingerprints` or `filter` plus the action's fields;
        answers a BulkResult with one outcome per finding."""
        return self.post(f"findings/bulk/{action}", dict(body), timeout=SLOW_TIMEOUT)

    def replay(self, fingerprint: str, *, dry_run: bool = True, force: bool = False,
               target: str | None = None) -> dict[str, Any]:
        """POST /findings/{fp}/replay: a dry run unless `dry_run` is false; answers the replay (its
        state says delivered, failed, or pending_approval when a second ops user must approve)."""
        body = {"dry_run": dry_run, "force": force, **({"target": target} if target else {})}
        return self.post(f"findings/{fingerprint}/replay", body, timeout=SLOW_TIMEOUT)

    def decide_replay(self, replay_id: str, approve: bool, reason: str = "") -> dict[str, Any]:
        """POST /replays/{id}/approve (then it is delivered) or /reject with a reason."""
        if approve:
            return self.post(f"replays/{replay_id}/approve", {}, timeout=SLOW_TIMEOUT)
        return self.post(f"replays/{replay_id}/reject", {"reason": reason})
