"""The event-type registry: the shipped rules load, validate data, extract keys; bad files are named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest
from fastjsonschema.draft07 import CodeGeneratorDraft07
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.event_registry import EventRegistry, KeyMappingError, RegistryError, TypeMapping
from collector.event_types import all_date_times

RULES = Path(__file__).resolve().parents[2] / "rules"
VOCABULARY = {
    "crm.opportunity.won", "crm.account.created", "erp.customer.created", "psa.project.created",
    "psa.project.staffed", "psa.assignment.created", "time.entry.submitted", "psa.timesheet.approved",
    "billing.invoice.created", "erp.invoice.posted", "hris.cost_rate.changed", "integration.sync.failed",
}


@pytest.fixture(scope="module")
def registry() -> EventRegistry:
    return EventRegistry.load(RULES)


def write_rules(root: Path, schemas: dict[str, object], mappings: dict[str, str]) -> Path:
    (root / "schemas").mkdir(parents=True)
    (root / "mappings").mkdir()
    for name, schema in schemas.items():
        text = schema if isinstance(schema, str) else json.dumps(schema)
        (root / "schemas" / name).write_text(text)
    for name, text in mappings.items():
        (root / "mappings" / name).write_text(text)
    return root


def test_shipped_vocabulary_has_schema_and_mapping_for_every_type(registry: EventRegistry) -> None:
    assert set(registry.types) >= VOCABULARY
    assert registry.validators.keys() >= VOCABULARY
    assert registry.mappings.keys() >= VOCABULARY


def test_valid_timesheet_passes_and_yields_keys_and_dimensions(registry: EventRegistry) -> None:
    data = {"timesheet_id": "TS-9", "person_id": "E-1", "project_id": "P-17", "period_start": "2024-04-29",
            "period_end": "2024-05-05", "hours": 38.5, "approved_at": "2024-05-06T09:00:00Z",
            "entry_ids": ["T-1", "T-2", "T-1"], "region": "emea"}
    assert registry.validate("psa.timesheet.approved", data) is None
    assert registry.keys("psa.timesheet.approved", data) == {
        "timesheet_id": "TS-9", "project_id": "P-17", "person_id": "E-1",
        "time_entry_ids": '["T-1","T-2"]', "region": "emea",
    }


@pytest.mark.parametrize(("data", "reason"), [
    ({"invoice_id": "I-1", "client_id": "A", "amount": "100", "currency": "EUR", "issued_on": "2024-05-01",
      "lines": [{"amount": 1}]}, "data.amount must be number"),
    ({"invoice_id": "I-1", "client_id": "A", "amount": 100, "currency": "euro", "issued_on": "2024-05-01",
      "lines": [{"amount": 1}]}, "data.currency must match pattern"),
    ({"invoice_id": "I-1", "client_id": "A", "amount": 100, "currency": "EUR", "lines": [{"amount": 1}]},
     "must contain ['issued_on'] properties"),
    ({"invoice_id": "I-1", "client_id": "A", "amount": 100, "currency": "EUR", "issued_on": "1st May",
      "lines": [{"amount": 1}]}, "data.issued_on must be date"),
    ([1, 2], "data must be object"),
])
def test_schema_violations_are_reported(registry: EventRegistry, data: object, reason: str) -> None:
    assert reason in (registry.validate("billing.invoice.created", data) or "")


def test_many_key_walks_array_elements_dedupes_and_skips_missing(registry: EventRegistry) -> None:
    data = {"invoice_id": "I-1", "client_id": "A-1", "lines": [
        {"timesheet_id": "TS-1"}, {"timesheet_id": "TS-2"}, {"amount": 3}, {"timesheet_id": "TS-1"}]}
    keys = registry.keys("billing.invoice.created", data)
    assert keys["timesheet_ids"] == '["TS-1","TS-2"]'
    assert "project_id" not in keys  # absent -> left out, not ""


def test_many_key_is_left_out_when_empty(registry: EventRegistry) -> None:
    assert "timesheet_ids" not in registry.keys("billing.invoice.created", {"invoice_id": "I", "lines": []})


def test_scalar_key_texts() -> None:
    reg = EventRegistry.from_parts({}, {"a.b": TypeMapping({"n": "data.n", "f": "data.f", "t": "data.t",
                                                            "z": "data.z", "deep": "data.x.y"}, {})})
    assert reg.keys("a.b", {"n": 17, "f": 2.5, "t": True, "z": None, "x": {"y": "v"}}) == {
        "n": "17", "f": "2.5", "t": "true", "deep": "v"}


def test_object_where_a_key_should_be_raises_key_mapping_error() -> None:
    reg = EventRegistry.from_parts({}, {"a.b": TypeMapping({"project_id": "data.project"}, {})})
    with pytest.raises(KeyMappingError, match="project_id"):
        reg.keys("a.b", {"project": {"id": "P-1"}})


def test_unknown_type_is_accepted_without_keys(registry: EventRegistry) -> None:
    assert not registry.needs_data("acme.custom.thing")
    assert registry.validate("acme.custom.thing", {"x": 1}) is None
    assert registry.keys("acme.custom.thing", {"x": 1}) == {}


def test_load_collects_every_problem_naming_file_and_field(tmp_path: Path) -> None:
    root = write_rules(tmp_path, {
        "psa.project.created.json": {"type": "object", "properties": {"project_id": {"type": "string"}}},
        "bad name.json": {"type": "object"},
        "x.broken.json": "{not json",
        "x.badtype.json": {"type": "objekt"},
        "x.draft.json": {"$schema": "https://json-schema.org/draft/2020-12/schema"},
        "x.remote.json": {"$ref": "https://example.com/schema.json"},
    }, {
        "psa.yaml": "psa.project.created:\n  keys:\n    project_id: data.projet_id\n  dimension:\n    r: data.r\n",
        "zz.yaml": "psa.project.created:\n  keys: {}\nBad.Type:\n  keys:\n    Client: data.c\n"
                     "x.paths:\n  keys:\n    a: date.a\n    b: data.b\n  dimensions:\n    b: data.c\n",
        "broken.yaml": "a.b: [unclosed\n",
    })
    with pytest.raises(RegistryError) as info:
        EventRegistry.load(root)
    text = "\n".join(info.value.problems)
    assert "bad name.json: file name must be the event type" in text
    assert "x.broken.json: not valid JSON" in text
    assert "x.badtype.json: invalid JSON Schema" in text
    assert "x.draft.json: $schema" in text
    assert "x.remote.json" in text and "remote $ref" in text
    assert "psa.yaml:4: psa.project.created.dimension: unknown field" in text
    assert "zz.yaml:1: psa.project.created: already mapped in" in text
    assert "zz.yaml:3: Bad.Type: not an event type" in text
    assert "zz.yaml:5: Bad.Type.keys.Client: name must be lowercase" in text
    assert "zz.yaml:8: x.paths.keys.a: path 'date.a' must be a dotted path into data" in text
    assert "zz.yaml:11: x.paths.dimensions.b: already a key" in text
    assert "broken.yaml:2:1: not valid YAML" in text


def test_mapped_path_must_be_a_schema_property(tmp_path: Path) -> None:
    root = write_rules(tmp_path, {
        "psa.project.created.json": {"type": "object", "properties": {
            "project_id": {"type": "string"},
            "lines": {"type": "array", "items": {"type": "object", "properties": {"ts": {"type": "string"}}}}}},
    }, {"psa.yaml": "psa.project.created:\n  keys:\n    project_id: data.projet_id\n"
                    "    ts: data.lines[].ts\n    bad: data.lines[].tss\n"})
    with pytest.raises(RegistryError) as info:
        EventRegistry.load(root)
    assert info.value.problems == [
        "mapping psa.project.created.project_id: path 'data.projet_id': 'projet_id' is not a property in "
        "schemas/psa.project.created.json",
        "mapping psa.project.created.bad: path 'data.lines[].tss': 'tss' is not a property in "
        "schemas/psa.project.created.json",
    ]


def test_from_parts_validates_mappings() -> None:
    with pytest.raises(RegistryError, match="must be a dotted path into data"):
        EventRegistry.from_parts({}, {"a.b": TypeMapping({"x": "id"}, {})})


def test_schema_validation_does_not_fill_defaults(tmp_path: Path) -> None:
    root = write_rules(tmp_path, {"a.b.json": {"type": "object", "properties": {"x": {"default": 1}}}}, {})
    data: dict = {}
    assert EventRegistry.load(root).validate("a.b", data) is None
    assert data == {}


def test_missing_folders_give_an_empty_registry(tmp_path: Path) -> None:
    assert EventRegistry.load(tmp_path).types == []


# --- the msgspec fast path must never accept what the schema refuses, nor change keys -------------------------

EXAMPLES: dict[str, dict] = {
    "crm.account.created": {"account_id": "A-1", "name": "Acme", "country": "DE", "region": "emea",
                            "created_at": "2024-05-01T10:00:00Z"},
    "crm.opportunity.won": {"opportunity_id": "O-1", "account_id": "A-1", "amount": 250000, "currency": "EUR",
                            "won_at": "2024-05-01T10:00:00+02:00", "expected_start": "2024-06-01",
                            "billing_type": "fixed_price", "service_line": "cloud"},
    "erp.customer.created": {"customer_id": "C-1", "crm_account_id": "A-1", "name": "Acme", "currency": "EUR",
                             "payment_terms_days": 30},
    "psa.project.created": {"project_id": "P-1", "client_id": "A-1", "name": "Apollo", "currency": "EUR",
                            "budget_amount": 1.5e5, "start_date": "2024-06-01", "billing_type": "retainer"},
    "psa.project.staffed": {"project_id": "P-1", "staffed_at": "2024-06-01T08:00:00Z", "assignment_ids": ["S-1"],
                            "headcount": 1},
    "psa.assignment.created": {"assignment_id": "S-1", "project_id": "P-1", "person_id": "E-1",
                               "start_date": "2024-06-01", "allocation_percent": 50, "rate_unit": "hour"},
    "time.entry.submitted": {"entry_id": "T-1", "person_id": "E-1", "project_id": "P-1", "work_date": "2024-06-03",
                             "hours": 7.5, "billable": True},
    "psa.timesheet.approved": {"timesheet_id": "TS-1", "person_id": "E-1", "project_id": "P-1",
                               "period_start": "2024-06-03", "period_end": "2024-06-09", "hours": 40,
                               "approved_at": "2024-06-10T09:00:00Z", "entry_ids": ["T-1"]},
    "billing.invoice.created": {"invoice_id": "I-1", "client_id": "A-1", "amount": 100, "currency": "EUR",
                                "issued_on": "2024-06-30", "lines": [{"timesheet_id": "TS-1", "amount": 100}]},
    "erp.invoice.posted": {"invoice_id": "I-1", "erp_document_id": "D-1", "customer_id": "C-1", "amount": 100,
                           "currency": "EUR", "posted_at": "2024-07-01T00:00:00Z", "period": "2024-07"},
    "hris.cost_rate.changed": {"person_id": "E-1", "cost_rate": 80, "currency": "EUR", "effective_from": "2024-01-01",
                               "unit": "hour"},
    "integration.sync.failed": {"integration": "crm-to-psa", "source_system": "crm", "target_system": "psa",
                                "object_type": "opportunity", "object_id": "O-1", "error_code": "E42",
                                "failed_at": "2024-06-01T00:00:00Z", "attempt": 1, "retryable": False},
}

_TRICKY = st.sampled_from([
    "", "x", "EUR", "EUR\n", "eur", "2024-02-29", "2023-02-29", "0000-01-01", "2024-06-01 ",
    "\uff11\uff12\uff13\uff14-05-01",  # fullwidth digits: \d matches them, a date must not
    "2024-06-01T08:00:00Z", "2024-06-01 08:00:00Z", "2024-06-01T08:00:00", "2024-06-01T24:00:00Z", "2024-07",
    "2024-13", "hour", "fixed_price", "DE", "de", "a" * 129, 0, 1, -1, 1.5, -0.5, 24, 24.0001, 744, 100, 101, 1e300,
    2**64, True, False, None, [], ["a"], [1], [{"amount": 1}], [{"timesheet_id": 1, "amount": 1}], {}, {"a": 1},
])


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_fast_path_agrees_with_fastjsonschema(registry: EventRegistry, data: st.DataObject) -> None:
    event_type = data.draw(st.sampled_from(sorted(EXAMPLES)))
    doc = dict(EXAMPLES[event_type])
    names = [*sorted(registry.schemas[event_type]["properties"]), "extra"]
    for name in data.draw(st.lists(st.sampled_from(names), max_size=3)):
        if data.draw(st.booleans()):
            doc[name] = data.draw(_TRICKY)
        else:
            doc.pop(name, None)
    text = json.dumps(doc).encode()
    parsed = json.loads(text)
    verdict = registry.validate(event_type, parsed)
    try:
        registry._typed[event_type].decode([text])
    except msgspec.ValidationError:
        pass
    else:
        assert verdict is None, f"fast path accepted what the schema refuses: {verdict}"
    reason, keys = verdict, {}
    if verdict is None:
        try:
            keys = registry.keys(event_type, parsed)
        except KeyMappingError as exc:
            reason = f"business keys: {exc}"
    example = json.dumps(EXAMPLES[event_type]).encode()
    for docs, i in (([text], 0), ([example, text, example], 1)):  # alone, and in a batch with valid ones
        verdicts = registry.check_batch(event_type, docs)
        assert verdicts.reasons == ({i: reason} if reason is not None else {})
        assert list(zip(verdicts.key_names[i], verdicts.key_texts[i], strict=True)) == list(keys.items())
        if i:
            expected = list(registry.keys(event_type, EXAMPLES[event_type]).items())
            assert list(zip(verdicts.key_names[0], verdicts.key_texts[0], strict=True)) == expected


DATE_TIME = re.compile(CodeGeneratorDraft07.FORMAT_REGEXS["date-time"])
_NEAR_DATE_TIMES = st.one_of(
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt _][0-9]{1,2}:[0-9]{2}(:[0-9]{2})?(\.[0-9]{0,12})?"
                  r"([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?\Z"),
    st.text(alphabet="0123456789-:.TtZz+ \n\uff11", max_size=32),
)


@given(st.lists(_NEAR_DATE_TIMES, min_size=1, max_size=4))
@settings(max_examples=2000, deadline=None)
def test_the_date_time_check_takes_only_what_the_format_regex_takes(values: list[str]) -> None:
    """The typed path's column check for `format: date-time` must never be more lenient than the schema."""
    if all_date_times(values):
        assert all(DATE_TIME.match(v) for v in values), values


@pytest.mark.parametrize("value", ["2024-06-01T08:00:00Z", "2024-06-01t08:00:00z",
                                   "2024-02-29T23:59:59.123456789+05:30", "2000-02-29T00:00:00-0800",
                                   "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_the_date_time_check_takes_common_date_times(value: str) -> None:
    assert DATE_TIME.match(value)
    assert all_date_times([value, "2024-06-01T08:00:00Z"])


@pytest.mark.parametrize("value", ["2024-06-01 08:00:00Z", "2024-06-01T08:00:00", "2024-06-01T08:00:00+01",
                                   "2023-02-29T00:00:00Z", "2024-06-01T24:00:00Z", "2024-06-01", "",
                                   "2024-06-01T08:00:60Z", "0000-01-01T00:00:00Z"])  # the last two: the slow path's
def test_the_date_time_check_refuses_the_rest(value: str) -> None:
    assert not all_date_times(["2024-06-01T08:00:00Z", value])


def test_a_date_time_the_check_leaves_to_the_slow_path_is_judged_by_the_schema(registry: EventRegistry) -> None:
    ok = {"timesheet_id": "TS-1", "person_id": "E-1", "project_id": "P-1", "period_start": "2024-06-03",
          "period_end": "2024-06-09", "hours": 40, "approved_at": "2024-06-10T09:00:00Z"}
    docs = [json.dumps({**ok, "approved_at": at}).encode() for at in ("2016-12-31T23:59:60Z", "2024-06-10T09:00:00Z")]
    assert registry.check_batch("psa.timesheet.approved", docs).reasons == {}  # a leap second is valid


def test_check_batch_gives_the_keys_and_reasons_of_each_item(registry: EventRegistry) -> None:
    ok = {"timesheet_id": "TS-1", "person_id": "E-1", "project_id": "P-1", "period_start": "2024-06-03",
          "period_end": "2024-06-09", "hours": 40, "approved_at": "2024-06-10T09:00:00Z"}
    docs = [json.dumps(d).encode() for d in (ok, {**ok, "hours": "seven"}, {**ok, "entry_ids": ["T-1", "T-1"]},
                                             {**ok, "approved_at": "2024-06-10 09:00:00Z"})]
    verdicts = registry.check_batch("psa.timesheet.approved", docs)
    assert verdicts.reasons == {1: "data.hours must be number", 3: "data.approved_at must be date-time"}
    assert dict(zip(verdicts.key_names[2], verdicts.key_texts[2], strict=True)) == {
        "timesheet_id": "TS-1", "project_id": "P-1", "person_id": "E-1", "time_entry_ids": '["T-1"]'}
    assert verdicts.key_names[1] == verdicts.key_texts[1] == ()


def test_every_shipped_schema_has_a_fast_path_and_its_example_is_valid(registry: EventRegistry) -> None:
    assert set(EXAMPLES) == VOCABULARY
    for event_type, example in EXAMPLES.items():
        assert registry.validate(event_type, example) is None, event_type
        assert event_type in registry._typed, event_type
        registry._typed[event_type].decode([json.dumps(example).encode()])


def test_typed_path_reads_members_python_cannot_name_and_checks_patterns() -> None:
    schema = {"type": "object", "required": ["foo-bar"], "properties": {
        "foo-bar": {"type": "string", "pattern": "^[A-Z]+$"}, "class": {"type": "integer"}, "_x": {"type": "string"},
        "nested": {"type": "object", "properties": {"id": {"type": "string", "pattern": "^N"}}}}}
    mapping = TypeMapping({"foo": "data.foo-bar", "cls": "data.class", "x": "data._x", "n": "data.nested.id"}, {})
    reg = EventRegistry.from_parts({"a.b": schema}, {"a.b": mapping})
    assert "a.b" in reg._typed
    good = {"foo-bar": "AB", "class": 3, "_x": "y", "nested": {"id": "N1"}}
    docs = [json.dumps(d).encode() for d in (good, {"foo-bar": "ab"}, {"foo-bar": "C", "nested": {"id": "x"}})]
    for batch in (docs[:1], docs):  # all valid (typed), and with invalid ones (item by item)
        verdicts = reg.check_batch("a.b", batch)
        assert dict(zip(verdicts.key_names[0], verdicts.key_texts[0], strict=True)) == reg.keys("a.b", good) == {
            "foo": "AB", "cls": "3", "x": "y", "n": "N1"}
    assert verdicts.reasons == {1: "data.foo-bar must match pattern ^[A-Z]+$",
                                2: "data.nested.id must match pattern ^N"}
