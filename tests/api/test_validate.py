"""Profiles over HTTP: enforced on every write (REST, PATCH, batch, transaction, bulk load), warnings
with Prefer: return=OperationOutcome, $validate at type and instance level, the
CapabilityStatement's profiles."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.errors import Unprocessable
from fhir_server.interactions.load import load
from fhir_server.store.sqlite import SqliteStore
from seed import SEED_REFERENCE_DATE, generate
from tests.profile_cases import SD, SYS

JSON = {"Content-Type": "application/fhir+json"}
OUTCOME = {**JSON, "Prefer": "return=OperationOutcome"}
Resource = dict[str, Any]


def _app(tmp_path: Path, **settings: Any) -> Iterator[Flask]:
    s = Settings(store_url=f"sqlite:///{tmp_path / 'v.db'}", access_log=False, auth=False,
                 **settings)
    store = SqliteStore.from_url(s.store_url)
    try:
        yield create_app(s, store)
    finally:
        store.close()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """The default configuration: the four local profiles enforced."""
    yield from _app(tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


SEED = list(generate(40, seed=1, today=SEED_REFERENCE_DATE))


def seed(rtype: str, n: int = 0) -> Resource:
    found = [r for r in SEED if r["resourceType"] == rtype]
    return copy.deepcopy(found[n])


def new(rtype: str, n: int = 0) -> Resource:
    """A seed resource without its id (for a create)."""
    resource = seed(rtype, n)
    resource.pop("id")
    return resource


def bad_cin(patient: Resource) -> Resource:
    value = patient["identifier"][2]["value"]
    patient["identifier"][2]["value"] = value[:17] + ("0" if value[17] != "0" else "1")
    return patient


def issues(response: Any) -> list[tuple[str, str, str]]:
    doc = response.get_json()
    assert doc["resourceType"] == "OperationOutcome", doc
    return [(i["severity"], i["diagnostics"].split(": ", 1)[0], (i.get("expression") or [""])[0])
            for i in doc["issue"]]


def count(client: FlaskClient, rtype: str) -> int:
    return int(client.get(f"/fhir/{rtype}?_summary=count").get_json()["total"])


# -- writes -------------------------------------------------------------------------------------

def test_a_conforming_patient_is_created(client: FlaskClient) -> None:
    response = client.post("/fhir/Patient", json=new("Patient"), headers=JSON)
    assert response.status_code == 201, response.get_json()


def test_errors_block_the_create_with_a_422_naming_key_and_element(client: FlaskClient) -> None:
    response = client.post("/fhir/Patient", json=bad_cin(new("Patient")), headers=JSON)
    assert response.status_code == 422
    assert issues(response) == [("error", "cin-checksum", "Patient.identifier[2].value")]
    assert count(client, "Patient") == 0


def test_update_and_patch_are_checked(client: FlaskClient) -> None:
    created = client.post("/fhir/Patient", json=new("Patient"), headers=JSON).get_json()
    broken = bad_cin(copy.deepcopy(created))
    response = client.put(f"/fhir/Patient/{created['id']}", json=broken, headers=JSON)
    assert response.status_code == 422
    assert issues(response)[0][1] == "cin-checksum"
    patch = [{"op": "remove", "path": "/birthDate"}]
    response = client.patch(f"/fhir/Patient/{created['id']}", json=patch,
                            headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 422
    assert issues(response) == [("error", "Patient.birthDate", "Patient.birthDate")]
    assert client.get(f"/fhir/Patient/{created['id']}").get_json()["meta"]["versionId"] == "1"


def test_batch_entries_fail_alone_and_a_transaction_fails_whole(client: FlaskClient) -> None:
    entries = [{"resource": new("Patient", 0), "request": {"method": "POST", "url": "Patient"}},
               {"resource": bad_cin(new("Patient", 1)),
                "request": {"method": "POST", "url": "Patient"}}]
    batch = client.post("/fhir", json={"resourceType": "Bundle", "type": "batch",
                                       "entry": entries}, headers=JSON).get_json()
    statuses = [e["response"]["status"] for e in batch["entry"]]
    assert statuses[0].startswith("201") and statuses[1].startswith("422")
    outcome = batch["entry"][1]["response"]["outcome"]
    assert "cin-checksum" in outcome["issue"][0]["diagnostics"]
    entries[0]["resource"] = new("Patient", 2)
    response = client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction",
                                          "entry": entries}, headers=JSON)
    assert response.status_code == 422
    assert "cin-checksum" in str(response.get_json())
    assert count(client, "Patient") == 1  # only the batch's good entry


def test_bulk_load_is_checked(app: Flask) -> None:
    svc = app.extensions["fhir"]
    assert load(svc, [seed("Patient")]) == 1
    with pytest.raises(Unprocessable, match="cin-checksum"):
        load(svc, [bad_cin(seed("Patient", 1))])


def test_warnings_do_not_block_and_come_back_when_asked(client: FlaskClient) -> None:
    def with_odd_card(n: int, value: str) -> Resource:
        patient = new("Patient", n)
        patient["identifier"] = [i for i in patient["identifier"] if i["system"] != SYS.sscard]
        patient["identifier"].append({"system": SYS.sscard, "value": value})
        return patient

    plain = client.post("/fhir/Patient", json=with_odd_card(0, "ab-1"), headers=JSON)
    assert plain.status_code == 201 and plain.get_json()["resourceType"] == "Patient"
    patient = with_odd_card(1, "cd-2")
    response = client.post("/fhir/Patient", json=patient, headers=OUTCOME)
    assert response.status_code == 201
    last = len(patient["identifier"]) - 1
    assert issues(response)[1:] == [("warning", "sscard-format",
                                     f"Patient.identifier[{last}].value")]
    assert issues(response)[0][0] == "information"


def test_an_unknown_declared_profile_is_a_warning(client: FlaskClient) -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "体重"},
           "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]}}
    response = client.post("/fhir/Observation", json=obs, headers=OUTCOME)
    assert response.status_code == 201
    assert ("warning", "the profile http://hl7.org/fhir/StructureDefinition/vitalsigns is not "
            "known to this server; the resource was not checked against it",
            "Observation.meta.profile") in issues(response)


def test_a_declared_local_profile_is_enforced_on_any_type(client: FlaskClient) -> None:
    task = new("Task")
    task["meta"] = {"profile": [SD + "rhip-referral-task"]}
    assert client.post("/fhir/Task", json=task, headers=JSON).status_code == 201
    task.pop("owner")
    response = client.post("/fhir/Task", json=task, headers=JSON)
    assert response.status_code == 422
    assert issues(response) == [("error", "Task.owner", "Task.owner")]
    task.pop("meta")
    assert client.post("/fhir/Task", json=task, headers=JSON).status_code == 201  # not enforced


def test_profiles_off_accepts_anything_structurally_valid(tmp_path: Path) -> None:
    for app in _app(tmp_path, enforce_profiles="off"):
        response = app.test_client().post("/fhir/Patient", json=bad_cin(new("Patient")),
                                          headers=JSON)
        assert response.status_code == 201


def test_a_chosen_list_of_enforced_profiles(tmp_path: Path) -> None:
    for app in _app(tmp_path, enforce_profiles="rhip-referral-task"):
        client = app.test_client()
        assert client.post("/fhir/Patient", json=bad_cin(new("Patient")),
                           headers=JSON).status_code == 201
        task = new("Task")
        task.pop("owner")
        assert client.post("/fhir/Task", json=task, headers=JSON).status_code == 422


def test_an_unknown_enforced_profile_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rhip-unknown"):
        next(_app(tmp_path, enforce_profiles="rhip-unknown"))


# -- $validate ----------------------------------------------------------------------------------

def test_validate_a_valid_resource(client: FlaskClient) -> None:
    response = client.post("/fhir/Patient/$validate", json=new("Patient"), headers=JSON)
    assert response.status_code == 200
    assert issues(response) == [("information", "All OK", "")]


def test_validate_an_invalid_resource_is_200_with_the_issues(client: FlaskClient) -> None:
    response = client.post("/fhir/Patient/$validate", json=bad_cin(new("Patient")), headers=JSON)
    assert response.status_code == 200
    assert issues(response) == [("error", "cin-checksum", "Patient.identifier[2].value")]
    structural = {"resourceType": "Patient", "birthDate": "1990-13-01"}
    got = issues(client.post("/fhir/Patient/$validate", json=structural, headers=JSON))
    assert got[0][0] == "error" and got[0][2] == "Patient.birthDate"
    other = issues(client.post("/fhir/Observation/$validate", json=new("Patient"), headers=JSON))
    assert other[0][0] == "error" and "Observation" in str(other)


def test_validate_against_a_nominated_profile(client: FlaskClient) -> None:
    task = new("Task")
    task.pop("owner")
    assert issues(client.post("/fhir/Task/$validate", json=task, headers=JSON)) == [
        ("information", "All OK", "")]  # no profile applies to a Task by default
    by_query = client.post("/fhir/Task/$validate?profile=rhip-referral-task", json=task,
                           headers=JSON)
    assert issues(by_query) == [("error", "Task.owner", "Task.owner")]
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": task},
        {"name": "profile", "valueCanonical": SD + "rhip-referral-task"}]}
    assert issues(client.post("/fhir/Task/$validate", json=parameters, headers=JSON)) == [
        ("error", "Task.owner", "Task.owner")]
    unknown = client.post("/fhir/Task/$validate?profile=http://example.org/x", json=task,
                          headers=JSON)
    assert unknown.status_code == 400 and issues(unknown)[0][2] == "profile"


def test_validate_modes(client: FlaskClient) -> None:
    patient = new("Patient")
    update = issues(client.post("/fhir/Patient/$validate?mode=update", json=patient,
                                headers=JSON))
    assert update == [("error", "An update needs the resource id", "Patient.id")]
    created = client.post("/fhir/Patient", json=patient, headers=JSON).get_json()
    rid = created["id"]
    assert issues(client.post(f"/fhir/Patient/{rid}/$validate?mode=update", json=created,
                              headers=JSON)) == [("information", "All OK", "")]
    assert client.post("/fhir/Patient/other/$validate?mode=update", json=created,
                       headers=JSON).status_code == 404
    other = client.post("/fhir/Patient", json=new("Patient", 1), headers=JSON).get_json()["id"]
    mismatch = issues(client.post(f"/fhir/Patient/{other}/$validate?mode=update", json=created,
                                  headers=JSON))
    assert mismatch == [("error", f"The resource id {rid!r} does not match the id {other!r} in "
                         "the URL", "Patient.id")]
    deleting = client.get(f"/fhir/Patient/{rid}/$validate?mode=delete")
    assert issues(deleting) == [("information", f"Patient/{rid} may be deleted", "")]
    assert client.post("/fhir/Patient/$validate?mode=delete", json=patient,
                       headers=JSON).status_code == 400
    assert client.post("/fhir/Patient/$validate?mode=merge", json=patient,
                       headers=JSON).status_code == 400


def test_validate_a_stored_instance(client: FlaskClient) -> None:
    rid = client.post("/fhir/Patient", json=new("Patient"), headers=JSON).get_json()["id"]
    assert issues(client.get(f"/fhir/Patient/{rid}/$validate")) == [("information", "All OK", "")]
    assert issues(client.post(f"/fhir/Patient/{rid}/$validate")) == [("information", "All OK", "")]
    assert client.get("/fhir/Patient/nobody/$validate").status_code == 404
    assert client.delete(f"/fhir/Patient/{rid}").status_code == 204
    assert client.get(f"/fhir/Patient/{rid}/$validate").status_code == 410


def test_validate_resolves_references_to_stored_resources(client: FlaskClient) -> None:
    patient = seed("Patient", 0)
    born = patient["birthDate"]
    rid = client.post("/fhir/Patient", json=new("Patient", 0), headers=JSON).get_json()["id"]
    imm = new("Immunization")
    imm["patient"] = {"reference": f"Patient/{rid}"}
    imm["occurrenceDateTime"] = f"{int(born[:4]) - 1}{born[4:]}T10:00:00+08:00"
    got = issues(client.post("/fhir/Immunization/$validate", json=imm, headers=JSON))
    assert got == [("error", "rhip-imm-birth", "Immunization.occurrenceDateTime")]


def test_writes_check_the_immunisation_against_the_stored_patients_birth(client: FlaskClient) -> None:
    patient = seed("Patient", 0)
    born = patient["birthDate"]
    rid = client.post("/fhir/Patient", json=new("Patient", 0), headers=JSON).get_json()["id"]
    imm = new("Immunization")
    imm["patient"] = {"reference": f"Patient/{rid}"}
    imm["occurrenceDateTime"] = f"{int(born[:4]) - 1}{born[4:]}T10:00:00+08:00"
    before = count(client, "Immunization")
    response = client.post("/fhir/Immunization", json=imm, headers=JSON)
    assert response.status_code == 422
    assert issues(response)[0][1:] == ("rhip-imm-birth", "Immunization.occurrenceDateTime")
    assert count(client, "Immunization") == before
    imm["occurrenceDateTime"] = f"{born}T10:00:00+08:00"
    created = client.post("/fhir/Immunization", json=imm, headers=JSON)
    assert created.status_code == 201, created.get_json()
    # a patch moving the date before the birth is refused the same way
    patch = [{"op": "replace", "path": "/occurrenceDateTime",
              "value": f"{int(born[:4]) - 2}{born[4:]}T10:00:00+08:00"}]
    response = client.patch(f"/fhir/Immunization/{created.get_json()['id']}", json=patch,
                            headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 422


def test_validate_parameters_errors(client: FlaskClient) -> None:
    for body in ({"resourceType": "Parameters", "parameter": [{"name": "mode",
                                                               "valueCode": "create"}]},
                 {"resourceType": "Parameters", "parameter": [{"name": "other",
                                                               "valueString": "x"}]}):
        response = client.post("/fhir/Patient/$validate", json=body, headers=JSON)
        assert response.status_code == 400 and issues(response)[0][0] == "error"


# -- CapabilityStatement ------------------------------------------------------------------------

def test_capability_statement_lists_the_profiles(client: FlaskClient) -> None:
    doc = client.get("/fhir/metadata").get_json()
    by_type = {r["type"]: r for r in doc["rest"][0]["resource"]}
    assert by_type["Patient"]["profile"] == SD + "rhip-patient"
    assert by_type["Patient"]["supportedProfile"] == [SD + "rhip-patient"]
    assert by_type["Task"]["profile"] == "http://hl7.org/fhir/StructureDefinition/Task"
    assert by_type["Task"]["supportedProfile"] == [SD + "rhip-referral-task"]
    assert "supportedProfile" not in by_type["Observation"]
    assert {"name": "validate", "definition":
            "http://hl7.org/fhir/OperationDefinition/Resource-validate"} in by_type[
        "Observation"]["operation"]
