"""Users admin (permission users:admin): list, create (the token is shown once), revoke. Each change is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from collector.api.access import ROLES, User, require
from collector.api.in_thread import in_thread
from collector.errors import IngestHTTPError

router = APIRouter(tags=["users"])
UserId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="The user's id (12 hex digits).")]


class UserOut(BaseModel):
    user_id: str
    name: str
    role: str
    revoked_at: datetime | None
    expires_at: datetime | None = None


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, description="Letters, digits, spaces and . @ + - _")
    role: str = Field(description=f"One of {', '.join(ROLES)}.")
    expires_at: datetime | None = Field(None, description="When the token stops working (401 'expired'); "
                                        "none: until revoked. Without a time zone: UTC.")


class CreatedUser(UserOut):
    token: str = Field(description="Shown once; only the SHA-256 of its secret is stored.")


class RevokedUser(BaseModel):
    user_id: str
    status: str


@router.get("/users", response_model=list[UserOut], summary="Users and their roles (never their tokens)")
async def list_users(request: Request, _: User = Depends(require("users:admin"))) -> list[UserOut]:
    rows = await in_thread(request.app.state.users.list)
    return [UserOut.model_validate(r) for r in rows]


@router.post("/users", response_model=CreatedUser, status_code=201, summary="Create a user; its token is shown once")
async def create_user(body: NewUser, request: Request, admin: User = Depends(require("users:admin"))) -> CreatedUser:
    state = request.app.state

    def work() -> CreatedUser:
        try:
            user, token = state.users.create(body.name, body.role, body.expires_at)
        except ValueError as exc:
            raise IngestHTTPError(400, "invalid_request", str(exc)) from exc
        created: dict[str, Any] = {"user_id": user.user_id, "name": user.name, "role": user.role}
        if body.expires_at:
            created["expires_at"] = body.expires_at.isoformat()
        state.audit.append(admin.name, admin.role, "user_created", "", created, "ok")
        return CreatedUser(user_id=user.user_id, name=user.name, role=user.role, revoked_at=None,
                           expires_at=body.expires_at, token=token)

    return await in_thread(work)


@router.delete("/users/{user_id}", response_model=RevokedUser, summary="Revoke a user's token")
async def revoke_user(user_id: UserId, request: Request, admin: User = Depends(require("users:admin"))) -> RevokedUser:
    state = request.app.state

    def work() -> RevokedUser:
        known: dict[str, dict[str, Any]] = {u["user_id"]: u for u in state.users.list()}
        if user_id not in known:
            raise IngestHTTPError(404, "not_found", f"no user {user_id!r}")
        if known[user_id]["revoked_at"] is not None:
            when = known[user_id]["revoked_at"]
            raise IngestHTTPError(409, "conflict", f"user {user_id} is already revoked (at {when})")
        state.users.revoke(user_id)
        state.audit.append(admin.name, admin.role, "user_revoked", "",
                           {"user_id": user_id, "name": known[user_id]["name"]}, "ok")
        return RevokedUser(user_id=user_id, status="revoked")

    return await in_thread(work)
