"""The rule pack as the query API (KPIs, rule health, evidence) sees it: loaded once per process.

The reconciler's schedule loads the same directory at start-up, so both agree until a restart.
A pack that does not load makes the rule-based endpoints answer 503 with every problem, instead of
failing the whole service.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from collector.errors import IngestHTTPError
from reconciler.errors import RuleError
from reconciler.loader import LoadedRule, load_rules
from reconciler.model import WorkflowRule
from reconciler.model_kpi import KpiRule


@dataclass(frozen=True)
class RulePack:
    rules: tuple[LoadedRule, ...]

    @classmethod
    def load(cls, rules_dir: Path) -> RulePack:
        return cls(tuple(load_rules(rules_dir)))

    def get(self, name: str) -> LoadedRule | None:
        return next((r for r in self.rules if r.name == name), None)

    @property
    def kpis(self) -> dict[str, KpiRule]:
        return {r.name: r.rule for r in self.rules if isinstance(r.rule, KpiRule)}

    @property
    def workflows(self) -> dict[str, WorkflowRule]:
        return {r.name: r.rule for r in self.rules if isinstance(r.rule, WorkflowRule)}


_lock = threading.Lock()


def rule_pack(request: Request) -> RulePack:
    """FastAPI dependency: the app's rule pack, loaded on first use."""
    state = request.app.state
    found = getattr(state, "rule_pack", None)
    if found is None:
        with _lock:
            found = getattr(state, "rule_pack", None)
            if found is None:
                try:
                    found = RulePack.load(state.settings.rules_dir)
                except RuleError as exc:
                    raise IngestHTTPError(503, "rules_unavailable",
                                          f"the rule pack in {state.settings.rules_dir} does not load: {exc}") from exc
                state.rule_pack = found
    return found
