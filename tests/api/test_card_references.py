"""A resident referred to by card alone: the reference is resolved on write to the Patient holding
the card (identifier kept); an unknown card is a 422. Search by ``subject:identifier`` works too."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import FHIR_JSON, post

EHC = "https://fhir.demo-city.health.cn/sid/ehc-id"
CARD = "E" * 64


def _card(value: str = CARD) -> dict[str, object]:
    return {"identifier": {"system": EHC, "value": value}}


def test_card_only_references_are_resolved(client: FlaskClient) -> None:
    pid = post(client, "/fhir/Patient", {"resourceType": "Patient", "identifier": [
        {"system": EHC, "value": CARD}]}).get_json()["id"]
    encounter = post(client, "/fhir/Encounter", {
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": _card()})
    assert encounter.status_code == 201
    assert encounter.get_json()["subject"] == {"reference": f"Patient/{pid}", **_card()}
    immunization = post(client, "/fhir/Immunization", {
        "resourceType": "Immunization", "status": "completed", "patient": _card(),
        "vaccineCode": {"text": "HepB"}, "occurrenceDateTime": "2024-01-01"})
    assert immunization.get_json()["patient"]["reference"] == f"Patient/{pid}"
    # found by the literal reference and by the card
    ids = client.get(f"/fhir/Encounter?subject=Patient/{pid}").get_json()["entry"]
    assert len(ids) == 1
    by_card = client.get(f"/fhir/Encounter?subject:identifier={EHC}|{CARD}").get_json()
    assert len(by_card["entry"]) == 1


def test_unknown_or_non_card_identifiers_are_422(client: FlaskClient) -> None:
    unknown = post(client, "/fhir/ServiceRequest", {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": _card("F" * 64)})
    assert unknown.status_code == 422
    issue = unknown.get_json()["issue"][0]
    assert issue["expression"] == ["ServiceRequest.subject.identifier"]
    not_a_card = client.post("/fhir/Encounter", json={
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"identifier": {"system": "http://hospital/mrn", "value": "1"}}},
        headers={"Content-Type": FHIR_JSON})
    assert not_a_card.status_code == 422
    # other reference elements are stored as given
    other = post(client, "/fhir/Observation", {
        "resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": _card("F" * 64)})
    assert other.status_code == 201
