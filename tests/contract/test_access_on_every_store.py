"""Enforcement (SECURITY.md "Enforcement"): scopes ∩ data policy inside every kind of access, with real
tokens from the real token endpoint, on every store (the filters are IR each store compiles). Each
role sees and changes exactly what it should, and the leak paths (_include, _revinclude, chains,
_has, $everything, history, batch and transaction entries, paging links of another client) give
nothing away.

The data is written through the server's own services without a token (server-side set-up), except
the hospital Encounters, which the hospitals create themselves so they carry their record-owner tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.config import DEFAULT_CANONICAL_BASE, Settings
from tests.contract.conftest import NamedFactory
from tests.oauth import ec_key, get_token, register

FHIR_JSON = "application/fhir+json"
MCH = f"{DEFAULT_CANONICAL_BASE}/CodeSystem/mch-visit-type"
MINDEX = f"{DEFAULT_CANONICAL_BASE}/sid/ehc-mindex"
CARD = f"{DEFAULT_CANONICAL_BASE}/sid/ehc-id"
KEYS = {name: ec_key(f"{name}-1") for name in ("h1", "h2", "ins", "mch", "ref")}
ROLES = {"h1": "hospital", "h2": "hospital", "ins": "insurer", "mch": "mch", "ref": "referral"}


def _patient(pid: str, card: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "active": True, "gender": "female",
            "birthDate": "2020-01-01", "name": [{"text": pid}],
            "address": [{"city": "Chongqing"}],
            "identifier": [{"system": CARD, "value": card}, {"system": MINDEX, "value": card}]}


def _encounter(subject: str, provider: str, mch: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": subject}, "serviceProvider": {"reference": provider},
        "reasonCode": [{"text": "fever"}]}
    if mch:
        doc["type"] = [{"coding": [{"system": MCH, "code": "child-check-1m"}]}]
    return doc


@pytest.fixture
def world(store_factory: NamedFactory) -> Iterator[tuple[Flask, dict[str, str], dict[str, str]]]:
    settings = Settings(store_url=store_factory.url, access_log=False, auth=True,
                        enforce_profiles="off")
    store = store_factory()
    app = create_app(settings, store)
    svc = app.extensions["fhir"]
    for name, role in ROLES.items():
        register(store, name, role, KEYS[name], organization=f"Organization/{name}")
    client = app.test_client()
    tokens = {name: get_token(client, KEYS[name], name, "system/*.cruds") for name in ROLES}
    tokens["audit"] = get_token(client, KEYS["h1"], "h1", "system/Patient.rs")
    for org in ROLES:
        _put(svc, "Organization", org, {"resourceType": "Organization", "name": org})
    for pid, card in (("p1", "A" * 64), ("p2", "B" * 64)):
        _put(svc, "Patient", pid, _patient(pid, card))
    _put(svc, "ServiceRequest", "sr1", {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "performer": [{"reference": "Organization/ref"}]})
    _put(svc, "ServiceRequest", "sr2", {
        "resourceType": "ServiceRequest", "status": "completed", "intent": "order",
        "subject": {"reference": "Patient/p2"}, "performer": [{"reference": "Organization/ref"}]})
    _put(svc, "ServiceRequest", "sr3", {  # an active referral of p2, but to another organisation
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p2"}, "performer": [{"reference": "Organization/h1"}]})
    _put(svc, "Immunization", "i1", {
        "resourceType": "Immunization", "status": "completed", "patient": {"reference": "Patient/p1"},
        "vaccineCode": {"text": "HepB"}, "occurrenceDateTime": "2020-01-02"})
    _put(svc, "Immunization", "i2", {
        "resourceType": "Immunization", "status": "completed", "patient": {"reference": "Patient/p2"},
        "vaccineCode": {"text": "HepB"}, "occurrenceDateTime": "2020-01-02"})
    ids = {}
    for name, subject, provider, mch in (("e1", "Patient/p1", "h1", False),
                                         ("e2", "Patient/p2", "h2", False),
                                         ("e3", "Patient/p2", "h2", True)):
        response = client.post("/fhir/Encounter", json=_encounter(subject, f"Organization/{provider}",
                                                                  mch),
                               headers=_h(tokens[provider]))
        assert response.status_code == 201, response.get_json()
        ids[name] = response.get_json()["id"]
    try:
        yield app, tokens, ids
    finally:
        store.close()


def _put(svc: Any, rtype: str, rid: str, body: dict[str, Any]) -> None:
    from fhir_server.interactions.load import load

    load(svc, [{**body, "id": rid}])


def _h(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON, **extra}


def _ids(bundle: dict[str, Any], mode: str | None = None) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if e["resource"]["resourceType"] != "OperationOutcome"
            and (mode is None or e["search"]["mode"] == mode)}


def _get(client: FlaskClient, token: str, url: str, status: int = 200) -> Any:
    response = client.get(url, headers=_h(token))
    assert response.status_code == status, (url, response.get_json())
    return response.get_json()


# -- authentication ---------------------------------------------------------------------------------

def test_no_token_is_401_and_metadata_is_public(world: Any) -> None:
    app, _, _ = world
    client = app.test_client()
    response = client.get("/fhir/Patient/p1")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Patient/p1", headers=_h("x" * 43)).status_code == 401
    assert client.get("/fhir/metadata").status_code == 200


# -- scopes: 403 --------------------------------------------------------------------------------

def test_token_without_the_type_or_interaction_is_403(world: Any) -> None:
    app, tokens, _ = world
    client = app.test_client()
    _get(client, tokens["ins"], "/fhir/Immunization/i1", 403)
    _get(client, tokens["ins"], "/fhir/Immunization?patient=p1", 403)
    _get(client, tokens["audit"], "/fhir/Encounter?_count=5", 403)  # Patient.rs only
    response = client.post("/fhir/Encounter", json=_encounter("Patient/p1", "Organization/ins"),
                           headers=_h(tokens["ins"]))
    assert response.status_code == 403
    # a chain or _has into a type the client may not search is refused, not answered
    _get(client, tokens["ins"], "/fhir/Patient?_has:Immunization:patient:status=completed", 403)
    _get(client, tokens["audit"], "/fhir/Patient?_has:Encounter:subject:status=finished", 403)


# -- referral partner: the policy ---------------------------------------------------------------

def test_referral_partner_sees_only_referred_patients(world: Any) -> None:
    app, tokens, ids = world
    client = app.test_client()
    tok = tokens["ref"]
    _get(client, tok, "/fhir/Patient/p1")
    assert _ids(_get(client, tok, "/fhir/Patient")) == {"Patient/p1"}
    assert _ids(_get(client, tok, "/fhir/Encounter")) == {f"Encounter/{ids['e1']}"}
    assert _ids(_get(client, tok, "/fhir/Immunization")) == {"Immunization/i1"}
    # the referrals to it, and the referred patient's history (p2 has a completed referral to it
    # and an active one elsewhere: not an active referral to it, so p2 stays closed)
    assert _ids(_get(client, tok, "/fhir/ServiceRequest")) == {"ServiceRequest/sr1",
                                                               "ServiceRequest/sr2"}
    assert _get(client, tok, "/fhir/Patient?_summary=count")["total"] == 1


def test_outside_policy_is_the_same_404_as_never_existed(world: Any) -> None:
    app, tokens, _ = world
    client = app.test_client()
    hidden = client.get("/fhir/Patient/p2", headers=_h(tokens["ref"]))
    missing = client.get("/fhir/Patient/p9", headers=_h(tokens["ref"]))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.data.replace(b"p2", b"p9") == missing.data
    strip = {"X-Request-Id", "Date", "Server-Timing"}
    assert ({k: v for k, v in hidden.headers.items() if k not in strip}
            == {k: v for k, v in missing.headers.items() if k not in strip})
    for url in ("/fhir/Patient/p2/_history/1", "/fhir/Patient/p2/_history",
                "/fhir/Patient/p2/$everything", "/fhir/Immunization/i2"):
        _get(client, tokens["ref"], url, 404)


def test_leak_paths_give_nothing_away(world: Any) -> None:
    app, tokens, ids = world
    client = app.test_client()
    tok = tokens["ref"]
    # _include from a visible resource to an invisible one, and _revinclude
    got = _get(client, tok, "/fhir/ServiceRequest?_include=ServiceRequest:subject")
    assert _ids(got, "include") == {"Patient/p1"}
    got = _get(client, tok, "/fhir/Patient?_revinclude=Encounter:subject&_revinclude=Immunization:patient")
    assert _ids(got, "include") == {f"Encounter/{ids['e1']}", "Immunization/i1"}
    got = _get(client, tok, "/fhir/ServiceRequest?_include=*&_revinclude:iterate=Encounter:subject")
    assert "Patient/p2" not in _ids(got) and f"Encounter/{ids['e2']}" not in _ids(got)
    # chains and _has cannot probe invisible resources
    by_card = "/fhir/ServiceRequest?subject:Patient.identifier=" + CARD + "|{}"
    assert _ids(_get(client, tok, by_card.format("B" * 64))) == set()
    assert _ids(_get(client, tok, by_card.format("A" * 64))) == {"ServiceRequest/sr1"}
    assert _ids(_get(client, tok, "/fhir/Patient?_has:Immunization:patient:_id=i2")) == set()
    assert _ids(_get(client, tok, "/fhir/Organization?_has:Encounter:service-provider:subject=Patient/p2")) \
        == set()
    # compartment search and $everything of a visible patient: only visible content
    assert _ids(_get(client, tok, "/fhir/Patient/p2/Encounter")) == set()
    everything = _ids(_get(client, tok, "/fhir/Patient/p1/$everything"))
    assert "Patient/p2" not in everything and f"Encounter/{ids['e2']}" not in everything
    assert {"Patient/p1", "Immunization/i1", f"Encounter/{ids['e1']}"} <= everything
    # history at type and system level
    assert _ids(_get(client, tok, "/fhir/Patient/_history")) == {"Patient/p1"}
    assert "Patient/p2" not in _ids(_get(client, tok, "/fhir/_history?_count=100"))


def test_system_search_covers_only_permitted_types(world: Any) -> None:
    app, tokens, _ = world
    client = app.test_client()
    found = _ids(_get(client, tokens["ins"], "/fhir?_count=100"))
    assert found and all(i.split("/")[0] in {"Patient", "Encounter", "Organization"} for i in found)
    _get(client, tokens["ins"], "/fhir?_type=Immunization", 403)


def test_paging_links_are_bound_to_the_client(world: Any) -> None:
    app, tokens, _ = world
    client = app.test_client()
    page = _get(client, tokens["h1"], "/fhir/Patient?_count=1")
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    path = nxt[nxt.index("/fhir/"):]
    _get(client, tokens["h1"], path)
    response = client.get(path, headers=_h(tokens["h2"]))
    assert response.status_code == 400


# -- hospitals: writes limited to their own records ---------------------------------------------------

def test_hospital_changes_only_its_own_records(world: Any) -> None:
    app, tokens, ids = world
    client = app.test_client()
    own = _get(client, tokens["h1"], f"/fhir/Encounter/{ids['e1']}")
    tags = own["meta"]["tag"]
    assert {"system": f"{DEFAULT_CANONICAL_BASE}/CodeSystem/record-owner", "code": "h1"} in tags
    assert client.put(f"/fhir/Encounter/{ids['e1']}", json={**own, "status": "cancelled"},
                      headers=_h(tokens["h1"])).status_code == 200
    theirs = _get(client, tokens["h1"], f"/fhir/Encounter/{ids['e2']}")  # reads: all records
    response = client.put(f"/fhir/Encounter/{ids['e2']}", json={**theirs, "status": "cancelled"},
                          headers=_h(tokens["h1"]))
    assert response.status_code == 403, response.get_json()
    assert client.delete(f"/fhir/Encounter/{ids['e2']}", headers=_h(tokens["h1"])).status_code == 403
    # a client cannot claim another organisation's records by tagging them
    forged = {**_encounter("Patient/p1", "Organization/h2"),
              "meta": {"tag": [{"system": f"{DEFAULT_CANONICAL_BASE}/CodeSystem/record-owner",
                                "code": "h2"}]}}
    created = client.post("/fhir/Encounter", json=forged, headers=_h(tokens["h1"]))
    assert created.status_code == 201
    assert [t["code"] for t in created.get_json()["meta"]["tag"]] == ["h1"]
    # security labels are the platform's
    labelled = {**_encounter("Patient/p1", "Organization/h1"), "meta": {"security": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}]}}
    response = client.post("/fhir/Encounter", json=labelled, headers=_h(tokens["h1"]))
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["expression"] == ["Encounter.meta.security"]
    assert _get(client, tokens["h2"], f"/fhir/Encounter/{ids['e2']}")["status"] == "finished"


@pytest.mark.store_requires("transactions")
def test_forbidden_transaction_entry_writes_nothing_and_batch_entry_fails_alone(world: Any) -> None:
    app, tokens, ids = world
    client = app.test_client()
    theirs = _get(client, tokens["h1"], f"/fhir/Encounter/{ids['e2']}")
    before = _get(client, tokens["h1"], "/fhir/Encounter?_summary=count")["total"]
    entries = [
        {"request": {"method": "POST", "url": "Encounter"},
         "resource": _encounter("Patient/p1", "Organization/h1")},
        {"request": {"method": "PUT", "url": f"Encounter/{ids['e2']}"},
         "resource": {**theirs, "status": "cancelled"}}]
    response = client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction",
                                          "entry": entries}, headers=_h(tokens["h1"]))
    assert response.status_code == 403, response.get_json()
    assert _get(client, tokens["h1"], "/fhir/Encounter?_summary=count")["total"] == before
    response = client.post("/fhir", json={"resourceType": "Bundle", "type": "batch",
                                          "entry": entries}, headers=_h(tokens["h1"]))
    statuses = [e["response"]["status"] for e in response.get_json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1].startswith("403")
    # batch reads go through the same checks
    reads = [{"request": {"method": "GET", "url": "Patient/p1"}},
             {"request": {"method": "GET", "url": "Patient/p2"}}]
    response = client.post("/fhir", json={"resourceType": "Bundle", "type": "batch",
                                          "entry": reads}, headers=_h(tokens["ref"]))
    statuses = [e["response"]["status"] for e in response.get_json()["entry"]]
    assert statuses[0].startswith("200") and statuses[1].startswith("404")


# -- insurer and MCH ---------------------------------------------------------------------------

def test_insurer_sees_identifiers_not_clinical_detail(world: Any) -> None:
    app, tokens, _ = world
    client = app.test_client()
    patient = _get(client, tokens["ins"], "/fhir/Patient/p1")
    assert "address" not in patient
    assert [i["system"] for i in patient["identifier"]] == [CARD]
    assert any(t["code"] == "SUBSETTED" for t in patient["meta"]["tag"])
    encounters = _get(client, tokens["ins"], "/fhir/Encounter")
    assert len(encounters["entry"]) == 3
    assert all("reasonCode" not in e["resource"] for e in encounters["entry"])
    # masked in includes too
    got = _get(client, tokens["ins"], "/fhir/Encounter?_include=Encounter:subject")
    assert all("address" not in e["resource"] for e in got["entry"])


def test_mch_sees_mch_encounters_and_writes_immunizations(world: Any) -> None:
    app, tokens, ids = world
    client = app.test_client()
    assert _ids(_get(client, tokens["mch"], "/fhir/Encounter")) == {f"Encounter/{ids['e3']}"}
    _get(client, tokens["mch"], f"/fhir/Encounter/{ids['e1']}", 404)
    response = client.post("/fhir/Immunization", headers=_h(tokens["mch"]), json={
        "resourceType": "Immunization", "status": "completed", "vaccineCode": {"text": "BCG"},
        "patient": {"reference": "Patient/p2"}, "occurrenceDateTime": "2020-01-03"})
    assert response.status_code == 201
    mindex = [i for i in _get(client, tokens["mch"], "/fhir/Patient/p1")["identifier"]
              if i["system"] == MINDEX]
    assert mindex == []


def test_auth_off_is_open(tmp_path: Path) -> None:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'o.db'}", access_log=False, auth=False,
                        enforce_profiles="off")
    app = create_app(settings)
    assert app.test_client().get("/fhir/Patient").status_code == 200
    assert re.search(r"Bearer", str(app.test_client().get("/fhir/Patient/x").headers)) is None


def test_operations_respect_scopes(world: Any) -> None:
    app, tokens, ids = world
    client = app.test_client()
    # Patient.rs only: $everything is the Patient alone, whatever its compartment holds
    assert _ids(_get(client, tokens["audit"], "/fhir/Patient/p1/$everything")) == {"Patient/p1"}
    # the insurer's record of p1: the Patient and its Encounters, masked, no Immunization
    got = _get(client, tokens["ins"], "/fhir/Patient/p1/$everything")
    assert _ids(got) == {"Patient/p1", f"Encounter/{ids['e1']}", "Organization/h1"}
    assert all("reasonCode" not in e["resource"] and "address" not in e["resource"]
               for e in got["entry"])
    match = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {
        "resourceType": "Patient", "identifier": [{"system": CARD, "value": "A" * 64}]}}]}
    response = client.post("/fhir/Patient/$match", json=match, headers=_h(tokens["ins"]))
    assert response.status_code == 200 and _ids(response.get_json()) == {"Patient/p1"}
    # the referral partner cannot find p2 by $match either
    match["parameter"][0]["resource"]["identifier"][0]["value"] = "B" * 64
    response = client.post("/fhir/Patient/$match", json=match, headers=_h(tokens["ref"]))
    assert response.status_code == 200 and _ids(response.get_json()) == set()
    mch_only = get_token(client, KEYS["mch"], "mch", "system/Immunization.rs")
    response = client.post("/fhir/Patient/$match", json=match, headers=_h(mch_only))
    assert response.status_code == 403
    _get(client, mch_only, "/fhir/Patient/p1/$everything", 403)


def test_ownership_stays_with_the_creator(world: Any) -> None:
    app, tokens, _ = world
    client = app.test_client()
    referral = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                "subject": {"reference": "Patient/p1"},
                "performer": [{"reference": "Organization/ref"}]}
    created = client.post("/fhir/ServiceRequest", json=referral, headers=_h(tokens["h1"]))
    assert created.status_code == 201
    sr = created.get_json()
    # the referral partner accepts it (an update it may make) ...
    accepted = client.put(f"/fhir/ServiceRequest/{sr['id']}", json={**sr, "priority": "urgent"},
                          headers=_h(tokens["ref"]))
    assert accepted.status_code == 200, accepted.get_json()
    owner = f"{DEFAULT_CANONICAL_BASE}/CodeSystem/record-owner"
    assert [t["code"] for t in accepted.get_json()["meta"]["tag"] if t["system"] == owner] == ["h1"]
    # ... and the hospital that wrote it can still change it; the other hospital cannot
    latest = accepted.get_json()
    assert client.put(f"/fhir/ServiceRequest/{sr['id']}", json={**latest, "status": "completed"},
                      headers=_h(tokens["h1"])).status_code == 200
    assert client.put(f"/fhir/ServiceRequest/{sr['id']}", json={**latest, "status": "revoked"},
                      headers=_h(tokens["h2"])).status_code == 403
