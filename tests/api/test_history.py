"""history at instance, type and system level; paging; the CapabilityStatement."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient

from fhir_server.fhir import structure
from tests.conftest import FHIR_JSON, post


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def _links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle.get("link", [])}


def _make(client: FlaskClient, rtype: str = "Patient", **fields: Any) -> str:
    response = post(client, f"/fhir/{rtype}", {"resourceType": rtype, **fields})
    assert response.status_code == 201
    return str(response.get_json()["id"])


def test_instance_history_has_every_version_newest_first(client: FlaskClient) -> None:
    rid = _make(client, gender="male")
    client.put(f"/fhir/Patient/{rid}", json={"resourceType": "Patient", "id": rid,
                                              "gender": "female"},
               headers={"Content-Type": FHIR_JSON})
    client.patch(f"/fhir/Patient/{rid}", json=[{"op": "add", "path": "/active", "value": False}],
                 headers={"Content-Type": "application/json-patch+json"})
    client.delete(f"/fhir/Patient/{rid}")
    bundle = client.get(f"/fhir/Patient/{rid}/_history").get_json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "history"
    entries = bundle["entry"]
    assert [e["request"]["method"] for e in entries] == ["DELETE", "PATCH", "PUT", "POST"]
    assert [e["request"]["url"] for e in entries] == [f"Patient/{rid}"] * 3 + ["Patient"]
    assert [e["response"]["etag"] for e in entries] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
    assert entries[0]["response"]["status"].startswith("204")
    assert entries[3]["response"]["status"].startswith("201")
    assert "resource" not in entries[0]
    assert entries[1]["resource"]["active"] is False
    assert entries[3]["resource"]["gender"] == "male"
    assert all(e["fullUrl"] == f"http://localhost/fhir/Patient/{rid}" for e in entries)
    assert structure.validate(bundle, "Bundle") == []


def test_unknown_instance_history_is_404(client: FlaskClient) -> None:
    assert client.get("/fhir/Patient/none/_history").status_code == 404
    assert client.get("/fhir/Nothing/_history").status_code == 404


def test_type_and_system_history(client: FlaskClient) -> None:
    p1 = _make(client)
    o1 = _make(client, "Organization", name="某医院")
    p2 = _make(client)
    type_ids = [e["resource"]["id"] for e in client.get("/fhir/Patient/_history").get_json()["entry"]]
    assert type_ids == [p2, p1]
    system_ids = [e["resource"]["id"] for e in client.get("/fhir/_history").get_json()["entry"]]
    assert system_ids == [p2, o1, p1]


def test_since(client: FlaskClient) -> None:
    _make(client)
    time.sleep(0.01)
    later = client.get("/fhir/_history").get_json()["meta"]["lastUpdated"]
    time.sleep(0.01)
    newer = _make(client)
    bundle = client.get(f"/fhir/_history?_since={later}").get_json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == [newer]
    bad = client.get("/fhir/_history?_since=yesterday")
    assert bad.status_code == 400
    assert bad.get_json()["issue"][0]["expression"] == ["_since"]
    assert client.get("/fhir/_history?_since=2020-01-01").status_code == 400  # not an instant


def test_paging_walks_everything_once_while_writes_happen(client: FlaskClient) -> None:
    created = {_make(client) for _ in range(23)}
    url = "/fhir/Patient/_history?_count=5"
    seen: list[str] = []
    pages = 0
    while url:
        bundle = client.get(url).get_json()
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        pages += 1
        _make(client)  # a concurrent write lands on top and must not disturb the walk
        links = _links(bundle)
        assert "self" in links and "first" in links
        url = _path(links["next"]) if "next" in links else ""
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == created


def test_count_and_cursor_validation(client: FlaskClient) -> None:
    for _ in range(3):
        _make(client)
    bundle = client.get("/fhir/_history?_count=2").get_json()
    assert len(bundle["entry"]) == 2
    token = parse_qs(urlsplit(_links(bundle)["next"]).query)["_cursor"][0]
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    response = client.get(f"/fhir/_history?_count=2&_cursor={tampered}")
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["_cursor"]
    assert client.get("/fhir/_history?_count=-1").status_code == 400
    assert "entry" not in client.get("/fhir/_history?_count=0").get_json()


def test_capability_statement_lists_what_is_routed(client: FlaskClient) -> None:
    cs = client.get("/fhir/metadata").get_json()
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["format"] == ["application/fhir+json", "json"]
    assert cs["kind"] == "instance"
    assert structure.validate(cs, "CapabilityStatement") == []
    resources = cs["rest"][0]["resource"]
    assert {r["type"] for r in resources} == structure.RESOURCE_TYPES
    patient = next(r for r in resources if r["type"] == "Patient")
    codes = [i["code"] for i in patient["interaction"]]
    assert codes == ["read", "vread", "update", "patch", "delete", "history-instance",
                     "history-type", "create", "search-type"]
    assert [i["code"] for i in cs["rest"][0]["interaction"]] == [
        "batch", "history-system", "search-system", "transaction"]
    assert patient["updateCreate"] is False
    assert patient["conditionalCreate"] is True and patient["conditionalDelete"] == "single"
    names = {p["name"]: p["type"] for p in patient["searchParam"]}
    assert names["identifier"] == "token" and names["birthdate"] == "date"
    assert names["general-practitioner"] == "reference" and names["_lastUpdated"] == "date"
    assert cs["rest"][0]["compartment"] == [
        "http://hl7.org/fhir/CompartmentDefinition/patient"]
