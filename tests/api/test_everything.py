"""Patient/$everything over HTTP: a hand-made record and a seeded one; expected ids written by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.fhir.instants import now_us, to_instant
from fhir_server.interactions.load import load
from seed import generate
from tests.conftest import FHIR_JSON

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOINC = "http://loinc.org"


def _obs(oid: str, patient: str | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": "final",
                           "code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, **extra}
    if patient:
        out["subject"] = {"reference": f"Patient/{patient}"}
    return out


DATA: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "hosp", "name": "第一人民医院"},
    {"resourceType": "Organization", "id": "org2", "name": "第二医院"},
    {"resourceType": "Organization", "id": "loc-owner", "name": "社区中心"},
    {"resourceType": "Organization", "id": "unused", "name": "无关机构"},
    {"resourceType": "Practitioner", "id": "dr-li", "name": [{"text": "李医生"}]},
    {"resourceType": "Practitioner", "id": "dr-wang", "name": [{"text": "王医生"}]},
    {"resourceType": "Practitioner", "id": "dr-zhao", "name": [{"text": "赵医生"}]},
    {"resourceType": "PractitionerRole", "id": "role1", "practitioner": {"reference": "Practitioner/dr-zhao"},
     "organization": {"reference": "Organization/hosp"}},
    {"resourceType": "Location", "id": "loc1", "name": "门诊一楼",
     "managingOrganization": {"reference": "Organization/loc-owner"}},
    {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1990-05-01",
     "generalPractitioner": [{"reference": "Practitioner/dr-li"}],
     "managingOrganization": {"reference": "Organization/hosp"}},
    {"resourceType": "Patient", "id": "p2", "gender": "female",
     "managingOrganization": {"reference": "Organization/org2"}},
    {"resourceType": "Patient", "id": "p3", "gender": "female"},
    {"resourceType": "Encounter", "id": "e1", "status": "finished",
     "class": {"system": ACT, "code": "AMB"}, "subject": {"reference": "Patient/p1"},
     "serviceProvider": {"reference": "Organization/hosp"},
     "participant": [{"individual": {"reference": "PractitionerRole/role1"}}],
     "location": [{"location": {"reference": "Location/loc1"}}]},
    {"resourceType": "Encounter", "id": "e2", "status": "finished",
     "class": {"system": ACT, "code": "AMB"}, "subject": {"reference": "Patient/p2"},
     "participant": [{"individual": {"reference": "Practitioner/dr-wang"}}]},
    _obs("o1", "p1", performer=[{"reference": "Practitioner/dr-li"}]),
    _obs("o2", "p2"),
    _obs("o-none", None),
    {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
     "code": {"text": "高血压"}},
    {"resourceType": "Immunization", "id": "i1", "status": "completed",
     "vaccineCode": {"text": "乙肝疫苗"}, "patient": {"reference": "Patient/p1"},
     "occurrenceDateTime": "2024-01-01"},
    {"resourceType": "Immunization", "id": "i3", "status": "completed",
     "vaccineCode": {"text": "乙肝疫苗"}, "patient": {"reference": "Patient/p3"},
     "occurrenceDateTime": "2024-01-01"},
]

P1_MATCHES = {"Patient/p1", "Condition/c1", "Encounter/e1", "Immunization/i1", "Observation/o1"}
P1_INCLUDES = {"Practitioner/dr-li", "Organization/hosp", "PractitionerRole/role1", "Location/loc1",
               "Practitioner/dr-zhao", "Organization/loc-owner"}


@pytest.fixture(params=["sqlite", "mongo"])
def any_app(request: pytest.FixtureRequest, app: Flask) -> Iterator[Flask]:
    """The SQLite app, or the same app over a fresh MongoDB database (skipped without one)."""
    if request.param == "sqlite":
        yield app
        return
    from fhir_server.store import open_store
    from tests.mongo_server import fresh_database

    uri: str = request.getfixturevalue("mongo_uri")
    with fresh_database(uri) as db_uri:
        settings = Settings(store_url=db_uri, access_log=False, auth=False, enforce_profiles="off")
        store = open_store(settings)
        try:
            yield create_app(settings, store)
        finally:
            store.close()


@pytest.fixture
def data(any_app: Flask) -> FlaskClient:
    app = any_app
    load(app.extensions["fhir"], DATA)
    client = app.test_client()
    assert client.delete("/fhir/Patient/p3").status_code == 204
    return client


def get(client: FlaskClient, url: str, status: int = 200) -> dict[str, Any]:
    response = client.get(url.replace("http://localhost", ""))
    assert response.status_code == status, response.get_json()
    doc: dict[str, Any] = response.get_json()
    return doc


def entries(bundle: dict[str, Any], mode: str) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if e["search"]["mode"] == mode]


def links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle["link"]}


def test_everything_is_exactly_the_compartment_and_what_it_references(data: FlaskClient) -> None:
    bundle = get(data, "/fhir/Patient/p1/$everything")
    assert bundle["type"] == "searchset"
    matches = entries(bundle, "match")
    assert matches[0] == "Patient/p1"
    assert len(matches) == len(set(matches))
    assert set(matches) == P1_MATCHES
    assert sorted(entries(bundle, "include")) == sorted(P1_INCLUDES)
    assert bundle["total"] == len(P1_MATCHES)
    assert "next" not in links(bundle)


def test_other_patients(data: FlaskClient) -> None:
    bundle = get(data, "/fhir/Patient/p2/$everything")
    assert set(entries(bundle, "match")) == {"Patient/p2", "Encounter/e2", "Observation/o2"}
    assert sorted(entries(bundle, "include")) == ["Organization/org2", "Practitioner/dr-wang"]


def test_type_level_everything(data: FlaskClient) -> None:
    bundle = get(data, "/fhir/Patient/$everything")
    assert set(entries(bundle, "match")) == {
        "Patient/p1", "Patient/p2", "Condition/c1", "Encounter/e1", "Encounter/e2",
        "Immunization/i1", "Observation/o1", "Observation/o2"}  # p3 deleted, i3 points at it
    assert set(entries(bundle, "include")) == P1_INCLUDES | {"Organization/org2",
                                                             "Practitioner/dr-wang"}


def test_type_filter(data: FlaskClient) -> None:
    bundle = get(data, "/fhir/Patient/p1/$everything?_type=Observation")
    assert entries(bundle, "match") == ["Patient/p1", "Observation/o1"]
    assert entries(bundle, "include") == []
    bundle = get(data, "/fhir/Patient/p1/$everything?_type=Observation,Organization")
    assert entries(bundle, "include") == ["Organization/hosp"]
    bundle = get(data, "/fhir/Patient/p1/$everything?_type=Condition&_type=Encounter")
    assert entries(bundle, "match") == ["Patient/p1", "Condition/c1", "Encounter/e1"]
    issue = get(data, "/fhir/Patient/p1/$everything?_type=Medication", 400)["issue"][0]
    assert issue["expression"] == ["_type"]


def test_since(data: FlaskClient) -> None:
    time.sleep(0.002)
    mark = to_instant(now_us())
    time.sleep(0.002)
    updated = _obs("o1", "p1", performer=[{"reference": "Practitioner/dr-li"}], issued=mark)
    assert data.put("/fhir/Observation/o1", json=updated,
                    headers={"Content-Type": FHIR_JSON}).status_code == 200
    bundle = get(data, f"/fhir/Patient/p1/$everything?_since={mark.replace('+', '%2B')}")
    assert entries(bundle, "match") == ["Patient/p1", "Observation/o1"]  # the Patient always
    assert sorted(entries(bundle, "include")) == ["Organization/hosp", "Practitioner/dr-li"]
    bundle = get(data, f"/fhir/Patient/$everything?_since={mark.replace('+', '%2B')}")
    assert entries(bundle, "match") == ["Observation/o1"]  # type level: _since for Patients too
    assert get(data, "/fhir/Patient/p1/$everything?_since=2020-01-01", 400)[
        "issue"][0]["expression"] == ["_since"]


def test_paging_walk_returns_every_resource_once(data: FlaskClient) -> None:
    url: str | None = "/fhir/Patient/p1/$everything?_count=2"
    matches: list[str] = []
    includes: list[str] = []
    pages = 0
    while url:
        bundle = get(data, url)
        page = entries(bundle, "match")
        assert 1 <= len(page) <= 2
        matches += page
        includes += entries(bundle, "include")
        url = links(bundle).get("next")
        pages += 1
    assert pages == 3
    assert len(matches) == len(set(matches)) and set(matches) == P1_MATCHES
    assert len(includes) == len(set(includes)) and set(includes) == P1_INCLUDES

    # exactly full pages at a type boundary: no empty last page
    url = "/fhir/Patient/p2/$everything?_count=1"
    seen = []
    while url:
        bundle = get(data, url)
        seen += entries(bundle, "match")
        url = links(bundle).get("next")
    assert seen == ["Patient/p2", "Encounter/e2", "Observation/o2"]


def test_cursor_is_tamper_evident_and_bound_to_the_request(data: FlaskClient) -> None:
    first = get(data, "/fhir/Patient/p1/$everything?_count=2")
    token = parse_qs(urlsplit(links(first)["next"]).query)["_cursor"][0]
    for url in (f"/fhir/Patient/p2/$everything?_count=2&_cursor={token}",
                f"/fhir/Patient/p1/$everything?_count=3&_cursor={token}",
                f"/fhir/Patient/$everything?_count=2&_cursor={token}",
                f"/fhir/Patient/p1/$everything?_count=2&_cursor={token[:-3]}xyz"):
        assert get(data, url, 400)["issue"][0]["expression"] == ["_cursor"]


def test_errors(data: FlaskClient) -> None:
    assert get(data, "/fhir/Patient/nobody/$everything", 404)["issue"][0]["code"] == "not-found"
    assert get(data, "/fhir/Patient/p3/$everything", 410)["issue"][0]["code"] == "deleted"
    for name in ("start", "end"):
        issue = get(data, f"/fhir/Patient/p1/$everything?{name}=2024-01-01", 400)["issue"][0]
        assert issue["expression"] == [name] and "not supported" in issue["diagnostics"]
    assert get(data, "/fhir/Patient/p1/$everything?_count=x", 400)["issue"][0][
        "expression"] == ["_count"]
    assert get(data, "/fhir/Patient/p1/$everything?bogus=1", 400)["issue"][0][
        "expression"] == ["bogus"]


def test_routes_win_over_read_and_compartment_search(data: FlaskClient) -> None:
    # /fhir/<rtype>/<rid> would read Patient "$everything"; /fhir/<ctype>/<cid>/<rtype> would
    # search the resource type "$everything" in p1's compartment
    assert get(data, "/fhir/Patient/$everything")["type"] == "searchset"
    assert get(data, "/fhir/Patient/p1/$everything")["type"] == "searchset"
    assert get(data, "/fhir/Patient/p1/Observation")["entry"][0]["resource"]["id"] == "o1"
    assert get(data, "/fhir/Patient/p1")["resourceType"] == "Patient"


def test_capability_statement_lists_the_operations(client: FlaskClient) -> None:
    doc = get(client, "/fhir/metadata")
    patient = next(r for r in doc["rest"][0]["resource"] if r["type"] == "Patient")
    assert patient["operation"] == [
        {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
        {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"},
        {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}]
    observation = next(r for r in doc["rest"][0]["resource"] if r["type"] == "Observation")
    assert [o["name"] for o in observation["operation"]] == ["validate"]


def test_everything_on_a_seeded_patient(app: Flask) -> None:
    load(app.extensions["fhir"], generate(5, seed=3))
    client = app.test_client()
    bundle = get(client, "/fhir/Patient/pat-3-000005/$everything")
    assert entries(bundle, "match") == [
        "Patient/pat-3-000005",
        "Encounter/enc-3-000005-1", "Encounter/enc-3-000005-2", "Encounter/enc-3-000005-3",
        "Encounter/enc-3-000005-90",
        "ServiceRequest/sr-3-000005-up",
    ]  # Task/task-3-000005-up refers to the patient, but Task is not in the R4 Patient compartment
    assert sorted(entries(bundle, "include")) == sorted([
        "Organization/org-chc-2", "Organization/org-chc-3", "Organization/org-hosp-1",
        "Organization/org-hosp-2",
        "Practitioner/prac-chc-2-1", "Practitioner/prac-chc-3-1", "Practitioner/prac-hosp-1-1",
        "Practitioner/prac-hosp-2-2",
        "PractitionerRole/role-chc-3-1",
    ])
    bundle = get(client, "/fhir/Patient/pat-3-000001/$everything")
    assert entries(bundle, "match") == ["Patient/pat-3-000001", "Encounter/enc-3-000001-1"]
    assert sorted(entries(bundle, "include")) == [
        "Organization/org-chc-2", "Organization/org-hosp-3", "Practitioner/prac-hosp-3-2"]
