"""Search through HTTP over a small hand-made data set; expected ids are written out by hand."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.fhir import jsonio
from fhir_server.interactions.load import load
from tests.conftest import FHIR_JSON, post

EHC = "https://fhir.demo-city.health.cn/sid/ehc-id"
CIN = "urn:oid:2.16.156.10011.1.3"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

DATA: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "hosp", "name": "成都市第一人民医院"},
    {"resourceType": "Practitioner", "id": "dr-li", "name": [{"family": "李", "given": ["医生"]}]},
    {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1990-05-01",
     "identifier": [{"system": EHC, "value": "A" * 64}, {"system": CIN, "value": "11010019900501001X"}],
     "name": [{"text": "王小明", "family": "Wáng", "given": ["Xiaoming"]}],
     "generalPractitioner": [{"reference": "Practitioner/dr-li"}],
     "managingOrganization": {"reference": "Organization/hosp"}},
    {"resourceType": "Patient", "id": "p2", "gender": "female", "birthDate": "1985-12-31",
     "identifier": [{"system": EHC, "value": "B" * 64}],
     "name": [{"text": "李娜", "family": "Li", "given": ["Na"]}], "active": True},
    {"resourceType": "Patient", "id": "p3", "gender": "female", "birthDate": "2021-03",
     "name": [{"family": "Wangler", "given": ["Anna"]}]},
    {"resourceType": "Encounter", "id": "e1", "status": "finished",
     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
     "subject": {"reference": "Patient/p1"}, "serviceProvider": {"reference": "Organization/hosp"},
     "period": {"start": "2024-01-10T09:00:00+08:00", "end": "2024-01-10T10:00:00+08:00"}},
    {"resourceType": "Encounter", "id": "e2", "status": "in-progress",
     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
     "subject": {"reference": "Patient/p2"},
     "period": {"start": "2024-06-01T00:00:00Z"}},
    {"resourceType": "Observation", "id": "o1", "status": "final",
     "code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}]},
     "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
     "effectiveDateTime": "2024-01-10T09:30:00+08:00",
     "valueQuantity": {"value": 130, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
    {"resourceType": "Observation", "id": "o2", "status": "final",
     "code": {"coding": [{"system": LOINC, "code": "8480-6"}], "text": "收缩压"},
     "subject": {"reference": "Patient/p2"},
     "effectiveDateTime": "2024-06-02",
     "valueQuantity": {"value": 118.5, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
    {"resourceType": "Observation", "id": "o3", "status": "amended",
     "code": {"coding": [{"system": LOINC, "code": "29463-7"}], "text": "Body weight"},
     "subject": {"reference": "Patient/p1"},
     "valueQuantity": {"value": 70, "unit": "kg", "system": UCUM, "code": "kg"}},
]


@pytest.fixture
def data(app: Flask) -> FlaskClient:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(DATA)))  # decimals as HTTP gives them
    return app.test_client()


def ids(client: FlaskClient, url: str, status: int = 200) -> list[str]:
    response = client.get(url)
    assert response.status_code == status, response.get_json()
    bundle = response.get_json()
    assert bundle["type"] == "searchset"
    return [e["resource"]["id"] for e in bundle.get("entry", [])
            if e["search"]["mode"] == "match"]


def error(client: FlaskClient, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 400, response.get_json()
    return response.get_json()["issue"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("url", "expected"), [
    ("/fhir/Patient", ["p1", "p2", "p3"]),
    (f"/fhir/Patient?identifier={EHC}|{'A' * 64}", ["p1"]),
    (f"/fhir/Patient?identifier={'B' * 64}", ["p2"]),
    (f"/fhir/Patient?identifier=|{'B' * 64}", []),
    (f"/fhir/Patient?identifier={CIN}|", ["p1"]),
    ("/fhir/Patient?gender=female", ["p2", "p3"]),
    ("/fhir/Patient?gender:not=female", ["p1"]),
    ("/fhir/Patient?gender=male,female", ["p1", "p2", "p3"]),
    ("/fhir/Patient?active=true", ["p2"]),
    ("/fhir/Patient?active:missing=true", ["p1", "p3"]),
    ("/fhir/Patient?name=wang", ["p1", "p3"]),
    ("/fhir/Patient?name=王", ["p1"]),
    ("/fhir/Patient?family:exact=Wáng", ["p1"]),
    ("/fhir/Patient?family:exact=wang", []),
    ("/fhir/Patient?name:contains=ang", ["p1", "p3"]),
    ("/fhir/Patient?birthdate=1990", ["p1"]),
    ("/fhir/Patient?birthdate=ge1986-01-01", ["p1", "p3"]),
    ("/fhir/Patient?birthdate=lt1990-05-01", ["p2"]),
    ("/fhir/Patient?birthdate=2021-03-15", []),
    ("/fhir/Patient?birthdate=2021", ["p3"]),
    ("/fhir/Patient?birthdate=ge1980&birthdate=lt1990", ["p2"]),
    ("/fhir/Encounter?date=2024-01-10", ["e1"]),
    ("/fhir/Encounter?date=ge2024-03-01", ["e2"]),
    ("/fhir/Encounter?class=AMB", ["e1"]),
    ("/fhir/Encounter?subject=Patient/p1", ["e1"]),
    ("/fhir/Encounter?subject=p2", ["e2"]),
    ("/fhir/Encounter?patient:Patient=p2", ["e2"]),
    ("/fhir/Encounter?subject=http://localhost/fhir/Patient/p1", ["e1"]),
    ("/fhir/Encounter?service-provider:missing=true", ["e2"]),
    ("/fhir/Observation?subject:Patient.name=li", ["o2"]),
    ("/fhir/Observation?subject:Patient.general-practitioner.name=李", ["o1", "o3"]),
    (f"/fhir/Observation?subject:Patient.identifier={EHC}|{'A' * 64}", ["o1", "o3"]),
    ("/fhir/Observation?encounter.class=AMB", ["o1"]),
    (f"/fhir/Patient?_has:Observation:patient:code={LOINC}|29463-7", ["p1"]),
    ("/fhir/Patient?_has:Encounter:subject:_has:Observation:encounter:code=8480-6", ["p1"]),
    ("/fhir/Patient?_has:Encounter:subject:_has:Observation:encounter:code=29463-7", []),
    ("/fhir/Organization?_has:Patient:organization:_has:Observation:patient:code=29463-7",
     ["hosp"]),
    ("/fhir/Observation?code:text=收缩", ["o2"]),
    ("/fhir/Observation?code:text=systolic", ["o1"]),
    ("/fhir/Observation?value-quantity=gt120", ["o1"]),
    (f"/fhir/Observation?value-quantity=lt200|{UCUM}|mm[Hg]", ["o1", "o2"]),
    ("/fhir/Observation?value-quantity=118.5", ["o2"]),
    ("/fhir/Observation?value-quantity=ap70||kg", ["o3"]),
    (f"/fhir/Observation?code-value-quantity={LOINC}|8480-6$gt125", ["o1"]),
    (f"/fhir/Observation?code-value-quantity={LOINC}|29463-7$gt125", []),
    ("/fhir/Observation?status=final&subject=p1", ["o1"]),
    ("/fhir/Observation?date=2024-06", ["o2"]),
    ("/fhir/Patient?_id=p1,p3", ["p1", "p3"]),
])
def test_search_results(data: FlaskClient, url: str, expected: list[str]) -> None:
    assert ids(data, url) == expected


def test_sort_and_total(data: FlaskClient) -> None:
    assert ids(data, "/fhir/Patient?_sort=birthdate") == ["p2", "p1", "p3"]
    assert ids(data, "/fhir/Patient?_sort=-birthdate") == ["p3", "p1", "p2"]
    assert ids(data, "/fhir/Patient?_sort=gender,-birthdate") == ["p3", "p2", "p1"]
    assert ids(data, "/fhir/Patient?_sort=-_id") == ["p3", "p2", "p1"]
    assert ids(data, "/fhir/Patient?_sort=active") == ["p2", "p1", "p3"]  # missing sorts last
    bundle = data.get("/fhir/Patient?gender=female").get_json()
    assert bundle["total"] == 2
    assert "total" not in data.get("/fhir/Patient?_total=none").get_json()
    count = data.get("/fhir/Patient?_summary=count").get_json()
    assert count["total"] == 3 and "entry" not in count


def test_paging_forward_and_back(data: FlaskClient) -> None:
    first = data.get("/fhir/Observation?_count=1&_sort=_id").get_json()
    assert [e["resource"]["id"] for e in first["entry"]] == ["o1"]
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    second = data.get(links["next"].replace("http://localhost", "")).get_json()
    assert [e["resource"]["id"] for e in second["entry"]] == ["o2"]
    links2 = {link["relation"]: link["url"] for link in second["link"]}
    back = data.get(links2["previous"].replace("http://localhost", "")).get_json()
    assert [e["resource"]["id"] for e in back["entry"]] == ["o1"]
    third = data.get(links2["next"].replace("http://localhost", "")).get_json()
    assert [e["resource"]["id"] for e in third["entry"]] == ["o3"]
    assert "next" not in {link["relation"] for link in third["link"]}
    # a cursor is bound to its search
    token = parse_qs(urlsplit(links["next"]).query)["_cursor"][0]
    assert error(data, f"/fhir/Observation?_count=1&_sort=-_id&_cursor={token}")[
        "expression"] == ["_cursor"]
    assert error(data, f"/fhir/Observation?_count=1&_sort=_id&_cursor={token[:-3]}xyz")[
        "expression"] == ["_cursor"]


def test_paging_sees_every_match_once_while_writes_happen(app: Flask) -> None:
    client = app.test_client()
    load(app.extensions["fhir"], [
        {"resourceType": "Patient", "id": f"pt{n:03d}", "gender": "other",
         "birthDate": f"{1950 + n % 40}-01-01"} for n in range(57)])
    seen: list[str] = []
    url = "/fhir/Patient?gender=other&_sort=birthdate&_count=10"
    writes = 0
    while url:
        bundle = client.get(url).get_json()
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        post(client, "/fhir/Patient", {"resourceType": "Patient", "gender": "other",
                                       "birthDate": "1900-01-01"})  # sorts before the cursor
        writes += 1
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0].replace("http://localhost", "") if nxt else ""
    assert len(seen) == len(set(seen)) == 57
    assert writes == 6


def test_a_common_name_pages_in_name_order_while_writes_happen(app: Flask) -> None:
    """Without _sort, a common name is paged along its index (store/sqlite/ordered.py): in
    name order, each match once, while other clients add patients of the same name."""
    client = app.test_client()
    families = ["Zhaoyu", "Zhao", "Zhaoli"]
    load(app.extensions["fhir"], [
        {"resourceType": "Patient", "id": f"pt{n:03d}", "name": [{"family": families[n % 3]}]}
        for n in range(57)])
    seen: list[str] = []
    url = "/fhir/Patient?name=zhao&_count=10"
    while url:
        bundle = client.get(url).get_json()
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        for family in ("Zhao", "Zhaoz"):  # sorts at the start, and at the end
            post(client, "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": family}]})
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0].replace("http://localhost", "") if nxt else ""
    assert seen[:10] == [f"pt{n:03d}" for n in range(1, 30, 3)]  # "zhao" first, by id
    old = [i for i in seen if i.startswith("pt")]
    assert len(old) == len(set(old)) == 57 and len(seen) == len(set(seen))
    assert old == sorted(old, key=lambda i: (families[int(i[2:]) % 3].lower(), i))


def test_include_revinclude_iterate(data: FlaskClient) -> None:
    bundle = data.get("/fhir/Observation?_id=o1&_include=Observation:subject"
                      "&_include:iterate=Patient:general-practitioner").get_json()
    modes = {(e["resource"]["resourceType"], e["resource"]["id"]): e["search"]["mode"]
             for e in bundle["entry"]}
    assert modes == {("Observation", "o1"): "match", ("Patient", "p1"): "include",
                     ("Practitioner", "dr-li"): "include"}
    rev = data.get("/fhir/Patient?_id=p1&_revinclude=Observation:subject").get_json()
    assert sorted(e["resource"]["id"] for e in rev["entry"]) == ["o1", "o3", "p1"]
    assert rev["total"] == 1
    star = data.get("/fhir/Encounter?_id=e1&_include=*").get_json()
    assert sorted(e["resource"]["id"] for e in star["entry"]) == ["e1", "hosp", "p1"]


def test_summary_and_elements_on_results(data: FlaskClient) -> None:
    bundle = data.get("/fhir/Patient?_id=p1&_elements=gender").get_json()
    resource = bundle["entry"][0]["resource"]
    assert resource["gender"] == "male" and "name" not in resource
    assert resource["meta"]["tag"][0]["code"] == "SUBSETTED"


def test_unknown_parameters_strict_and_lenient(data: FlaskClient) -> None:
    issue = error(data, "/fhir/Patient?colour=blue")
    assert issue["expression"] == ["colour"]
    lenient = data.get("/fhir/Patient?colour=blue&gender=male",
                       headers={"Prefer": "handling=lenient"}).get_json()
    assert [e["resource"]["id"] for e in lenient["entry"]] == ["p1"]
    self_link = next(x["url"] for x in lenient["link"] if x["relation"] == "self")
    assert "gender=male" in self_link and "colour" not in self_link
    # a known parameter with a bad value is an error even when lenient
    bad = data.get("/fhir/Patient?birthdate=notadate", headers={"Prefer": "handling=lenient"})
    assert bad.status_code == 400
    assert error(data, "/fhir/Patient?gender:in=http://x")["expression"] == ["gender:in"]


def test_post_search_system_and_compartment(data: FlaskClient) -> None:
    response = data.post("/fhir/Patient/_search", data={"gender": "female", "_sort": "_id"},
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert [e["resource"]["id"] for e in response.get_json()["entry"]] == ["p2", "p3"]
    assert ids(data, "/fhir?_type=Patient,Encounter&_id=p1,e2") == ["e2", "p1"]
    assert ids(data, "/fhir/Patient/p1/Observation") == ["o1", "o3"]
    assert ids(data, "/fhir/Patient/p2/Encounter") == ["e2"]
    assert data.get("/fhir/Patient/p1/Organization").status_code == 404


def test_conditional_create_update_delete_patch(data: FlaskClient) -> None:
    headers = {"Content-Type": FHIR_JSON}
    body = {"resourceType": "Patient", "identifier": [{"system": EHC, "value": "A" * 64}]}
    existing = data.post("/fhir/Patient", json=body,
                         headers={**headers, "If-None-Exist": f"identifier={EHC}|{'A' * 64}"})
    assert existing.status_code == 200 and existing.get_json()["id"] == "p1"
    new_card = {"resourceType": "Patient", "identifier": [{"system": EHC, "value": "C" * 64}]}
    new = data.post("/fhir/Patient", json=new_card,
                    headers={**headers, "If-None-Exist": f"identifier={EHC}|{'C' * 64}"})
    assert new.status_code == 201
    # without criteria, the same card again is refused: one resident, one record
    assert data.post("/fhir/Patient", json=new_card, headers=headers).status_code == 409
    many = data.post("/fhir/Patient", json={"resourceType": "Patient"},
                     headers={**headers, "If-None-Exist": "gender=female"})
    assert many.status_code == 412
    unknown = data.post("/fhir/Patient", json={"resourceType": "Patient"},
                        headers={**headers, "If-None-Exist": "colour=x"})
    assert unknown.status_code == 400

    update = data.put(f"/fhir/Patient?identifier={'B' * 64}",
                      json={"resourceType": "Patient", "gender": "female", "active": False},
                      headers=headers)
    assert update.status_code == 200 and update.get_json()["id"] == "p2"
    assert update.get_json()["meta"]["versionId"] == "2"
    assert data.put("/fhir/Patient?gender=female", json={"resourceType": "Patient"},
                    headers=headers).status_code == 412
    created = data.put(f"/fhir/Patient?identifier={'D' * 64}",
                       json={"resourceType": "Patient", "gender": "male"}, headers=headers)
    assert created.status_code == 201

    patched = data.patch("/fhir/Patient?_id=p3", json=[{"op": "add", "path": "/active",
                                                         "value": True}],
                         headers={"Content-Type": "application/json-patch+json"})
    assert patched.status_code == 200 and patched.get_json()["active"] is True

    assert data.delete("/fhir/Observation?status=final").status_code == 412
    assert data.delete("/fhir/Observation?status=amended").status_code == 204
    assert data.get("/fhir/Observation/o3").status_code == 410
    nothing = data.delete("/fhir/Observation?status=amended")
    assert nothing.status_code == 200


def test_last_updated_sort_and_an_unencoded_plus_in_a_time_zone(data: FlaskClient) -> None:
    post(data, "/fhir/Patient", {"resourceType": "Patient", "gender": "unknown"})
    newest = ids(data, "/fhir/Patient?_sort=-_lastUpdated")[0]
    assert newest not in ("p1", "p2", "p3")
    # "+08:00" typed into a URL decodes to " 08:00": read as the offset it was meant to be
    assert ids(data, "/fhir/Encounter?date=le2024-01-10T09:30:00 08:00") == ["e1"]
    assert ids(data, "/fhir/Encounter?date=le2024-01-10T09:30:00%2B08:00") == ["e1"]
    assert ids(data, "/fhir/Encounter?date=le2024-01-10T08:30:00%2B08:00") == []
