"""The native FHIRPath subset: hand-written cases, and agreement with fhirpathpy on every official
example and a sample of Synthea resources for every search parameter of their type."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.models import models

from fhir_server.search.fhirpath import compile_path, fallbacks, reference_type
from fhir_server.search.params import registry
from tests.shared_data import examples, needs_shared, synthea_bundles

OBS: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
    "subject": {"reference": "Patient/p1"},
    "performer": [{"reference": "Practitioner/d1"}, {"reference": "http://x.org/fhir/Patient/p2"},
                  {"display": "nobody"}],
    "effectiveDateTime": "2020-01-02",
    "valueQuantity": {"value": Decimal("72.0"), "unit": "/min"},
    "extension": [{"url": "http://a", "valueString": "A"}, {"url": "http://b", "valueString": "B"}],
    "component": [
        {"code": {"text": "sys"}, "valueQuantity": {"value": Decimal("120")}},
        {"code": {"text": "dia"}, "valueCodeableConcept": {"text": "high"}},
    ],
}


@pytest.mark.parametrize(("expression", "expected"), [
    ("Observation.status", ["final"]),
    ("Observation.code.coding.code", ["8867-4"]),
    ("Observation.value as Quantity", [{"value": Decimal("72.0"), "unit": "/min"}]),
    ("(Observation.value as CodeableConcept)", []),
    ("Observation.value.as(Quantity).value", [Decimal("72.0")]),
    ("Observation.effective", ["2020-01-02"]),
    ("Observation.effective.ofType(dateTime) | Observation.status", ["2020-01-02", "final"]),
    ("Observation.component.value.ofType(Quantity).value", [Decimal("120")]),
    ("Observation.component.code.text", ["sys", "dia"]),
    ("Observation.performer.where(resolve() is Patient)",
     [{"reference": "http://x.org/fhir/Patient/p2"}]),
    ("Observation.subject.where(resolve() is Patient) | Observation.performer.where(resolve() is"
     " Practitioner)", [{"reference": "Patient/p1"}, {"reference": "Practitioner/d1"}]),
    ("Observation.extension('http://b').value", ["B"]),
    ("Observation.extension.where(url = 'http://a').value", ["A"]),
    ("Observation.component.code.first().text", ["sys"]),
    ("Observation.component.where(code.text.exists()).code.text", ["sys", "dia"]),
])
def test_native_cases(expression: str, expected: list[Any]) -> None:
    compiled = compile_path(expression)
    assert compiled.native, fallbacks().get(expression)
    assert compiled(OBS) == expected


def test_typed_values_and_relative_paths() -> None:
    assert compile_path("Observation.value").typed(OBS) == [
        ({"value": Decimal("72.0"), "unit": "/min"}, "Quantity")]
    assert compile_path("Observation.value").types[:2] == ("boolean", "CodeableConcept")
    relative = compile_path("value.as(CodeableConcept)", "Observation.component")
    assert relative(OBS["component"][1]) == [{"text": "high"}]


def test_fallback_is_recorded() -> None:
    compiled = compile_path("Patient.name.count() > 1")
    assert not compiled.native
    assert "Patient.name.count() > 1" in fallbacks()
    assert compiled({"resourceType": "Patient", "name": [{"text": "a"}, {"text": "b"}]}) == [True]


@pytest.mark.parametrize("resource", [
    {}, {"deceasedBoolean": True}, {"deceasedBoolean": False}, {"deceasedDateTime": "2020-01-02"},
])
def test_deceased_flag_is_native_and_agrees_with_fhirpathpy(resource: dict[str, Any]) -> None:
    expression = "Patient.deceased.exists() and Patient.deceased != false"
    compiled = compile_path(expression)
    assert compiled.native and compiled.types == ("boolean",)
    patient = {"resourceType": "Patient", **resource}
    assert compiled(patient) == _reference(expression, patient)
    assert compiled(patient) == [bool(resource) and resource != {"deceasedBoolean": False}]


def test_reference_type() -> None:
    assert reference_type("Patient/1") == "Patient"
    assert reference_type("http://a.org/fhir/Patient/1/_history/2") == "Patient"
    assert reference_type("#contained") is None
    assert reference_type("urn:uuid:1234") is None


# -- agreement with fhirpathpy --------------------------------------------------------------------

_RESOLVE = re.compile(r"\.where\(resolve\(\) is ([A-Za-z]+)\)")


def _norm(values: list[Any]) -> list[str]:
    """Sorted distinct JSON texts: index entries are a set, and fhirpathpy's ``|`` deduplicates
    extreme decimals (1E-22, 1E+18 in Observation-decimal) by its own inexact equality."""
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return float(o)
        return str(o)
    return sorted({json.dumps(v, sort_keys=True, default=default) for v in values})


def _ref_is(value: Any, target: str) -> bool:
    """The test's own reading of ``resolve() is target`` on a Reference."""
    ref = value.get("reference", "") if isinstance(value, dict) else ""
    parts = ref.split("/_history/")[0].split("/")
    return len(parts) >= 2 and parts[-2] == target


def _reference(expression: str, resource: dict[str, Any]) -> list[Any]:
    """fhirpathpy's values; ``where(resolve() is T)`` (unsupported there) is removed from each
    union branch and applied afterwards by :func:`_ref_is`."""
    out: list[Any] = []
    for branch in _split(expression):
        targets = _RESOLVE.findall(branch)
        plain = _RESOLVE.sub("", branch)
        try:
            values = fhirpathpy.compile(plain, models["r4"])(resource, {})
        except ValueError:
            # FHIRPath's ``as`` wants a singleton; search treats it as a filter, as ofType() is.
            plain = re.sub(r" as ([A-Za-z]+)", r".ofType(\1)", plain)
            values = fhirpathpy.compile(plain, models["r4"])(resource, {})
        if targets:
            values = [v for v in values if _ref_is(v, targets[0])]
        out.extend(values)
    return out


def _split(expression: str) -> list[str]:
    if "resolve()" not in expression:
        return [expression]
    depth, start, out = 0, 0, []
    for i, ch in enumerate(expression):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "|" and depth == 0:
            out.append(expression[start:i])
            start = i + 1
    out.append(expression[start:])
    return out


def _resources() -> list[tuple[str, dict[str, Any]]]:
    out = [(name, res) for name, res in examples() if isinstance(res, dict)]
    for name, bundle in synthea_bundles()[:5]:
        seen: dict[str, int] = {}
        for entry in bundle.get("entry", []):
            res = entry["resource"]
            count = seen.get(res["resourceType"], 0)
            if count < 3:  # a few of each type per bundle
                seen[res["resourceType"]] = count + 1
                out.append((f"{name}#{res['resourceType']}/{res.get('id')}", res))
    return out


@needs_shared
def test_agreement_with_fhirpathpy() -> None:
    reg = registry()
    resources = _resources()
    assert len(resources) > 200
    checked = 0
    mismatches: list[str] = []
    for name, res in resources:
        rtype = res["resourceType"]
        for code, param in reg.for_type(rtype).items():
            if not param.expression:
                continue
            compiled = compile_path(param.expression, rtype)
            if not compiled.native:
                continue
            got = _norm(compiled(res))
            want = _norm(_reference(param.expression, res))
            checked += 1
            if got != want:
                mismatches.append(f"{name} {code} {param.expression}: {got[:3]} != {want[:3]}")
    assert checked > 2000
    assert not mismatches, "\n".join(mismatches[:20]) + f"\n({len(mismatches)} mismatches)"
