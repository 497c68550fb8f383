"""Admin operations for the CLI, straight on the store or, while a server holds it, over the API.

An embedded chDB store can be opened by one process only; when `syncwatch serve` runs, the CLI
talks to its admin API instead, with the admin token from SYNCWATCH_ADMIN_TOKEN or the token
file the server wrote into the data directory.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from syncwatch import schema
from syncwatch.errors import StoreLockedError, SyncwatchError
from syncwatch.settings import Settings
from syncwatch.store import Store

TOKEN_FILE = "admin.token"


class Admin(Protocol):
    def query(self, sql: str) -> tuple[list[str], list[list[Any]], bool]: ...
    def create_key(self, name: str, system: str, scopes: list[str], prefixes: list[str],
                   expires_at: datetime | None) -> tuple[str, str]: ...
    def list_keys(self) -> list[dict[str, Any]]: ...
    def revoke_key(self, key_id: str) -> bool: ...
    def create_user(self, name: str, role: str, expires_at: datetime | None = None) -> tuple[str, str]: ...
    def list_users(self) -> list[dict[str, Any]]: ...
    def revoke_user(self, user_id: str) -> bool: ...
    def close(self) -> None: ...


class DirectAdmin:
    def __init__(self, store: Store) -> None:
        # the CLI is the composition root; the core stays collector- and reconciler-free
        from collector.api.access import UserDirectory
        from collector.auth import KeyRing
        from reconciler.audit import AuditLog

        self.store = store
        schema.migrate(store)
        self.keys = KeyRing(store)
        self.users = UserDirectory(store)
        self.audit = AuditLog(store)
        # user changes made straight on the store are audited like the API's, under the OS account
        self.actor = f"cli:{getpass.getuser()}"

    def query(self, sql: str) -> tuple[list[str], list[list[Any]], bool]:
        columns, rows, truncated = self.store.query_readonly(sql)
        return columns, [list(r) for r in rows], truncated

    def create_key(self, name: str, system: str, scopes: list[str], prefixes: list[str],
                   expires_at: datetime | None) -> tuple[str, str]:
        return self.keys.create(name, system, scopes, prefixes, expires_at)

    def list_keys(self) -> list[dict[str, Any]]:
        return self.keys.list()

    def revoke_key(self, key_id: str) -> bool:
        return self.keys.revoke(key_id)

    def create_user(self, name: str, role: str, expires_at: datetime | None = None) -> tuple[str, str]:
        user, token = self.users.create(name, role, expires_at)
        created: dict[str, Any] = {"user_id": user.user_id, "name": user.name, "role": user.role}
        if expires_at:
            created["expires_at"] = expires_at.isoformat()
        self.audit.append(self.actor, "admin", "user_created", "", created, "ok")
        return user.user_id, token

    def list_users(self) -> list[dict[str, Any]]:
        return self.users.list()

    def revoke_user(self, user_id: str) -> bool:
        known = {u["user_id"]: u for u in self.users.list()}
        if user_id not in known:
            return False
        if known[user_id]["revoked_at"] is None:
            self.users.revoke(user_id)
            self.audit.append(self.actor, "admin", "user_revoked", "",
                              {"user_id": user_id, "name": known[user_id]["name"]}, "ok")
        return True

    def close(self) -> None:
        self.store.close()


class HttpAdmin:
    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SyncwatchError(f"cannot reach the server at {self.http.base_url}: {exc}") from exc
        if response.status_code == 404 and method == "DELETE":
            return None
        if response.status_code >= 400:
            detail = response.json().get("error", {}).get("message", response.text)
            raise SyncwatchError(f"server refused ({response.status_code}): {detail}")
        return response.json()

    def query(self, sql: str) -> tuple[list[str], list[list[Any]], bool]:
        body = self._call("POST", "/api/v1/admin/query", json={"sql": sql})
        return body["columns"], body["rows"], bool(body.get("truncated"))

    def create_key(self, name: str, system: str, scopes: list[str], prefixes: list[str],
                   expires_at: datetime | None) -> tuple[str, str]:
        payload = {"name": name, "system": system, "scopes": scopes, "source_prefixes": prefixes,
                   "expires_at": expires_at.isoformat() if expires_at else None}
        body = self._call("POST", "/api/v1/admin/keys", json=payload)
        return body["key_id"], body["token"]

    def list_keys(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/admin/keys")

    def revoke_key(self, key_id: str) -> bool:
        return self._call("DELETE", f"/api/v1/admin/keys/{key_id}") is not None

    def create_user(self, name: str, role: str, expires_at: datetime | None = None) -> tuple[str, str]:
        payload = {"name": name, "role": role, "expires_at": expires_at.isoformat() if expires_at else None}
        body = self._call("POST", "/api/v1/users", json=payload)
        return body["user_id"], body["token"]

    def list_users(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/users")

    def revoke_user(self, user_id: str) -> bool:
        try:
            return self._call("DELETE", f"/api/v1/users/{user_id}") is not None
        except SyncwatchError as exc:
            if "(409)" in str(exc):  # already revoked: the outcome the caller asked for
                return True
            raise

    def close(self) -> None:
        self.http.close()


def admin_token(settings: Settings) -> str:
    if settings.admin_token:
        return settings.admin_token
    path = settings.data_dir / TOKEN_FILE
    return path.read_text().strip() if path.exists() else ""


def ensure_admin_token(settings: Settings) -> Settings:
    """Give an embedded server an admin token (kept in the data dir, mode 0600) if none is set."""
    if settings.admin_token:
        return settings
    path: Path = settings.data_dir / TOKEN_FILE
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"sw-admin-{secrets.token_hex(24)}\n")
    return settings.model_copy(update={"admin_token": path.read_text().strip()})


def _held_by_another_process(settings: Settings) -> bool:
    """Whether a server holds the embedded store: ClickHouse keeps an flock on `<path>/status`.
    Checking first spares the user the engine's own error text on stderr."""
    status = Path(settings.dsn.removeprefix("chdb://")) / "status"
    if not settings.embedded or not status.exists():
        return False
    with open(status, "rb") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def connect(settings: Settings) -> Admin:
    try:
        if _held_by_another_process(settings):
            raise StoreLockedError(settings.dsn)
        return DirectAdmin(Store.open(settings))
    except StoreLockedError:
        token = admin_token(settings)
        if not token:
            raise SyncwatchError(
                "the store is held by a running server and no admin token is known: "
                f"set SYNCWATCH_ADMIN_TOKEN or run from the directory holding {settings.data_dir}/{TOKEN_FILE}"
            ) from None
        return HttpAdmin(settings.base_url, token)
