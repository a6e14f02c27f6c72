"""The token endpoint (SMART Backend Services): every rejection case of SECURITY.md, scope
mediation, the response, and how tokens are stored. Real keys, real signatures."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.auth import audit
from fhir_server.auth.clients import ClientRegistry
from fhir_server.auth.grants import TOKEN_KIND
from fhir_server.config import Settings
from fhir_server.store.sqlite import SqliteStore
from tests.oauth import (
    TOKEN_URL,
    Key,
    assertion,
    ec_key,
    hmac_assertion,
    register,
    rsa_key,
    token_form,
    unsigned_assertion,
)

EC = ec_key("ec-1")
RSA = rsa_key("rsa-1")
OTHER_EC = ec_key("ec-1")  # same kid, different key: a forger's


@pytest.fixture
def clients(store: SqliteStore) -> SqliteStore:
    register(store, "insurer-1", "insurer", EC, RSA)
    register(store, "hospital-1", "hospital", EC)
    register(store, "url-client", "mch", jwks_url="https://keys.example.org/jwks.json")
    return store


def _post(client: FlaskClient, form: dict[str, str], **kwargs: Any) -> Any:
    return client.post("/auth/token", data=form, **kwargs)


def _rejected(response: Any, error: str = "invalid_client", status: int = 400) -> dict[str, Any]:
    body: dict[str, Any] = response.get_json()
    assert response.status_code == status, body
    assert body["error"] == error, body
    assert "access_token" not in body
    assert response.headers["Cache-Control"] == "no-store"
    return body


def _tokens(store: SqliteStore) -> list[tuple[str, dict[str, Any]]]:
    return store.registry_list(TOKEN_KIND)


# -- success ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [EC, RSA], ids=["ES384", "RS384"])
def test_token_response(client: FlaskClient, clients: SqliteStore, key: Key) -> None:
    response = _post(client, token_form(assertion(key, "insurer-1"), "system/Encounter.rs"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh_token
    assert body["token_type"] == "bearer"
    assert 295 <= body["expires_in"] <= 300
    assert body["scope"] == "system/Encounter.rs"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.mimetype == "application/json"


def test_lifetime_is_the_setting_capped_at_300(settings: Settings, clients: SqliteStore) -> None:
    short = create_app(replace(settings, token_lifetime_s=60), clients).test_client()
    body = _post(short, token_form(assertion(EC, "insurer-1"))).get_json()
    assert 55 <= body["expires_in"] <= 60
    long = create_app(replace(settings, token_lifetime_s=3600), clients).test_client()
    assert _post(long, token_form(assertion(EC, "insurer-1"))).get_json()["expires_in"] <= 300


def test_tokens_are_stored_hashed(client: FlaskClient, clients: SqliteStore, settings: Settings) -> None:
    token = _post(client, token_form(assertion(EC, "insurer-1"))).get_json()["access_token"]
    digest = hashlib.sha256(token.encode()).hexdigest()
    stored = dict(_tokens(clients))
    assert set(stored) == {digest}
    assert stored[digest]["client_id"] == "insurer-1"
    assert stored[digest]["organization"] == "Organization/insurer-1-org"
    db = Path(settings.store_url.removeprefix("sqlite:///"))
    for path in (db, db.with_name(db.name + "-wal")):
        if path.exists():
            assert token.encode() not in path.read_bytes()
    assert any(digest.encode() in p.read_bytes()
               for p in (db, db.with_name(db.name + "-wal")) if p.exists())


# -- assertion rejections -----------------------------------------------------------------------
def _now() -> int:
    return int(time.time())


REJECTED_ASSERTIONS: dict[str, Any] = {
    "alg none": lambda: unsigned_assertion("insurer-1", "ec-1"),
    "alg HS256 with the public key as secret": lambda: hmac_assertion(RSA, "insurer-1"),
    "alg RS256": lambda: assertion(RSA, "insurer-1", alg="RS256"),
    "alg RS512": lambda: assertion(RSA, "insurer-1", alg="RS512"),
    "alg ES256 with a P-256 key": lambda: assertion(ec_key("ec-1", "P-256"), "insurer-1", alg="ES256"),
    "alg PS384": lambda: assertion(RSA, "insurer-1", alg="PS384"),
    "unknown kid": lambda: assertion(EC, "insurer-1", header={"kid": "nope"}),
    "no kid": lambda: assertion(EC, "insurer-1", header={"kid": None}),
    "kid of an EC key with RS384": lambda: assertion(RSA, "insurer-1", header={"kid": "ec-1"}),
    "kid of an RSA key with ES384": lambda: assertion(EC, "insurer-1", header={"kid": "rsa-1"}),
    "no typ": lambda: assertion(EC, "insurer-1", header={"typ": None}),
    "typ not JWT": lambda: assertion(EC, "insurer-1", header={"typ": "at+jwt"}),
    "jku without a registered JWKS URL": lambda: assertion(
        EC, "insurer-1", header={"jku": "https://attacker.example/jwks.json"}),
    "jku differing from the registered URL": lambda: assertion(
        EC, "url-client", header={"jku": "https://attacker.example/jwks.json"}),
    "iss differs from sub": lambda: assertion(EC, "insurer-1", sub="hospital-1"),
    "no iss": lambda: assertion(EC, "insurer-1", iss=None),
    "no sub": lambda: assertion(EC, "insurer-1", sub=None),
    "iss unknown": lambda: assertion(EC, "nobody"),
    "aud another URL": lambda: assertion(EC, "insurer-1", aud="http://localhost/fhir"),
    "aud a list without the token URL": lambda: assertion(
        EC, "insurer-1", aud=["http://localhost/auth/introspect"]),
    "aud missing": lambda: assertion(EC, "insurer-1", aud=None),
    "exp missing": lambda: assertion(EC, "insurer-1", exp=None),
    "exp past": lambda: assertion(EC, "insurer-1", exp=_now() - 60),
    "exp more than 5 minutes ahead": lambda: assertion(EC, "insurer-1", exp=_now() + 360),
    "exp a string": lambda: assertion(EC, "insurer-1", exp=str(_now() + 60)),
    "nbf in the future": lambda: assertion(EC, "insurer-1", nbf=_now() + 120),
    "iat in the future": lambda: assertion(EC, "insurer-1", iat=_now() + 120),
    "jti missing": lambda: assertion(EC, "insurer-1", jti=None),
    "jti empty": lambda: assertion(EC, "insurer-1", jti=""),
    "signed by another key with the same kid": lambda: assertion(OTHER_EC, "insurer-1"),
    "payload swapped after signing": lambda: _swap_payload(assertion(EC, "insurer-1"),
                                                           assertion(EC, "hospital-1")),
    "not a JWT": lambda: "not-a-jwt",
    "five segments (JWE)": lambda: "a.b.c.d.e",
}


def _swap_payload(signed: str, other: str) -> str:
    head, _, sig = signed.split(".")
    return f"{head}.{other.split('.')[1]}.{sig}"


@pytest.mark.parametrize("case", sorted(REJECTED_ASSERTIONS))
def test_rejected_assertion(client: FlaskClient, clients: SqliteStore, case: str) -> None:
    body = _rejected(_post(client, token_form(REJECTED_ASSERTIONS[case]())))
    assert "error_description" in body
    assert _tokens(clients) == []


def test_registration_failures_all_read_the_same(client: FlaskClient, clients: SqliteStore) -> None:
    """Unknown client, unknown kid, forged signature: one description, no hint which failed."""
    descriptions = {_post(client, token_form(REJECTED_ASSERTIONS[case]())).get_json()["error_description"]
                    for case in ("iss unknown", "unknown kid", "signed by another key with the same kid",
                                 "kid of an EC key with RS384", "jku without a registered JWKS URL")}
    assert descriptions == {"client authentication failed"}


def test_aud_list_containing_the_token_url_is_accepted(client: FlaskClient, clients: SqliteStore) -> None:
    signed = assertion(EC, "insurer-1", aud=["https://other.example", TOKEN_URL])
    assert _post(client, token_form(signed)).status_code == 200


def test_exp_up_to_5_minutes_ahead_is_accepted(client: FlaskClient, clients: SqliteStore) -> None:
    assert _post(client, token_form(assertion(EC, "insurer-1", exp=_now() + 300))).status_code == 200


def test_jti_replay_is_rejected(client: FlaskClient, clients: SqliteStore) -> None:
    signed = assertion(EC, "insurer-1")
    assert _post(client, token_form(signed)).status_code == 200
    _rejected(_post(client, token_form(signed)))
    # a different jti is fine; the same jti from another client is a different key
    assert _post(client, token_form(assertion(EC, "insurer-1"))).status_code == 200
    assert _post(client, token_form(assertion(EC, "hospital-1", jti="shared"))).status_code == 200
    assert _post(client, token_form(assertion(EC, "insurer-1", jti="shared"))).status_code == 200


def test_replay_across_app_instances_sharing_a_store(settings: Settings, clients: SqliteStore) -> None:
    """Two workers are two apps with their own store handles on one database."""
    other = SqliteStore.from_url(settings.store_url)
    try:
        first = create_app(settings, clients).test_client()
        second = create_app(settings, other).test_client()
        signed = assertion(EC, "insurer-1")
        assert _post(first, token_form(signed)).status_code == 200
        _rejected(_post(second, token_form(signed)))
    finally:
        other.close()


def test_suspended_client_is_rejected_until_activated(client: FlaskClient, clients: SqliteStore) -> None:
    registry = ClientRegistry(clients)
    registry.suspend("insurer-1")
    _rejected(_post(client, token_form(assertion(EC, "insurer-1"))))
    registry.activate("insurer-1")
    assert _post(client, token_form(assertion(EC, "insurer-1"))).status_code == 200


def test_removed_client_is_rejected(client: FlaskClient, clients: SqliteStore) -> None:
    ClientRegistry(clients).remove("insurer-1")
    _rejected(_post(client, token_form(assertion(EC, "insurer-1"))))


def test_client_id_parameter_must_match_the_assertion(client: FlaskClient, clients: SqliteStore) -> None:
    _rejected(_post(client, token_form(assertion(EC, "insurer-1"), client_id="hospital-1")))
    ok = _post(client, token_form(assertion(EC, "insurer-1"), client_id="insurer-1"))
    assert ok.status_code == 200


def test_algorithms_registered_for_the_client_bound_the_alg(client: FlaskClient,
                                                            store: SqliteStore) -> None:
    registry = ClientRegistry(store)
    registered = register(store, "rs-only", "insurer", EC, RSA)
    store.registry_put("client", "rs-only", {**registered.to_json(), "algorithms": ["RS384"]})
    _rejected(_post(client, token_form(assertion(EC, "rs-only"))))
    assert _post(client, token_form(assertion(RSA, "rs-only"))).status_code == 200
    assert registry.require("rs-only").algorithms == ("RS384",)


# -- request form -------------------------------------------------------------------------------
def test_grant_type_missing_or_wrong(client: FlaskClient, clients: SqliteStore) -> None:
    form = token_form(assertion(EC, "insurer-1"))
    del form["grant_type"]
    _rejected(_post(client, form), "invalid_request")
    for grant in ("authorization_code", "password", "refresh_token",
                  "urn:ietf:params:oauth:grant-type:jwt-bearer"):
        _rejected(_post(client, token_form(assertion(EC, "insurer-1"), grant_type=grant)),
                  "unsupported_grant_type")


def test_client_assertion_type_missing_or_wrong(client: FlaskClient, clients: SqliteStore) -> None:
    form = token_form(assertion(EC, "insurer-1"))
    del form["client_assertion_type"]
    _rejected(_post(client, form))
    form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    _rejected(_post(client, form))
    form = token_form(assertion(EC, "insurer-1"))
    del form["client_assertion"]
    _rejected(_post(client, form))


def test_http_authentication_is_a_401(client: FlaskClient, clients: SqliteStore) -> None:
    form = {"grant_type": "client_credentials", "scope": "system/*.rs"}
    response = _post(client, form, headers={"Authorization": "Basic aW5zdXJlci0xOnNlY3JldA=="})
    _rejected(response, status=401)
    assert "WWW-Authenticate" in response.headers


def test_only_form_posts_with_single_parameters(client: FlaskClient, clients: SqliteStore) -> None:
    form = token_form(assertion(EC, "insurer-1"))
    _rejected(client.post("/auth/token", json=form), "invalid_request")
    body = "&".join(f"{k}={v}" for k, v in form.items()) + "&scope=system/Patient.rs"
    _rejected(client.post("/auth/token", data=body,
                          content_type="application/x-www-form-urlencoded"), "invalid_request")
    _rejected(client.post("/auth/token?scope=system/Patient.rs", data=form), "invalid_request")
    response = client.get("/auth/token")
    _rejected(response, "invalid_request", 405)
    assert response.headers["Allow"] == "POST"


# -- scopes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("client_id", "requested", "granted"), [
    ("insurer-1", "system/Encounter.cruds", "system/Encounter.rs"),  # widened: narrowed
    ("insurer-1", "system/Encounter.rs system/Observation.rs", "system/Encounter.rs"),
    ("insurer-1", "system/Patient.read", "system/Patient.read"),  # v1 echoed
    ("insurer-1", "system/PaymentReconciliation.*", "system/PaymentReconciliation.crs"),
    ("insurer-1", "system/Encounter.read openid offline_access patient/*.rs",
     "system/Encounter.read"),
    ("hospital-1", "system/Observation.rs?category=laboratory",
     "system/Observation.rs?category=laboratory"),  # granular kept
    ("hospital-1", "system/Observation.write", "system/Observation.write"),
    ("insurer-1", "system/*.rs",
     "system/Encounter.rs system/Patient.rs system/Claim.rs system/ClaimResponse.rs"
     " system/ExplanationOfBenefit.rs system/Coverage.rs system/PaymentReconciliation.rs"
     " system/Organization.rs"),
])
def test_scope_mediation(client: FlaskClient, clients: SqliteStore, client_id: str, requested: str,
                         granted: str) -> None:
    response = _post(client, token_form(assertion(EC, client_id), requested))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["scope"] == granted
    assert [record["scope"] for _, record in _tokens(clients)] == [granted]


@pytest.mark.parametrize("requested", [
    None, "", "   ", "system/Observation.rs",  # insurer: no clinical types
    "patient/*.rs", "user/Encounter.rs", "openid fhirUser", "system/Encounter.sr",
    "system/Encounter.d", "system/AuditEvent.rs",
])
def test_nothing_grantable_is_invalid_scope(client: FlaskClient, clients: SqliteStore,
                                            requested: str | None) -> None:
    _rejected(_post(client, token_form(assertion(EC, "insurer-1"), requested)), "invalid_scope")
    assert _tokens(clients) == []


# -- audit hook ---------------------------------------------------------------------------------
def test_a_failed_audit_takes_the_token_back(client: FlaskClient, clients: SqliteStore,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> None:
        raise OSError("audit store full")

    monkeypatch.setattr(audit, "record_token_request", broken)
    _rejected(_post(client, token_form(assertion(EC, "insurer-1"))), "temporarily_unavailable", 503)
    assert _tokens(clients) == []


# -- behind a proxy -----------------------------------------------------------------------------
def test_public_base_url_sets_the_audience(settings: Settings, clients: SqliteStore) -> None:
    app: Flask = create_app(replace(settings, base_url="https://fhir.example.org/fhir"), clients)
    proxied = app.test_client()
    _rejected(_post(proxied, token_form(assertion(EC, "insurer-1"))))  # aud http://localhost/...
    signed = assertion(EC, "insurer-1", aud="https://fhir.example.org/auth/token")
    assert _post(proxied, token_form(signed)).status_code == 200

