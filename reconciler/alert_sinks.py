"""Alert sinks: pure payload builders (findings -> request bodies) and delivery with retries.

One notification carries one rule's alerts for one sink (chunked by the sink's batch_size):
- webhook: {"version", "source", "rule", "status", "counts", "findings": [...]}; status is
  "firing" when any finding fires, else "resolved" (Alertmanager's webhook does the same);
- slack: {"text": ..., "blocks": [...]} for an incoming webhook, values escaped so a record
  cannot mention @channel or forge a link (https://api.slack.com/reference/surfaces/formatting);
- alertmanager: a JSON array for POST /api/v2/alerts, one alert per finding, endsAt on resolve
  (https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml, postableAlert).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from reconciler.alert_config import AlertmanagerSink, Retry, SlackSink, WebhookSink

AlertStatus = Literal["firing", "resolved"]
SinkConfig = WebhookSink | SlackSink | AlertmanagerSink
PAYLOAD_VERSION = "1"
# Status codes worth another attempt; any other 4xx is our mistake and will not get better.
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
_SLACK_TEXT = 2900  # a section's text may hold 3000 characters
_LABEL = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class Alert:
    """One finding as a sink sees it: firing (new, changed or due again) or resolved."""

    finding: Mapping[str, Any]
    status: AlertStatus
    digest: str

    @property
    def fingerprint(self) -> str:
        return str(self.finding["fingerprint"])


@dataclass(frozen=True)
class Outcome:
    """How a delivery ended: status is the last HTTP status (0 when no response came)."""

    ok: bool
    attempts: int
    status: int = 0
    error: str = ""


def request_for(sink: SinkConfig, rule: str, alerts: Sequence[Alert], now: datetime) -> tuple[str, Any]:
    """The URL and JSON body of one notification."""
    if isinstance(sink, AlertmanagerSink):
        return sink.url.rstrip("/") + "/api/v2/alerts", alertmanager_payload(sink, alerts, now)
    if isinstance(sink, SlackSink):
        return sink.url, slack_payload(sink, rule, alerts, now)
    return sink.url, webhook_payload(sink, rule, alerts, now)


def webhook_payload(sink: SinkConfig, rule: str, alerts: Sequence[Alert], now: datetime) -> dict[str, Any]:
    firing = sum(a.status == "firing" for a in alerts)
    return {
        "version": PAYLOAD_VERSION, "source": "syncwatch", "rule": rule,
        "status": "firing" if firing else "resolved", "sent_at": _iso(now),
        "counts": {"firing": firing, "resolved": len(alerts) - firing},
        "findings": [_finding_json(sink, a) for a in alerts],
    }


def slack_payload(sink: SinkConfig, rule: str, alerts: Sequence[Alert], now: datetime) -> dict[str, Any]:
    firing = [a for a in alerts if a.status == "firing"]
    resolved = [a for a in alerts if a.status == "resolved"]
    severity = alerts[0].finding["severity"] if alerts else ""
    parts = [f"{len(firing)} firing" if firing else "", f"{len(resolved)} resolved" if resolved else ""]
    tag = "FIRING" if firing else "RESOLVED"
    text = f"[{tag}] {rule} ({severity}): {', '.join(p for p in parts if p)}"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": text[:150]}}]
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": _slack_line(sink, a)}} for a in alerts]
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"Syncwatch · rule {_slack_escape(rule)} · {_iso(now)}"}]})
    return {"text": _slack_escape(text), "blocks": blocks}


def alertmanager_payload(sink: AlertmanagerSink, alerts: Sequence[Alert], now: datetime) -> list[dict[str, Any]]:
    return [_am_alert(sink, a, now) for a in alerts]


def deliver(client: httpx.Client, url: str, body: Any, headers: Mapping[str, str], retry: Retry,
            wait: Callable[[float], bool]) -> Outcome:
    """POST `body` until it is accepted or `retry.max_attempts` are spent; never raises.

    Waits between attempts grow exponentially (with jitter, and at least a 429/503's
    Retry-After up to max_backoff). `wait(seconds)` sleeps and returns True when the notifier
    is shutting down, which ends the retries.
    """
    outcome = Outcome(False, 0)
    for attempt in range(1, retry.max_attempts + 1):
        retry_after = 0.0
        try:
            response = client.post(url, json=body, headers=dict(headers))
            if response.status_code < 300:
                return Outcome(True, attempt, response.status_code)
            outcome = Outcome(False, attempt, response.status_code,
                              f"HTTP {response.status_code}: {response.text[:200]}")
            if response.status_code not in RETRYABLE:
                return outcome
            retry_after = _retry_after(response)
        except httpx.HTTPError as exc:
            outcome = Outcome(False, attempt, 0, f"{type(exc).__name__}: {exc}"[:500])
        if attempt < retry.max_attempts and wait(backoff_seconds(retry, attempt, retry_after)):
            return Outcome(False, attempt, outcome.status, outcome.error + " (gave up: shutting down)")
    return outcome


def backoff_seconds(retry: Retry, attempt: int, retry_after: float = 0.0) -> float:
    """Wait after failed attempt number `attempt` (1-based): backoff * 2^(attempt-1), jittered, capped."""
    base = retry.backoff.total_seconds() * 2 ** (attempt - 1)
    cap = retry.max_backoff.total_seconds()
    jittered = base * (0.5 + random.random() / 2)  # spreads retries; not for security
    return min(cap, max(jittered, retry_after))


# --- pieces ------------------------------------------------------------------------------------

def _finding_json(sink: SinkConfig, alert: Alert) -> dict[str, Any]:
    f = alert.finding
    return {
        "alert_status": alert.status, "fingerprint": f["fingerprint"], "rule": f["rule"],
        "rule_version": f["rule_version"], "kind": f["kind"], "field": f["field"], "keys": dict(f["keys"]),
        "systems": list(f["systems"]), "left_value": f["left_value"], "right_value": f["right_value"],
        "severity": f["severity"], "impact_amount": str(f["impact_amount"]), "impact_currency": f["impact_currency"],
        "status": f["status"], "transition": f["transition"], "first_seen": _iso(f["first_seen"]),
        "last_seen": _iso(f["last_seen"]), "resolved_at": _iso(f["resolved_at"]),
        "left_trace_id": f["left_trace_id"], "right_trace_id": f["right_trace_id"],
        "url": sink.link(str(f["rule"]), str(f["fingerprint"])),
    }


def _summary(f: Mapping[str, Any]) -> str:
    keys = ", ".join(f"{k}={v}" for k, v in sorted(dict(f["keys"]).items()))
    what = f"{f['kind']} {f['field']}".strip()
    return f"{what} for {keys}" if keys else what


def _description(f: Mapping[str, Any]) -> str:
    systems = [*f["systems"], "", ""]
    if f["kind"] in ("mismatch", "aggregate_mismatch"):
        return f"{systems[0]}: {f['left_value']!r}, {systems[1]}: {f['right_value']!r}"
    if f["kind"] in ("missing_left", "missing_right"):
        return f"present in {', '.join(s for s in systems if s)} on one side only"
    return str(f["detail"] or _summary(f))


def _impact(f: Mapping[str, Any]) -> str:
    return f"{f['impact_amount']} {f['impact_currency']}".strip() if f["impact_amount"] else ""


def _slack_line(sink: SinkConfig, alert: Alert) -> str:
    f = alert.finding
    icon = ":red_circle:" if alert.status == "firing" else ":large_green_circle:"
    title = _slack_escape(_summary(f))
    link = sink.link(str(f["rule"]), str(f["fingerprint"]))
    if link:
        title = f"<{_slack_escape(link)}|{title}>"
    impact = _impact(f)
    text = f"{icon} *{alert.status}* {title}\n{_slack_escape(_description(f))}" + (
        f" · impact {_slack_escape(impact)}" if impact else "")
    return text[:_SLACK_TEXT]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _am_alert(sink: AlertmanagerSink, alert: Alert, now: datetime) -> dict[str, Any]:
    f = alert.finding
    labels = {"alertname": f["rule"], "rule": f["rule"], "severity": f["severity"], "fingerprint": f["fingerprint"],
              "kind": f["kind"], "field": f["field"], "systems": ",".join(f["systems"]), "source": "syncwatch"}
    labels.update({_label("key_" + k): v for k, v in dict(f["keys"]).items()})
    body: dict[str, Any] = {
        # Alertmanager drops empty labels anyway; leaving them out keeps its fingerprint stable.
        "labels": {k: str(v) for k, v in labels.items() if v != ""},
        "annotations": {k: v for k, v in {"summary": _summary(f), "description": _description(f),
                                          "impact": _impact(f)}.items() if v},
        "startsAt": _iso(f["first_seen"]),
    }
    if alert.status == "resolved":
        body["endsAt"] = _iso(f["resolved_at"] or now)
    elif sink.firing_ttl is not None:
        body["endsAt"] = _iso(_aware(now) + sink.firing_ttl)
    link = sink.link(str(f["rule"]), str(f["fingerprint"]))
    if link:
        body["generatorURL"] = link
    return body


def _label(name: str) -> str:
    return _LABEL.sub("_", name)


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.strip().isdigit() else 0.0


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z (the store returns naive UTC datetimes)."""
    if moment is None:
        return None
    return _aware(moment).isoformat().replace("+00:00", "Z")
