"""Request and response bodies of the finding actions, single and bulk.

Bodies are strict (an unknown field is a 400 naming it). A bulk body is the single action's body
plus a selection: `fingerprints` or a `filter` (the same FindingFilter as GET /findings).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from collector.api.findings_query import Finding, FindingFilter

MAX_BULK = 500
MAX_SILENCE = timedelta(days=366)
# free text keeps tabs and line breaks; other control characters (NUL, ESC sequences) only corrupt
# what later shows the text: the triage page, exports, a terminal
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000,
                                        pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200,
                                        pattern=r"^[^\x00-\x1f\x7f]+$")]
FingerprintText = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def audit_parameters(self) -> dict[str, Any]:
        """What the audit log records about the request (selection fields excluded)."""
        return self.model_dump(mode="json", exclude={"fingerprints", "filter"}, exclude_none=True)


class Empty(Body):
    pass


class AssignBody(Body):
    """Exactly one of assignee (a person) or team; a team is stored as 'team:<name>'."""

    assignee: Name | None = None
    team: Name | None = None

    @model_validator(mode="after")
    def _one_assignee(self) -> AssignBody:
        if (self.assignee is None) == (self.team is None):
            raise ValueError("give exactly one of assignee (a person) or team")
        return self

    @field_validator("assignee")
    @classmethod
    def _a_person(cls, assignee: str | None) -> str | None:
        if assignee is not None and assignee.lower().startswith("team:"):  # stored teams look like this
            raise ValueError(f"{assignee!r} names a team: give it as team, without 'team:'")
        return assignee

    @property
    def assignee_text(self) -> str:
        return self.assignee if self.assignee is not None else f"team:{self.team}"

    def audit_parameters(self) -> dict[str, Any]:
        return {"assignee": self.assignee_text}


class AnnotateBody(Body):
    note: Text


class SilenceBody(Body):
    until: datetime = Field(description="When the silence ends (a time without zone is UTC); at most a year ahead.")
    reason: Annotated[str, StringConstraints(max_length=2000)] = ""

    @field_validator("until")
    @classmethod
    def _future(cls, until: datetime) -> datetime:
        until = until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
        now = datetime.now(UTC)
        if until <= now:
            raise ValueError("must be in the future")
        if until > now + MAX_SILENCE:
            raise ValueError("must be at most a year ahead: silence again later rather than forever")
        return until


class ResolveBody(Body):
    reason: Text = Field(description="Why it is resolved (what was fixed where).")


class ReplayBody(Body):
    dry_run: bool = Field(True, description="Only show what would be sent where (the default).")
    force: bool = Field(False, description="Replay even if an earlier replay of this finding was delivered.")
    target: Name | None = Field(None, description="Target system; default: the system missing the data.")


class Selection(BaseModel):
    """Which findings a bulk action applies to: exactly one of fingerprints or filter."""

    fingerprints: Annotated[list[FingerprintText], Field(min_length=1, max_length=MAX_BULK)] | None = None
    filter: FindingFilter | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> Selection:
        if (self.fingerprints is None) == (self.filter is None):
            raise ValueError("give exactly one of fingerprints (a list) or filter (as for GET /findings)")
        return self


class BulkEmpty(Selection, Empty):
    pass


class BulkAssign(Selection, AssignBody):
    pass


class BulkAnnotate(Selection, AnnotateBody):
    pass


class BulkSilence(Selection, SilenceBody):
    pass


class BulkResolve(Selection, ResolveBody):
    pass


class BulkReplay(Selection, ReplayBody):
    pass


class ActionResult(BaseModel):
    fingerprint: str
    action: str
    outcome: str = Field(description="'ok', or for a re-check what it did: updated, resolved, reopened, unchanged.")
    status: str = Field(description="The finding's status afterwards.")
    audit_seq: int | None = Field(description="The action's entry in the audit log.")
    finding: Finding


class ItemOutcome(BaseModel):
    fingerprint: str
    ok: bool
    status_code: int = Field(description="What the single action would have answered (200, 404, 409, 503...).")
    message: str
    status: str | None = Field(None, description="The finding's status afterwards.")
    audit_seq: int | None = None
    replay_id: str | None = None


class BulkResult(BaseModel):
    action: str
    batch: str = Field(description="Id shared by the audit entries of this bulk action.")
    selected: int
    succeeded: int
    failed: int
    results: list[ItemOutcome]
