"""Rule versions: recorded once per version when a rule runs, with text that proves its version."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reconciler import rule_versions
from reconciler.loader import load_rules, load_text
from reconciler.service import run_one
from syncwatch.store import Store

REPO = Path(__file__).resolve().parents[2]
PACK = load_rules(REPO / "rules")


@pytest.mark.parametrize("loaded", PACK, ids=lambda r: r.name)
def test_canonical_text_hashes_to_the_version_and_the_source_loads_to_it(loaded: object) -> None:
    assert rule_versions.version_of(rule_versions.canonical_json(loaded.rule)) == loaded.version
    source = rule_versions.source_text(loaded)
    assert [r.version for r in load_text(source)] == [loaded.version]


def test_a_rule_in_a_list_file_keeps_only_its_own_lines() -> None:
    kpi = next(r for r in PACK if r.name == "invoice_timeliness")
    source = rule_versions.source_text(kpi)
    assert source.startswith("- name: invoice_timeliness\n") and "time_to_bill_hours" not in source


def test_a_file_changed_since_loading_falls_back_to_the_loaded_yaml(tmp_path: Path) -> None:
    rule_file = tmp_path / "r.yaml"
    original = (REPO / "rules/packs/professional_services/time_to_bill.yaml").read_text()
    rule_file.write_text(original)
    [loaded] = load_rules(rule_file)
    rule_file.write_text(original.replace("within: 42d", "within: 21d"))
    source = rule_versions.source_text(loaded)
    assert "within: 42d" in source and [r.version for r in load_text(source)] == [loaded.version]
    rule_file.unlink()
    assert [r.version for r in load_text(rule_versions.source_text(loaded))] == [loaded.version]


def test_running_a_rule_records_its_version_once(store: Store) -> None:
    loaded = next(r for r in PACK if r.name == "psa_vs_erp_projects")
    assert rule_versions.lookup(store, loaded.name, loaded.version) is None
    run_one(store, loaded, full=True)
    run_one(store, loaded, full=True)
    assert store.query("SELECT count() FROM rule_versions")[0][0] == 1
    found = rule_versions.lookup(store, loaded.name, loaded.version)
    assert found is not None and found.source == Path(loaded.path).read_text()
    assert rule_versions.version_of(found.canonical) == loaded.version and found.first_seen.tzinfo is not None
    assert not rule_versions.record(store, loaded)


def test_a_new_version_is_a_new_row_and_the_old_text_stays(store: Store) -> None:
    loaded = next(r for r in PACK if r.name == "psa_vs_erp_projects")
    changed_rule = loaded.rule.model_copy(update={"description": "changed"})
    changed = replace(loaded, rule=changed_rule, version=rule_versions.version_of(
        rule_versions.canonical_json(changed_rule)), node=None, path="/nonexistent.yaml")
    assert rule_versions.record(store, loaded) and rule_versions.record(store, changed)
    assert rule_versions.lookup(store, loaded.name, loaded.version).canonical != \
        rule_versions.lookup(store, loaded.name, changed.version).canonical


def test_recording_never_fails_a_run(store: Store) -> None:
    store.command("DROP TABLE rule_versions")
    loaded = next(r for r in PACK if r.name == "psa_vs_erp_projects")
    assert not rule_versions.record(store, loaded)
    assert run_one(store, loaded, full=True).ok
