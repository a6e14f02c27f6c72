"""One resident, one record: a health-card identifier belongs to one active Patient, enforced by
the store itself (every store), including under concurrent creates."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.store import Store
from tests import mongo_server
from tests.contract.conftest import StoreFactory

EHC = "https://fhir.demo-city.health.cn/sid/ehc-id"
CARD = "C" * 64
HEADERS = {"Content-Type": "application/fhir+json"}


def _patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": EHC, "value": CARD}], **extra}


def _app(store: Store, tmp_path: Path) -> Any:
    return create_app(Settings(store_url=f"sqlite:///{tmp_path / 'unused.db'}",
                               access_log=False, auth=False, enforce_profiles="off"),
                      store).test_client()


def test_a_second_patient_with_the_same_card_is_refused(store: Store, tmp_path: Path) -> None:
    client = _app(store, tmp_path)
    first = client.post("/fhir/Patient", json=_patient(), headers=HEADERS)
    assert first.status_code == 201
    owner = first.get_json()["id"]
    second = client.post("/fhir/Patient", json=_patient(gender="male"), headers=HEADERS)
    assert second.status_code == 409
    issue = second.get_json()["issue"][0]
    assert f"Patient/{owner}" in issue["diagnostics"] and issue["expression"] == [
        "Patient.identifier"]
    # other identifier systems are not claimed
    other = {"resourceType": "Patient", "identifier": [{"system": "http://hosp/mrn", "value": "1"}]}
    assert client.post("/fhir/Patient", json=other, headers=HEADERS).status_code == 201
    assert client.post("/fhir/Patient", json=other, headers=HEADERS).status_code == 201


def test_claims_follow_updates_deactivation_and_deletion(store: Store, tmp_path: Path) -> None:
    client = _app(store, tmp_path)
    owner = client.post("/fhir/Patient", json=_patient(), headers=HEADERS).get_json()["id"]
    # an update that keeps the card keeps the claim; the card moved to "old" still claims
    moved = _patient(id=owner)
    moved["identifier"] = [{"system": EHC, "value": CARD, "use": "old"},
                           {"system": EHC, "value": "D" * 64}]
    assert client.put(f"/fhir/Patient/{owner}", json=moved, headers=HEADERS).status_code == 200
    assert client.post("/fhir/Patient", json=_patient(), headers=HEADERS).status_code == 409
    # an inactive (merged) record gives its cards up
    assert client.put(f"/fhir/Patient/{owner}", json={**moved, "active": False},
                      headers=HEADERS).status_code == 200
    taken = client.post("/fhir/Patient", json=_patient(), headers=HEADERS)
    assert taken.status_code == 201
    # and cannot take them back while another active Patient holds one
    assert client.put(f"/fhir/Patient/{owner}", json={**moved, "active": True},
                      headers=HEADERS).status_code == 409
    client.delete(f"/fhir/Patient/{taken.get_json()['id']}")  # deletion releases the claim
    assert client.put(f"/fhir/Patient/{owner}", json={**moved, "active": True},
                      headers=HEADERS).status_code == 200


def test_concurrent_conditional_creates_make_one_patient(store_factory: StoreFactory,
                                                         tmp_path: Path) -> None:
    statuses: list[int] = []
    ids: list[str] = []
    # the timeout only guards against a hung thread (setup takes well under a second: stores
    # starting at once on a new MongoDB database each create the indexes, once, schema.py)
    barrier = threading.Barrier(6, timeout=300)
    lock = threading.Lock()
    setup: list[tuple[float, float]] = []  # seconds to open and start the store, to build the app
    building = threading.Lock()

    def hospital() -> None:
        store = None
        try:
            started = time.perf_counter()
            store = store_factory()  # its own connection, like another worker process
            store.ping()  # connects: a MongoDB store's start-up runs here, not in the race below
            opened = time.perf_counter()
            # one app at a time: Flask compiles its URL rules with ast.parse, which CPython 3.11
            # does not allow in two threads at once ("SystemError: AST constructor recursion
            # depth mismatch"; gunicorn builds each worker's app in its own process)
            with building:
                client = _app(store, tmp_path)
            setup.append((round(opened - started, 3), round(time.perf_counter() - opened, 3)))
        except BaseException:
            barrier.abort()  # the others fail at once instead of waiting out the timeout
            if store is not None:
                store.close()
            raise
        try:
            barrier.wait()
            response = client.post("/fhir/Patient", json=_patient(), headers={
                **HEADERS, "If-None-Exist": f"identifier={EHC}|{CARD}"})
            with lock:
                statuses.append(response.status_code)
                ids.append(response.get_json().get("id") or str(response.get_json()))
        finally:
            store.close()

    threads = [threading.Thread(target=hospital) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [i for i, status in zip(ids, statuses, strict=True) if status == 201]
    assert len(created) == 1, (ids, setup)  # exactly one Patient was created ...
    found = [i for i, status in zip(ids, statuses, strict=True) if status == 200]
    assert set(found) <= set(created)  # ... and the others got that one back
    probe = store_factory()
    if probe.name == "mongodb" and "emulator" in mongo_server.describe():
        # mongoeco fails a transaction's commit when ANY other transaction committed meanwhile
        # (even a read-only one), so racing losers can run out of retries (409) instead of
        # finding the winner; real MongoDB conflicts per document. No second Patient either way.
        assert set(statuses) <= {200, 201, 409}
    else:
        assert sorted(statuses) == [200] * 5 + [201], ids
    probe.close()
