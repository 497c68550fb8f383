"""Test helpers: findings made by the real findings lifecycle (apply_run) from hand-written candidates.

Each `Seed` is one candidate row; `seed` groups them by rule and first-seen time and applies each
group as one run, so the findings carry exactly the rule, kind, systems, severity, impact and age
a test asks for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby

from reconciler import findings
from syncwatch.store import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
_CANDIDATES = """
SELECT kind, field, JSONExtract(keys_json, 'Map(String, String)') AS keys, systems, left_value, right_value,
       impact AS impact_amount, currency AS impact_currency, '' AS left_trace_id, '' AS left_span_id,
       '' AS right_trace_id, '' AS right_span_id, detail
FROM seed_candidates WHERE rule = {seed_rule:String} AND seen = {seed_seen:DateTime64(6, 'UTC')}
"""


@dataclass(frozen=True)
class Seed:
    rule: str
    keys: dict[str, str]
    kind: str = "mismatch"
    field: str = "status"
    systems: tuple[str, ...] = ("psa", "erp")
    severity: str = "medium"
    impact: float = 0.0
    currency: str = "EUR"
    age: timedelta = timedelta(hours=1)
    left: str = "active"
    right: str = "closed"
    detail: str = "seeded"


def seed(store: Store, seeds: list[Seed], now: datetime = NOW) -> dict[str, str]:
    """Insert the findings; returns {first key value: fingerprint}."""
    store.command("CREATE TABLE IF NOT EXISTS seed_candidates (rule String, seen DateTime64(6, 'UTC'), kind String, "
                  "field String, keys_json String, systems Array(String), left_value String, right_value String, "
                  "impact Float64, currency String, detail String) ENGINE = MergeTree ORDER BY rule")
    rows = [[s.rule, (now - s.age).replace(tzinfo=None), s.kind, s.field, json.dumps(s.keys), list(s.systems),
             s.left, s.right, s.impact, s.currency, s.detail] for s in seeds]
    store.insert_rows("seed_candidates", rows, ["rule", "seen", "kind", "field", "keys_json", "systems", "left_value",
                                                "right_value", "impact", "currency", "detail"])
    ordered = sorted(seeds, key=lambda s: (s.rule, s.age))
    for (rule, age), group in groupby(ordered, key=lambda s: (s.rule, s.age)):
        severity = next(iter(group)).severity
        seen = now - age
        # an incremental run with an empty scope: opens what it sees, resolves nothing else
        findings.apply_run(store, rule, "v1", severity, _CANDIDATES,
                           {"seed_rule": rule, "seed_seen": seen.replace(tzinfo=None)},
                           run_id=f"seed-{rule}-{age}", scope=findings.Scope.of_keys([]), now=seen)
    found = store.query("SELECT fingerprint, keys FROM findings FINAL")
    return {next(iter(keys.values())): fp for fp, keys in found}
