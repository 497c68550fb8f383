"""The rule packs as the API sees them: loaded once per process, on first use.

The findings routes need a finding's rule (its description, what it compares, its compiler for
a re-check). A pack that does not load does not take the API down: routes that merely show a rule
say why it is missing, and a re-check answers 409 with the loader's problems.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from reconciler.errors import RuleError
from reconciler.loader import LoadedRule, load_rules


class RuleCatalog:
    def __init__(self, rules_dir: Path) -> None:
        self.rules_dir = rules_dir
        self._rules: dict[str, LoadedRule] | None = None
        self.problem = ""
        self._lock = threading.Lock()

    def get(self, name: str) -> LoadedRule | None:
        return self._loaded().get(name)

    def why_missing(self, name: str) -> str:
        """Why `get(name)` is None, in words fit for an error message."""
        if self._loaded() == {} and self.problem:
            return f"the rule pack in {self.rules_dir} does not load: {self.problem}"
        return f"rule {name!r} is not in the rule pack at {self.rules_dir} (renamed or removed?)"

    def _loaded(self) -> dict[str, LoadedRule]:
        with self._lock:
            if self._rules is None:
                try:
                    self._rules = {r.name: r for r in load_rules(self.rules_dir)}
                except RuleError as exc:
                    self._rules, self.problem = {}, str(exc)[:2000]
            return self._rules


_creating = threading.Lock()


def catalog_of(state: Any, rules_dir: Path) -> RuleCatalog:
    """The app's catalog (kept on app.state), created on first use."""
    with _creating:
        found = getattr(state, "rule_catalog", None)
        if found is None:
            found = state.rule_catalog = RuleCatalog(rules_dir)
    return found
