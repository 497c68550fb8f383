"""Replay configuration (rules/replay.yaml): where a replay may re-deliver events, and its safety limits.

    four_eyes_above: 10000        # impact above which a second ops user must approve a replay
    max_events: 50                # most events one replay re-delivers
    targets:
      erp:                        # the target system, as findings name it
        url: "${SYNCWATCH_REPLAY_ERP_URL}"
        timeout: 10s
        headers: {Authorization: "Bearer ${SYNCWATCH_REPLAY_ERP_TOKEN}"}
        event_types: ["psa.project.*"]   # optional: only these types are re-delivered (* is a wildcard)

`${NAME}` in a url or header value is read from the environment when the file is loaded, so
secrets stay out of the file; a target whose url is empty after that is off, and a header that
names an unset variable is not sent. The file is read at
every replay request, so a changed endpoint applies at once (and an approval of a replay planned
for an endpoint that has changed since is refused). Problems are reported together, each as
`file:line:col: field: message`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from reconciler.errors import ReconcilerError
from reconciler.field_hints import fields_at, unknown_field
from reconciler.loader import _dotted, _locate, _plain  # the rule loader's position helpers
from reconciler.model import Duration, Name

FILE_NAME = "replay.yaml"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
EventTypePattern = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.*]{1,200}$")]


class ReplayConfigError(ReconcilerError):
    """rules/replay.yaml does not load: every problem, each as `file:line:col: field: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(problems)} problem(s) in the replay configuration:\n  " + "\n  ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    url: str
    timeout: Duration = timedelta(seconds=10)
    headers: dict[str, str] = {}
    event_types: list[EventTypePattern] = []

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"{url[:80]!r} is not an http(s) URL")
        return url

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, timeout: timedelta) -> timedelta:
        if not timedelta(0) < timeout <= timedelta(seconds=60):
            raise ValueError("must be more than 0 and at most 60s: a replay request must not hang")
        return timeout

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def like_patterns(self) -> list[str]:
        """event_types as SQL LIKE patterns ('*' -> '%'; '_' and '%' taken literally)."""
        return [p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
                for p in self.event_types]


class ReplayConfig(_Strict):
    four_eyes_above: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal(10000)
    max_events: int = Field(50, ge=1, le=1000)
    targets: dict[Name, Target] = {}


def load_replay(rules_dir: Path, env: Mapping[str, str] | None = None) -> ReplayConfig:
    """The configuration in `<rules_dir>/replay.yaml`; without the file, replays have no target."""
    file = rules_dir / FILE_NAME if rules_dir.is_dir() else rules_dir.parent / FILE_NAME
    if not file.exists():
        return ReplayConfig()
    return load_replay_text(file.read_text(encoding="utf-8"), str(file), env)


def load_replay_text(text: str, source: str = "<replay>", env: Mapping[str, str] | None = None) -> ReplayConfig:
    try:
        doc = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise ReplayConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    if doc is None:
        return ReplayConfig()
    if not isinstance(doc, CommentedMap):
        raise ReplayConfigError([f"{source}:1:1: the replay configuration must be a mapping (targets: ...)"])
    plain = _expand(_plain(doc), os.environ if env is None else env)
    try:
        return ReplayConfig.model_validate(plain)
    except ValidationError as exc:
        raise ReplayConfigError(_explain(exc, doc, source)) from exc


def _expand(plain: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    def sub(text: Any) -> Any:
        return _ENV.sub(lambda m: env.get(m.group(1), ""), text) if isinstance(text, str) else text

    for target in (plain.get("targets") or {}).values():
        if isinstance(target, dict):
            target["url"] = sub(target.get("url", ""))
            if isinstance(target.get("headers"), dict):
                # a header naming an unset variable is left out: "Bearer " with no token is an
                # invalid header value that would fail every delivery, and no header is honest
                target["headers"] = {k: sub(v) for k, v in target["headers"].items() if _all_set(v, env)}
    return plain


def _all_set(text: Any, env: Mapping[str, str]) -> bool:
    return not isinstance(text, str) or all(env.get(name) for name in _ENV.findall(text))


def _explain(exc: ValidationError, doc: CommentedMap, source: str) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        message = str(err["msg"])
        if err["type"] == "extra_forbidden":
            message = unknown_field(str(loc[-1]), fields_at([ReplayConfig], loc[:-1]))
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "value_error":
            message = str((err.get("ctx") or {}).get("error", message))
        _, (line, col) = _locate(doc, loc, at_key=err["type"] == "extra_forbidden")
        problems.append(f"{source}:{line}:{col}: {_dotted(loc) or 'replay'}: {message}")
    return sorted(set(problems))
