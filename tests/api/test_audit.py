"""The audit trail (SECURITY.md "Audit", IHE BALP): an AuditEvent per FHIR interaction and per token
request, denials included; write audits in the data's transaction; never the token; readable only
with an explicit AuditEvent scope; append-only.

Real tokens from the real token endpoint (joserfc-signed assertions), a real SQLite store, HTTP
through Flask's test client. Events are found by the request id they carry (``X-Request-Id``),
through the API itself (``AuditEvent?entity:identifier=...``) with an auditor's token.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.auth import audit
from fhir_server.auth.audit_writer import writer
from fhir_server.auth.grants import token_hash
from fhir_server.config import Settings
from fhir_server.fhir import structure
from fhir_server.fhir.audit_record import AuditRecord
from fhir_server.search import ir
from fhir_server.store import NewVersion, SearchQuery, StoreUnavailable
from fhir_server.store.sqlite import SqliteStore
from tests.oauth import assertion, ec_key, get_token, register, token_form

FHIR_JSON = "application/fhir+json"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
KEY = ec_key("k-1")
OTHER_KEY = ec_key("k-1")  # same kid, another key: a forger's


class AuditRefusingStore(SqliteStore):
    """A store whose audit storage fails (as a full or broken audit disk would): while ``refuse``
    is set, every append to the audit log (and ``put`` of an AuditEvent) raises
    :class:`StoreUnavailable`. The only change to the real SQLite store is in these methods of its
    transactions (a tiny subclass)."""

    refuse = False

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with super().transaction() as tx:
            yield _Refusing(tx, self)


class _Refusing:
    def __init__(self, tx: Any, store: AuditRefusingStore) -> None:
        self._tx, self._store = tx, store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def put(self, new: NewVersion, expected_version: int) -> Any:
        if new.type == "AuditEvent" and self._store.refuse:
            raise StoreUnavailable("the audit storage refused the write")
        return self._tx.put(new, expected_version)

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        if self._store.refuse:
            raise StoreUnavailable("the audit storage refused the write")
        self._tx.append_audit(records)


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return replace(settings, auth=True, enforce_profiles="off")


@pytest.fixture
def astore(auth_settings: Settings) -> Iterator[AuditRefusingStore]:
    s = AuditRefusingStore.from_url(auth_settings.store_url)
    yield s
    s.refuse = False
    s.close()


@pytest.fixture
def app(auth_settings: Settings, astore: AuditRefusingStore) -> Flask:
    register(astore, "h1", "hospital", KEY, organization="Organization/h1")
    register(astore, "auditor", "hospital", KEY, organization="Organization/audit",
             scope="system/AuditEvent.cruds system/Patient.rs")
    register(astore, "narrow", "hospital", KEY, organization="Organization/h1",
             scope="system/Observation.rs", policy=["Observation?status=preliminary"])
    return create_app(auth_settings, astore)


@pytest.fixture
def tokens(client: FlaskClient) -> dict[str, str]:
    return {"h1": get_token(client, KEY, "h1", "system/*.cruds"),
            "star": get_token(client, KEY, "h1", "system/*.rs"),
            "auditor": get_token(client, KEY, "auditor", "system/AuditEvent.cruds"),
            "narrow": get_token(client, KEY, "narrow", "system/Observation.rs")}


def _h(token: str | None = None, **extra: str) -> dict[str, str]:
    out = {"Content-Type": FHIR_JSON, **extra}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def _create(client: FlaskClient, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/fhir/{body['resourceType']}", json=body, headers=_h(token))
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def _obs(subject: str, status: str = "final") -> dict[str, Any]:
    return {"resourceType": "Observation", "status": status, "code": {"text": "glucose"},
            "subject": {"reference": subject}}


def _events(client: FlaskClient, tokens: dict[str, str], request_id: str) -> list[dict[str, Any]]:
    """The AuditEvents of one request (found through the API by the request id they carry)."""
    assert audit.flush()
    response = client.get(f"/fhir/AuditEvent?entity:identifier={request_id}&_count=100",
                          headers=_h(tokens["auditor"]))
    assert response.status_code == 200, response.get_json()
    found = [e["resource"] for e in response.get_json().get("entry", [])]
    for event in found:  # every event is a valid R4 AuditEvent
        assert structure.validate(event, "AuditEvent") == []
    return found


def _one(client: FlaskClient, tokens: dict[str, str], response: Any) -> dict[str, Any]:
    found = _events(client, tokens, response.headers["X-Request-Id"])
    assert len(found) == 1, found
    return found[0]


def _subtypes(event: dict[str, Any]) -> list[str]:
    return [c["code"] for c in event["subtype"] if c["system"] == INTERACTION]


def _entities(event: dict[str, Any], role: str) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", [])
            if e.get("role", {}).get("code") == role and "reference" in e.get("what", {})]


def _patients(event: dict[str, Any]) -> list[str]:
    return _entities(event, "1")


def _client_agent(event: dict[str, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = next(a for a in event["agent"] if a["requestor"])
    return agent


def _check_client(event: dict[str, Any], client_id: str, token: str,
                  organization: str = "Organization/h1") -> None:
    agent = _client_agent(event)
    assert agent["who"]["identifier"] == {
        "system": "https://fhir.demo-city.health.cn/sid/oauth-client", "value": client_id}
    assert agent["policy"] == [token_hash(token)]
    assert agent["network"] == {"address": "127.0.0.1", "type": "2"}
    assert {"reference": organization} in [a["who"] for a in event["agent"]]
    server = [a for a in event["agent"] if not a["requestor"]
              and "reference" not in a.get("who", {})]
    assert len(server) == 1 and server[0]["network"]["address"] == "http://localhost/fhir"
    assert event["source"]["observer"]["display"].startswith("ehc-fhir")


# -- one event per interaction -------------------------------------------------------------------
def test_read_search_create_update_delete_are_each_audited(client: FlaskClient,
                                                           tokens: dict[str, str]) -> None:
    tok = tokens["h1"]
    response = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=_h(tok))
    pid = response.get_json()["id"]
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"], event["outcome"]) == (["create"], "C", "0")
    assert event["type"]["code"] == "rest"
    assert _entities(event, "4") == [f"Patient/{pid}/_history/1"]
    assert _patients(event) == [f"Patient/{pid}"]
    _check_client(event, "h1", tok)

    obs = _create(client, tok, _obs(f"Patient/{pid}"))
    response = client.get(f"/fhir/Observation/{obs['id']}", headers=_h(tok))
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"], event["outcome"]) == (["read"], "R", "0")
    assert _entities(event, "4") == [f"Observation/{obs['id']}"]
    assert _patients(event) == [f"Patient/{pid}"]
    assert "outcomeDesc" not in event
    # BALP: for a read the server is the source of the data and the client its destination
    assert _client_agent(event)["type"]["coding"][0]["code"] == "110152"
    _check_client(event, "h1", tok)

    response = client.head(f"/fhir/Observation/{obs['id']}", headers=_h(tok))
    assert response.status_code == 200
    event = _one(client, tokens, response)
    assert (_subtypes(event), _patients(event)) == (["read"], [f"Patient/{pid}"])

    response = client.get(f"/fhir/Observation/{obs['id']}/_history/1", headers=_h(tok))
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"]) == (["vread"], "R")
    assert _entities(event, "4") == [f"Observation/{obs['id']}/_history/1"]

    response = client.get(f"/fhir/Observation?subject=Patient/{pid}", headers=_h(tok))
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"], event["outcome"]) == (["search-type"], "E", "0")
    assert _patients(event) == [f"Patient/{pid}"]
    assert _client_agent(event)["type"]["coding"][0]["code"] == "110153"

    response = client.put(f"/fhir/Observation/{obs['id']}",
                          json={**obs, "status": "amended"}, headers=_h(tok))
    assert response.status_code == 200
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"], event["outcome"]) == (["update"], "U", "0")
    assert _entities(event, "4") == [f"Observation/{obs['id']}/_history/2"]
    assert _patients(event) == [f"Patient/{pid}"]

    patch = [{"op": "replace", "path": "/status", "value": "corrected"}]
    response = client.patch(f"/fhir/Observation/{obs['id']}", json=patch,
                            headers=_h(tok, **{"Content-Type": "application/json-patch+json"}))
    assert response.status_code == 200
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"]) == (["patch"], "U")

    response = client.delete(f"/fhir/Observation/{obs['id']}", headers=_h(tok))
    assert response.status_code == 204
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"], event["outcome"]) == (["delete"], "D", "0")
    assert _entities(event, "4") == [f"Observation/{obs['id']}/_history/4"]
    assert _patients(event) == [f"Patient/{pid}"]  # the Patient of the version deleted

    response = client.get(f"/fhir/Observation/{obs['id']}/_history", headers=_h(tok))
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"]) == (["history-instance"], "R")


def test_denials_are_audited(client: FlaskClient, tokens: dict[str, str]) -> None:
    pid = _create(client, tokens["h1"], {"resourceType": "Patient"})["id"]
    obs = _create(client, tokens["h1"], _obs(f"Patient/{pid}"))

    response = client.get(f"/fhir/Observation/{obs['id']}")  # no token
    assert response.status_code == 401
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["outcome"]) == (["read"], "4")
    assert "bearer token" in event["outcomeDesc"]
    agent = _client_agent(event)
    assert "identifier" not in agent["who"] and "policy" not in agent
    assert agent["network"]["address"] == "127.0.0.1"
    assert _entities(event, "4") == [f"Observation/{obs['id']}"]

    response = client.get(f"/fhir/Patient/{pid}", headers=_h(tokens["narrow"]))  # no Patient scope
    assert response.status_code == 403
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"], event["outcome"]) == (["read"], "R", "4")
    assert "does not allow" in event["outcomeDesc"]
    assert _patients(event) == [f"Patient/{pid}"]  # who was the request about
    _check_client(event, "narrow", tokens["narrow"])

    # a final Observation is outside the "narrow" client's policy: the 404 of a missing one
    response = client.get(f"/fhir/Observation/{obs['id']}", headers=_h(tokens["narrow"]))
    assert response.status_code == 404
    event = _one(client, tokens, response)
    assert (event["outcome"], _entities(event, "4")) == ("4", [f"Observation/{obs['id']}"])
    assert _patients(event) == []  # nothing of it was read

    response = client.post("/fhir/Observation", json=_obs(f"Patient/{pid}"),
                           headers=_h(tokens["narrow"]))
    assert response.status_code == 403
    event = _one(client, tokens, response)
    assert (_subtypes(event), event["action"], event["outcome"]) == (["create"], "C", "4")


def test_a_search_gives_one_event_per_patient_with_the_raw_query(client: FlaskClient,
                                                                 tokens: dict[str, str]) -> None:
    tok = tokens["h1"]
    p1 = _create(client, tok, {"resourceType": "Patient"})["id"]
    p2 = _create(client, tok, {"resourceType": "Patient"})["id"]
    for subject in (p1, p2, p2):
        _create(client, tok, _obs(f"Patient/{subject}"))
    response = client.get("/fhir/Observation?code:text=glucose&_count=10", headers=_h(tok))
    assert len(response.get_json()["entry"]) == 3
    found = _events(client, tokens, response.headers["X-Request-Id"])
    assert sorted(p for e in found for p in _patients(e)) == sorted([f"Patient/{p1}",
                                                                     f"Patient/{p2}"])
    assert all(len(_patients(e)) == 1 for e in found)
    for event in found:
        query = [e for e in event["entity"] if e.get("role", {}).get("code") == "24"]
        assert len(query) == 1
        assert base64.b64decode(query[0]["query"]) == \
            b"GET /fhir/Observation?code:text=glucose&_count=10"
        assert _subtypes(event) == ["search-type"]

    # POST _search: the form is part of the query recorded; a search finding nothing: one event
    response = client.post("/fhir/Observation/_search", data={"status": "cancelled"},
                           headers={"Authorization": f"Bearer {tok}"})
    assert response.status_code == 200 and "entry" not in response.get_json()
    event = _one(client, tokens, response)
    query = next(e["query"] for e in event["entity"] if "query" in e)
    assert base64.b64decode(query) == b"POST /fhir/Observation/_search\n\nstatus=cancelled"
    assert _patients(event) == []

    # a compartment search names its Patient even when nothing is found
    response = client.get(f"/fhir/Patient/{p1}/Encounter", headers=_h(tok))
    assert response.status_code == 200
    event = _one(client, tokens, response)
    assert (_subtypes(event), _patients(event)) == (["search-compartment"], [f"Patient/{p1}"])


def test_bundle_writes_are_audited_per_entry_and_the_bundle_once(client: FlaskClient,
                                                                 tokens: dict[str, str]) -> None:
    tok = tokens["h1"]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": _obs("urn:uuid:p"), "request": {"method": "POST", "url": "Observation"}}]}
    response = client.post("/fhir", json=bundle, headers=_h(tok))
    assert response.status_code == 200, response.get_json()
    pid = response.get_json()["entry"][0]["response"]["location"].split("/")[1]
    found = _events(client, tokens, response.headers["X-Request-Id"])
    by = {tuple(_subtypes(e)): e for e in found}
    assert sorted(by) == [("create",), ("transaction",)] and len(found) == 3
    creates = [e for e in found if _subtypes(e) == ["create"]]
    assert sorted(_entities(e, "4")[0].split("/")[0] for e in creates) == ["Observation",
                                                                           "Patient"]
    assert all(_patients(e) == [f"Patient/{pid}"] for e in creates)
    assert by[("transaction",)]["action"] == "E"

    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{pid}"}}]}
    response = client.post("/fhir", json=batch, headers=_h(tok))
    event = _one(client, tokens, response)
    assert (_subtypes(event), _patients(event)) == (["batch"], [f"Patient/{pid}"])


def test_operations_are_audited(client: FlaskClient, tokens: dict[str, str]) -> None:
    tok = tokens["h1"]
    pid = _create(client, tok, {"resourceType": "Patient"})["id"]
    response = client.get(f"/fhir/Patient/{pid}/$everything", headers=_h(tok))
    assert response.status_code == 200
    event = _one(client, tokens, response)
    assert event["subtype"][0]["code"] == "operation"
    assert event["subtype"][1]["code"] == \
        "http://hl7.org/fhir/OperationDefinition/Patient-everything"
    assert (_entities(event, "4"), _patients(event)) == ([f"Patient/{pid}"], [f"Patient/{pid}"])


# -- tokens --------------------------------------------------------------------------------------
def test_token_requests_are_audited(client: FlaskClient, tokens: dict[str, str],
                                    astore: SqliteStore) -> None:
    response = client.post("/auth/token", data=token_form(assertion(KEY, "h1"), "system/*.rs"))
    assert response.status_code == 200
    event = _one(client, tokens, response)
    assert event["type"]["code"] == "110114" and event["subtype"][0]["code"] == "ITI-71"
    assert event["outcome"] == "0"
    digest = token_hash(response.get_json()["access_token"])
    assert {"system": "urn:ietf:rfc:6920", "value": f"sha-256;{digest}"} in \
        [e["what"]["identifier"] for e in event["entity"] if "what" in e]
    _check_client(event, "h1", response.get_json()["access_token"])

    response = client.post("/auth/token", data=token_form(assertion(OTHER_KEY, "h1")))
    assert response.status_code == 400
    event = _one(client, tokens, response)
    assert event["outcome"] == "4"
    assert event["outcomeDesc"].startswith("invalid_client")
    assert _client_agent(event)["who"]["identifier"]["value"] == "h1"
    assert "policy" not in _client_agent(event)  # no token was issued


def test_no_token_is_ever_stored(client: FlaskClient, tokens: dict[str, str],
                                 auth_settings: Settings) -> None:
    tok = tokens["h1"]
    pid = _create(client, tok, {"resourceType": "Patient"})["id"]
    client.get(f"/fhir/Patient/{pid}", headers=_h(tok))
    client.get("/fhir/Patient", headers=_h(tok))
    client.get(f"/fhir/Patient/{pid}", headers=_h("x" * 43))  # an unknown token
    assert audit.flush()
    db = Path(auth_settings.store_url.removeprefix("sqlite:///"))
    data = b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    for token in (*tokens.values(), "x" * 43):
        assert token.encode() not in data
    assert token_hash(tok).encode() in data  # the hash is what identifies the token


# -- written with the data -----------------------------------------------------------------------
def test_the_data_write_fails_when_its_audit_cannot_be_written(
        client: FlaskClient, tokens: dict[str, str], astore: AuditRefusingStore) -> None:
    """The failure is injected by :class:`AuditRefusingStore`, a tiny subclass of the SQLite store
    whose transactions raise on the put of an AuditEvent: create, update, delete and a transaction
    Bundle all fail (503) and leave nothing written."""
    tok = tokens["h1"]
    pid = _create(client, tok, {"resourceType": "Patient"})["id"]
    assert audit.flush()
    before = astore.count(("AuditEvent",), ir.And())
    astore.refuse = True
    try:
        response = client.post("/fhir/Observation", json=_obs(f"Patient/{pid}"), headers=_h(tok))
        assert response.status_code == 503
        assert client.put(f"/fhir/Patient/{pid}", json={"resourceType": "Patient", "id": pid,
                                                         "active": False},
                          headers=_h(tok)).status_code == 503
        assert client.delete(f"/fhir/Patient/{pid}", headers=_h(tok)).status_code == 503
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": _obs(f"Patient/{pid}"), "request": {"method": "POST",
                                                            "url": "Observation"}}]}
        assert client.post("/fhir", json=bundle, headers=_h(tok)).status_code == 503
    finally:
        astore.refuse = False
    assert astore.count(("Observation",), ir.And()) == 0  # nothing written
    current = astore.read("Patient", pid)
    assert current is not None and current.version == 1 and b'"active"' not in current.body
    # the failed requests are themselves audited (afterwards, once the storage works again)
    assert audit.flush()
    failed = [e for e in _all_events(astore)[before:] if e["outcome"] != "0"]
    assert sorted(_subtypes(e)[0] for e in failed) == ["create", "delete", "transaction",
                                                       "update"]


def _all_events(store: SqliteStore) -> list[dict[str, Any]]:
    from fhir_server.fhir import jsonio
    from fhir_server.store import SortSpec

    rows = store.search(SearchQuery(("AuditEvent",), sort=(SortSpec("_lastUpdated", "date"),),
                                    limit=1000)).rows
    return [jsonio.loads_trusted(r.body) for r in rows if r.body is not None]


# -- who may read them ---------------------------------------------------------------------------
def test_audit_is_read_only_with_an_explicit_audit_event_scope(client: FlaskClient,
                                                               tokens: dict[str, str]) -> None:
    pid = _create(client, tokens["h1"], {"resourceType": "Patient"})["id"]
    response = client.get(f"/fhir/Patient/{pid}", headers=_h(tokens["star"]))
    event = _one(client, tokens, response)
    assert client.get(f"/fhir/AuditEvent/{event['id']}",
                      headers=_h(tokens["auditor"])).status_code == 200
    star = tokens["star"]  # system/*.rs: everything but the audit trail
    assert client.get(f"/fhir/AuditEvent/{event['id']}", headers=_h(star)).status_code == 403
    assert client.get("/fhir/AuditEvent", headers=_h(star)).status_code == 403
    assert client.get("/fhir/Patient?_has:AuditEvent:patient:outcome=0",
                      headers=_h(star)).status_code == 403
    for url in (f"/fhir/Patient?_id={pid}&_revinclude=AuditEvent:patient",
                f"/fhir/Patient?_id={pid}&_revinclude=*", f"/fhir/Patient/{pid}/$everything",
                "/fhir/_history", "/fhir?_count=100"):
        response = client.get(url, headers=_h(star))
        assert response.status_code == 200, (url, response.get_json())
        kinds = {e["resource"]["resourceType"] for e in response.get_json().get("entry", [])}
        assert "AuditEvent" not in kinds, url
    assert client.get(f"/fhir/Patient/{pid}/AuditEvent", headers=_h(star)).status_code == 403
    assert client.get("/fhir/AuditEvent?_type=AuditEvent", headers=_h(star)).status_code == 403
    # with the scope: searchable by the indexed parameters; the others are refused, not empty
    auditor = _h(tokens["auditor"])
    found = client.get(f"/fhir/AuditEvent?patient=Patient/{pid}&subtype=read&outcome=0"
                       "&agent:identifier=https://fhir.demo-city.health.cn/sid/oauth-client|h1"
                       "&date=gt2020-01-01", headers=auditor).get_json()
    assert [e["resource"]["id"] for e in found["entry"]] == [event["id"]]
    response = client.get("/fhir/AuditEvent?action=R", headers=auditor)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["action"]


def test_audit_events_are_append_only(client: FlaskClient, tokens: dict[str, str],
                                      auth_settings: Settings, astore: SqliteStore) -> None:
    response = client.get("/fhir/Patient", headers=_h(tokens["h1"]))
    event = _one(client, tokens, response)
    url = f"/fhir/AuditEvent/{event['id']}"
    auditor = tokens["auditor"]  # even system/AuditEvent.cruds writes nothing
    for response in (
            client.put(url, json=event, headers=_h(auditor)),
            client.patch(url, json=[{"op": "replace", "path": "/outcome", "value": "4"}],
                         headers=_h(auditor, **{"Content-Type": "application/json-patch+json"})),
            client.delete(url, headers=_h(auditor)),
            client.post("/fhir/AuditEvent", json={**event, "id": None}, headers=_h(auditor)),
            client.delete("/fhir/AuditEvent?outcome=0", headers=_h(auditor))):
        assert response.status_code == 405, response.get_json()
        assert response.get_json()["resourceType"] == "OperationOutcome"
    delete = {"request": {"method": "DELETE", "url": f"AuditEvent/{event['id']}"}}
    batch = client.post("/fhir", json={"resourceType": "Bundle", "type": "batch",
                                       "entry": [delete]}, headers=_h(auditor)).get_json()
    assert batch["entry"][0]["response"]["status"].startswith("405")
    response = client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction",
                                          "entry": [delete]}, headers=_h(auditor))
    assert response.status_code == 405
    # FHIR_AUTH=off: no audit, and still no way to change the trail
    assert audit.flush()
    count = astore.count(("AuditEvent",), ir.And())
    open_app = create_app(replace(auth_settings, auth=False), astore).test_client()
    assert open_app.delete(url).status_code == 405
    assert open_app.put(url, json=event, headers=_h()).status_code == 405
    batch = open_app.post("/fhir", json={"resourceType": "Bundle", "type": "batch",
                                         "entry": [delete]}, headers=_h()).get_json()
    assert batch["entry"][0]["response"]["status"].startswith("405")
    stored = astore.read("AuditEvent", event["id"])
    assert stored is not None and stored.version == 1
    assert audit.flush()
    assert astore.count(("AuditEvent",), ir.And()) == count


# -- the background writer -----------------------------------------------------------------------
def test_reads_are_refused_rather_than_left_unaudited(client: FlaskClient, tokens: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A full queue (the store refusing audits for a long time) answers 503, not the data."""
    pid = _create(client, tokens["h1"], {"resourceType": "Patient"})["id"]
    assert audit.flush()
    monkeypatch.setattr(writer(), "max_backlog", 0)
    response = client.get(f"/fhir/Patient/{pid}", headers=_h(tokens["h1"]))
    assert response.status_code == 503
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert "Patient" not in response.get_data(as_text=True)


def test_closing_the_store_writes_its_queued_audits(auth_settings: Settings) -> None:
    store = SqliteStore.from_url(auth_settings.store_url)
    register(store, "h1", "hospital", KEY, organization="Organization/h1")
    client = create_app(auth_settings, store).test_client()
    token = get_token(client, KEY, "h1", "system/*.rs")
    for _ in range(20):
        client.get("/fhir/Patient", headers=_h(token))
    store.close()  # without waiting for the writer's next round
    reopened = SqliteStore.from_url(auth_settings.store_url)
    try:
        assert reopened.count(("AuditEvent",), ir.And()) == 21  # the token request and 20 searches
    finally:
        reopened.close()


# -- the audit log: what it answers, and what it does not --------------------------------------
def test_searches_of_the_audit_log(client: FlaskClient, tokens: dict[str, str]) -> None:
    """AuditEvents live in an append-only log of their own (store/*/audit_log.py): searched by
    their indexed parameters, sorted by date/_lastUpdated/_id, reachable by ``_has``, type
    history, mixed with other types; not in system history."""
    tok = tokens["h1"]
    pid = _create(client, tok, {"resourceType": "Patient", "gender": "female"})["id"]
    reads = [client.get(f"/fhir/Patient/{pid}", headers=_h(tok)) for _ in range(3)]
    assert audit.flush()
    both = _h(get_token(client, KEY, "auditor", "system/AuditEvent.rs system/Patient.rs"))
    ids = [_one(client, tokens, r)["id"] for r in reads]

    # sorted and paged by date, newest first: the three reads, then the create (the auditor's
    # own searches are audited too, as concerning the Patient of the events they found)
    url = f"/fhir/AuditEvent?patient={pid}&subtype=read,create&_sort=-date&_count=2"
    page = client.get(url, headers=both).get_json()
    found = [e["resource"]["id"] for e in page["entry"]]
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    page = client.get(following.removeprefix("http://localhost"), headers=both).get_json()
    found += [e["resource"]["id"] for e in page["entry"]]
    assert found[:3] == ids[::-1] and len(found) == 4
    assert page["entry"][-1]["resource"]["subtype"][0]["code"] == "create"
    total = client.get(f"/fhir/AuditEvent?patient=Patient/{pid}&subtype:not=search-type"
                       "&_total=accurate&_count=1", headers=both).get_json()["total"]
    assert total == 4

    # the log sorts by date, _lastUpdated and _id only
    response = client.get("/fhir/AuditEvent?_sort=patient", headers=both)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["_sort"]

    # _has: Patients read (successfully) by the hospital's client
    has = client.get("/fhir/Patient?_has:AuditEvent:patient:subtype=read"
                     "&_has:AuditEvent:patient:outcome=0", headers=both).get_json()
    assert pid in [e["resource"]["id"] for e in has["entry"]]

    # type history: each event is its one version; system history is the data's alone
    history = client.get("/fhir/AuditEvent/_history?_count=500", headers=both).get_json()
    assert set(ids) <= {e["resource"]["id"] for e in history["entry"]}
    assert all(e["resource"]["meta"]["versionId"] == "1" for e in history["entry"])
    system = client.get("/fhir/_history?_count=500", headers=both).get_json()
    assert {e["resource"]["resourceType"] for e in system["entry"]} == {"Patient"}

    # several types at once: merged in one order
    mixed = client.get(f"/fhir?_type=Patient,AuditEvent&_id={pid},{ids[0]}",
                       headers=both).get_json()
    assert sorted(e["resource"]["resourceType"] for e in mixed["entry"]) == ["AuditEvent",
                                                                             "Patient"]
