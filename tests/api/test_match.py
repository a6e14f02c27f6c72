"""Patient/$match over HTTP: card identifiers (certain) and scored demographics."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.fhir.identifiers import ext_admin_division, identifier_systems
from fhir_server.interactions.load import load
from fhir_server.operations.match import MATCH_GRADE
from tests.api.test_everything import any_app
from tests.conftest import post

__all__ = ["any_app"]  # the SQLite-or-MongoDB app fixture

SYS = identifier_systems()
DIVISION = ext_admin_division(SYS.base)
CIN_P1, CIN_P3, CIN_P2 = "110101199005010012", "110101199005010039", "510107198512310026"


def _address(postal: str, district: str, division: str) -> dict[str, Any]:
    return {"postalCode": postal, "district": district,
            "extension": [{"url": DIVISION, "valueCode": division}]}


DATA: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1990-05-01",
     "identifier": [{"use": "official", "system": SYS.ehc_id, "value": "A" * 64},
                    {"use": "old", "system": SYS.ehc_id, "value": "C" * 64},
                    {"use": "official", "system": SYS.cin, "value": CIN_P1}],
     "name": [{"text": "王小明", "family": "王", "given": ["小明"]}],
     "telecom": [{"system": "phone", "value": "13800138000"}],
     "address": [_address("610041", "武侯区", "510107")]},
    {"resourceType": "Patient", "id": "p2", "gender": "female", "birthDate": "1985-12-31",
     "active": False,
     "identifier": [{"system": SYS.ehc_id, "value": "B" * 64},
                    {"system": SYS.cin, "value": CIN_P2}],
     "name": [{"text": "李娜", "family": "李", "given": ["娜"]}],
     "telecom": [{"system": "phone", "value": "13900139000"}]},
    {"resourceType": "Patient", "id": "p3", "gender": "male", "birthDate": "1990-05-01",
     "identifier": [{"system": SYS.cin, "value": CIN_P3}],
     "name": [{"text": "王小明"}],
     "address": [_address("100000", "东城区", "110101")]},
    {"resourceType": "Patient", "id": "p4", "gender": "female", "birthDate": "1970-01-01",
     "name": [{"family": "Zhang", "given": ["San"]}]},
]


@pytest.fixture
def data(any_app: Flask) -> FlaskClient:
    load(any_app.extensions["fhir"], DATA)
    return any_app.test_client()


def params(patient: dict[str, Any], **extra: Any) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"name": "resource",
                                    "resource": {"resourceType": "Patient", **patient}}]
    if "only_certain" in extra:
        items.append({"name": "onlyCertainMatches", "valueBoolean": extra["only_certain"]})
    if "count" in extra:
        items.append({"name": "count", "valueInteger": extra["count"]})
    return {"resourceType": "Parameters", "parameter": items}


def run(client: FlaskClient, body: Any, status: int = 200) -> Any:
    response = post(client, "/fhir/Patient/$match", body)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def results(client: FlaskClient, body: Any) -> list[tuple[str, float, str]]:
    bundle = run(client, body)
    assert bundle["type"] == "searchset"
    out = []
    for entry in bundle.get("entry", []):
        if entry["search"]["mode"] != "match":
            continue
        [ext] = entry["search"]["extension"]
        assert ext["url"] == MATCH_GRADE
        out.append((entry["resource"]["id"], entry["search"]["score"], ext["valueCode"]))
    assert bundle["total"] == len(out)
    return out


DEMOGRAPHICS: dict[str, Any] = {
    "name": [{"text": "王 小明"}], "birthDate": "1990-05-01", "gender": "male",
    "telecom": [{"system": "phone", "value": "+86 138-0013-8000"}]}


def test_certain_by_ehc_id(data: FlaskClient) -> None:
    ident = [{"system": SYS.ehc_id, "value": "a" * 64}]  # EHC IDs compare in upper case
    assert results(data, params({"identifier": ident})) == [("p1", 1.0, "certain")]


def test_certain_by_an_old_card_id(data: FlaskClient) -> None:
    ident = [{"system": SYS.ehc_id, "value": "C" * 64}]
    assert results(data, params({"identifier": ident})) == [("p1", 1.0, "certain")]


def test_certain_by_citizen_id_even_for_an_inactive_patient(data: FlaskClient) -> None:
    ident = [{"system": SYS.cin, "value": CIN_P2}]
    assert results(data, params({"identifier": ident, "name": [{"text": "别名"}]})) == [
        ("p2", 1.0, "certain")]


def test_non_card_identifier_is_not_certain(data: FlaskClient) -> None:
    ident = [{"system": "http://example.org/mrn", "value": "A" * 64}]
    assert results(data, params({"identifier": ident})) == []


def test_probable_by_name_birth_date_gender_phone(data: FlaskClient) -> None:
    # p1: name 0.35 + birthDate 0.25 + phone 0.2 + gender 0.1; p3: no phone
    assert results(data, params(DEMOGRAPHICS)) == [
        ("p1", 0.9, "probable"), ("p3", 0.7, "possible")]


def test_possible_by_family_given_and_birth_date(data: FlaskClient) -> None:
    # family+given 王+小明 equals the text 王小明 (Chinese names compared whole)
    patient = {"name": [{"family": "王", "given": ["小明"]}], "birthDate": "1990-05-01"}
    assert results(data, params(patient)) == [("p1", 0.6, "possible"), ("p3", 0.6, "possible")]


def test_address_and_conflicts(data: FlaskClient) -> None:
    patient = {**DEMOGRAPHICS, "telecom": [], "address": [{"postalCode": "100000"}]}
    assert results(data, params(patient)) == [("p3", 0.8, "probable"), ("p1", 0.7, "possible")]
    wrong_gender = {**DEMOGRAPHICS, "gender": "female"}
    # p1: 0.35 + 0.25 + 0.2 - 0.1; p3: 0.35 + 0.25 - 0.1
    assert results(data, params(wrong_gender)) == [("p1", 0.7, "possible"), ("p3", 0.5, "possible")]
    wrong_birth = {**DEMOGRAPHICS, "birthDate": "1991-05-01"}  # p1: 0.35 - 0.25 + 0.2 + 0.1
    assert results(data, params(wrong_birth)) == []


def test_a_different_citizen_id_rules_a_candidate_out(data: FlaskClient) -> None:
    patient = {**DEMOGRAPHICS, "identifier": [{"system": SYS.cin, "value": CIN_P1}]}
    assert results(data, params(patient)) == [("p1", 1.0, "certain")]


def test_latin_names_are_case_and_accent_folded(data: FlaskClient) -> None:
    patient = {"name": [{"family": "ZHÁNG", "given": ["san"]}], "birthDate": "1970-01-01",
               "gender": "female"}
    assert results(data, params(patient)) == [("p4", 0.7, "possible")]


def test_no_match(data: FlaskClient) -> None:
    patient = {"name": [{"text": "张三"}], "birthDate": "2000-01-01", "gender": "male"}
    assert results(data, params(patient)) == []
    # a phone alone is found but scores too low
    assert results(data, params({"telecom": [{"system": "phone", "value": "13800138000"}]})) == []


def test_only_certain_matches(data: FlaskClient) -> None:
    assert results(data, params(DEMOGRAPHICS, only_certain=True)) == []
    with_card = {**DEMOGRAPHICS, "identifier": [{"system": SYS.ehc_id, "value": "A" * 64}]}
    assert results(data, params(with_card, only_certain=True)) == [("p1", 1.0, "certain")]
    assert results(data, params(with_card, only_certain=False)) == [
        ("p1", 1.0, "certain"), ("p3", 0.7, "possible")]
    # two Patients certain: ambiguous, so none is returned, with an explanation
    two = {"identifier": [{"system": SYS.ehc_id, "value": "A" * 64},
                          {"system": SYS.ehc_id, "value": "B" * 64}]}
    bundle = run(data, params(two, only_certain=True))
    assert [e["search"]["mode"] for e in bundle["entry"]] == ["outcome"]
    assert results(data, params(two)) == [("p1", 1.0, "certain"), ("p2", 1.0, "certain")]


def test_count(data: FlaskClient) -> None:
    assert results(data, params(DEMOGRAPHICS, count=1)) == [("p1", 0.9, "probable")]


@pytest.mark.parametrize("body", [
    {"resourceType": "Patient", "name": [{"text": "王小明"}]},
    {"resourceType": "Parameters"},
    {"resourceType": "Parameters", "parameter": []},
    {"resourceType": "Parameters", "parameter": [{"name": "count", "valueInteger": 3}]},
    {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {"resourceType": "Practitioner"}}]},
    {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "valueString": "Patient"}]},
    params(DEMOGRAPHICS, count=0),
    params(DEMOGRAPHICS, count="3"),
    params(DEMOGRAPHICS, count=True),
    params(DEMOGRAPHICS, only_certain="true"),
    {"resourceType": "Parameters", "parameter": [
        *params(DEMOGRAPHICS)["parameter"], {"name": "threshold", "valueDecimal": 0.5}]},
    {"resourceType": "Parameters", "parameter": [
        *params(DEMOGRAPHICS)["parameter"], *params(DEMOGRAPHICS)["parameter"]]},
    {"resourceType": "Parameters", "parameter": [
        {"name": "count", "valueInteger": 1, "valueString": "1"},
        *params(DEMOGRAPHICS)["parameter"]]},
    {"resourceType": "Parameters", "parameter": params(DEMOGRAPHICS)["parameter"],
     "unexpected": 1},
])
def test_bad_input(data: FlaskClient, body: Any) -> None:
    outcome = run(data, body, 400)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"


def test_bad_media_type_and_query(data: FlaskClient) -> None:
    response = data.post("/fhir/Patient/$match", data="x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    response = post(data, "/fhir/Patient/$match?count=2", params(DEMOGRAPHICS))
    assert response.status_code == 400
