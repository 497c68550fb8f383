"""Alert configuration (rules/alerts.yaml): sinks and routes, as strict, frozen pydantic models.

    defaults: {renotify: 4h}
    sinks:
      - {name: ops_slack, type: slack, url: "${SYNCWATCH_ALERT_SLACK_URL}"}
      - {name: alertmanager, type: alertmanager, url: "http://alertmanager:9093"}
    routes:
      - match: {severity: [high, critical]}
        sinks: [alertmanager, ops_slack]

Every route whose `match` fits a finding (an absent list matches anything) sends it to its
sinks: routes add up, there is no first-match-wins. `${NAME}` in a sink's url, finding_url or header values
is read from the environment at load, so secrets (a Slack webhook URL is one) stay out of the
file; a sink whose url is empty after that is disabled and logged, which lets the shipped file
name sinks that a deployment turns on by setting a variable. Problems are reported all at once,
each as `file:line:col: field: message`, like the rule loader's.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler.errors import ReconcilerError
from reconciler.field_hints import fields_at, unknown_field
from reconciler.loader import _dotted, _locate, _plain  # the rule loader's position helpers
from reconciler.model import Duration, Name, Severity

log = logging.getLogger(__name__)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL_FIELDS = frozenset({"fingerprint", "rule"})


class AlertConfigError(ReconcilerError):
    """rules/alerts.yaml does not load: every problem, each as `file:line:col: field: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(problems)} problem(s) in the alert configuration:\n  " + "\n  ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Strict):
    """Delivery attempts per notification: waits backoff, 2x backoff, ... up to max_backoff between them."""

    max_attempts: int = Field(5, ge=1, le=20)
    backoff: Duration = timedelta(seconds=1)
    max_backoff: Duration = timedelta(seconds=60)


class _Sink(_Strict):
    name: Name
    url: str
    headers: dict[str, str] = {}
    timeout: Duration = timedelta(seconds=10)
    retry: Retry = Retry()
    renotify: Duration | None = None  # None: defaults.renotify
    # A link to one finding, e.g. https://syncwatch.example/findings/{fingerprint}
    finding_url: str = ""
    batch_size: int = Field(500, ge=1, le=5000)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url and not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"{url[:80]!r} is not an http(s) URL")
        return url

    @field_validator("finding_url")
    @classmethod
    def _template(cls, template: str) -> str:
        unknown = set(re.findall(r"\{([^}]*)\}", template)) - _URL_FIELDS
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}: use {{fingerprint}} and {{rule}}")
        return template

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def link(self, rule: str, fingerprint: str) -> str:
        return self.finding_url.format(rule=rule, fingerprint=fingerprint) if self.finding_url else ""


class WebhookSink(_Sink):
    """POST JSON: one rule's new, changed and resolved findings (see alert_sinks.webhook_payload)."""

    type: Literal["webhook"]


class SlackSink(_Sink):
    """A Slack-compatible incoming webhook: {"text": ..., "blocks": [...]} (Slack allows 50 blocks)."""

    type: Literal["slack"]
    batch_size: int = Field(20, ge=1, le=45)


class AlertmanagerSink(_Sink):
    """Prometheus Alertmanager: POST {url}/api/v2/alerts, resolved alerts with endsAt.

    Alertmanager ends an alert that carries no endsAt after its resolve_timeout (5m by default)
    unless it is posted again. Set firing_ttl to send endsAt = now + firing_ttl with firing alerts
    (what Prometheus does); keep renotify below it so open findings are refreshed in time.
    """

    type: Literal["alertmanager"]
    firing_ttl: Duration | None = None


Sink = Annotated[WebhookSink | SlackSink | AlertmanagerSink, Field(discriminator="type")]
SINK_TYPES = ("webhook", "slack", "alertmanager")


class Match(_Strict):
    severity: list[Severity] | None = None
    rule: list[Name] | None = None

    def fits(self, rule: str, severity: str | None = None) -> bool:
        return (self.rule is None or rule in self.rule) and (
            severity is None or self.severity is None or severity in self.severity)


class Route(_Strict):
    match: Match = Match()
    sinks: list[Name] = Field(min_length=1)


class Defaults(_Strict):
    renotify: Duration = timedelta(hours=4)


class AlertConfig(_Strict):
    defaults: Defaults = Defaults()
    sinks: list[Sink] = []
    routes: list[Route] = []

    @model_validator(mode="after")
    def _references(self) -> AlertConfig:
        names = [s.name for s in self.sinks]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"sinks[{i}].name: sink {name!r} is defined twice")
        for r, route in enumerate(self.routes):
            for s, name in enumerate(route.sinks):
                if name not in names:
                    close = difflib.get_close_matches(name, names, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else f" (defined: {', '.join(names) or 'none'})"
                    raise ValueError(f"routes[{r}].sinks[{s}]: no sink named {name!r}{hint}")
        return self

    def renotify(self, sink: _Sink) -> timedelta:
        return sink.renotify if sink.renotify is not None else self.defaults.renotify

    def severities(self, sink: str, rule: str) -> list[str] | None:
        """The severities of `rule` routed to `sink`: None for all, [] for none."""
        found: set[str] = set()
        for route in self.routes:
            if sink in route.sinks and route.match.fits(rule):
                if route.match.severity is None:
                    return None
                found.update(route.match.severity)
        return sorted(found)

    def enabled_sinks(self) -> list[WebhookSink | SlackSink | AlertmanagerSink]:
        return [s for s in self.sinks if s.enabled]


def load_alerts(path: Path | str, env: Mapping[str, str] | None = None) -> AlertConfig:
    """The alert configuration in `path`; a missing file means no sinks (alerts are optional)."""
    file = Path(path)
    if not file.exists():
        log.info("no alert configuration at %s: alerts are off", file)
        return AlertConfig()
    return load_alerts_text(file.read_text(encoding="utf-8"), str(file), env)


def load_alerts_text(text: str, source: str = "<alerts>", env: Mapping[str, str] | None = None) -> AlertConfig:
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise AlertConfigError([f"{where}: not valid YAML: {exc.problem or exc}"]) from exc
    except YAMLError as exc:
        raise AlertConfigError([f"{source}: not valid YAML: {exc}"]) from exc
    if doc is None:
        return AlertConfig()
    if not isinstance(doc, CommentedMap):
        raise AlertConfigError([f"{source}:1:1: the alert configuration must be a mapping (sinks:, routes:)"])
    plain = _expand(_plain(doc), os.environ if env is None else env, source)
    try:
        config = AlertConfig.model_validate(plain)
    except ValidationError as exc:
        raise AlertConfigError(_explain(exc, doc, source)) from exc
    for sink in config.sinks:
        if not sink.enabled:
            log.info("alert sink %s is disabled: its url is empty (an unset environment variable?)", sink.name)
    return config


def _expand(plain: dict[str, Any], env: Mapping[str, str], source: str) -> dict[str, Any]:
    def sub(text: Any) -> Any:
        return _ENV.sub(lambda m: env.get(m.group(1), ""), text) if isinstance(text, str) else text

    for sink in plain.get("sinks") or []:
        if isinstance(sink, dict):
            unset = [m for m in _ENV.findall(str(sink.get("url", ""))) if m not in env]
            if unset:
                log.info("%s: sink %s: %s not set", source, sink.get("name"), ", ".join(unset))
            sink["url"] = sub(sink.get("url", ""))
            if "finding_url" in sink:
                sink["finding_url"] = sub(sink["finding_url"])
            if isinstance(sink.get("headers"), dict):
                sink["headers"] = {k: sub(v) for k, v in sink["headers"].items()}
    return plain


def _explain(exc: ValidationError, doc: CommentedMap, source: str) -> list[str]:
    problems: list[tuple[int, int, str]] = []
    for err in exc.errors():
        # a discriminated union puts the sink type into the location: sinks.0.slack.url
        loc = [p for i, p in enumerate(err["loc"]) if not (i == 2 and err["loc"][0] == "sinks" and p in SINK_TYPES)]
        message = _message(err, loc)
        if err["type"] == "value_error" and ": " in message and not loc:
            where, message = message.split(": ", 1)  # a cross-reference error names its own location
            loc = [int(p) if p.isdigit() else p for p in re.findall(r"[A-Za-z_]+|\d+", where)]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = [*loc, "type"]
        _, (line, col) = _locate(doc, loc, at_key=err["type"] == "extra_forbidden")
        problems.append((line, col, f"{source}:{line}:{col}: {_dotted(loc) or 'alerts'}: {message}"))
    return [text for _, _, text in sorted(set(problems))]


def _message(err: Any, loc: list[Any]) -> str:
    if err["type"] == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        return unknown_field(name, fields_at([AlertConfig], loc[:-1]))
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        given = str((err.get("ctx") or {}).get("tag", ""))
        close = difflib.get_close_matches(given, SINK_TYPES, n=1)
        return f"type must be one of {', '.join(SINK_TYPES)}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if err["type"] == "value_error":
        return str(err["ctx"]["error"]) if "error" in (err.get("ctx") or {}) else str(err["msg"])
    return str(err["msg"])
