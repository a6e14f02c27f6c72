"""A transaction Bundle is atomic on every store: one invalid entry in the middle and nothing is
written (resource counts and versions compared before and after). Runs once per ``STORES`` entry."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.store import HistoryQuery, Store
from fhir_server.store.base import iter_history
from tests.conftest import post

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _state(store: Store) -> list[tuple[str, str, int, bool]]:
    return sorted((r.type, r.id, r.version, r.deleted)
                  for r in iter_history(store, HistoryQuery(limit=100)))


def _client(settings: Settings, store: Store) -> FlaskClient:
    return create_app(replace(settings, allow_update_create=True), store).test_client()


def _transaction(pid: str, middle: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "name": [{"family": "A"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "id": pid, "gender": "female"},
         "request": {"method": "PUT", "url": f"Patient/{pid}"}},
        middle,
        {"resource": {"resourceType": "Encounter", "status": "finished",
                      "class": {"system": ACT, "code": "AMB"}, "subject": {"reference": "urn:uuid:p"}},
         "request": {"method": "POST", "url": "Encounter"}},
        {"request": {"method": "DELETE", "url": "Organization/org"}},
    ]}


def test_a_transaction_with_an_invalid_entry_writes_nothing(settings: Settings, store: Store) -> None:
    client = _client(settings, store)
    created = post(client, "/fhir/Patient", {"resourceType": "Patient", "gender": "male"})
    assert created.status_code == 201
    pid = created.get_json()["id"]
    org = {"resourceType": "Organization", "id": "org", "name": "Hospital"}
    assert client.put("/fhir/Organization/org", json=org).status_code == 201
    before = _state(store)
    counts = {t: client.get(f"/fhir/{t}?_summary=count").get_json()["total"]
              for t in ("Patient", "Encounter", "Organization")}

    invalid = {"fullUrl": "urn:uuid:bad",
               "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                            "valueQuantity": {"value": "NaN"}},
               "request": {"method": "POST", "url": "Observation"}}
    # found by validation before anything is written ...
    response = post(client, "/fhir", _transaction(pid, invalid))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["issue"][0]["expression"][0] == "Bundle.entry[2]"
    assert _state(store) == before
    # ... and found only while writing, after the DELETE, POST and PUT entries were written
    patch = base64.b64encode(b'[{"op": "add", "path": "/active", "value": true}]').decode()
    unknown = {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                            "data": patch},
               "request": {"method": "PATCH", "url": "Patient/nope"}}
    response = post(client, "/fhir", _transaction(pid, unknown))
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["issue"][0]["expression"][0] == "Bundle.entry[2]"
    assert _state(store) == before
    assert counts == {t: client.get(f"/fhir/{t}?_summary=count").get_json()["total"]
                      for t in ("Patient", "Encounter", "Organization")}
    assert client.get("/fhir/Organization/org").status_code == 200

    # the same Bundle without the bad entry is written whole
    response = post(client, "/fhir", _transaction(pid, {"request": {"method": "GET",
                                                                   "url": f"Patient/{pid}"}}))
    assert response.status_code == 200, response.get_json()
    assert len(_state(store)) == len(before) + 4
