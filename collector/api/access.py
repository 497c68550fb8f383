"""Users, roles and what each role may do; enforced by a FastAPI dependency on every /api/v1 route.

A user authenticates with `Authorization: Bearer swu_<id>_<secret>` (stored as the SHA-256 of the
secret, shown once at creation). The bootstrap admin token (settings.admin_token) acts as an admin
user called `bootstrap`. A request whose role lacks the route's permission is answered 403 and the
refusal is appended to the audit log (who, role, method, path, permission).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from collector.api.query_params import refuse_unknown_query
from collector.auth import check_not_expired
from collector.errors import IngestHTTPError
from syncwatch.store import Store

ROLES = ("executive", "ops", "auditor", "admin")
# permission -> roles holding it. The table-driven access tests iterate over this.
PERMISSIONS: dict[str, frozenset[str]] = {
    "kpis:read": frozenset({"executive", "ops", "auditor", "admin"}),
    "findings:read": frozenset({"ops", "auditor", "admin"}),
    "findings:act": frozenset({"ops"}),
    "findings:silence": frozenset({"ops", "admin"}),
    "timeline:read": frozenset({"ops", "auditor", "admin"}),
    "health:read": frozenset({"ops", "auditor", "admin"}),
    "audit:read": frozenset({"auditor", "admin"}),
    "export": frozenset({"auditor", "admin"}),
    "users:admin": frozenset({"admin"}),
}
USER_COLUMNS = ["user_id", "name", "role", "token_sha256", "created_at", "revoked_at", "updated_at", "expires_at"]
_TOKEN = re.compile(r"^swu_([0-9a-f]{12})_([0-9a-f]{48})$")
_NAME = re.compile(r"^[\w.@+ -]{1,100}$")


@dataclass(frozen=True)
class User:
    user_id: str
    name: str
    role: str

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]


@dataclass(frozen=True)
class StoredUser:
    user: User
    token_sha256: str
    revoked_at: datetime | None
    expires_at: datetime | None


def _digest(secret: str) -> str:
    # 192 random bits per token: a fast hash is enough (a slow KDF is for human passwords).
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_user_request(name: str, role: str, expires_at: datetime | None = None) -> None:
    check_not_expired(expires_at)
    if role not in ROLES:
        raise ValueError(f"invalid role {role!r}: choose from {', '.join(ROLES)}")
    if not _NAME.match(name):
        raise ValueError(f"invalid user name {name!r}: 1-100 letters, digits, spaces and . @ + - _")


def _unauthorized(message: str) -> IngestHTTPError:
    return IngestHTTPError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


class UserDirectory:
    """The users known to this process, re-read from the store every `refresh_seconds`."""

    def __init__(self, store: Store, admin_token: str = "", refresh_seconds: float = 5.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._admin_digest = _digest(admin_token) if admin_token else ""
        self._users: dict[str, StoredUser] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> User:
        if not authorization:
            raise _unauthorized("missing Authorization header; send 'Authorization: Bearer <user token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("Authorization must be 'Bearer <user token>'")
        if self._admin_digest and hmac.compare_digest(_digest(token), self._admin_digest):
            return User("bootstrap", "bootstrap", "admin")
        match = _TOKEN.match(token)
        if not match:
            raise _unauthorized("user token is malformed (expected swu_<id>_<secret>)")
        found = self._lookup(match.group(1))
        if found is None or not hmac.compare_digest(_digest(match.group(2)), found.token_sha256):
            raise _unauthorized("user token is not valid")
        if found.revoked_at is not None:
            raise _unauthorized("user token has been revoked")
        if found.expires_at is not None and found.expires_at <= datetime.now(UTC):
            raise _unauthorized("user token has expired")
        return found.user

    def _lookup(self, user_id: str) -> StoredUser | None:
        stale = time.monotonic() - self._loaded_at > self.refresh_seconds
        if stale or user_id not in self._users:
            self.refresh(min_age=0.5 if not stale else 0.0)
        return self._users.get(user_id)

    def refresh(self, min_age: float = 0.0) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at < min_age:
                return  # unknown ids must not turn every bad request into a store query
            rows = self.store.query(f"SELECT {', '.join(USER_COLUMNS)} FROM users FINAL")
            self._users = {r[0]: StoredUser(User(r[0], r[1], r[2]), r[3], _utc(r[5]), _utc(r[7])) for r in rows}
            self._loaded_at = time.monotonic()

    def create(self, name: str, role: str, expires_at: datetime | None = None) -> tuple[User, str]:
        """Store a new user; returns the user and its token (shown once, never stored).
        A token with `expires_at` is refused (401 "expired") from that instant on."""
        validate_user_request(name, role, expires_at)
        user_id, secret = secrets.token_hex(6), secrets.token_hex(24)
        now = datetime.now(UTC)
        row = [user_id, name, role, _digest(secret), now, None, now, _utc(expires_at)]
        self.store.insert_rows("users", [row], USER_COLUMNS)
        self.refresh()
        return User(user_id, name, role), f"swu_{user_id}_{secret}"

    def revoke(self, user_id: str) -> bool:
        rows = self.store.query(f"SELECT {', '.join(USER_COLUMNS)} FROM users FINAL WHERE user_id = {{u:String}}",
                                {"u": user_id})
        if not rows:
            return False
        row = list(rows[0])
        now = datetime.now(UTC)
        row[5], row[6] = now, now
        self.store.insert_rows("users", [row], USER_COLUMNS)
        self.refresh()
        return True

    def list(self) -> list[dict[str, object]]:
        self.refresh()
        return [{"user_id": s.user.user_id, "name": s.user.name, "role": s.user.role,
                 "revoked_at": s.revoked_at.isoformat() if s.revoked_at else None,
                 "expires_at": s.expires_at.isoformat() if s.expires_at else None}
                for s in sorted(self._users.values(), key=lambda item: item.user.user_id)]


def _utc(value: datetime | None) -> datetime | None:
    """Naive datetimes (a CLI flag, an old row) are taken as UTC, so comparisons never raise."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def require(permission: str) -> Callable[[Request], Awaitable[User]]:
    """FastAPI dependency: the request's user, whose role must hold `permission`.

    401 without a valid token; 403 (audited) when the role lacks the permission."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def dependency(request: Request) -> User:
        user = request.app.state.users.authenticate(request.headers.get("authorization"))
        if user.may(permission):
            refuse_unknown_query(request)  # after authorization: strangers learn nothing of the routes
            return user
        await run_in_threadpool(
            request.app.state.audit.append, user.name, user.role, "denied", "",
            {"method": request.method, "path": request.url.path, "permission": permission}, "403 forbidden")
        raise IngestHTTPError(403, "forbidden",
                              f"role {user.role!r} of user {user.name!r} lacks the {permission!r} permission")

    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency


USER_SECURITY_SCHEME = {
    "userToken": {"type": "http", "scheme": "bearer",
                  "description": "A user token: Authorization: Bearer swu_... (roles: " + ", ".join(ROLES) + ")"}
}
