"""Alerts end to end: findings from real runs on chDB, delivered over real HTTP to a local receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler import findings
from reconciler.alert_config import AlertConfigError, load_alerts, load_alerts_text
from reconciler.alerts import Notifier, last_errors
from syncwatch.store import Store
from tests.conftest import REPO, free_port

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
CANDIDATES = """
SELECT 'mismatch' AS kind, 'status' AS field, map('project_id', project) AS keys, ['psa', 'erp'] AS systems,
       left AS left_value, right AS right_value, impact AS impact_amount, 'EUR' AS impact_currency,
       'lt' || project AS left_trace_id, '' AS left_span_id, '' AS right_trace_id, '' AS right_span_id,
       '' AS detail
FROM drift
"""


# --- a real HTTP receiver ------------------------------------------------------------------------

@dataclass
class Receiver:
    """Captures every POST; answers from `statuses` in turn (then 200); holds requests while `gate` is clear."""

    url: str
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)

    def bodies(self, path: str = "") -> list[Any]:
        return [body for p, _, body in self.requests if p.endswith(path)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}")
    rec.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            rec.gate.wait(10)
            rec.requests.append((self.path, dict(self.headers), body))
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    rec.gate.set()
    server.shutdown()
    server.server_close()


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# --- findings from real runs -----------------------------------------------------------------------

@pytest.fixture
def drift(store: Store) -> Store:
    store.command("CREATE TABLE drift (project String, left String, right String, impact Float64) "
                  "ENGINE = MergeTree ORDER BY project")
    return store


def run(store: Store, at: datetime, rows: Iterable[tuple[str, str, str, float]], rule: str = "psa_erp_status",
        severity: str = "high") -> str:
    store.command("TRUNCATE TABLE drift")
    rows = list(rows)
    if rows:
        store.insert_rows("drift", rows, ["project", "left", "right", "impact"])
    run_id = f"{rule}-{at.isoformat()}"
    findings.apply_run(store, rule, "v1", severity, CANDIDATES, run_id=run_id, now=at)
    return run_id


def notifier(yaml: str, clock: FakeClock | None = None, **urls: str) -> Notifier:
    return Notifier(load_alerts_text(yaml.format(**urls), "alerts.yaml"), clock=clock or FakeClock(T0))


def deliver(n: Notifier, store: Store, rule: str, run_id: str) -> None:
    n.after_run(store, rule, run_id)
    assert n.flush(10), "alerts not delivered in 10 s"


ONE_SINK = """
sinks:
  - {{name: hook, type: {type}, url: "{url}", renotify: 1h, retry: {{max_attempts: 3, backoff: 0.01}},
     finding_url: "https://sw.example/findings/{{fingerprint}}"}}
routes:
  - sinks: [hook]
"""
P1, P2 = ("P-1", "active", "closed", 100.0), ("P-2", "active", "draft", 50.5)


# --- payload shapes ----------------------------------------------------------------------------------

def test_webhook_gets_one_json_notification_per_rule_with_its_findings(drift: Store, receiver: Receiver) -> None:
    n = notifier(ONE_SINK, type="webhook", url=receiver.url + "/hook")
    deliver(n, drift, "psa_erp_status", run(drift, T0, [P1, P2]))
    assert len(receiver.requests) == 1
    path, headers, body = receiver.requests[0]
    assert path == "/hook" and headers["Content-Type"] == "application/json"
    assert {k: body[k] for k in ("version", "source", "rule", "status", "counts")} == {
        "version": "1", "source": "syncwatch", "rule": "psa_erp_status", "status": "firing",
        "counts": {"firing": 2, "resolved": 0}}
    p1 = next(f for f in body["findings"] if f["keys"] == {"project_id": "P-1"})
    fp = findings.get(drift, p1["fingerprint"])
    assert fp is not None
    assert p1 == {
        "alert_status": "firing", "fingerprint": fp["fingerprint"], "rule": "psa_erp_status", "rule_version": "v1",
        "kind": "mismatch", "field": "status", "keys": {"project_id": "P-1"}, "systems": ["psa", "erp"],
        "left_value": "active", "right_value": "closed", "severity": "high", "impact_amount": "100.00",
        "impact_currency": "EUR", "status": "open", "transition": "opened", "first_seen": "2025-03-01T09:00:00Z",
        "last_seen": "2025-03-01T09:00:00Z", "resolved_at": None, "left_trace_id": "ltP-1", "right_trace_id": "",
        "url": f"https://sw.example/findings/{fp['fingerprint']}"}
    n.close()


def test_slack_gets_text_and_blocks_with_record_values_escaped(drift: Store, receiver: Receiver) -> None:
    n = notifier(ONE_SINK, type="slack", url=receiver.url + "/services/T0/B0/x")
    deliver(n, drift, "psa_erp_status", run(drift, T0, [P1, ("P-3", "<!channel>", "a & b", 0.0)]))
    (body,) = receiver.bodies("/services/T0/B0/x")
    assert set(body) == {"text", "blocks"}
    assert body["text"] == "[FIRING] psa_erp_status (high): 2 firing"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "context"]
    sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert all(b["text"]["type"] == "mrkdwn" for b in body["blocks"] if b["type"] == "section")
    assert "project_id=P-1" in sections[0] and "impact 100.00 EUR" in sections[0]
    assert "<https://sw.example/findings/" in sections[0]
    assert "&lt;!channel&gt;" in sections[1] and "a &amp; b" in sections[1] and "<!channel>" not in sections[1]
    n.close()


def test_alertmanager_gets_v2_alerts_and_endsat_when_a_finding_resolves(drift: Store, receiver: Receiver) -> None:
    n = notifier(ONE_SINK, type="alertmanager", url=receiver.url)
    deliver(n, drift, "psa_erp_status", run(drift, T0, [P1, P2]))
    (alerts,) = receiver.bodies("/api/v2/alerts")
    assert isinstance(alerts, list) and len(alerts) == 2
    p1 = next(a for a in alerts if a["labels"]["key_project_id"] == "P-1")
    fingerprint = p1["labels"]["fingerprint"]
    assert p1 == {
        "labels": {"alertname": "psa_erp_status", "rule": "psa_erp_status", "severity": "high",
                   "fingerprint": fingerprint, "kind": "mismatch", "field": "status", "systems": "psa,erp",
                   "source": "syncwatch", "key_project_id": "P-1"},
        "annotations": {"summary": "mismatch status for project_id=P-1",
                        "description": "psa: 'active', erp: 'closed'", "impact": "100.00 EUR"},
        "startsAt": "2025-03-01T09:00:00Z",
        "generatorURL": f"https://sw.example/findings/{fingerprint}"}

    # P-2 is fixed: only it is sent, as resolved, with endsAt at the resolution time.
    t1 = T0 + timedelta(minutes=10)
    n.clock.now = t1  # type: ignore[attr-defined]
    deliver(n, drift, "psa_erp_status", run(drift, t1, [P1]))
    assert len(receiver.requests) == 2
    (resolved,) = receiver.bodies("/api/v2/alerts")[1]
    assert resolved["labels"]["key_project_id"] == "P-2"
    assert (resolved["startsAt"], resolved["endsAt"]) == ("2025-03-01T09:00:00Z", "2025-03-01T09:10:00Z")

    # Still resolved at the next run: not sent again.
    deliver(n, drift, "psa_erp_status", run(drift, t1 + timedelta(minutes=1), [P1]))
    assert len(receiver.requests) == 2
    n.close()


def test_webhook_and_slack_get_a_resolved_notification(drift: Store, receiver: Receiver) -> None:
    yaml = """
sinks:
  - {{name: hook, type: webhook, url: "{url}/hook"}}
  - {{name: chat, type: slack, url: "{url}/chat"}}
routes:
  - sinks: [hook, chat]
"""
    n = notifier(yaml, url=receiver.url)
    deliver(n, drift, "psa_erp_status", run(drift, T0, [P1]))
    deliver(n, drift, "psa_erp_status", run(drift, T0 + timedelta(minutes=5), []))
    hook, chat = receiver.bodies("/hook"), receiver.bodies("/chat")
    assert [b["status"] for b in hook] == ["firing", "resolved"]
    assert hook[1]["counts"] == {"firing": 0, "resolved": 1}
    assert (hook[1]["findings"][0]["alert_status"], hook[1]["findings"][0]["resolved_at"]) == (
        "resolved", "2025-03-01T09:05:00Z")
    assert [b["text"] for b in chat] == ["[FIRING] psa_erp_status (high): 1 firing",
                                         "[RESOLVED] psa_erp_status (high): 1 resolved"]
    n.close()


# --- dedup, re-notify, routing, silences ----------------------------------------------------------------

def test_an_unchanged_finding_is_sent_once_a_changed_one_again_and_after_the_interval(
        drift: Store, receiver: Receiver) -> None:
    clock = FakeClock(T0)
    n = notifier(ONE_SINK, clock, type="webhook", url=receiver.url)
    deliver(n, drift, "psa_erp_status", run(drift, T0, [P1, P2]))
    deliver(n, drift, "psa_erp_status", run(drift, T0 + timedelta(minutes=1), [P1, P2]))
    assert len(receiver.requests) == 1

    # P-2's right-hand value changes: P-2 alone is sent again.
    clock.now = T0 + timedelta(minutes=2)
    deliver(n, drift, "psa_erp_status", run(drift, clock.now, [P1, ("P-2", "active", "closed", 50.5)]))
    assert [[f["keys"]["project_id"] for f in b["findings"]] for b in receiver.bodies()] == [["P-1", "P-2"], ["P-2"]]

    # Past P-1's re-notify interval (1h) but not P-2's: P-1 alone is sent again.
    clock.now = T0 + timedelta(minutes=61)
    deliver(n, drift, "psa_erp_status", run(drift, clock.now, [P1, ("P-2", "active", "closed", 50.5)]))
    assert [f["keys"]["project_id"] for f in receiver.bodies()[-1]["findings"]] == ["P-1"]
    assert len(receiver.requests) == 3
    n.close()


def test_routes_by_severity_and_rule(drift: Store, receiver: Receiver) -> None:
    yaml = """
sinks:
  - {{name: pager, type: webhook, url: "{url}/pager"}}
  - {{name: finance, type: webhook, url: "{url}/finance"}}
  - {{name: off, type: webhook, url: ""}}
routes:
  - match: {{severity: [critical]}}
    sinks: [pager, off]
  - match: {{rule: [billing_leakage]}}
    sinks: [finance]
"""
    n = notifier(yaml, url=receiver.url)
    deliver(n, drift, "psa_erp_status", run(drift, T0, [P1], "psa_erp_status", "high"))
    assert receiver.requests == []
    deliver(n, drift, "billing_leakage", run(drift, T0, [P1], "billing_leakage", "high"))
    deliver(n, drift, "hr_cost", run(drift, T0, [P1], "hr_cost", "critical"))
    deliver(n, drift, "billing_leakage", run(drift, T0 + timedelta(minutes=1), [P2], "billing_leakage", "critical"))
    firing = lambda b: tuple(f["keys"]["project_id"] for f in b["findings"] if f["alert_status"] == "firing")  # noqa: E731
    routed = sorted((p, b["rule"], firing(b)) for p, _, b in receiver.requests)
    assert routed == [("/finance", "billing_leakage", ("P-1",)),
                      ("/finance", "billing_leakage", ("P-2",)), ("/pager", "billing_leakage", ("P-2",)),
                      ("/pager", "hr_cost", ("P-1",))]
    n.close()


def test_silenced_and_acknowledged_findings_are_not_sent(drift: Store, receiver: Receiver) -> None:
    clock = FakeClock(T0)
    n = notifier(ONE_SINK, clock, type="webhook", url=receiver.url)
    run(drift, T0, [P1, P2])  # no notifier yet: both are unsent when the next run happens
    p1 = _fingerprint(drift, "P-1")
    findings.silence(drift, p1, T0 + timedelta(hours=2), now=T0)
    findings.acknowledge(drift, _fingerprint(drift, "P-2"), now=T0)
    clock.now = T0 + timedelta(minutes=5)
    deliver(n, drift, "psa_erp_status", run(drift, clock.now, [P1, P2]))
    assert receiver.requests == []

    # The silence ends: P-1 is open again and sent; P-2 stays acknowledged.
    clock.now = T0 + timedelta(hours=3)
    deliver(n, drift, "psa_erp_status", run(drift, clock.now, [P1, P2]))
    assert [[f["keys"]["project_id"] for f in b["findings"]] for b in receiver.bodies()] == [["P-1"]]
    n.close()


# --- delivery: retries, failures, never blocking ----------------------------------------------------------

def test_a_500_is_retried_with_backoff_until_accepted(drift: Store, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    n = notifier(ONE_SINK, type="webhook", url=receiver.url)
    deliver(n, drift, "psa_erp_status", run(drift, T0, [P1]))
    assert len(receiver.requests) == 3 and receiver.bodies()[0] == receiver.bodies()[2]
    rows = drift.query("SELECT state, attempts, last_status, last_error FROM alert_state FINAL")
    assert rows == [("firing", 3, 200, "")]
    assert n.stats.sent == 1 and n.stats.failed == 0
    n.close()


def test_a_receiver_that_is_down_records_the_error_and_the_next_run_tries_again(
        drift: Store, receiver: Receiver) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    n = notifier(ONE_SINK, type="webhook", url=down)
    deliver(n, drift, "psa_erp_status", run(drift, T0, [P1]))
    (error,) = last_errors(drift)
    assert (error["sink"], error["state"], error["attempts"], error["last_status"]) == ("hook", "", 3, 0)
    assert "ConnectError" in error["last_error"] and n.stats.failed == 1
    n.close()

    # The same finding is still owed: the next run (to a sink that is up again) sends it.
    n = notifier(ONE_SINK, type="webhook", url=receiver.url)
    deliver(n, drift, "psa_erp_status", run(drift, T0 + timedelta(minutes=1), [P1]))
    assert len(receiver.requests) == 1 and last_errors(drift) == []
    n.close()


def test_after_run_returns_while_a_delivery_hangs_and_work_in_flight_is_not_sent_twice(
        drift: Store, receiver: Receiver) -> None:
    receiver.gate.clear()  # the receiver holds every request until released
    n = notifier(ONE_SINK, type="webhook", url=receiver.url)
    first = run(drift, T0, [P1])
    n.after_run(drift, "psa_erp_status", first)
    # Reconciliation carries on while the sink hangs: another run, another after_run.
    n.after_run(drift, "psa_erp_status", run(drift, T0 + timedelta(minutes=1), [P1]))
    assert not n.flush(0.3) and receiver.requests == []
    receiver.gate.set()
    assert n.flush(10)
    assert len(receiver.requests) == 1  # the second run found P-1 in flight, not yet to be sent again
    n.close()


def test_after_run_never_raises_even_when_the_store_fails(drift: Store, receiver: Receiver) -> None:
    n = notifier(ONE_SINK, type="webhook", url=receiver.url)
    drift.command("DROP TABLE alert_state")
    deliver(n, drift, "psa_erp_status", run(drift, T0, [P1]))
    assert receiver.requests == []
    n.close()


# --- configuration ---------------------------------------------------------------------------------------

def test_the_shipped_configuration_loads_and_sinks_turn_on_with_their_variables() -> None:
    path = REPO / "rules" / "alerts.yaml"
    assert load_alerts(path, env={}).enabled_sinks() == []
    config = load_alerts(path, env={"SYNCWATCH_ALERT_SLACK_URL": "https://hooks.slack.example/x",
                                    "SYNCWATCH_ALERT_WEBHOOK_URL": "https://t.example/in",
                                    "SYNCWATCH_ALERT_WEBHOOK_TOKEN": "s3cret"})
    assert [s.name for s in config.enabled_sinks()] == ["ops_slack", "ops_webhook"]
    assert config.sinks[2].headers == {"Authorization": "Bearer s3cret"}
    assert config.severities("alertmanager", "any_rule") == ["critical", "high"]
    assert config.severities("ops_webhook", "any_rule") is None
    assert load_alerts(Path("/nonexistent/alerts.yaml")).sinks == []


def test_every_configuration_problem_is_reported_with_file_line_and_field() -> None:
    bad = """defaults: {renotfy: 1h}
sinks:
  - name: a
    type: slak
    url: x
  - name: b
    type: webhook
    url: ftp://x
    retry: {max_attempts: 0}
    finding_url: "https://x/{id}"
routes:
  - match: {severity: [urgent]}
    sinks: [b]
"""
    with pytest.raises(AlertConfigError) as info:
        load_alerts_text(bad, "alerts.yaml")
    assert info.value.problems == [
        "alerts.yaml:1:12: defaults.renotfy: unknown field 'renotfy' (did you mean 'renotify'?)",
        "alerts.yaml:4:11: sinks[0].type: type must be one of webhook, slack, alertmanager (did you mean 'slack'?)",
        "alerts.yaml:8:10: sinks[1].url: 'ftp://x' is not an http(s) URL",
        "alerts.yaml:9:27: sinks[1].retry.max_attempts: Input should be greater than or equal to 1",
        "alerts.yaml:10:18: sinks[1].finding_url: unknown placeholder(s) ['id']: use {fingerprint} and {rule}",
        "alerts.yaml:12:24: routes[0].match.severity[0]: "
        "Input should be 'info', 'low', 'medium', 'high' or 'critical'"]

    # `url` belongs to a sink, not to the defaults: no "did you mean 'url'"
    with pytest.raises(AlertConfigError, match=r"defaults.url: unknown field 'url' \(valid here: renotify"):
        load_alerts_text("defaults: {url: 'http://x'}\n", "alerts.yaml")

    with pytest.raises(AlertConfigError, match=r"alerts.yaml:4:20: routes\[0\].sinks\[1\]: no sink named 'pagr' "
                                               r"\(did you mean 'pager'\?\)"):
        load_alerts_text("sinks:\n  - {name: pager, type: webhook, url: 'http://x'}\nroutes:\n"
                         "  - sinks: [pager, pagr]\n", "alerts.yaml")


def _fingerprint(store: Store, project: str) -> str:
    return store.query("SELECT fingerprint FROM findings FINAL WHERE keys['project_id'] = {p:String}",
                       {"p": project})[0][0]
