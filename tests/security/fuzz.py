"""Schemathesis against the service's own OpenAPI document, over real HTTP (a live uvicorn server).

Every operation is fuzzed with a few generated requests per credential; each answer must be no 5xx,
a documented status, a documented content type and a body that conforms to the documented schema.
A refused request (4xx) must leave every table as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from syncwatch.store import Store

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Tables a request writes on purpose even when refused: the audit log records 403s and 409s.
AUDITED = {"actions"}


@dataclass
class Outcome:
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def table_rows(store: Store) -> dict[str, int]:
    rows = store.query("SELECT name, total_rows FROM system.tables WHERE database = currentDatabase() "
                       "AND total_rows IS NOT NULL")
    return {str(name): int(n) for name, n in rows}


def fuzz(spec: dict[str, Any], base_url: str, headers: dict[str, str], store: Store, flush: Callable[[], None],
         examples: int, modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
         ) -> Outcome:
    schema = schemathesis.openapi.from_dict(spec)
    outcome = Outcome()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:
            _fuzz_operation(operation, mode, base_url, headers, store, flush, examples, outcome)
    return outcome


def _fuzz_operation(operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str], store: Store,
                    flush: Callable[[], None], examples: int, outcome: Outcome) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        flush()
        before = table_rows(store)
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        outcome.calls += 1
        outcome.statuses[response.status_code] = outcome.statuses.get(response.status_code, 0) + 1
        label = f"{operation.label} [{mode.value}] -> {response.status_code} {response.content[:300]!r}"
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as exc:  # one sub-exception per failed check
            outcome.failures.append(f"{label}: {_titles(exc)}")
        if response.status_code >= 400:
            flush()
            after = table_rows(store)
            changed = {t for t in after if after[t] != before.get(t, 0)} - AUDITED
            if changed:
                outcome.failures.append(f"{label}: a refused request changed {sorted(changed)}")

    try:
        run()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:
            raise  # an operation without parameters or body has no invalid request to make


def _titles(exc: FailureGroup) -> str:
    """One line per failed check (its code and title), not schemathesis' full report."""
    inner = getattr(exc, "exceptions", None) or [exc]
    return "; ".join(f"{getattr(e, 'code', '')} {getattr(e, 'title', '')}: {getattr(e, 'message', str(e))[:300]}"
                     for e in inner)
