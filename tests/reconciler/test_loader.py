"""The rule loader: the shipped pack loads; every problem is reported with file:line:col and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import RuleError
from reconciler.loader import load_rules, load_text
from reconciler.model import AggregateRule, ReconcileRule

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "x'); DROP TABLE events; --"

GOOD = """\
name: projects
kind: reconcile
key_name: project_id
left: {system: psa, entity: project}
right: {system: erp, entity: project}
compare:
  - field: budget
    type: decimal
    tolerance: {relative: 1%}
"""


def problems(text: str, source: str = "pack.yaml") -> list[str]:
    with pytest.raises(RuleError) as info:
        load_text(text, source)
    return info.value.problems


def test_the_professional_services_pack_loads_from_the_rules_root() -> None:
    rules = {r.name: r for r in load_rules(REPO / "rules")}
    assert set(rules) == {"psa_vs_erp_projects", "crm_vs_erp_contract_value", "hr_vs_psa_cost_rates",
                          "billing_vs_erp_invoices", "billing_leakage", "quote_to_project", "time_to_bill",
                          "project_to_cash", "resource_to_revenue", "timesheet_approval", "order_to_cash",
                          "time_to_bill_hours",
                          "project_activation_time", "invoice_timeliness", "quote_to_project_completion",
                          "integration_failure_rate", "project_setup_sla_compliance", "time_to_first_revenue",
                          "invoice_accuracy", "straight_through_billing", "straight_through_project_setup"}
    assert isinstance(rules["billing_leakage"].rule, AggregateRule)
    assert isinstance(rules["psa_vs_erp_projects"].rule, ReconcileRule)
    assert all(len(r.version) == 12 and r.path.endswith(".yaml") and r.line >= 1 for r in rules.values())


def test_relative_tolerance_reads_percent_or_fraction() -> None:
    (rule,) = load_text(GOOD)
    assert str(rule.rule.compare[0].tolerance.relative) == "0.01"
    (same,) = load_text(GOOD.replace("1%", "0.01"))
    assert same.version == rule.version


def test_version_ignores_comments_and_layout_but_not_content() -> None:
    (rule,) = load_text(GOOD)
    reformatted = "# a comment\n" + GOOD.replace("left: {system: psa, entity: project}",
                                                 "left:\n  entity: project\n  system: psa")
    assert load_text(reformatted)[0].version == rule.version
    assert load_text(GOOD.replace("1%", "2%"))[0].version != rule.version


def test_a_typo_in_a_field_name_is_an_error_with_a_suggestion() -> None:
    assert problems(GOOD.replace("    tolerance:", "    tolerence:")) == [
        "pack.yaml:9:5: compare[0].tolerence: unknown field 'tolerence' (did you mean 'tolerance'?)"]


def test_a_field_valid_elsewhere_is_not_suggested_as_itself() -> None:
    # a workflow step has `key`, a side does not: the hint lists what a side takes
    assert problems(GOOD.replace("left: {system: psa, entity: project}",
                                 "left: {system: psa, entity: project, key: id}")) == [
        "pack.yaml:4:38: left.key: unknown field 'key' "
        "(valid here: system, entity, key_field, filter, label)"]
    assert problems(GOOD.replace("    tolerance:", "    tolerance_:")) == [
        "pack.yaml:9:5: compare[0].tolerance_: unknown field 'tolerance_' (did you mean 'tolerance'?)"]


def test_wrong_types_name_line_and_field() -> None:
    text = GOOD + "severity: urgent\ngrace: 2 hours\nmissing: 3\n"
    assert problems(text) == [
        "pack.yaml:10:11: severity: Input should be 'info', 'low', 'medium', 'high' or 'critical'",
        "pack.yaml:11:8: grace: '2 hours' is not a duration: write e.g. '90s', '15m', '2h', '3d', '1w' or '1d12h'",
        "pack.yaml:12:10: missing: Input should be 'both', 'left_only', 'right_only' or 'none'",
    ]


@pytest.mark.parametrize(("tolerance", "message"), [
    ("{relative: 5}", "compare[0].tolerance.relative: Input should be less than or equal to 1: give a fraction"),
    ("{relative: lots}", "compare[0].tolerance.relative: Input should be a valid decimal: give a fraction"),
    ("{absolute: -1}", "compare[0].tolerance.absolute: Input should be greater than or equal to 0"),
    ("{days: 2}", "compare[0].tolerance.days: does not apply to type decimal (allowed: absolute, relative)"),
    ("{absolute: 1, relative: 1%}", "compare[0].tolerance: give absolute or relative, not both"),
])
def test_bad_tolerances_are_refused_where_they_are(tolerance: str, message: str) -> None:
    (problem,) = problems(GOOD.replace("{relative: 1%}", tolerance))
    assert problem.startswith("pack.yaml:9:")
    assert message in problem


def test_missing_required_fields_are_named() -> None:
    text = GOOD.replace("key_name: project_id\n", "").replace("right: {system: erp, entity: project}\n",
                                                               "right: {system: erp}\n")
    assert problems(text) == [
        "pack.yaml:1:1: key_name: required field is missing",
        "pack.yaml:4:8: right.entity: required field is missing",
    ]


@pytest.mark.parametrize("where", ["name", "system", "entity", "key_name", "field", "key_field", "filter_field"])
def test_hostile_identifiers_are_rejected_at_load(where: str) -> None:
    text = {
        "name": GOOD.replace("name: projects", f"name: \"{HOSTILE}\""),
        "system": GOOD.replace("system: psa", f"system: \"{HOSTILE}\""),
        "entity": GOOD.replace("entity: project}\nright", f"entity: \"{HOSTILE}\"}}\nright"),
        "key_name": GOOD.replace("key_name: project_id", f"key_name: \"{HOSTILE}\""),
        "field": GOOD.replace("field: budget", f"field: \"{HOSTILE}\""),
        "key_field": GOOD.replace("entity: project}\nright", f"entity: project, key_field: \"{HOSTILE}\"}}\nright"),
        "filter_field": GOOD + f"  - field: status\n    value_map: {{a: b}}\n    right_field: \"{HOSTILE}\"\n",
    }[where]
    (problem,) = problems(text)
    assert problem.startswith("pack.yaml:") and "is not allowed" in problem
    assert HOSTILE.replace("'", "\\'") in problem or HOSTILE in problem


def test_hostile_values_are_just_values() -> None:
    filtered = f"left:\n  system: psa\n  entity: project\n  filter:\n    - {{field: name, value: \"{HOSTILE}\"}}"
    text = GOOD.replace("left: {system: psa, entity: project}", filtered)
    (rule,) = load_text(text)
    assert rule.rule.left.filter[0].value == HOSTILE


def test_unknown_kind_and_non_mapping_rules() -> None:
    assert problems(GOOD.replace("kind: reconcile", "kind: reconsile")) == [
        "pack.yaml:1:1: rule: kind must be one of reconcile, aggregate, workflow, kpi"]
    assert problems("- 17\n") == ["pack.yaml:1:3: a rule must be a mapping (name: ..., kind: ..., ...)"]


def test_invalid_yaml_names_the_position() -> None:
    (problem,) = problems("name: a\nkind: [reconcile\n")
    assert problem.startswith("pack.yaml:3:1: not valid YAML")


def test_every_problem_of_a_pack_is_reported_together(tmp_path: Path) -> None:
    (tmp_path / "packs" / "a").mkdir(parents=True)
    (tmp_path / "packs" / "a" / "one.yaml").write_text(GOOD.replace("severity", "x") + "severty: high\n")
    (tmp_path / "packs" / "two.yml").write_text(GOOD.replace("system: erp", "system: ERP"))
    (tmp_path / "packs" / "three.yaml").write_text(GOOD)  # same name as one.yaml
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "ignored.yaml").write_text("not: a rule\n")
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    one, two = (str(tmp_path / "packs" / p) for p in ("a/one.yaml", "two.yml"))
    assert info.value.problems == [
        f"{one}:10:1: severty: unknown field 'severty' (did you mean 'severity'?)",
        f"{two}:5:17: right.system: 'ERP' is not allowed: use lowercase letters, digits and _ (at most 64), "
        "starting with a letter",
    ]  # one.yaml and two.yml did not load, so three.yaml duplicates nothing
    assert str(info.value).startswith("2 problems in the rules:")


def test_duplicate_rule_names_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    assert info.value.problems == [f"{tmp_path / 'b.yaml'}:1:1: name: rule 'projects' is already defined at "
                                   f"{tmp_path / 'a.yaml'}:1"]


AGGREGATE = """\
- name: leak
  kind: aggregate
  key_name: project_id
  left: {system: psa, entity: timesheet, period_field: week_start, measure: {op: count}}
  right: {system: erp, entity: invoice, period_field: period, measure: {op: avg, field: amount}}
"""


def test_a_list_of_rules_in_one_file_and_aggregate_checks() -> None:
    assert [r.name for r in load_text(AGGREGATE)] == ["leak"]
    broken = AGGREGATE.replace("{op: count}", "{op: count, field: hours}").replace(", field: amount", "")
    assert problems(broken) == [
        "pack.yaml:4:96: left.measure.field: count takes no field",
        "pack.yaml:5:72: right.measure.field: avg needs a field",
    ]
    assert problems(AGGREGATE + "  tolerance: {days: 1}\n") == [
        "pack.yaml:6:21: tolerance.days: does not apply to type decimal (allowed: absolute, relative)"]
    # checks across fields run once the fields themselves are valid
    assert problems(AGGREGATE.replace("key_name: project_id", "key_name: period")) == [
        "pack.yaml:3:13: key_name: 'period' is the period key of an aggregate finding: choose another name"]
