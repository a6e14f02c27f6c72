"""Test helpers for OAuth: real keys, real signed client assertions (joserfc), registrations and
tokens. Independent of the server's own signing code (``fhir_server.auth.keys``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhir_server.auth.clients import Client, ClientRegistry, new_client
from fhir_server.store import Store

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_URL = "http://localhost/auth/token"  # what Flask's test client is served as

Key = RSAKey | ECKey


def rsa_key(kid: str = "rsa-1") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def ec_key(kid: str = "ec-1", crv: str = "P-384") -> ECKey:
    return ECKey.generate_key(crv, parameters={"kid": kid})


def alg_of(key: Key) -> str:
    return "RS384" if isinstance(key, RSAKey) else "ES384"


def jwks(*keys: Key) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def claims_for(client_id: str, aud: str = TOKEN_URL, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 240,
                              "iat": now, "jti": uuid.uuid4().hex}
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def assertion(key: Key, client_id: str, *, aud: str = TOKEN_URL, alg: str | None = None,
              header: dict[str, Any] | None = None, **claims: Any) -> str:
    """A signed client assertion. ``header`` entries override (None removes); claims likewise."""
    alg = alg or alg_of(key)
    head: dict[str, Any] = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    for name, value in (header or {}).items():
        if value is None:
            head.pop(name, None)
        else:
            head[name] = value
    return jwt.encode(head, claims_for(client_id, aud, **claims), key, algorithms=[alg],
                      default_type=None)


def _part(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def unsigned_assertion(client_id: str, kid: str, **claims: Any) -> str:
    """``alg: none``: a JWT with no signature at all."""
    return f"{_part({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_part(claims_for(client_id, **claims))}."


def hmac_assertion(public_key: Key, client_id: str) -> str:
    """HS256 signed with the client's *public* key (PEM) as the secret: the key-confusion attack
    (built by hand: joserfc itself refuses to use a public key as an HMAC secret)."""
    signing_input = (f"{_part({'alg': 'HS256', 'kid': public_key.kid, 'typ': 'JWT'})}."
                     f"{_part(claims_for(client_id))}")
    mac = hmac.new(public_key.as_pem(private=False), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"


def register(store: Store, client_id: str, role: str, *keys: Key, **kwargs: Any) -> Client:
    organization = kwargs.pop("organization", f"Organization/{client_id}-org")
    if "jwks_url" not in kwargs:
        kwargs["jwks"] = jwks(*keys)
    return ClientRegistry(store).add(new_client(client_id, role, organization, **kwargs))


def token_form(signed: str, scope: str | None = "system/*.rs", **extra: str) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed}
    if scope is not None:
        form["scope"] = scope
    form.update(extra)
    return form


def get_token(client: FlaskClient, key: Key, client_id: str, scope: str = "system/*.rs") -> str:
    response = client.post("/auth/token", data=token_form(assertion(key, client_id), scope))
    assert response.status_code == 200, response.get_json()
    token: str = response.get_json()["access_token"]
    return token
