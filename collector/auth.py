"""API keys: issued once, stored as SHA-256 of the secret, checked per request with scopes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from collector.errors import IngestHTTPError
from syncwatch.errors import StoreError
from syncwatch.store import Store

log = logging.getLogger("syncwatch.collector")

SCOPES = ("events", "records", "telemetry", "admin")
ANY_SYSTEM = "*"
_KEY_NAME = re.compile(r"^(?=.*\S)[^\x00-\x1f\x7f]{1,200}$")
OUTAGE_RETRY_AFTER_SECONDS = 5
_TOKEN = re.compile(r"^sw_([0-9a-f]{12})_([0-9a-f]{48})$")
_SYSTEM = re.compile(r"^(\*|[a-z][a-z0-9_.-]{0,63})$")
KEY_COLUMNS = ["key_id", "name", "system", "scopes", "source_prefixes", "secret_sha256", "created_at",
               "expires_at", "revoked_at", "updated_at"]


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    system: str
    scopes: frozenset[str]
    source_prefixes: tuple[str, ...]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True)
class StoredKey:
    principal: Principal
    secret_sha256: str
    expires_at: datetime | None
    revoked_at: datetime | None


def _digest(secret: str) -> str:
    # Keys are 192 random bits, so a fast hash is safe here; a slow KDF is for human passwords.
    return hashlib.sha256(secret.encode()).hexdigest()


def default_source_prefixes(system: str) -> tuple[str, ...]:
    """A key for system `crm` may send CloudEvents whose source is `/crm` or starts with `/crm/`."""
    return () if system == ANY_SYSTEM else (f"/{system}/", f"/{system}")


def validate_key_request(name: str, system: str, scopes: list[str], source_prefixes: Sequence[str] = (),
                         expires_at: datetime | None = None) -> None:
    if not _KEY_NAME.match(name):  # a newline in a name forged a row of `syncwatch keys list`
        raise ValueError(f"invalid key name {name[:60]!r}: 1-200 characters, no control characters")
    if not _SYSTEM.match(system):
        raise ValueError(f"invalid system {system!r}: lowercase letters, digits, '_', '-', '.', or '*' for any")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"invalid scopes {unknown or scopes}: choose from {', '.join(SCOPES)}")
    # an empty prefix matches every source: the key could speak for any system
    if any(not p.strip() for p in source_prefixes):
        raise ValueError("invalid source_prefixes: a prefix must not be empty or blank")
    check_not_expired(expires_at)


def check_not_expired(expires_at: datetime | None) -> None:
    """A credential created already expired could never be used: surely a typo in the date."""
    if expires_at is not None and _as_utc(expires_at) <= datetime.now(UTC):
        raise ValueError(f"expires_at {expires_at.isoformat()} is not in the future")


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class KeyRing:
    """The keys known to this process, re-read from the store every `refresh_seconds`."""

    def __init__(self, store: Store, admin_token: str = "", refresh_seconds: float = 5.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._admin_digest = _digest(admin_token) if admin_token else ""
        self._keys: dict[str, StoredKey] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise _unauthorized("missing Authorization header; send 'Authorization: Bearer <api key>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("Authorization must be 'Bearer <api key>'")
        if self._admin_digest and hmac.compare_digest(_digest(token), self._admin_digest):
            return Principal("bootstrap", "bootstrap admin", ANY_SYSTEM, frozenset(SCOPES), ())
        match = _TOKEN.match(token)
        if not match:
            raise _unauthorized("API key is malformed")
        stored = self._lookup(match.group(1))
        if stored is None or not hmac.compare_digest(_digest(match.group(2)), stored.secret_sha256):
            raise _unauthorized("API key is not valid")
        if stored.revoked_at is not None:
            raise _unauthorized("API key has been revoked")
        if stored.expires_at is not None and stored.expires_at <= datetime.now(UTC):
            raise _unauthorized("API key has expired")
        return stored.principal

    def _lookup(self, key_id: str) -> StoredKey | None:
        stale = time.monotonic() - self._loaded_at > self.refresh_seconds
        if stale or key_id not in self._keys:
            self.refresh(min_age=0.5 if not stale else 0.0)
        return self._keys.get(key_id)

    def refresh(self, min_age: float = 0.0) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at < min_age:
                return  # unknown keys must not turn every bad request into a store query
            try:
                rows = self.store.query(f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys FINAL")
            except StoreError as exc:
                self._keep_through_outage(exc)
                return
            self._keys = {row[0]: _stored_key(row) for row in rows}
            self._loaded_at = time.monotonic()

    def _keep_through_outage(self, exc: StoreError) -> None:
        """While the store is down, the keys read before it went keep working, so ingest goes on
        into the spool; a revocation made meanwhile counts once the store is back. Without any
        keys read yet, the request is answered 503 with Retry-After instead of a 401 or a 500."""
        if not self._loaded_at:
            raise IngestHTTPError(503, "store_unavailable", f"cannot check API keys: {exc}; retry later",
                                  {"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)}) from exc
        log.warning("cannot refresh API keys (%s); using the %d keys read before", exc, len(self._keys))
        self._loaded_at = time.monotonic()  # try again after refresh_seconds, not on every request

    def create(self, name: str, system: str, scopes: list[str], source_prefixes: list[str] | None = None,
               expires_at: datetime | None = None) -> tuple[str, str]:
        """Store a new key; returns (key_id, token). The token is shown once and never stored."""
        validate_key_request(name, system, scopes, source_prefixes or (), expires_at)
        key_id, secret = secrets.token_hex(6), secrets.token_hex(24)
        prefixes = list(source_prefixes) if source_prefixes else list(default_source_prefixes(system))
        now = datetime.now(UTC)
        row = [key_id, name, system, sorted(set(scopes)), prefixes, _digest(secret), now, expires_at, None, now]
        self.store.insert_rows("api_keys", [row], KEY_COLUMNS)
        self.refresh()
        return key_id, f"sw_{key_id}_{secret}"

    def revoke(self, key_id: str) -> bool:
        rows = self.store.query(
            f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys FINAL WHERE key_id = {{k:String}}", {"k": key_id}
        )
        if not rows:
            return False
        row = list(rows[0])
        now = datetime.now(UTC)
        row[8], row[9] = now, now
        self.store.insert_rows("api_keys", [row], KEY_COLUMNS)
        self.refresh()
        return True

    def list(self) -> list[dict[str, object]]:
        self.refresh()
        return [
            {"key_id": k.principal.key_id, "name": k.principal.name, "system": k.principal.system,
             "scopes": sorted(k.principal.scopes), "source_prefixes": list(k.principal.source_prefixes),
             "expires_at": k.expires_at.isoformat() if k.expires_at else None,
             "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
            for k in sorted(self._keys.values(), key=lambda k: k.principal.key_id)
        ]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _stored_key(row: tuple) -> StoredKey:
    key_id, name, system, scopes, prefixes, digest, _created, expires, revoked, _updated = row
    principal = Principal(key_id, name, system, frozenset(scopes), tuple(prefixes))
    return StoredKey(principal, digest, _utc(expires), _utc(revoked))


def _unauthorized(message: str) -> IngestHTTPError:
    return IngestHTTPError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def authorize(request: Request, scope: str) -> Principal:
    """The request's principal, which must hold `scope`: 401 without a valid key, 403 without the scope."""
    principal = request.app.state.keys.authenticate(request.headers.get("authorization"))
    if not principal.allows(scope):
        raise IngestHTTPError(403, "forbidden", f"API key {principal.key_id} lacks the {scope!r} scope")
    return principal


# Ingest routes call authorize() in the handler instead of declaring a dependency: FastAPI's
# dependency solving costs more than the rest of a one-event request. This documents them the same.
BEARER_AUTH: dict[str, Any] = {"security": [{"apiKey": []}]}
SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key: Authorization: Bearer sw_..."}
}


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: the request's principal, which must hold `scope` (403 otherwise)."""

    async def dependency(request: Request) -> Principal:
        return authorize(request, scope)

    dependency.__name__ = f"require_{scope}"
    return dependency
