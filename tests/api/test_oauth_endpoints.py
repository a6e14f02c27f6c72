"""Introspection (RFC 7662), revocation (RFC 7009), grants.authenticate (what enforcement uses),
SMART discovery and the CapabilityStatement's security section."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.auth import grants
from fhir_server.auth.clients import ClientRegistry
from fhir_server.auth.grants import Grant, authenticate, token_hash
from fhir_server.auth.scopes import parse_scopes
from fhir_server.config import Settings
from fhir_server.errors import Unauthorized
from fhir_server.store.sqlite import SqliteStore
from tests.oauth import ASSERTION_TYPE, assertion, ec_key, get_token, register

A_KEY = ec_key("a-1")
B_KEY = ec_key("b-1")


@pytest.fixture
def clients(store: SqliteStore) -> SqliteStore:
    register(store, "a", "insurer", A_KEY, organization="Organization/ins-a")
    register(store, "b", "hospital", B_KEY, organization="Organization/hosp-b")
    return store


def _auth_form(key: Any, client_id: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(key, client_id), **extra}


def introspect(client: FlaskClient, token: str, key: Any = A_KEY, client_id: str = "a") -> Any:
    return client.post("/auth/introspect", data=_auth_form(key, client_id, token=token))


def revoke(client: FlaskClient, token: str, key: Any = A_KEY, client_id: str = "a") -> Any:
    return client.post("/auth/revoke", data=_auth_form(key, client_id, token=token))


# -- introspection ------------------------------------------------------------------------------
def test_introspect_own_active_token(client: FlaskClient, clients: SqliteStore) -> None:
    token = get_token(client, A_KEY, "a", "system/Encounter.rs system/Patient.read")
    response = introspect(client, token)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["active"] is True
    assert body["client_id"] == "a"
    assert body["scope"] == "system/Encounter.rs system/Patient.read"
    assert 0 < body["exp"] - time.time() <= 300


@pytest.mark.parametrize("token", ["", "x", "not-a-token-at-all-but-long-enough", "é" * 30])
def test_introspect_unknown_is_exactly_inactive(client: FlaskClient, clients: SqliteStore,
                                                token: str) -> None:
    response = introspect(client, token)
    assert response.status_code == 200
    assert response.get_json() == {"active": False}


def test_another_clients_token_is_inactive_to_me(client: FlaskClient, clients: SqliteStore) -> None:
    theirs = get_token(client, B_KEY, "b", "system/Patient.rs")
    assert introspect(client, theirs).get_json() == {"active": False}
    assert introspect(client, theirs, B_KEY, "b").get_json()["active"] is True


def test_expired_token_is_inactive(client: FlaskClient, clients: SqliteStore) -> None:
    token, _ = grants.issue(clients, "a", "insurer", "Organization/ins-a",
                            parse_scopes("system/Encounter.rs"), (), 2)
    # exp is whole seconds: a 2 s token is active for at least 1 s and gone after 2.1 s
    assert introspect(client, token).get_json()["active"] is True
    time.sleep(2.1)
    assert introspect(client, token).get_json() == {"active": False}
    with pytest.raises(Unauthorized):
        authenticate(clients, Settings(), f"Bearer {token}")


def test_introspection_requires_client_authentication(client: FlaskClient, clients: SqliteStore) -> None:
    token = get_token(client, A_KEY, "a")
    response = client.post("/auth/introspect", data={"token": token})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client"
    forged = client.post("/auth/introspect", data=_auth_form(ec_key("a-1"), "a", token=token))
    assert forged.get_json()["error"] == "invalid_client"
    missing = client.post("/auth/introspect", data=_auth_form(A_KEY, "a"))
    assert missing.status_code == 400
    assert missing.get_json()["error"] == "invalid_request"


def test_introspection_assertion_may_name_the_introspection_url(client: FlaskClient,
                                                                clients: SqliteStore) -> None:
    token = get_token(client, A_KEY, "a")
    signed = assertion(A_KEY, "a", aud="http://localhost/auth/introspect")
    response = client.post("/auth/introspect", data={
        "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed, "token": token})
    assert response.get_json()["active"] is True
    # ... but such an assertion does not buy a token
    signed = assertion(A_KEY, "a", aud="http://localhost/auth/introspect")
    denied = client.post("/auth/token", data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed, "scope": "system/*.rs"})
    assert denied.get_json()["error"] == "invalid_client"


# -- revocation ---------------------------------------------------------------------------------
def test_revoke_own_token(client: FlaskClient, clients: SqliteStore) -> None:
    token = get_token(client, A_KEY, "a")
    assert authenticate(clients, Settings(), f"Bearer {token}").client_id == "a"  # now cached
    response = revoke(client, token)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert introspect(client, token).get_json() == {"active": False}
    with pytest.raises(Unauthorized):  # immediately, in this process, despite the cache
        authenticate(clients, Settings(), f"Bearer {token}")
    assert revoke(client, token).status_code == 200  # again: still 200


def test_revoking_another_clients_token_does_nothing(client: FlaskClient, clients: SqliteStore) -> None:
    theirs = get_token(client, B_KEY, "b")
    response = revoke(client, theirs)
    assert response.status_code == 200
    assert introspect(client, theirs, B_KEY, "b").get_json()["active"] is True
    assert authenticate(clients, Settings(), f"Bearer {theirs}").client_id == "b"


def test_revoke_unknown_token_is_200(client: FlaskClient, clients: SqliteStore) -> None:
    assert revoke(client, "unknown-token-value-0123456789").status_code == 200


def test_revocation_requires_client_authentication(client: FlaskClient, clients: SqliteStore) -> None:
    token = get_token(client, A_KEY, "a")
    response = client.post("/auth/revoke", data={"token": token})
    assert response.get_json()["error"] == "invalid_client"
    assert introspect(client, token).get_json()["active"] is True


# -- authenticate (the enforcement's entry point) -----------------------------------------------
def test_authenticate_returns_the_grant(client: FlaskClient, clients: SqliteStore) -> None:
    token = get_token(client, B_KEY, "b", "system/Patient.rs system/Observation.rs?category=lab")
    grant = authenticate(clients, Settings(), f"Bearer {token}")
    assert isinstance(grant, Grant)
    assert grant.client_id == "b"
    assert grant.role == "hospital"
    assert grant.organization == "Organization/hosp-b"
    assert [str(s) for s in grant.scopes] == ["system/Patient.rs",
                                             "system/Observation.rs?category=lab"]
    assert grant.policy == ("write:*?_tag={record-owner}",)
    assert grant.token_hash == token_hash(token) != token
    assert 0 < grant.expires - time.time() <= 300
    assert authenticate(clients, Settings(), f"bearer {token}") == grant  # scheme is case-blind


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Basic YTpi", "Token abc", "Bearer not a token",
    "Bearer unknown-token-value-0123456789", "Bearer " + "x" * 500, "Bearer é" + "x" * 40,
])
def test_authenticate_rejects(clients: SqliteStore, header: str | None) -> None:
    with pytest.raises(Unauthorized) as caught:
        authenticate(clients, Settings(), header)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_revocation_by_another_process_is_seen_within_5_seconds(client: FlaskClient,
                                                               clients: SqliteStore,
                                                               settings: Settings) -> None:
    token = get_token(client, A_KEY, "a")
    assert authenticate(clients, settings, f"Bearer {token}").client_id == "a"
    other = SqliteStore.from_url(settings.store_url)  # another worker's handle
    try:
        assert grants.revoke(other, token) is True
    finally:
        other.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            authenticate(clients, settings, f"Bearer {token}")
        except Unauthorized:
            break
        time.sleep(0.1)
    else:
        pytest.fail("a token revoked elsewhere was still accepted after 5 s")


def test_suspending_a_client_ends_its_tokens(client: FlaskClient, clients: SqliteStore) -> None:
    token = get_token(client, A_KEY, "a")
    other = get_token(client, B_KEY, "b")
    ClientRegistry(clients).suspend("a")
    with pytest.raises(Unauthorized):
        authenticate(clients, Settings(), f"Bearer {token}")
    assert authenticate(clients, Settings(), f"Bearer {other}").client_id == "b"
    ClientRegistry(clients).remove("b")
    with pytest.raises(Unauthorized):
        authenticate(clients, Settings(), f"Bearer {other}")


# -- discovery ----------------------------------------------------------------------------------
def test_smart_configuration(client: FlaskClient) -> None:
    response = client.get("/fhir/.well-known/smart-configuration", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    config = response.get_json()
    assert config["token_endpoint"] == "http://localhost/auth/token"
    assert config["introspection_endpoint"] == "http://localhost/auth/introspect"
    assert config["revocation_endpoint"] == "http://localhost/auth/revoke"
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert set(config["capabilities"]) == {"client-confidential-asymmetric", "permission-v1",
                                           "permission-v2"}
    assert "system/Encounter.rs" in config["scopes_supported"]
    assert all(s.startswith("system/") for s in config["scopes_supported"])
    assert client.get("/fhir/.well-known/smart-configuration?_format=xml").status_code == 200


def test_smart_configuration_behind_a_proxy(settings: Settings, store: SqliteStore) -> None:
    app = create_app(replace(settings, base_url="https://fhir.example.org/fhir"), store)
    config = app.test_client().get("/fhir/.well-known/smart-configuration").get_json()
    assert config["token_endpoint"] == "https://fhir.example.org/auth/token"
    assert config["revocation_endpoint"] == "https://fhir.example.org/auth/revoke"


def test_capability_statement_security(settings: Settings, store: SqliteStore) -> None:
    on = create_app(replace(settings, auth=True), store).test_client().get("/fhir/metadata")
    security = on.get_json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert security["extension"][0]["url"] == (
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
    assert uris == {"token": "http://localhost/auth/token",
                    "introspect": "http://localhost/auth/introspect",
                    "revoke": "http://localhost/auth/revoke"}
    off = create_app(replace(settings, auth=False), store).test_client().get("/fhir/metadata")
    assert "security" not in off.get_json()["rest"][0]

