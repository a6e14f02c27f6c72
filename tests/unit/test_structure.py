"""The table-driven R4 structure validator: official examples, Synthea, hand-written bad resources,
and agreement with the official R4 JSON schema."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from functools import cache
from typing import Any

import jsonschema
import pytest

from fhir_server.errors import Issue
from fhir_server.fhir import jsonio
from fhir_server.fhir.structure import RESOURCE_TYPES, validate
from tests.shared_data import examples, shared_dir, synthea_bundles

needs_examples = pytest.mark.skipif(
    not examples(), reason=f"official examples not found in {shared_dir() / 'fhir-r4-examples'}"
)
needs_synthea = pytest.mark.skipif(
    not synthea_bundles(), reason=f"Synthea bundles not found in {shared_dir() / 'synthea'}"
)
SCHEMA_PATH = shared_dir() / "fhir-r4" / "fhir.schema.json"
needs_schema = pytest.mark.skipif(not SCHEMA_PATH.is_file(), reason=f"{SCHEMA_PATH} not found")


def _fmt(issues: list[Issue]) -> list[str]:
    return [f"{i.code} {','.join(i.expression)}: {i.diagnostics}" for i in issues]


def test_resource_types() -> None:
    assert len(RESOURCE_TYPES) == 146
    assert {"Patient", "Observation", "Bundle", "Parameters", "Questionnaire"} <= RESOURCE_TYPES
    assert not {"Resource", "DomainResource", "BackboneElement", "HumanName"} & RESOURCE_TYPES


# -- official examples and Synthea --------------------------------------------------------------


@needs_examples
def test_official_examples_count() -> None:
    assert len(examples()) == 199


@needs_examples
@pytest.mark.parametrize("name", [n for n, _ in examples()] or ["none"])
def test_official_example_is_valid(name: str) -> None:
    resource = dict(examples())[name]
    assert _fmt(validate(resource)) == []
    assert validate(resource, resource["resourceType"]) == []


@needs_synthea
def test_synthea_resources_are_valid() -> None:
    failures: list[str] = []
    count = 0
    for name, bundle in synthea_bundles():
        assert validate(bundle) == [], name
        for i, entry in enumerate(bundle["entry"]):
            count += 1
            issues = validate(entry["resource"], entry["resource"]["resourceType"])
            failures += [f"{name} entry[{i}] {m}" for m in _fmt(issues)]
    assert count > 19000
    assert failures == []


# -- hand-written bad resources -------------------------------------------------------------------

XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">{}</div>'
OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "Hb"}}


def _obs(**extra: Any) -> dict[str, Any]:
    return {**OBS, **extra}


def _pat(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **extra}


BAD: list[tuple[str, Any, str, str]] = [
    # (case id, resource, expected code, expected expression)
    ("unknown element", _pat(nmae=[{"family": "X"}]), "structure", "Patient.nmae"),
    ("unknown nested element", _pat(name=[{"famly": "X"}]), "structure", "Patient.name[0].famly"),
    ("string for boolean", _pat(active="true"), "value", "Patient.active"),
    ("boolean as number", _pat(active=1), "value", "Patient.active"),
    ("number for string", _pat(gender=1), "value", "Patient.gender"),
    ("object for primitive", _pat(birthDate={"value": "2000"}), "value", "Patient.birthDate"),
    ("primitive for complex", _pat(maritalStatus="M"), "structure", "Patient.maritalStatus"),
    ("bad date 2023-02-30", _pat(birthDate="2023-02-30"), "value", "Patient.birthDate"),
    ("bad date 2023-02-29", _pat(birthDate="2023-02-29"), "value", "Patient.birthDate"),
    ("date pattern", _pat(birthDate="23-01-01"), "value", "Patient.birthDate"),
    ("dateTime with time, no tz", _pat(deceasedDateTime="2020-01-01T10:00:00"), "value",
     "Patient.deceasedDateTime"),
    ("dateTime bad calendar", _pat(deceasedDateTime="2021-04-31T10:00:00Z"), "value",
     "Patient.deceasedDateTime"),
    ("instant without tz", _obs(issued="2020-01-01T10:00:00"), "value", "Observation.issued"),
    ("instant date only", _obs(issued="2020-01-01"), "value", "Observation.issued"),
    ("bad time", _obs(valueTime="25:00:00"), "value", "Observation.valueTime"),
    ("bad id", _pat(id="a b"), "value", "Patient.id"),
    ("id too long", _pat(id="x" * 65), "value", "Patient.id"),
    ("bad code", _pat(gender="ma le "), "value", "Patient.gender"),
    ("bad uri with space", _pat(implicitRules="a b"), "value", "Patient.implicitRules"),
    ("decimal as string", _obs(valueQuantity={"value": "1.5"}), "value",
     "Observation.valueQuantity.value"),
    ("decimal as boolean", _obs(valueQuantity={"value": True}), "value",
     "Observation.valueQuantity.value"),
    ("two value[x]", _obs(valueString="a", valueBoolean=True), "structure",
     "Observation.valueBoolean"),
    ("choice type not allowed", _obs(valueUri="http://x"), "structure", "Observation.valueUri"),
    ("array for max-1", _pat(gender=["male"]), "structure", "Patient.gender"),
    ("array for max-1 complex", _pat(maritalStatus=[{"text": "M"}]), "structure",
     "Patient.maritalStatus"),
    ("non-array for repeating", _pat(name={"family": "X"}), "structure", "Patient.name"),
    ("non-array primitive for repeating", _pat(name=[{"given": "Peter"}]), "structure",
     "Patient.name[0].given"),
    ("missing Observation.status", {"resourceType": "Observation", "code": {"text": "x"}},
     "required", "Observation.status"),
    ("missing Observation.code", {"resourceType": "Observation", "status": "final"}, "required",
     "Observation.code"),
    ("missing Bundle.type", {"resourceType": "Bundle"}, "required", "Bundle.type"),
    ("missing Extension.url", _pat(extension=[{"valueString": "x"}]), "required",
     "Patient.extension[0].url"),
    ("missing backbone required", _pat(link=[{"type": "seealso"}]), "required",
     "Patient.link[0].other"),
    ("empty object", _pat(maritalStatus={}), "structure", "Patient.maritalStatus"),
    ("empty object in array", _pat(name=[{}]), "structure", "Patient.name[0]"),
    ("empty array", _pat(identifier=[]), "structure", "Patient.identifier"),
    ("null", _pat(gender=None), "structure", "Patient.gender"),
    ("null complex", _pat(maritalStatus=None), "structure", "Patient.maritalStatus"),
    ("null in array without _", _pat(name=[{"given": ["a", None]}]), "structure",
     "Patient.name[0].given[1]"),
    ("empty string", _pat(gender=""), "value", "Patient.gender"),
    ("empty string in array", _pat(name=[{"given": ["a", ""]}]), "value",
     "Patient.name[0].given[1]"),
    ("whitespace-only string", _pat(name=[{"family": "   "}]), "value", "Patient.name[0].family"),
    ("_given wrong length",
     _pat(name=[{"given": ["a", "b"], "_given": [None, {"id": "x"}, None]}]), "structure",
     "Patient.name[0].given"),
    ("_given item not an object", _pat(name=[{"given": ["a"], "_given": ["x"]}]), "structure",
     "Patient.name[0].given[0]"),
    ("_given not an array", _pat(name=[{"given": ["a"], "_given": {"id": "x"}}]), "structure",
     "Patient.name[0].given"),
    ("_given item with unknown property",
     _pat(name=[{"given": ["a"], "_given": [{"value": "a"}]}]), "structure",
     "Patient.name[0].given[0].value"),
    ("_birthDate with bad extension", _pat(birthDate="2000", _birthDate={"extension": [{}]}),
     "structure", "Patient.birthDate.extension[0]"),
    ("_ for complex element", _pat(_maritalStatus={"id": "x"}), "structure",
     "Patient._maritalStatus"),
    ("unknown resourceType", {"resourceType": "Patiënt"}, "structure", "Resource"),
    ("abstract resourceType", {"resourceType": "DomainResource"}, "structure", "Resource"),
    ("missing resourceType", {"id": "x"}, "required", "Resource"),
    ("resourceType in datatype", _pat(meta={"resourceType": "Meta", "versionId": "1"}),
     "structure", "Patient.meta.resourceType"),
    ("contained with bad content",
     _pat(contained=[{"resourceType": "Organization", "id": "o", "active": "yes"}]), "value",
     "Patient.contained[0].ofType(Organization).active"),
    ("contained with unknown type", _pat(contained=[{"resourceType": "Nope"}]), "structure",
     "Patient.contained[0]"),
    ("Bundle entry resource with bad content",
     {"resourceType": "Bundle", "type": "collection", "entry": [
         {"resource": {"resourceType": "Patient"}},
         {"resource": {"resourceType": "Patient"}},
         {"resource": {"resourceType": "Patient", "birthDate": "2023-02-30"}}]},
     "value", "Bundle.entry[2].resource.ofType(Patient).birthDate"),
    ("Bundle entry resource not an object",
     {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": "Patient/1"}]},
     "structure", "Bundle.entry[0].resource"),
    ("Parameters resource with bad content",
     {"resourceType": "Parameters", "parameter": [
         {"name": "p", "resource": {"resourceType": "Observation", "code": {"text": "x"}}}]},
     "required", "Parameters.parameter[0].resource.ofType(Observation).status"),
    ("Questionnaire nested item (contentReference)",
     {"resourceType": "Questionnaire", "status": "draft",
      "item": [{"linkId": "1", "type": "group",
                "item": [{"linkId": "1.1", "type": "string", "typ": "string"}]}]},
     "structure", "Questionnaire.item[0].item[0].typ"),
    ("xhtml not well-formed", _pat(text={"status": "generated", "div": XHTML.format("<p>x")}),
     "value", "Patient.text.div"),
    ("xhtml without namespace", _pat(text={"status": "generated", "div": "<div>x</div>"}),
     "value", "Patient.text.div"),
    ("xhtml not a div", _pat(text={"status": "generated",
                                   "div": '<p xmlns="http://www.w3.org/1999/xhtml">x</p>'}),
     "value", "Patient.text.div"),
    ("xhtml with DOCTYPE", _pat(text={"status": "generated", "div": (
        '<!DOCTYPE d [<!ENTITY a "aaaa">]>' + XHTML.format("&a;"))}),
     "value", "Patient.text.div"),
    ("narrative without status", _pat(text={"div": XHTML.format("x")}), "required",
     "Patient.text.status"),
    ("integer out of range", _pat(multipleBirthInteger=2**31), "value",
     "Patient.multipleBirthInteger"),
    ("integer below range", _pat(multipleBirthInteger=-(2**31) - 1), "value",
     "Patient.multipleBirthInteger"),
    ("integer as decimal", _pat(multipleBirthInteger=Decimal("2.0")), "value",
     "Patient.multipleBirthInteger"),
    ("integer as string", _pat(multipleBirthInteger="2"), "value",
     "Patient.multipleBirthInteger"),
    ("positiveInt zero", _pat(telecom=[{"value": "1", "rank": 0}]), "value",
     "Patient.telecom[0].rank"),
    ("unsignedInt negative", {"resourceType": "ImmunizationRecommendation", "patient": {
        "reference": "Patient/1"}, "date": "2020", "recommendation": [{
            "forecastStatus": {"text": "due"}, "vaccineCode": [{"text": "x"}],
            "doseNumberPositiveInt": 1, "seriesDosesPositiveInt": -1}]}, "value",
     "ImmunizationRecommendation.recommendation[0].seriesDosesPositiveInt"),
    ("extension with value and extensions",
     _pat(extension=[{"url": "http://x", "valueString": "a",
                      "extension": [{"url": "b", "valueCode": "c"}]}]),
     "invalid", "Patient.extension[0]"),
    ("extension with two values",
     _pat(extension=[{"url": "http://x", "valueString": "a", "valueCode": "c"}]),
     "structure", "Patient.extension[0].valueCode"),
]


@pytest.mark.parametrize(("resource", "code", "expression"),
                         [pytest.param(r, c, e, id=i) for i, r, c, e in BAD])
def test_bad_resource(resource: Any, code: str, expression: str) -> None:
    issues = validate(resource)
    assert issues, "expected an issue"
    assert all(i.severity == "error" and i.diagnostics for i in issues)
    found = [(i.code, i.expression) for i in issues]
    assert (code, (expression,)) in found, _fmt(issues)


def test_bad_resources_have_exactly_one_issue() -> None:
    # each hand-written case breaks one rule; more issues would mean noise or double reporting
    noisy = {i: _fmt(validate(r)) for i, r, _, _ in BAD if len(validate(r)) != 1}
    assert noisy == {}


def test_unknown_element_hint() -> None:
    (issue,) = validate(_pat(nmae=[{"family": "X"}]))
    assert "did you mean 'name'" in issue.diagnostics


def test_expected_type() -> None:
    assert validate(_pat(), "Patient") == []
    (issue,) = validate(_pat(), "Observation")
    assert issue.code == "invalid" and "Observation" in issue.diagnostics


@pytest.mark.parametrize("body", [[], "x", None, 1], ids=["array", "string", "null", "number"])
def test_not_an_object(body: Any) -> None:
    (issue,) = validate(body)
    assert issue.code == "structure"


GOOD: list[tuple[str, Any]] = [
    ("minimal Patient", _pat()),
    ("leap day", _pat(birthDate="2024-02-29")),
    ("year only / year-month", _pat(birthDate="2024", deceasedDateTime="2024-02")),
    ("dateTime with offset", _pat(deceasedDateTime="2024-02-29T23:59:60.123+14:00")),
    ("extension-only primitive", _pat(_birthDate={"extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
         "valueCode": "unknown"}]})),
    ("required element given only as _status", {
        "resourceType": "Observation", "code": {"text": "x"}, "_status": {"extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
             "valueCode": "unknown"}]}}),
    ("_given with nulls", _pat(name=[{"given": ["a", None, "c"],
                                      "_given": [None, {"id": "g2"}, None]}])),
    ("decimal int and Decimal", _obs(valueQuantity={"value": 1}, referenceRange=[
        {"low": {"value": Decimal("1.50")}, "high": {"value": Decimal("1E+3")}}])),
    ("integer limits", _pat(multipleBirthInteger=2**31 - 1)),
    ("html entity in narrative", _pat(text={"status": "generated",
                                            "div": XHTML.format("a&nbsp;b &amp; c")})),
    ("nested extensions", _pat(extension=[{"url": "http://x", "extension": [
        {"url": "a", "valueString": "x"}, {"url": "b", "valueQuantity": {"value": 1}}]}])),
    ("modifierExtension in backbone", _pat(contact=[{"modifierExtension": [
        {"url": "http://x", "valueBoolean": True}], "name": {"text": "x"}}])),
    ("deep Questionnaire items", {"resourceType": "Questionnaire", "status": "draft", "item": [
        {"linkId": "1", "type": "group", "item": [
            {"linkId": "1.1", "type": "group", "item": [
                {"linkId": "1.1.1", "type": "string"}]}]}]}),
    ("element ids", _pat(name=[{"id": "n1", "family": "X", "extension": [
        {"id": "e1", "url": "http://x", "valueString": "y"}]}])),
    ("resource in Parameters", {"resourceType": "Parameters", "parameter": [
        {"name": "p", "resource": {"resourceType": "Patient", "id": "p1"}},
        {"name": "q", "part": [{"name": "r", "valueString": "s"}]}]}),
]


@pytest.mark.parametrize("resource", [pytest.param(r, id=i) for i, r in GOOD])
def test_good_resource(resource: Any) -> None:
    assert _fmt(validate(resource)) == []


def test_collects_many_issues_and_caps_them() -> None:
    many = _pat(**{f"bad{i}": 1 for i in range(150)})
    issues = validate(many)
    assert len(issues) == 100
    two = validate(_pat(active="x", gender=1))
    assert [i.expression for i in two] == [("Patient.active",), ("Patient.gender",)]


def test_input_not_mutated() -> None:
    resource = _pat(name=[{"given": ["a", None], "_given": [None, {"id": "x"}]}], foo=1)
    before = copy.deepcopy(resource)
    validate(resource)
    assert resource == before


def test_jsonio_decimals_are_accepted() -> None:
    body = b'{"resourceType":"Observation","status":"final","code":{"text":"x"},' \
           b'"valueQuantity":{"value":1.10}}'
    resource = jsonio.loads(body)
    assert isinstance(resource["valueQuantity"]["value"], Decimal)
    assert validate(resource) == []


# -- agreement with the official R4 JSON schema ----------------------------------------------------


@cache
def _schema_definitions() -> dict[str, Any]:
    defs: dict[str, Any] = json.loads(SCHEMA_PATH.read_text("utf-8"))["definitions"]
    return defs


@cache
def _schema_validator(rtype: str) -> jsonschema.Draft6Validator:
    return jsonschema.Draft6Validator(
        {"$ref": f"#/definitions/{rtype}", "definitions": _schema_definitions()}
    )


def _floats(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


def _schema_ok(resource: dict[str, Any]) -> bool:
    return _schema_validator(resource["resourceType"]).is_valid(_floats(resource))


def _small_examples() -> list[tuple[str, Any]]:
    return [(n, r) for n, r in examples() if r["resourceType"] != "Bundle"]


@needs_schema
@needs_examples
@pytest.mark.slow
def test_schema_agrees_on_examples() -> None:
    disagree = [n for n, r in examples() if _schema_ok(r) != (validate(r) == [])]
    assert disagree == []


def _first_top_level(resource: dict[str, Any], kinds: tuple[type, ...]) -> str | None:
    for key, value in resource.items():
        if key not in ("resourceType", "id") and isinstance(value, kinds) and \
                not isinstance(value, bool):
            return key
    return None


def _mutations(resource: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """(what, mutated resource, expected valid) for mutations the JSON schema can detect."""
    out: list[tuple[str, dict[str, Any], bool]] = []
    out.append(("unknown property", {**resource, "fooBar": "x"}, False))
    out.append(("unknown nested property", {**resource, "meta": {"versionId": "1", "xyz": 1}},
                False))
    out.append(("bad id pattern", {**resource, "id": "bad id!"}, False))
    out.append(("id as number", {**resource, "id": 12}, False))
    out.append(("valid: no text", {k: v for k, v in resource.items() if k != "text"}, True))
    out.append(("valid: meta added", {**resource, "meta": {"versionId": "7"}}, True))
    key = _first_top_level(resource, (str,))
    if key is not None:
        out.append((f"{key} as boolean", {**resource, key: True}, False))
        out.append((f"{key} as object", {**resource, key: {"x": 1}}, False))
    for key in ("birthDate", "effectiveDateTime", "onsetDateTime", "authoredOn", "recordedDate",
                "occurrenceDateTime", "issued"):
        if key in resource:
            out.append((f"{key} pattern", {**resource, key: "2020-13-45"}, False))
    if "active" in resource:
        out.append(("active as string", {**resource, "active": "true"}, False))
    if isinstance(resource.get("identifier"), list):
        out.append(("identifier not array", {**resource, "identifier": resource["identifier"][0]},
                    False))
        bad = copy.deepcopy(resource["identifier"])
        bad[0]["system"] = "has space"
        out.append(("identifier.system pattern", {**resource, "identifier": bad}, False))
    return out


@needs_schema
@needs_examples
def test_schema_agrees_on_mutations() -> None:
    disagree: list[str] = []
    checked = 0
    for name, resource in _small_examples():
        for what, mutated, expect_valid in _mutations(resource):
            ours, theirs = validate(mutated) == [], _schema_ok(mutated)
            checked += 1
            if not (ours == theirs == expect_valid):
                disagree.append(f"{name} {what}: ours={ours} schema={theirs}")
    assert checked > 1000
    assert disagree == []
