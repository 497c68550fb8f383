"""Hostile strings in every string field of every shipped rule: refused at load with an error naming
the field, or bound safely (the compiled SQL runs, does not carry the string, and the database is intact)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler import compile_kpi
from reconciler.errors import ReconcilerError, RuleError
from reconciler.loader import LoadedRule, load_rules, load_text
from reconciler.service import COMPILERS
from syncwatch.store import Store
from tests.conftest import REPO

# Each fragment carries something SQL, templating, YAML or a terminal would treat specially.
FRAGMENTS = ["'", "''", "\\'", '"', "`", "; DROP TABLE events; --", "') OR 1=1 --", "{x:String}", "{", "}",
             "%(x)s", "%s", "\x00", "\\", "\n", "/*", "*/", "$$", "${env:HOME}", "\u202e",
             "\u2019", "\uff1f", "\u00e9", "\U0001f600", "\ud7ff"]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
PACK = load_rules(REPO / "rules")
WORKFLOWS = {r.name: r.rule for r in PACK if r.rule.kind == "workflow"}


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a string lives in a rule's JSON form: each mapping key's value and list item."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in string_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in string_paths(v, (*path, i))]
    return []


def replaced(value: Any, path: tuple[Any, ...], new: str) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    return [replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


def source(loaded: LoadedRule) -> dict[str, Any]:
    """The rule as its author wrote it (the YAML mapping as plain JSON values)."""
    return json.loads(json.dumps(loaded.node, default=str))


TARGETS = [(rule, path) for rule in PACK for path in string_paths(source(rule)) if path != ("kind",)]
MARK = "ZQX"  # in every hostile value, so its text cannot show in SQL by chance
hostile = st.tuples(st.sampled_from(FRAGMENTS), st.just(MARK), st.text(max_size=8), st.sampled_from(FRAGMENTS)
                    ).map("".join)


def compiled_sql(store: Store, loaded: LoadedRule) -> tuple[str, dict[str, Any]]:
    rule = loaded.rule
    if rule.kind == "kpi":
        c = compile_kpi.compile(rule, WORKFLOWS, NOW - timedelta(days=30), NOW, now=NOW)
    else:
        c = COMPILERS[rule.kind](rule, None, now=NOW)
    return c.sql, dict(c.parameters)


def tables(store: Store) -> list[tuple[str, int]]:
    return [(str(n), int(r)) for n, r in store.query(
        "SELECT name, total_rows FROM system.tables WHERE database = currentDatabase() AND total_rows IS NOT NULL "
        "ORDER BY name")]


def test_the_targets_cover_every_rule_kind() -> None:
    assert {rule.rule.kind for rule, _ in TARGETS} == {"reconcile", "aggregate", "workflow", "kpi"}
    assert len(TARGETS) > 100
    assert {rule.rule.kind for rule, _ in TEXT_TARGETS} == {"reconcile", "aggregate", "workflow", "kpi"}


def _takes_text(target: tuple[LoadedRule, tuple]) -> bool:
    try:
        load_text(json.dumps(replaced(source(target[0]), target[1], f"{MARK} it's; free text")))
    except RuleError:
        return False
    return True


# The fields that take free text (values, labels, descriptions): most identifier fields refuse any
# hostile string outright, so these get a property of their own, where every example reaches SQL.
TEXT_TARGETS = [t for t in TARGETS if _takes_text(t)]
SETTINGS = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(target=st.sampled_from(TARGETS), value=hostile)
def test_a_hostile_string_in_any_rule_field_is_refused_or_bound(store: Store, target: tuple[LoadedRule, tuple],
                                                               value: str) -> None:
    refused_or_bound(store, target, value)


@settings(SETTINGS, max_examples=80)
@given(target=st.sampled_from(TEXT_TARGETS), value=hostile)
def test_a_hostile_string_in_a_free_text_field_is_bound(store: Store, target: tuple[LoadedRule, tuple],
                                                        value: str) -> None:
    refused_or_bound(store, target, value)


def refused_or_bound(store: Store, target: tuple[LoadedRule, tuple], value: str) -> None:
    loaded, path = target
    doc = replaced(source(loaded), path, value)
    before = tables(store)
    try:
        [rule] = load_text(json.dumps(doc), "hostile.yaml")  # JSON is YAML: the loader's own path
    except RuleError as exc:
        field = str([p for p in path if isinstance(p, str)][-1])
        assert any(field in problem for problem in exc.problems), (path, exc.problems)
        event("refused at load")
        return
    try:
        sql, parameters = compiled_sql(store, rule)
    except ReconcilerError as exc:  # a KPI whose reference no longer resolves: refused, by name
        assert rule.name in str(exc)
        event("refused at compile")
        return
    assert MARK not in sql, f"{path} reached the SQL text"
    store.query(sql, parameters)
    assert tables(store) == before
    event(f"bound and ran: {rule.rule.kind}")


@pytest.mark.parametrize("kind", ["reconcile", "aggregate", "workflow", "kpi"])
def test_every_kind_runs_unchanged_on_this_store(store: Store, kind: str) -> None:
    """The baseline the property relies on: each shipped rule compiles and runs here as it is."""
    for loaded in (r for r in PACK if r.rule.kind == kind):
        sql, parameters = compiled_sql(store, loaded)
        store.query(sql, parameters)


def test_escaped_surrogate_pairs_are_joined_and_lone_halves_refused_by_position() -> None:
    base = 'name: r\nkind: reconcile\nkey_name: k\nleft: {system: psa, entity: project, filter: [{field: f, ' \
           'value: "%s"}]}\nright: {system: erp, entity: project}\n'
    [rule] = load_text(base % "a\\ud83d\\ude00")  # JSON's way of writing U+1F600
    assert rule.rule.left.filter[0].value == "a\U0001F600"
    for lone in ("\\ud83d", "x\\ude00y", "\\ude00\\ud83d"):
        with pytest.raises(RuleError) as info:
            load_text(base % lone, "pack.yaml")
        [problem] = info.value.problems
        assert problem.startswith("pack.yaml:4:") and "left.filter[0].value" in problem and "surrogate" in problem
