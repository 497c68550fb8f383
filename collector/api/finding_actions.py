"""Lifecycle actions on findings, each one audited: who, role, what, parameters, outcome.

`act` performs one action on one finding and never raises for the finding's own reasons: the
result carries the HTTP status the routes answer with (and bulk actions report per finding).
Refusals that concern a real finding (409: the action does not apply to its status) are audited
like successes; requests about nothing (404) are not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from collector.api.access import User
from collector.api.rule_catalog import RuleCatalog
from reconciler import findings
from reconciler.audit import AuditLog
from reconciler.findings import FindingError, FindingNotFoundError
from reconciler.recheck import recheck
from reconciler.rule_locks import RuleBusyError
from syncwatch.errors import StoreError
from syncwatch.store import Store

# action (as written to the audit log) -> permission of the route
PERMISSION: dict[str, str] = {
    "acknowledged": "findings:act", "assigned": "findings:act", "annotated": "findings:act",
    "silenced": "findings:silence", "resolved": "findings:act", "reopened": "findings:act",
    "rechecked": "findings:act",
}


@dataclass(frozen=True)
class Outcome:
    fingerprint: str
    action: str
    status_code: int
    message: str
    status: str | None = None  # the finding's status afterwards
    audit_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.status_code < 300


def _exists(store: Store, fingerprint: str) -> str:
    found = store.query("SELECT status FROM findings FINAL WHERE fingerprint = {fp:String}", {"fp": fingerprint})
    if not found:
        raise FindingNotFoundError(f"no finding with fingerprint {fingerprint!r}")
    return str(found[0][0])


# action -> (store, fingerprint, parameters) -> the finding's status afterwards
_LIFECYCLE: dict[str, Callable[[Store, str, Mapping[str, Any]], str]] = {
    "acknowledged": lambda s, fp, p: findings.acknowledge(s, fp),
    "assigned": lambda s, fp, p: findings.assign(s, fp, str(p["assignee"])),
    "silenced": lambda s, fp, p: findings.silence(s, fp, _instant(p["until"])),
    "resolved": lambda s, fp, p: findings.resolve(s, fp, str(p["reason"])),
    "reopened": lambda s, fp, p: findings.reopen(s, fp),
    "annotated": lambda s, fp, p: _exists(s, fp),  # a note changes nothing but the log
}


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def act(store: Store, audit: AuditLog, user: User, action: str, fingerprint: str,
        parameters: Mapping[str, Any], *, batch: str = "") -> Outcome:
    """Perform one lifecycle action (not re-check, not replay) and audit it."""
    try:
        status = _LIFECYCLE[action](store, fingerprint, parameters)
    except FindingNotFoundError as exc:
        return Outcome(fingerprint, action, 404, str(exc))
    except FindingError as exc:
        return _audited(audit, user, action, fingerprint, parameters, batch, 409, str(exc))
    except RuleBusyError as exc:
        return Outcome(fingerprint, action, 503, str(exc))
    except StoreError as exc:
        return Outcome(fingerprint, action, 503, f"the store failed: {exc}")
    return _audited(audit, user, action, fingerprint, parameters, batch, 200, "ok", status)


def _audited(audit: AuditLog, user: User, action: str, fingerprint: str, parameters: Mapping[str, Any],
             batch: str, code: int, message: str, status: str | None = None) -> Outcome:
    logged = {**parameters, **({"batch": batch} if batch else {})}
    outcome = "ok" if code < 300 else f"{code} refused: {message}"
    entry = audit.append(user.name, user.role, action, fingerprint, logged, outcome)
    return Outcome(fingerprint, action, code, message, status, entry.seq)


def recheck_findings(store: Store, audit: AuditLog, user: User, catalog: RuleCatalog,
                     fingerprints: Iterable[str], *, batch: str = "") -> list[Outcome]:
    """Re-check findings: one restricted run per rule, covering the keys of its findings in the set."""
    wanted = list(dict.fromkeys(fingerprints))
    rows = store.query("SELECT fingerprint, rule, keys FROM findings FINAL WHERE has({fps:Array(String)}, fingerprint)",
                       {"fps": wanted})
    by_rule: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
    for fp, rule, keys in rows:
        by_rule[rule].append((fp, dict(keys)))
    outcomes = {fp: Outcome(fp, "rechecked", 404, f"no finding with fingerprint {fp!r}") for fp in wanted}
    for rule, items in by_rule.items():
        for outcome in _recheck_rule(store, audit, user, catalog, rule, items, batch):
            outcomes[outcome.fingerprint] = outcome
    return [outcomes[fp] for fp in wanted]


def _recheck_rule(store: Store, audit: AuditLog, user: User, catalog: RuleCatalog, rule: str,
                  items: list[tuple[str, dict[str, str]]], batch: str) -> list[Outcome]:
    loaded = catalog.get(rule)
    try:
        if loaded is None:
            raise FindingError(f"cannot re-check: {catalog.why_missing(rule)}")
        key_name = loaded.rule.key_name
        done = recheck(store, loaded, [keys.get(key_name, "") for _, keys in items])
    except FindingError as exc:
        return [_audited(audit, user, "rechecked", fp, {}, batch, 409, str(exc)) for fp, _ in items]
    except (RuleBusyError, StoreError) as exc:
        return [Outcome(fp, "rechecked", 503, str(exc)) for fp, _ in items]
    after = dict(store.query(
        "SELECT fingerprint, (status, if(run_id = {run:String}, transition, 'unchanged')) FROM findings FINAL "
        "WHERE rule = {r:String} AND has({fps:Array(String)}, fingerprint)",
        {"run": done.run_id, "r": rule, "fps": [fp for fp, _ in items]}))
    outcomes = []
    for fp, _ in items:
        status, transition = after[fp]
        # the re-check's effect in words: 'updated' (still detected), 'resolved', 'reopened', 'unchanged'
        outcomes.append(_audited(audit, user, "rechecked", fp, {"run_id": done.run_id, "result": transition}, batch,
                                 200, transition, status))
    return outcomes
