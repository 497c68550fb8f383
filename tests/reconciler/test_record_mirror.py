"""A rule's record mirror: incremental runs that read it find exactly what runs reading `records` find."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import record_mirror, service
from reconciler.compile_reconcile import _compile_joined, compile_records
from reconciler.loader import load_rules
from reconciler.model import ReconcileRule
from syncwatch import cluster_ddl, schema
from syncwatch.store import Store
from tests.conftest import REPO
from tests.reconciler.records import NOW, OLD, Records, reconcile
from tests.reconciler.test_candidates_property import record_rules, sides

STATUS = [{"field": "status", "type": "enum", "tolerance": {"case_insensitive": True}}]


def _result(store: Store, compiled: Any) -> list[str]:
    names, rows = store.query_columns(compiled.sql, compiled.parameters)
    return sorted(repr(dict(zip(names, row, strict=True))) for row in rows)


def _rows(store: Store, compiled: Any) -> list[tuple]:
    return store.query(compiled.sql, compiled.parameters)


def _server_now(store: Store) -> datetime:
    return store.query("SELECT now64(6, 'UTC')")[0][0].replace(tzinfo=UTC)


def _write(store: Store, rows: list[tuple], names: list[str], version: int, stored: datetime) -> Records:
    records, older_versions = Records(), Records()
    for i, (system, key, fields, young, deleted, older) in enumerate(rows):
        # distinct update times: of two spellings of one key, each path compares the later updated one
        at = (NOW - timedelta(minutes=5) if young else OLD) + timedelta(microseconds=version * 100 + i)
        records.add(system, "project", key, fields, at=at, version=version, deleted=deleted, stored=stored)
        if older is not None:
            older_versions.add(system, "project", key, older, at=OLD - timedelta(hours=1), version=version - 1,
                               stored=stored)
    records.write(store)
    older_versions.write(store)  # a part of its own, as versions arrive in production
    return records


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule=record_rules(), draw=st.data(), fold=st.booleans(), bucket_rows=st.sampled_from([1, 2_000_000]),
       fold_limit=st.sampled_from([0, record_mirror.FOLD_LIMIT]))
def test_runs_from_the_mirror_equal_runs_from_records(store: Store, rule: ReconcileRule, draw: st.DataObject,
                                                       fold: bool, bucket_rows: int, fold_limit: int) -> None:
    """Records, then (when `fold`) the mirror built, then new versions, deletions, other spellings of a
    key and older versions stored after it, folded in (or built over the mirror, past the fold limit):
    the incremental run from the mirror equals the one reading `records` (which
    test_candidates_property checks against a direct join of both sides)."""
    names = sorted({"amount", *(c.field for c in rule.compare), *(c.other for c in rule.compare),
                    *(f.field for f in rule.left.filter)})
    store.command("TRUNCATE TABLE records")
    store.command(f"TRUNCATE TABLE {record_mirror.TABLE}")
    # stored now, the first rows are folded in again (the fold reaches back INGEST_LAG); stored long
    # ago, only the build reads them
    _write(store, draw.draw(sides(names)), names, version=2, stored=datetime.now(UTC) if fold else OLD)
    with mock.patch.multiple(record_mirror, BUILD_ROWS_PER_BUCKET=bucket_rows, FOLD_LIMIT=fold_limit):
        if fold:
            record_mirror.update(store, rule)  # built
        since = _server_now(store)
        _write(store, draw.draw(sides(names)), names, version=4, stored=datetime.now(UTC))
        prefix = record_mirror.update(store, rule)  # folded, or built on the first run
    assert record_mirror.meta(store, prefix) is not None
    from_mirror = compile_records(rule, since, NOW, prefix)
    assert "record_mirror" in from_mirror.sql
    assert _result(store, from_mirror) == _result(store, compile_records(rule, since, NOW))


def test_the_highest_version_wins_whatever_order_versions_are_stored_in(store: Store) -> None:
    rule = reconcile(compare=STATUS)
    Records().add("psa", "project", "p1", {"status": "active"}, version=5) \
        .add("erp", "project", "p1", {"status": "active"}).write(store)
    prefix = record_mirror.update(store, rule)
    since = _server_now(store)
    Records().add("psa", "project", "p1", {"status": "closed"}, version=3, stored=datetime.now(UTC)).write(store)
    record_mirror.update(store, rule)
    assert _result(store, compile_records(rule, since, NOW, prefix)) == []  # version 3 is older than 5
    Records().add("psa", "project", "p1", {"status": "closed"}, version=6, stored=datetime.now(UTC)).write(store)
    record_mirror.update(store, rule)
    rows = _rows(store, compile_records(rule, since, NOW, prefix))
    assert [(row[0], row[1], row[4], row[5]) for row in rows] == [("mismatch", "status", "closed", "active")]


def test_a_deleted_spelling_leaves_the_other_spelling_of_the_key(store: Store) -> None:
    """`P-1` and `p-1 ` both normalize to P-1: deleting the newer one brings the other back."""
    rule = reconcile(compare=STATUS, key_normalize=["trim", "upper"])
    before = _server_now(store)
    Records().add("psa", "project", "P-1", {"status": "active"}, at=OLD, stored=datetime.now(UTC)) \
        .add("psa", "project", "p-1 ", {"status": "closed"}, at=OLD + timedelta(hours=1), stored=datetime.now(UTC)) \
        .add("erp", "project", "P-1", {"status": "active"}, stored=datetime.now(UTC)).write(store)
    prefix = record_mirror.update(store, rule)
    found = [(row[0], row[4], row[5]) for row in _rows(store, compile_records(rule, before, NOW, prefix))]
    assert found == [("mismatch", "closed", "active")]  # the later updated spelling is compared
    since = _server_now(store)
    Records().add("psa", "project", "p-1 ", {"status": "closed"}, at=OLD + timedelta(hours=2), version=2,
                  deleted=True, stored=datetime.now(UTC)).write(store)
    record_mirror.update(store, rule)
    assert _result(store, compile_records(rule, since, NOW, prefix)) == []  # P-1 is active on both sides
    assert _result(store, _compile_joined(rule, since, NOW)) == []


def test_the_mirror_is_rebuilt_after_a_week_or_a_bulk_load_and_its_watermark_moves_on_each_update(store: Store) -> None:
    rule = reconcile(compare=STATUS)
    Records().add("psa", "project", "p1", {"status": "active"}).write(store)
    prefix = record_mirror.update(store, rule)
    built = record_mirror.meta(store, prefix)
    assert built is not None and built.watermark == built.built_at
    record_mirror.update(store, rule)
    folded = record_mirror.meta(store, prefix)
    assert folded is not None and folded.built_at == built.built_at and folded.watermark > built.watermark
    with mock.patch.object(record_mirror, "REBUILD_EVERY", timedelta(0)):
        record_mirror.update(store, rule)
    rebuilt = record_mirror.meta(store, prefix)
    assert rebuilt is not None and rebuilt.built_at > built.built_at and rebuilt.watermark == rebuilt.built_at
    with mock.patch.object(record_mirror, "FOLD_LIMIT", 0):
        record_mirror.update(store, rule)  # nothing stored since: folds
        assert record_mirror.meta(store, prefix).built_at == rebuilt.built_at  # type: ignore[union-attr]
        Records().add("psa", "project", "p2", {"status": "active"}, stored=datetime.now(UTC)).write(store)
        record_mirror.update(store, rule)  # more than the limit to fold in: builds
        assert record_mirror.meta(store, prefix).built_at > rebuilt.built_at  # type: ignore[union-attr]


def test_a_changed_definition_has_a_mirror_of_its_own() -> None:
    rule = reconcile(compare=STATUS)
    same = reconcile(compare=STATUS, severity="critical")
    other = reconcile(compare=[*STATUS, {"field": "budget", "type": "decimal"}])
    assert record_mirror.definition(rule) == record_mirror.definition(same)
    assert record_mirror.definition(rule) != record_mirror.definition(other)
    assert len(record_mirror.definition(rule)) == record_mirror.PREFIX_LENGTH


def test_rules_a_mirror_cannot_serve_read_records() -> None:
    by_field = ReconcileRule.model_validate({
        "name": "f", "kind": "reconcile", "key_name": "project_id",
        "left": {"system": "psa", "entity": "project", "key_field": "code"},
        "right": {"system": "erp", "entity": "project"}})
    one_source = ReconcileRule.model_validate({
        "name": "s", "kind": "reconcile", "key_name": "project_id",
        "left": {"system": "psa", "entity": "project", "filter": [{"field": "a", "op": "=", "value": "1"}]},
        "right": {"system": "psa", "entity": "project"}})
    assert record_mirror.applies(reconcile(compare=STATUS))
    assert not record_mirror.applies(by_field) and not record_mirror.applies(one_source)
    since = NOW - timedelta(hours=1)
    assert "record_mirror" not in compile_records(by_field, since, NOW, "0" * 16).sql


def test_scheduled_incremental_runs_of_small_rules_read_records(store: Store) -> None:
    rule = next(r for r in load_rules(REPO / "rules") if r.name == "psa_vs_erp_projects")
    Records().add("psa", "project", "M1", {"status": "active"}).write(store)
    assert service.run_one(store, rule).full
    second = service.run_one(store, rule)
    assert not second.full and second.error == ""
    assert record_mirror.meta(store, record_mirror.definition(rule.rule)) is None  # never built


def test_scheduled_incremental_runs_read_the_mirror(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_mirror, "MIN_RECORDS", 0)  # the rule's few records are worth a mirror here
    rule = next(r for r in load_rules(REPO / "rules") if r.name == "psa_vs_erp_projects")
    assert record_mirror.applies(rule.rule)
    first = service.run_one(store, rule)
    assert first.full and record_mirror.meta(store, record_mirror.definition(rule.rule)) is None
    updated = datetime.now(UTC) - timedelta(days=1)  # past the rule's 4h grace period
    Records().add("psa", "project", "M1", {"status": "active", "budget": "100", "legal_entity": "ACME-DE"},
                  at=updated, stored=datetime.now(UTC)) \
        .add("erp", "project", "M1", {"status": "closed", "budget": "100", "legal_entity": "ACME-DE"},
             at=updated, stored=datetime.now(UTC)).write(store)
    second = service.run_one(store, rule)
    assert not second.full and second.error == "" and second.opened == 1
    assert record_mirror.meta(store, record_mirror.definition(rule.rule)) is not None
    Records().add("erp", "project", "M1", {"status": "active", "budget": "100", "legal_entity": "ACME-DE"},
                  at=updated, version=2, stored=datetime.now(UTC)).write(store)
    third = service.run_one(store, rule)
    assert not third.full and third.error == "" and third.resolved == 1


@pytest.mark.parametrize("cluster", ["", "c1"])
def test_the_mirror_table_is_created_on_every_node_and_never_distributed(cluster: str) -> None:
    migration = next(m for m in schema.bundled_migrations() if "record_mirror" in m.name)
    statements = [out for sql in schema.split_statements(migration.sql)
                  for out in cluster_ddl.render(sql, cluster, "syncwatch")]
    assert len(statements) == 1 and "EmbeddedRocksDB" in statements[0] and "Distributed" not in statements[0]
    assert ("ON CLUSTER 'c1'" in statements[0]) == bool(cluster)
