"""Re-check now: run one rule for a few business keys only and update their findings.

The rule's own compiled query (full, not incremental) is restricted to the keys by an outer
filter, and its candidates go through the same `findings.apply_run` as a scheduled run, with a
scope of those keys: a finding of these keys that the rule no longer detects is resolved, one it
still detects is updated (or reopened), and nothing outside the keys is touched.

A re-check is not a rule run: it writes no `rule_runs` row. The start of the last successful run
is the watermark of the next incremental run; a re-check looked at a few keys only, so counting
it as a run would make the next incremental run skip every other key that changed meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.findings import FindingError, Scope, apply_run
from reconciler.loader import LoadedRule
from reconciler.runner import DEFAULT_TIMEOUT_SECONDS
from reconciler.service import COMPILERS, prepare
from syncwatch.store import Store

RUN_PREFIX = "recheck-"


@dataclass(frozen=True)
class Recheck:
    run_id: str
    rule: str
    key_name: str
    keys: tuple[str, ...]


def restricted_sql(sql: str) -> str:
    """The candidates of `sql` whose key named {recheck_key_name} is one of {recheck_keys}."""
    return (f"SELECT * FROM (\n{sql.strip().rstrip(';')}\n)\n"
            "WHERE has({recheck_keys:Array(String)}, keys[{recheck_key_name:String}])")


def recheck(store: Store, loaded: LoadedRule, key_values: Iterable[str], *, now: datetime | None = None) -> Recheck:
    """Re-run `loaded` for the findings whose key (the rule's key_name) is one of `key_values`."""
    rule = loaded.rule
    if rule.kind not in COMPILERS:
        raise FindingError(f"rule {loaded.name!r} is a {rule.kind} rule: it has no findings to re-check")
    if not rule.enabled:
        raise FindingError(f"rule {loaded.name!r} is disabled: enable it in {loaded.path} to re-check its findings")
    values = tuple(dict.fromkeys(key_values))
    moment = now or datetime.now(UTC)
    prepare(store, rule, full=False, now=moment)
    compiled = COMPILERS[rule.kind](rule, None, now=moment)
    params = {**compiled.parameters, "recheck_keys": list(values), "recheck_key_name": rule.key_name}
    scope = Scope.of_keys([{rule.key_name: v} for v in values], key_names=(rule.key_name,))
    run_id = f"{RUN_PREFIX}{uuid.uuid4().hex}"
    apply_run(store, loaded.name, loaded.version, rule.severity, restricted_sql(compiled.sql), params,
              run_id=run_id, scope=scope, now=moment, settings={"max_execution_time": DEFAULT_TIMEOUT_SECONDS})
    return Recheck(run_id, loaded.name, rule.key_name, values)
