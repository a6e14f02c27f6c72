"""Token search modifiers that need terminology: ``:in``, ``:not-in``, ``:below``, ``:above``.

Through HTTP on the SQLite store (tests/contract/test_search_terminology_on_every_store.py runs the
same tests on every store). Expected ids are written out by hand.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.fhir import jsonio
from fhir_server.fhir.identifiers import CS_CVX, DEFAULT_CANONICAL_BASE
from fhir_server.interactions.load import load

B = DEFAULT_CANONICAL_BASE
VACCINE = f"{B}/CodeSystem/cn-nip-vaccine"
MCH = f"{B}/CodeSystem/mch-visit-type"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NIP_VS = f"{B}/ValueSet/cn-nip-vaccines"


def _imm(rid: str, *codings: tuple[str, str]) -> dict[str, Any]:
    return {"resourceType": "Immunization", "id": rid, "status": "completed",
            "vaccineCode": {"coding": [{"system": s, "code": c} for s, c in codings]},
            "patient": {"reference": "Patient/p1"}, "occurrenceDateTime": "2024-03-01"}


def _enc(rid: str, code: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Encounter", "id": rid, "status": "finished",
                           "class": {"system": ACT, "code": "AMB"},
                           "subject": {"reference": "Patient/p1"}}
    if code:
        out["type"] = [{"coding": [{"system": MCH, "code": code}]}]
    return out


def _cond(rid: str, status: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": rid, "subject": {"reference": "Patient/p1"},
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
            "code": {"text": "x"}}


DATA: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "p1", "gender": "female"},
    {"resourceType": "Patient", "id": "p2", "gender": "other"},
    {"resourceType": "Patient", "id": "p3"},
    _imm("hepb", (VACCINE, "HepB"), (CS_CVX, "08")),
    _imm("bcg", (VACCINE, "BCG")),
    _imm("pcv13", (VACCINE, "PCV13"), (CS_CVX, "133")),
    _imm("cvx-only", (CS_CVX, "03")),
    _imm("wrong-system", ("http://example.org/other", "HepB")),
    _enc("pre1", "prenatal-1"), _enc("pre4", "prenatal-4"), _enc("pre-group", "prenatal"),
    _enc("post42", "postpartum-42d"), _enc("newborn", "newborn-visit"), _enc("untyped", None),
    _cond("c-active", "active"), _cond("c-relapse", "relapse"), _cond("c-resolved", "resolved"),
]


@pytest.fixture
def data(app: Flask) -> FlaskClient:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(DATA)))
    return app.test_client()


def ids(client: FlaskClient, query: str) -> list[str]:
    response = client.get(query)
    assert response.status_code == 200, (query, response.get_json())
    return sorted(e["resource"]["id"] for e in response.get_json().get("entry", []))


def error(client: FlaskClient, query: str) -> dict[str, Any]:
    response = client.get(query)
    assert response.status_code == 400, (query, response.get_json())
    issue: dict[str, Any] = response.get_json()["issue"][0]
    return issue


def test_in_a_value_set(data: FlaskClient) -> None:
    assert ids(data, f"/fhir/Immunization?vaccine-code:in={NIP_VS}") == ["bcg", "hepb"]
    assert ids(data, f"/fhir/Immunization?vaccine-code:in={B}/ValueSet/cn-non-nip-vaccines") == [
        "pcv13"]
    both = f"{NIP_VS},{B}/ValueSet/cn-non-nip-vaccines"
    assert ids(data, f"/fhir/Immunization?vaccine-code:in={both}") == ["bcg", "hepb", "pcv13"]
    assert ids(data, "/fhir/Patient?gender:in=http://hl7.org/fhir/ValueSet/administrative-gender") \
        == ["p1", "p2"]
    # combined with another parameter
    assert ids(data, f"/fhir/Immunization?vaccine-code:in={NIP_VS}&vaccine-code={CS_CVX}|08") == [
        "hepb"]


def test_not_in_a_value_set(data: FlaskClient) -> None:
    assert ids(data, f"/fhir/Immunization?vaccine-code:not-in={NIP_VS}") == [
        "cvx-only", "pcv13", "wrong-system"]
    # resources without any code are "not in" too (like :not)
    assert ids(data, "/fhir/Patient?gender:not-in=http://hl7.org/fhir/ValueSet/administrative-gender"
               ) == ["p3"]


def test_below_and_above_in_a_hierarchy(data: FlaskClient) -> None:
    below = quote(f"{MCH}|prenatal", safe="")
    assert ids(data, f"/fhir/Encounter?type:below={below}") == ["pre-group", "pre1", "pre4"]
    assert ids(data, "/fhir/Encounter?type:below=child-health") == ["newborn"]  # any system
    above = quote(f"{MCH}|prenatal-4", safe="")
    assert ids(data, f"/fhir/Encounter?type:above={above}") == ["pre-group", "pre4"]
    assert ids(data, f"/fhir/Encounter?type:below={below},postpartum") == [
        "post42", "pre-group", "pre1", "pre4"]
    active = quote(f"{CLINICAL}|active", safe="")
    assert ids(data, f"/fhir/Condition?clinical-status:below={active}") == ["c-active", "c-relapse"]
    relapse = quote(f"{CLINICAL}|relapse", safe="")
    assert ids(data, f"/fhir/Condition?clinical-status:above={relapse}") == ["c-active", "c-relapse"]


def test_chained_and_has(data: FlaskClient) -> None:
    assert ids(data, f"/fhir/Patient?_has:Immunization:patient:vaccine-code:in={NIP_VS}") == ["p1"]
    assert ids(data, "/fhir/Immunization?patient.gender:in="
               "http://hl7.org/fhir/ValueSet/administrative-gender") == [
        "bcg", "cvx-only", "hepb", "pcv13", "wrong-system"]


@pytest.mark.parametrize(("query", "expression", "words"), [
    ("/fhir/Immunization?vaccine-code:in=http://example.org/nope", "vaccine-code:in", "not known"),
    ("/fhir/Observation?code:in=http://hl7.org/fhir/ValueSet/observation-codes", "code:in",
     "cannot be expanded"),
    ("/fhir/Immunization?vaccine-code:not-in=http://example.org/nope", "vaccine-code:not-in",
     "not known"),
    ("/fhir/Encounter?type:below=http%3A%2F%2Fsnomed.info%2Fsct%7C11429006", "type:below",
     "not known here"),
    ("/fhir/Encounter?type:below=no-such-code", "type:below", "no code system"),
    ("/fhir/Encounter?type:above=%7Cprenatal", "type:above", "without a system"),
    ("/fhir/Encounter?type:below=a%7Cb%7Cc", "type:below", "more than one"),
    ("/fhir/Encounter?type:below=http%3A%2F%2Fx%7C", "type:below", "needs a code"),
])
def test_errors_name_the_parameter(data: FlaskClient, query: str, expression: str, words: str) -> None:
    issue = error(data, query)
    assert issue["expression"] == [expression]
    assert words in issue["diagnostics"]
