"""The HTTP API on every store: the app is ``create_app(settings, store)`` with each store of
``STORES`` (``tests/contract/conftest.py`` parametrises ``store``/``settings``/``app``/``client``), and
the same interactions must give the same answers. Expected ids are written out by hand."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.fhir import jsonio
from fhir_server.interactions.load import load
from tests.conftest import FHIR_JSON, post

EHC = "https://fhir.demo-city.health.cn/sid/ehc-id"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PATCH_JSON = "application/json-patch+json"

DATA: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "hosp", "name": "成都市第一人民医院"},
    {"resourceType": "Organization", "id": "clinic", "name": "Clínica São José"},
    {"resourceType": "Practitioner", "id": "dr-li", "name": [{"family": "李", "given": ["医生"]}]},
    {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1990-05-01",
     "identifier": [{"system": EHC, "value": "EHC-0001"}],
     "name": [{"family": "Wáng", "given": ["Xiaoming"]}],
     "generalPractitioner": [{"reference": "Practitioner/dr-li"}],
     "managingOrganization": {"reference": "Organization/hosp"}},
    {"resourceType": "Patient", "id": "p2", "gender": "female", "birthDate": "1985-12-31",
     "identifier": [{"system": EHC, "value": "EHC-0002"}],
     "name": [{"family": "Li", "given": ["Na"]}],
     "managingOrganization": {"reference": "Organization/clinic"}},
    {"resourceType": "Patient", "id": "p3", "gender": "female", "birthDate": "2021-03",
     "name": [{"family": "Wangler", "given": ["Anna"]}]},
    {"resourceType": "Encounter", "id": "e1", "status": "finished",
     "class": {"system": ACT, "code": "AMB"}, "subject": {"reference": "Patient/p1"},
     "serviceProvider": {"reference": "Organization/hosp"},
     "period": {"start": "2024-01-10T09:00:00+08:00", "end": "2024-01-10T10:00:00+08:00"}},
    {"resourceType": "Observation", "id": "o1", "status": "final",
     "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
     "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
     "effectiveDateTime": "2024-01-10T09:30:00+08:00",
     "valueQuantity": {"value": 130, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
    {"resourceType": "Observation", "id": "o2", "status": "final",
     "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
     "subject": {"reference": "Patient/p2"}, "effectiveDateTime": "2024-06-02",
     "valueQuantity": {"value": 118.5, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
    {"resourceType": "Observation", "id": "o3", "status": "amended",
     "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
     "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2023-12-31",
     "valueQuantity": {"value": 70, "unit": "kg", "system": UCUM, "code": "kg"}},
]


@pytest.fixture
def data(app: Flask) -> FlaskClient:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(DATA)))
    return app.test_client()


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def _links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: _path(link["url"]) for link in bundle.get("link", [])}


def _bundle(client: FlaskClient, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.get_json())
    body: dict[str, Any] = response.get_json()
    return body


def _ids(client: FlaskClient, url: str) -> list[str]:
    return [e["resource"]["id"] for e in _bundle(client, url).get("entry", [])
            if e["search"]["mode"] == "match"]


# -- instance interactions ------------------------------------------------------------------------

def test_create_read_vread_update_patch_delete(client: FlaskClient) -> None:
    created = post(client, "/fhir/Patient", {"resourceType": "Patient", "gender": "male",
                                             "name": [{"family": "张"}]})
    assert created.status_code == 201, created.get_json()
    rid = created.get_json()["id"]
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"] == f"http://localhost/fhir/Patient/{rid}/_history/1"

    read = client.get(f"/fhir/Patient/{rid}")
    assert read.status_code == 200 and read.get_json()["name"] == [{"family": "张"}]
    assert read.headers["ETag"] == 'W/"1"'

    body = {"resourceType": "Patient", "id": rid, "gender": "female", "name": [{"family": "张"}]}
    updated = client.put(f"/fhir/Patient/{rid}", json=body,
                         headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'})
    assert updated.status_code == 200 and updated.headers["ETag"] == 'W/"2"'
    stale = client.put(f"/fhir/Patient/{rid}", json=body,
                       headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'})
    assert stale.status_code == 412

    patched = client.patch(f"/fhir/Patient/{rid}", json=[{"op": "add", "path": "/active",
                                                          "value": True}],
                           headers={"Content-Type": PATCH_JSON, "If-Match": 'W/"2"'})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["meta"]["versionId"] == "3"
    stale_patch = client.patch(f"/fhir/Patient/{rid}", json=[{"op": "remove", "path": "/active"}],
                               headers={"Content-Type": PATCH_JSON, "If-Match": 'W/"2"'})
    assert stale_patch.status_code == 412

    assert client.get(f"/fhir/Patient/{rid}/_history/1").get_json()["gender"] == "male"
    assert client.get(f"/fhir/Patient/{rid}/_history/2").get_json()["gender"] == "female"
    assert client.get(f"/fhir/Patient/{rid}/_history/9").status_code == 404

    assert client.delete(f"/fhir/Patient/{rid}").status_code in (200, 204)
    assert client.get(f"/fhir/Patient/{rid}").status_code == 410
    assert client.get(f"/fhir/Patient/{rid}/_history/3").get_json()["active"] is True
    assert client.get("/fhir/Patient/never-made").status_code == 404
    assert _ids(client, "/fhir/Patient?family=张") == []  # deleted: gone from search


def test_history_levels_and_paging(client: FlaskClient) -> None:
    rid = post(client, "/fhir/Patient", {"resourceType": "Patient"}).get_json()["id"]
    for gender in ("male", "female", "other"):
        response = client.put(f"/fhir/Patient/{rid}", json={"resourceType": "Patient", "id": rid,
                                                             "gender": gender},
                              headers={"Content-Type": FHIR_JSON})
        assert response.status_code == 200
    org = post(client, "/fhir/Organization", {"resourceType": "Organization",
                                              "name": "x"}).get_json()["id"]

    instance = _bundle(client, f"/fhir/Patient/{rid}/_history")
    assert [e["response"]["etag"] for e in instance["entry"]] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in instance["entry"]] == ["PUT", "PUT", "PUT", "POST"]

    versions: list[str] = []
    url = f"/fhir/Patient/{rid}/_history?_count=3"
    pages = 0
    while url:
        bundle = _bundle(client, url)
        versions += [e["response"]["etag"] for e in bundle.get("entry", [])]
        url = _links(bundle).get("next", "")
        pages += 1
    assert versions == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"'] and pages == 2

    type_level = _bundle(client, "/fhir/Patient/_history")
    assert {e["resource"]["id"] for e in type_level["entry"]} == {rid}
    system = _bundle(client, "/fhir/_history")
    assert system["entry"][0]["resource"]["id"] == org  # newest first
    assert len(system["entry"]) == 5


# -- search ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "expected"), [
    # token
    ("/fhir/Patient?gender=female", ["p2", "p3"]),
    ("/fhir/Patient?gender:not=female", ["p1"]),
    (f"/fhir/Patient?identifier={EHC}|EHC-0002", ["p2"]),
    ("/fhir/Patient?identifier=EHC-0001", ["p1"]),
    (f"/fhir/Observation?code={LOINC}|8480-6", ["o1", "o2"]),
    ("/fhir/Observation?status=amended", ["o3"]),
    ("/fhir/Patient?_id=p1,p3", ["p1", "p3"]),
    # string
    ("/fhir/Patient?name=wang", ["p1", "p3"]),
    ("/fhir/Patient?family:exact=Wáng", ["p1"]),
    ("/fhir/Patient?name:contains=ngl", ["p3"]),
    ("/fhir/Organization?name=clinica", ["clinic"]),
    # date
    ("/fhir/Patient?birthdate=1990", ["p1"]),
    ("/fhir/Patient?birthdate=lt1990-05-01", ["p2"]),
    ("/fhir/Observation?date=2024", ["o1", "o2"]),
    ("/fhir/Observation?date=lt2024-01-01", ["o3"]),
    ("/fhir/Encounter?date=2024-01-10", ["e1"]),
    # quantity
    ("/fhir/Observation?value-quantity=gt120", ["o1"]),
    (f"/fhir/Observation?value-quantity=lt200|{UCUM}|mm[Hg]", ["o1", "o2"]),
    # reference
    ("/fhir/Observation?subject=Patient/p1", ["o1", "o3"]),
    ("/fhir/Observation?patient=p2", ["o2"]),
    ("/fhir/Patient?organization=Organization/hosp", ["p1"]),
    ("/fhir/Patient?organization:missing=true", ["p3"]),
    # chains
    ("/fhir/Observation?subject:Patient.name=li", ["o2"]),
    ("/fhir/Observation?subject:Patient.organization.name=clinica", ["o2"]),
    ("/fhir/Observation?encounter.class=AMB", ["o1"]),
    ("/fhir/Observation?subject:Patient.general-practitioner.name=李", ["o1", "o3"]),
    # _has
    ("/fhir/Patient?_has:Observation:subject:code=29463-7", ["p1"]),
    ("/fhir/Patient?_has:Observation:subject:status=final", ["p1", "p2"]),
    ("/fhir/Patient?_has:Encounter:subject:_has:Observation:encounter:code=8480-6", ["p1"]),
    ("/fhir/Organization?_has:Patient:organization:gender=female", ["clinic"]),
    # combinations (AND across parameters, OR within one)
    ("/fhir/Observation?status=final&subject=p1", ["o1"]),
    ("/fhir/Patient?gender=female&birthdate=ge2000", ["p3"]),
    # compartment
    ("/fhir/Patient/p1/Observation", ["o1", "o3"]),
])
def test_search(data: FlaskClient, url: str, expected: list[str]) -> None:
    assert _ids(data, url) == expected


def test_include_and_revinclude(data: FlaskClient) -> None:
    bundle = _bundle(data, "/fhir/Observation?_id=o1&_include=Observation:subject"
                           "&_include:iterate=Patient:general-practitioner")
    assert {(e["resource"]["resourceType"], e["resource"]["id"], e["search"]["mode"])
            for e in bundle["entry"]} == {("Observation", "o1", "match"),
                                          ("Patient", "p1", "include"),
                                          ("Practitioner", "dr-li", "include")}
    rev = _bundle(data, "/fhir/Patient?_id=p1&_revinclude=Observation:subject")
    assert sorted(e["resource"]["id"] for e in rev["entry"]) == ["o1", "o3", "p1"]
    assert rev["total"] == 1


def test_sort_total_and_paging(data: FlaskClient) -> None:
    assert _ids(data, "/fhir/Patient?_sort=birthdate") == ["p2", "p1", "p3"]
    assert _ids(data, "/fhir/Patient?_sort=-birthdate") == ["p3", "p1", "p2"]
    assert _ids(data, "/fhir/Patient?_sort=gender,-birthdate") == ["p3", "p2", "p1"]
    assert _ids(data, "/fhir/Patient?_sort=family") == ["p2", "p1", "p3"]
    assert _ids(data, "/fhir/Observation?_sort=-date") == ["o2", "o1", "o3"]
    assert _bundle(data, "/fhir/Patient?gender=female")["total"] == 2

    first = _bundle(data, "/fhir/Observation?_count=2&_sort=_id")
    assert [e["resource"]["id"] for e in first["entry"]] == ["o1", "o2"]
    assert "total" not in first  # counting costs a second query: only when asked for
    assert _bundle(data, "/fhir/Observation?_count=2&_total=accurate")["total"] == 3
    links = _links(first)
    assert "previous" not in links
    second = _bundle(data, links["next"])
    assert [e["resource"]["id"] for e in second["entry"]] == ["o3"]
    links2 = _links(second)
    assert "next" not in links2
    back = _bundle(data, links2["previous"])
    assert [e["resource"]["id"] for e in back["entry"]] == ["o1", "o2"]


def test_conditional_create(data: FlaskClient) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": EHC, "value": "EHC-0001"}]}
    existing = post(data, "/fhir/Patient", body, **{"If-None-Exist": f"identifier={EHC}|EHC-0001"})
    assert existing.status_code == 200 and existing.get_json()["id"] == "p1"
    new_body = {"resourceType": "Patient", "identifier": [{"system": EHC, "value": "EHC-0009"}]}
    created = post(data, "/fhir/Patient", new_body, **{"If-None-Exist": f"identifier={EHC}|EHC-0009"})
    assert created.status_code == 201
    again = post(data, "/fhir/Patient", new_body, **{"If-None-Exist": f"identifier={EHC}|EHC-0009"})
    assert again.status_code == 200 and again.get_json()["id"] == created.get_json()["id"]
    assert _ids(data, "/fhir/Patient?identifier=EHC-0009") == [created.get_json()["id"]]
    ambiguous = post(data, "/fhir/Patient", new_body, **{"If-None-Exist": "gender=female"})
    assert ambiguous.status_code == 412
