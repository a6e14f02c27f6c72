"""The client side of SMART Backend Services, for the CLI and local development: key pairs, signed
client assertions, and asking a running server for a token.

Key ids are RFC 7638 thumbprints, so a PEM private key (which carries no kid) finds its public key
in the JWKS written beside it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from fhir_server.auth.assertions import ASSERTION_TYPE
from fhir_server.auth.discovery import TOKEN_PATH, server_root

PrivateKey = RSAKey | ECKey


class KeyFileError(ValueError):
    """A key file cannot be used (the CLI prints the message)."""


def generate(alg: str = "ES384") -> PrivateKey:
    """A new private key for ``alg`` (RS384: RSA 3072; ES384: EC P-384), kid = its thumbprint."""
    key: PrivateKey
    if alg == "RS384":
        key = RSAKey.generate_key(3072)
    elif alg == "ES384":
        key = ECKey.generate_key("P-384")
    else:
        raise KeyFileError(f"unsupported algorithm {alg!r}: RS384 or ES384")
    key.ensure_kid()
    return key


def algorithm_for(key: PrivateKey) -> str:
    if isinstance(key, RSAKey):
        return "RS384"
    if key.curve_name == "P-384":
        return "ES384"
    raise KeyFileError(f"an EC key on {key.curve_name} cannot sign ES384 (P-384 is required)")


def public_jwks(key: PrivateKey) -> dict[str, Any]:
    public = key.as_dict(private=False)
    public.update({"alg": algorithm_for(key), "use": "sig"})
    return {"keys": [public]}


def private_pem(key: PrivateKey) -> bytes:
    return key.as_pem(private=True)


def _pem_type(data: bytes) -> Literal["RSA", "EC"]:
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"not an unencrypted PEM private key: {exc}") from None
    if isinstance(loaded, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(loaded, ec.EllipticCurvePrivateKey):
        return "EC"
    raise KeyFileError("the PEM key is neither RSA nor EC")


def load_private_key(path: str | os.PathLike[str], kid: str | None = None) -> PrivateKey:
    """A private key from a PEM file, a JWK, or a JWKS holding exactly one private key."""
    data = Path(path).read_bytes()
    try:
        if data.lstrip().startswith(b"{"):
            doc = json.loads(data)
            if isinstance(doc, dict) and isinstance(doc.get("keys"), list):
                private = [k for k in doc["keys"] if isinstance(k, dict) and "d" in k]
                if len(private) != 1:
                    raise KeyFileError(f"{path}: a JWKS must hold exactly one private key")
                doc = private[0]
            key = import_key(doc)
        else:
            key = import_key(data, _pem_type(data))
    except (JoseError, ValueError, TypeError) as exc:
        if isinstance(exc, KeyFileError):
            raise
        raise KeyFileError(f"{path} is not a PEM or JWK private key: {exc}") from None
    if not isinstance(key, RSAKey | ECKey) or not key.is_private:
        raise KeyFileError(f"{path} is not an RSA or EC private key")
    if kid:
        key = import_key({**key.as_dict(private=True), "kid": kid})
        assert isinstance(key, RSAKey | ECKey)
    key.ensure_kid()
    algorithm_for(key)
    return key


def sign_assertion(key: PrivateKey, client_id: str, token_url: str, lifetime_s: int = 240) -> str:
    """A client assertion for ``client_id`` at ``token_url`` (a fresh jti, exp ``lifetime_s`` on)."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now,
              "exp": now + lifetime_s, "jti": uuid.uuid4().hex}
    alg = algorithm_for(key)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def _http(url: str, data: bytes | None = None, timeout: float = 10) -> tuple[int, Any]:
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers,
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {"error": f"HTTP {exc.code}"}


def token_endpoint(url: str) -> str:
    """The token endpoint of the server at ``url`` (its root or FHIR base), from SMART discovery."""
    if not url.startswith(("http://", "https://")):
        raise KeyFileError(f"--url {url!r} must be an http:// or https:// URL")
    root = server_root(url)
    try:
        status, config = _http(f"{root}/fhir/.well-known/smart-configuration")
        if status == 200 and isinstance(config.get("token_endpoint"), str):
            return str(config["token_endpoint"])
    except (OSError, ValueError):
        pass
    return root + TOKEN_PATH


def request_token(url: str, client_id: str, key: PrivateKey, scope: str) -> dict[str, Any]:
    """POST a client_credentials request; the token response, or an OAuth error document."""
    endpoint = token_endpoint(url)
    form = urlencode({"grant_type": "client_credentials", "scope": scope,
                      "client_assertion_type": ASSERTION_TYPE,
                      "client_assertion": sign_assertion(key, client_id, endpoint)}).encode()
    try:
        status, body = _http(endpoint, form)
    except OSError as exc:
        return {"error": "unreachable", "error_description": f"{endpoint}: {exc}"}
    if not isinstance(body, dict):
        body = {"error": f"HTTP {status}"}
    return body
