"""Test helpers: one user per role (two ops users, for four-eyes), and findings of a real shipped rule.

`project_findings` writes PSA and ERP project records and runs the shipped psa_vs_erp_projects rule
(rules/packs/professional_services) through the reconciler's own service, so the findings carry a
real rule name, version, keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler import service
from reconciler.loader import LoadedRule, load_rules
from tests.conftest import REPO, Harness
from tests.reconciler.records import span_of, trace_of

RULE = "psa_vs_erp_projects"
RECORD_COLUMNS = ["system", "entity", "key", "version", "updated_at", "deleted", "fields", "trace_id", "span_id",
                  "received_at"]
PEOPLE = {"ana": "ops", "ben": "ops", "cleo": "auditor", "dan": "executive", "eve": "admin"}


@dataclass
class People:
    harness: Harness
    tokens: dict[str, str]
    ids: dict[str, str]

    def as_(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def post(self, name: str, path: str, body: Any = None) -> Any:
        return self.harness.client.post(f"/api/v1{path}", json=body, headers=self.as_(name))

    def get(self, name: str, path: str, **params: Any) -> Any:
        return self.harness.client.get(f"/api/v1{path}", params=params, headers=self.as_(name))


def people_of(harness: Harness) -> People:
    tokens, ids = {}, {}
    for name, role in PEOPLE.items():
        user, token = harness.app.state.users.create(name, role)
        tokens[name], ids[name] = token, user.user_id
    return People(harness, tokens, ids)


def loaded_rule(name: str = RULE) -> LoadedRule:
    return next(r for r in load_rules(REPO / "rules") if r.name == name)


def psa_project(key: str, budget: str = "50000", status: str = "active", version: int = 1) -> list[Any]:
    at = datetime.now(UTC) - timedelta(days=1)  # older than the rule's 4h grace period
    fields = {"status": status, "budget": budget, "legal_entity": "ACME-DE", "currency": "EUR"}
    return ["psa", "project", key, version, at, 0, fields, trace_of(f"psa-{key}"), span_of("psa"), at]


def erp_project(key: str, budget: str = "50000", status: str = "active", version: int = 1) -> list[Any]:
    row = psa_project(key, budget, status, version)
    row[0], row[7], row[8] = "erp", trace_of(f"erp-{key}"), span_of("erp")
    return row


def write_records(harness: Harness, rows: list[list[Any]]) -> None:
    harness.store.insert_rows("records", rows, RECORD_COLUMNS)


def project_findings(harness: Harness) -> dict[str, str]:
    """P-17 missing in the ERP (impact 50,000 EUR), P-18 with a budget mismatch (impact 20,000 EUR).
    Returns {project key: fingerprint}."""
    write_records(harness, [psa_project("P-17"), psa_project("P-18", "20000"), erp_project("P-18", "25000")])
    result = service.run_one(harness.store, loaded_rule(), full=True)
    assert result.ok, result.error
    rows = harness.store.query("SELECT keys['project_id'], fingerprint FROM findings FINAL WHERE rule = {r:String}",
                               {"r": RULE})
    return dict(rows)
