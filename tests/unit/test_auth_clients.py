"""Client registrations: role presets, input validation, and the registry over a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_server.auth.clients import Client, ClientError, ClientRegistry, check_policy, new_client
from fhir_server.auth.roles import ROLES
from fhir_server.auth.scopes import parse_scope
from fhir_server.store.sqlite import SqliteStore
from tests.oauth import ec_key, jwks, rsa_key

EC = ec_key("ec-1")
RSA = rsa_key("rsa-1")


@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_presets_are_valid(role: str) -> None:
    preset = ROLES[role]
    for text in preset.ceiling.split():
        scope = parse_scope(text)
        assert scope is not None and scope.context == "system" and str(scope) == text, text
    for criteria in preset.policy:
        assert check_policy(criteria) == criteria
    client = new_client("c1", role, "Organization/o1", jwks=jwks(EC))
    assert client.scope == preset.ceiling
    assert client.policy == preset.policy
    assert client.status == "active" and client.algorithms == ("RS384", "ES384")


def test_presets_match_the_design() -> None:
    assert ROLES["insurer"].policy == ()
    assert ROLES["hospital"].policy == ("write:*?_tag={record-owner}",)
    assert "system/ServiceRequest.rus" in ROLES["referral"].ceiling.split()  # r, u, s in cruds order
    assert not any("Observation" in s or "Condition" in s for s in ROLES["insurer"].ceiling.split())
    assert "system/PaymentReconciliation.crs" in ROLES["insurer"].ceiling.split()


def test_explicit_scope_and_policy_replace_the_preset() -> None:
    client = new_client("c1", "insurer", "Organization/o1", jwks=jwks(EC),
                        scope="system/Encounter.rs?class=AMB", policy=["Encounter?status=finished"])
    assert client.scope == "system/Encounter.rs?class=AMB"
    assert client.policy == ("Encounter?status=finished",)
    assert new_client("c1", "hospital", "Organization/o1", jwks=jwks(EC), policy=[]).policy == ()


def test_json_round_trip() -> None:
    client = new_client("c1", "referral", "Organization/o1", jwks=jwks(EC, RSA), rate_limit=600)
    assert Client.from_json(client.to_json()) == client


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"client_id": ""}, "client id"),
    ({"client_id": "has space"}, "client id"),
    ({"client_id": "x" * 129}, "client id"),
    ({"client_id": "-leading"}, "client id"),
    ({"role": "admin"}, "unknown role"),
    ({"organization": "Organization/"}, "Organization/<id>"),
    ({"organization": "Patient/1"}, "Organization/<id>"),
    ({"organization": "Organization/a b"}, "Organization/<id>"),
    ({"jwks": None}, "exactly one"),
    ({"jwks_url": "https://keys.example.org/jwks.json"}, "exactly one"),
    ({"jwks": {"keys": []}}, "non-empty"),
    ({"jwks": []}, "non-empty"),
    ({"jwks": {"keys": [{"kty": "EC"}]}}, "no kid"),
    ({"jwks": {"keys": ["x"]}}, "not a JSON object"),
    ({"jwks": jwks(ec_key("a", "P-256"))}, "no key usable"),
    ({"jwks": {"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}}, "secret key material"),
    ({"jwks": {"keys": [EC.as_dict(private=True)]}}, "private or secret key material"),
    ({"jwks": {"keys": [EC.as_dict(private=False), EC.as_dict(private=False)]}}, "another EC key"),
    ({"jwks": {"keys": [{"kty": "RSA", "kid": "r", "n": "!!", "e": "AQAB"}]}}, "cannot be read"),
    ({"jwks": {"keys": [dict(EC.as_dict(private=False), kid=f"k{n}") for n in range(40)]}},
     "at most 32"),
    ({"scope": ""}, "empty"),
    ({"scope": "system/Patient.sr"}, "not a SMART resource scope"),
    ({"scope": "user/Patient.rs"}, "system/ scopes only"),
    ({"policy": ["Patient"]}, "not of the form"),
    ({"policy": ["read:Patient?x=1"]}, "not of the form"),
    ({"policy": ["patient?x=1"]}, "not of the form"),
    ({"policy": ["compartment:Encounter?x=1"]}, "compartment:Patient"),
    ({"policy": ["Bogus?x=1"]}, "not an R4 resource type"),
    ({"rate_limit": -1}, "rate limit"),
])
def test_invalid_registrations(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"client_id": "c1", "role": "mch", "organization": "Organization/o1",
                               "jwks": jwks(EC)}
    args.update(kwargs)  # with jwks_url, both key sources are given: an error
    with pytest.raises(ClientError, match=message):
        new_client(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["http://keys.example.org/jwks", "https://", "ftp://x/y",
                                 "https://user:pw@keys.example.org/jwks",
                                 "https://keys.example.org/jwks#frag"])
def test_jwks_url_must_be_plain_https(url: str) -> None:
    with pytest.raises(ClientError, match="JWKS URL"):
        new_client("c1", "mch", "Organization/o1", jwks_url=url)


def test_registry(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.db")
    try:
        registry = ClientRegistry(store)
        assert registry.get("c1") is None
        assert registry.get("bad id") is None
        added = registry.add(new_client("c1", "mch", "Organization/o1", jwks=jwks(EC)))
        assert registry.get("c1") == added
        with pytest.raises(ClientError, match="registered already"):
            registry.add(new_client("c1", "insurer", "Organization/o2", jwks=jwks(EC)))
        registry.add(new_client("a0", "insurer", "Organization/o2",
                                jwks_url="https://keys.example.org/jwks.json"))
        assert [c.client_id for c in registry.list()] == ["a0", "c1"]
        assert registry.suspend("c1").status == "suspended"
        assert registry.get("c1").status == "suspended"  # type: ignore[union-attr]
        assert registry.activate("c1").active
        assert registry.remove("c1").client_id == "c1"
        assert registry.get("c1") is None
        assert [c.client_id for c in registry.list()] == ["a0"]
        with pytest.raises(ClientError, match="no client"):
            registry.suspend("c1")
    finally:
        store.close()


@pytest.mark.parametrize("rule", ["Patient?nosuch=1", "Encounter?subject:Nope.name=x",
                                  "write:*?_tag=a|b|c|d", "compartment:Patient?birthdate=notadate"])
def test_policy_queries_must_compile(rule: str) -> None:
    with pytest.raises(ClientError, match="policy"):
        check_policy(rule)


def test_every_role_preset_policy_compiles() -> None:
    for role in ROLES.values():
        for rule in role.policy:
            assert check_policy(rule) == rule
