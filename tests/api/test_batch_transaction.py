"""POST /fhir with batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.store.sqlite import SqliteStore
from tests.conftest import FHIR_JSON, post

EHC = "https://fhir.demo-city.health.cn/sid/ehc-id"
OTHER = "http://example.org/sid/not-unique"  # not a card system: several Patients may share it
LOINC = "http://loinc.org"


def _patient(card: str, family: str = "Wang", system: str = EHC) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": system, "value": card}],
            "name": [{"family": family}]}


def _obs(subject: str, code: str = "8480-6") -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": subject}}


def _tx(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": kind}
    if entries:
        bundle["entry"] = list(entries)
    return bundle


def _post_entry(resource: dict[str, Any], full_url: str | None = None,
                **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"resource": resource,
                             "request": {"method": "POST", "url": resource["resourceType"],
                                         **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _send(client: FlaskClient, bundle: Any, **headers: str) -> Any:
    return post(client, "/fhir", bundle, **headers)


def _create(client: FlaskClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = post(client, f"/fhir/{resource['resourceType']}", resource)
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def _read(client: FlaskClient, ref: str) -> dict[str, Any]:
    response = client.get(f"/fhir/{ref}")
    assert response.status_code == 200, (ref, response.get_json())
    body: dict[str, Any] = response.get_json()
    return body


def _state(client: FlaskClient) -> tuple[int, list[tuple[str, str, str]]]:
    """The system history total and every (type, id, version) in it: equal means unchanged."""
    bundle = client.get("/fhir/_history?_count=1000").get_json()
    rows = sorted((e["request"]["url"], e["fullUrl"], e["response"]["etag"])
                  for e in bundle.get("entry", []))
    return len(rows), rows


def _ref(location: str) -> str:
    return "/".join(location.split("/")[:2])


# -- transaction ---------------------------------------------------------------------------------
def test_urn_uuid_references_are_rewritten_everywhere(client: FlaskClient) -> None:
    pat, enc = "urn:uuid:0b4f2c3a-0000-4000-8000-000000000001", "urn:oid:1.2.3.4"
    encounter = {"resourceType": "Encounter", "status": "finished",
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                           "code": "AMB"},
                 "subject": {"reference": pat}}
    obs = _obs(pat)
    obs["encounter"] = {"reference": enc}
    obs["extension"] = [{"url": "http://example.org/ext/about",
                         "valueReference": {"reference": pat}}]
    obs["contained"] = [{"resourceType": "Provenance", "id": "prov",
                         "recorded": "2024-01-01T00:00:00Z",
                         "target": [{"reference": f"{pat}/_history/1"}],
                         "agent": [{"who": {"reference": pat}}]}]
    obs["hasMember"] = [{"reference": "#prov"}]
    response = _send(client, _tx(_post_entry(obs), _post_entry(encounter, enc),
                                 _post_entry(_patient("EHC-1"), pat)))
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created"] * 3
    obs_ref, enc_ref, pat_ref = (_ref(e["response"]["location"]) for e in result["entry"])
    assert obs_ref.startswith("Observation/") and enc_ref.startswith("Encounter/")
    assert pat_ref.startswith("Patient/") and pat_ref != "Patient/" + pat
    stored = _read(client, obs_ref)
    assert stored["subject"]["reference"] == pat_ref
    assert stored["encounter"]["reference"] == enc_ref
    assert stored["extension"][0]["valueReference"]["reference"] == pat_ref
    assert stored["contained"][0]["target"][0]["reference"] == f"{pat_ref}/_history/1"
    assert stored["contained"][0]["agent"][0]["who"]["reference"] == pat_ref
    assert stored["hasMember"][0]["reference"] == "#prov"  # local references stay
    assert _read(client, enc_ref)["subject"]["reference"] == pat_ref
    # the response carries the resources, etag and lastModified
    first = result["entry"][0]
    assert first["resource"]["id"] == obs_ref.split("/")[1]
    assert first["response"]["etag"] == 'W/"1"' and first["response"]["lastModified"]


def test_conditional_references(client: FlaskClient) -> None:
    existing = _create(client, _patient("EHC-A"))
    _create(client, _patient("DUP", system=OTHER))
    _create(client, _patient("DUP", system=OTHER))
    ok = _send(client, _tx(_post_entry(_obs(f"Patient?identifier={EHC}|EHC-A"))))
    assert ok.status_code == 200, ok.get_json()
    created = _ref(ok.get_json()["entry"][0]["response"]["location"])
    assert _read(client, created)["subject"]["reference"] == f"Patient/{existing['id']}"

    before = _state(client)
    for ref, how in ((f"Patient?identifier={EHC}|EHC-NONE", "no"),
                     (f"Patient?identifier={OTHER}|DUP", "more than one")):
        bad = _send(client, _tx(_post_entry(_patient("EHC-X")),
                                _post_entry(_obs(ref), "urn:uuid:obs-1")))
        assert bad.status_code == 412, bad.get_json()
        issue = bad.get_json()["issue"][0]
        assert issue["expression"][0] == "Bundle.entry[1]"
        assert "entry 1 (urn:uuid:obs-1)" in issue["diagnostics"]
        assert ref in issue["diagnostics"] and how in issue["diagnostics"]
    assert _state(client) == before


def test_if_none_exist_returns_the_existing_resource(client: FlaskClient) -> None:
    existing = _create(client, _patient("EHC-B"))
    pat = "urn:uuid:p-b"
    bundle = _tx(_post_entry(_patient("EHC-B"), pat, ifNoneExist=f"identifier={EHC}|EHC-B"),
                 _post_entry(_obs(pat)),
                 _post_entry(_patient("EHC-C"), "urn:uuid:p-c",
                             ifNoneExist=f"identifier={EHC}|EHC-C"),
                 _post_entry(_obs("urn:uuid:p-c")))
    response = _send(client, bundle)
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"
    assert _ref(entries[0]["response"]["location"]) == f"Patient/{existing['id']}"
    assert _read(client, _ref(entries[1]["response"]["location"]))["subject"]["reference"] \
        == f"Patient/{existing['id']}"
    assert entries[2]["response"]["status"] == "201 Created"
    new_patient = _ref(entries[2]["response"]["location"])
    assert _read(client, _ref(entries[3]["response"]["location"]))["subject"]["reference"] \
        == new_patient
    total = client.get(f"/fhir/Patient?identifier={EHC}|EHC-B").get_json()["total"]
    assert total == 1


def test_if_match_put_patch_delete(client: FlaskClient) -> None:
    p = _create(client, _patient("EHC-M"))
    o = _create(client, _obs(f"Patient/{p['id']}"))
    d = _create(client, _obs(f"Patient/{p['id']}", "29463-7"))
    patch_doc = [{"op": "replace", "path": "/status", "value": "amended"}]
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json",
              "data": base64.b64encode(json.dumps(patch_doc).encode()).decode()}

    def bundle(version: str) -> dict[str, Any]:
        return _tx(
            {"resource": {**p, "gender": "female"},
             "request": {"method": "PUT", "url": f"Patient/{p['id']}", "ifMatch": version}},
            {"resource": binary,
             "request": {"method": "PATCH", "url": f"Observation/{o['id']}", "ifMatch": version}},
            {"request": {"method": "DELETE", "url": f"Observation/{d['id']}",
                         "ifMatch": version}})

    stale = _send(client, bundle('W/"2"'))
    assert stale.status_code == 412, stale.get_json()
    assert stale.get_json()["issue"][0]["expression"][0] == "Bundle.entry[2]"  # DELETE runs first
    ok = _send(client, bundle('W/"1"'))
    assert ok.status_code == 200, ok.get_json()
    statuses = [e["response"]["status"] for e in ok.get_json()["entry"]]
    assert statuses == ["200 OK", "200 OK", "204 No Content"]
    assert [e["response"]["etag"] for e in ok.get_json()["entry"]] == ['W/"2"'] * 3
    assert _read(client, f"Patient/{p['id']}")["gender"] == "female"
    assert _read(client, f"Observation/{o['id']}")["status"] == "amended"
    assert client.get(f"/fhir/Observation/{d['id']}").status_code == 410


def test_conditional_update_and_delete_entries(client: FlaskClient) -> None:
    p = _create(client, _patient("EHC-U"))
    _create(client, _patient("EHC-GONE"))
    bundle = _tx(
        {"resource": {**_patient("EHC-U"), "gender": "male"},
         "request": {"method": "PUT", "url": f"Patient?identifier={EHC}|EHC-U"}},
        {"fullUrl": "urn:uuid:new-u", "resource": _patient("EHC-NEW"),
         "request": {"method": "PUT", "url": f"Patient?identifier={EHC}|EHC-NEW"}},
        _post_entry(_obs("urn:uuid:new-u")),
        {"request": {"method": "DELETE", "url": f"Patient?identifier={EHC}|EHC-GONE"}})
    response = _send(client, bundle)
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "200 OK", "201 Created", "201 Created", "204 No Content"]
    assert _ref(entries[0]["response"]["location"]) == f"Patient/{p['id']}"
    new_ref = _ref(entries[1]["response"]["location"])
    assert _read(client, _ref(entries[2]["response"]["location"]))["subject"]["reference"] == new_ref
    assert client.get(f"/fhir/Patient?identifier={EHC}|EHC-GONE").get_json()["total"] == 0


def test_processing_order_delete_before_post_and_response_in_request_order(
        client: FlaskClient) -> None:
    old = _create(client, _patient("EHC-SAME"))
    # the POST (listed first) runs after the DELETE: the ifNoneExist then finds nothing
    bundle = _tx(_post_entry(_patient("EHC-SAME", "New"), "urn:uuid:n",
                             ifNoneExist=f"identifier={EHC}|EHC-SAME"),
                 {"request": {"method": "GET", "url": f"Patient?identifier={EHC}|EHC-SAME"}},
                 {"request": {"method": "DELETE", "url": f"Patient/{old['id']}"}})
    response = _send(client, bundle)
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created", "200 OK", "204 No Content"]
    new_id = _ref(entries[0]["response"]["location"]).split("/")[1]
    assert new_id != old["id"]
    searchset = entries[1]["resource"]  # GET runs last and sees the transaction's writes
    assert searchset["type"] == "searchset" and searchset["total"] == 1
    assert searchset["entry"][0]["resource"]["id"] == new_id
    assert _ref(entries[2]["response"]["location"]) == f"Patient/{old['id']}"


def test_get_entries_read_vread_search_and_not_modified(client: FlaskClient) -> None:
    p = _create(client, _patient("EHC-G"))
    bundle = _tx(
        {"request": {"method": "GET", "url": f"Patient/{p['id']}"}},
        {"request": {"method": "GET", "url": f"Patient/{p['id']}/_history/1"}},
        {"request": {"method": "GET", "url": f"Patient?identifier={EHC}|EHC-G"}},
        {"request": {"method": "GET", "url": f"Patient/{p['id']}", "ifNoneMatch": 'W/"1"'}},
        {"request": {"method": "GET", "url": f"Patient/{p['id']}",
                     "ifModifiedSince": "2999-01-01T00:00:00Z"}},
        {"request": {"method": "GET", "url": f"Patient/{p['id']}",
                     "ifModifiedSince": "2000-01-01T00:00:00Z"}})
    for kind in ("transaction", "batch"):
        bundle["type"] = kind
        response = _send(client, bundle)
        assert response.status_code == 200, response.get_json()
        entries = response.get_json()["entry"]
        assert [e["response"]["status"] for e in entries] == [
            "200 OK", "200 OK", "200 OK", "304 Not Modified", "304 Not Modified", "200 OK"]
        assert entries[0]["resource"]["id"] == p["id"]
        assert entries[0]["response"]["etag"] == 'W/"1"'
        assert entries[1]["resource"]["meta"]["versionId"] == "1"
        assert entries[2]["resource"]["total"] == 1
        assert "resource" not in entries[3]


def test_failure_in_the_middle_leaves_the_database_unchanged(client: FlaskClient) -> None:
    p = _create(client, _patient("EHC-F"))
    before = _state(client)
    invalid = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
               "valueQuantity": {"value": "not a number"}}
    bundle = _tx(_post_entry(_patient("EHC-F1"), "urn:uuid:a"),
                 {"resource": {**p, "gender": "other"},
                  "request": {"method": "PUT", "url": f"Patient/{p['id']}"}},
                 {"request": {"method": "DELETE", "url": f"Patient/{p['id']}"}},
                 _post_entry(invalid, "urn:uuid:bad"),
                 _post_entry(_obs("urn:uuid:a")))
    response = _send(client, bundle)
    assert response.status_code == 400, response.get_json()
    issue = response.get_json()["issue"][0]
    assert issue["expression"][0] == "Bundle.entry[3]"
    assert issue["diagnostics"].startswith("entry 3 (urn:uuid:bad): ")
    assert _state(client) == before

    # a failure found only while writing (PUT of an unknown id) also rolls everything back
    bundle = _tx(_post_entry(_patient("EHC-F2"), "urn:uuid:b"),
                 {"request": {"method": "DELETE", "url": f"Patient/{p['id']}"}},
                 {"resource": {**_patient("EHC-F3"), "id": "nope"},
                  "request": {"method": "PUT", "url": "Patient/nope"}},
                 _post_entry(_obs("urn:uuid:b")))
    response = _send(client, bundle)
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["issue"][0]["expression"][0] == "Bundle.entry[2]"
    assert _state(client) == before
    assert client.get(f"/fhir/Patient?identifier={EHC}|EHC-F2").get_json()["total"] == 0


def test_reference_to_an_unknown_urn_and_duplicate_identities_fail(client: FlaskClient) -> None:
    response = _send(client, _tx(_post_entry(_obs("urn:uuid:missing"), "urn:uuid:o")))
    assert response.status_code == 400, response.get_json()
    assert "urn:uuid:missing" in response.get_json()["issue"][0]["diagnostics"]
    p = _create(client, _patient("EHC-D"))
    twice = _tx(*[{"resource": p, "request": {"method": "PUT", "url": f"Patient/{p['id']}"}}] * 2)
    response = _send(client, twice)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"][0] == "Bundle.entry[1]"


def test_prefer_minimal_and_operation_outcome(client: FlaskClient) -> None:
    minimal = _send(client, _tx(_post_entry(_patient("EHC-P1"))),
                    Prefer="return=minimal").get_json()["entry"][0]
    assert "resource" not in minimal and minimal["response"]["location"].startswith("Patient/")
    outcome = _send(client, _tx(_post_entry(_patient("EHC-P2"))),
                    Prefer="return=OperationOutcome").get_json()["entry"][0]
    assert "resource" not in outcome
    assert outcome["response"]["outcome"]["resourceType"] == "OperationOutcome"


# -- batch ---------------------------------------------------------------------------------------
def test_batch_failing_entry_in_the_middle(client: FlaskClient) -> None:
    p = _create(client, _patient("EHC-BATCH"))
    bundle = _tx(_post_entry(_patient("EHC-B1")),
                 {"request": {"method": "GET", "url": "Patient/unknown"}},
                 _post_entry({"resourceType": "Patient", "birthDate": 1990}),
                 _post_entry(_obs("urn:uuid:other"), "urn:uuid:x"),
                 {"fullUrl": "urn:uuid:other", **_post_entry(_patient("EHC-B2"))},
                 {"resource": {**p, "gender": "male"},
                  "request": {"method": "PUT", "url": f"Patient/{p['id']}"}},
                 kind="batch")
    response = _send(client, bundle)
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["type"] == "batch-response"
    entries = result["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "201 Created", "404 Not Found", "400 Bad Request", "400 Bad Request", "201 Created",
        "200 OK"]
    bad = entries[2]["response"]["outcome"]
    assert bad["resourceType"] == "OperationOutcome"
    assert bad["issue"][0]["expression"][0] == "Bundle.entry[2]"
    assert "urn:uuid:other" in entries[3]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert _read(client, f"Patient/{p['id']}")["gender"] == "male"
    assert client.get(f"/fhir/Patient?identifier={EHC}|EHC-B1").get_json()["total"] == 1


# -- the Bundle itself ---------------------------------------------------------------------------
@pytest.fixture
def small_client(settings: Settings, store: SqliteStore) -> FlaskClient:
    limited = replace(settings, max_bundle_entries=3)
    app: Flask = create_app(limited, store)
    return app.test_client()


def test_entry_limit_is_413(small_client: FlaskClient) -> None:
    bundle = _tx(*[_post_entry(_patient(f"EHC-L{i}")) for i in range(4)])
    response = _send(small_client, bundle)
    assert response.status_code == 413, response.get_json()
    assert response.get_json()["issue"][0]["code"] == "too-costly"
    assert _send(small_client, _tx(*bundle["entry"][:3])).status_code == 200


def test_the_body_must_be_a_batch_or_transaction_bundle(client: FlaskClient) -> None:
    response = _send(client, _patient("EHC-0"))
    assert response.status_code == 400
    assert "Bundle" in response.get_json()["issue"][0]["diagnostics"]
    response = _send(client, _tx(kind="collection"))
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["Bundle.type"]
    response = _send(client, _tx({"resource": _patient("EHC-0")}))
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["Bundle.entry[0].request"]
    response = client.post("/fhir", data="<Bundle/>", headers={"Content-Type": "application/xml"})
    assert response.status_code == 415
    empty = _send(client, _tx())
    assert empty.status_code == 200 and empty.get_json()["type"] == "transaction-response"


def test_capability_statement_lists_batch_and_transaction(client: FlaskClient) -> None:
    rest = client.get("/fhir/metadata", headers={"Accept": FHIR_JSON}).get_json()["rest"][0]
    codes = {i["code"] for i in rest["interaction"]}
    assert {"batch", "transaction"} <= codes
