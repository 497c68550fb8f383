"""A rule that errors or runs past SYNCWATCH_RULE_TIMEOUT_SECONDS is recorded as failed and the
other rules of the same run still run, in a --once run and in the scheduled jobs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from reconciler import runner, service
from reconciler.loader import LoadedRule, load_rules
from syncwatch.settings import Settings
from syncwatch.store import Store
from tests.conftest import REPO
from tests.reconciler.test_runner import candidates

SLOW_SQL = candidates("(SELECT toString(number) AS id FROM numbers(100000000000) WHERE sipHash64(number) = 0)")
RULES = {r.name: r for r in service.runnable(load_rules(REPO / "rules"))}
SLOW, BROKEN = "psa_vs_erp_projects", "time_to_bill"
HEALTHY = ["hr_vs_psa_cost_rates", "billing_vs_erp_invoices", "quote_to_project"]


@pytest.fixture
def sabotaged(monkeypatch: pytest.MonkeyPatch) -> list[LoadedRule]:
    """Two pack rules turned bad at compile time: one endless query, one compiler error."""
    for kind, compile_rule in list(service.COMPILERS.items()):
        def compiler(rule: Any, since: Any, *, now: Any, _real: Any = compile_rule) -> Any:
            if rule.name == SLOW:
                return SLOW_SQL, {}
            if rule.name == BROKEN:
                raise ValueError(f"rule {rule.name}: cannot compile")
            return _real(rule, since, now=now)
        monkeypatch.setitem(service.COMPILERS, kind, compiler)
    return [RULES[SLOW], RULES[BROKEN], *(RULES[n] for n in HEALTHY)]


def test_the_timeout_is_a_setting_with_a_generous_default() -> None:
    assert Settings().rule_timeout_seconds == runner.DEFAULT_TIMEOUT_SECONDS == 300
    with pytest.raises(ValueError, match="rule_timeout_seconds"):
        Settings(rule_timeout_seconds=0)


def test_one_run_with_a_timeout_and_an_error_still_runs_every_other_rule(
        store: Store, sabotaged: list[LoadedRule]) -> None:
    began = time.monotonic()
    results = service.run_rules(store, sabotaged, full=True, timeout_seconds=1)
    assert time.monotonic() - began < 60, "the slow rule was not cancelled"
    outcome = {r.rule: r.error for r in results}
    assert list(outcome) == [SLOW, BROKEN, *HEALTHY]
    assert "TIMEOUT_EXCEEDED" in outcome[SLOW]
    assert outcome[BROKEN] == f"ValueError: rule {BROKEN}: cannot compile"
    assert all(outcome[name] == "" for name in HEALTHY), outcome
    recorded = {r["rule"]: r["error"] for r in runner.recent_runs(store)}
    assert recorded == outcome


def test_scheduled_jobs_carry_the_timeout(store: Store, sabotaged: list[LoadedRule]) -> None:
    jobs = {job.name: job for job in service.scheduled_jobs(store, sabotaged, None, timeout_seconds=1)}
    slow = jobs[SLOW].run()
    assert not slow.ok and "TIMEOUT_EXCEEDED" in slow.error
    assert jobs[HEALTHY[0]].run().ok
