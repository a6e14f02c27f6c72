"""Verifying a SMART Backend Services client assertion (``private_key_jwt``, RFC 7523).

Every check of ../shared/SECURITY.md, in this order:

1. the compact JWS parses; header ``alg`` is RS384 or ES384 (an explicit list: ``none``, HS256
   and RS256 never reach a verifier), ``typ`` is ``JWT``, ``kid`` is present;
2. ``iss`` = ``sub`` = a registered, active client whose algorithms include ``alg``;
3. ``jku``, if present, equals the client's registered JWKS URL;
4. ``kid`` selects exactly one key of the client's JWKS whose ``kty`` (and curve) fits ``alg``
   (a JWKS URL is refetched once when the kid is unknown: key rotation);
5. the signature verifies with that key and that algorithm only;
6. ``aud`` is the token URL (an array must contain it); ``exp`` is present, not past and at most
   5 minutes ahead; ``nbf``/``iat``, if present, are not in the future (10 s of clock skew);
7. ``jti`` is present and was never seen for this ``iss`` while an assertion carrying it could
   still be valid: recorded with an atomic insert in the store's registry, shared by every worker.

A failure raises :class:`AssertionRejected`. Its ``reason`` names the failed check (for the audit
trail and logs); ``description`` is what the client sees: the same words for every check that
depends on the registration (unknown client, key, signature, replay...), so a caller without a
valid key learns nothing about which clients exist or how they are set up.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import import_key

from fhir_server.auth.clients import ALGORITHMS, Client, ClientRegistry, usable_for
from fhir_server.auth.jwks import JwksError
from fhir_server.store import Store

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME_S = 300
CLOCK_SKEW_S = 10
MAX_ASSERTION_BYTES = 16 * 1024
MAX_JTI_LENGTH = 256
JTI_KIND = "jti"
GENERIC = "client authentication failed"


class AssertionRejected(Exception):
    def __init__(self, reason: str, description: str = GENERIC, client_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.description = description
        self.client_id = client_id


def _b64json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, before any verification (only used to find the client and key)."""
    if len(assertion) > MAX_ASSERTION_BYTES:
        raise AssertionRejected("assertion too large", "the client assertion is too large")
    parts = assertion.split(".")
    if len(parts) != 3:
        raise AssertionRejected("not a compact JWS", "the client assertion is not a signed JWT")
    try:
        header, claims = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, UnicodeError):
        raise AssertionRejected("undecodable JWS", "the client assertion is not a signed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionRejected("JWS header or payload not an object",
                                "the client assertion is not a signed JWT")
    return header, claims


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AssertionRejected(f"{name} not a number", f"the {name} claim must be a number")
    return float(value)


JwksSource = Callable[[Client, bool], dict[str, Any]]


class AssertionVerifier:
    def __init__(self, store: Store, jwks_source: JwksSource,
                 now: Callable[[], float] = time.time) -> None:
        self.clients = ClientRegistry(store)
        self.store = store
        self.jwks_source = jwks_source  # (client, refresh) -> the client's public JWKS
        self.now = now

    def verify(self, assertion: str, audiences: Sequence[str]) -> Client:
        header, unverified = _unverified(assertion)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AssertionRejected(f"alg {alg!r} not allowed",
                                    "the assertion must be signed with RS384 or ES384")
        if header.get("typ") != "JWT":
            raise AssertionRejected(f"typ {header.get('typ')!r}", 'the assertion header typ must be JWT')
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AssertionRejected("kid missing", "the assertion header must carry a kid")
        iss, sub = unverified.get("iss"), unverified.get("sub")
        if not isinstance(iss, str) or not isinstance(sub, str) or iss != sub:
            raise AssertionRejected("iss and sub missing or different",
                                    "iss and sub must both be the client_id")
        client = self.clients.get(iss)
        if client is None:
            raise AssertionRejected("unknown client", client_id=iss)
        if not client.active:
            raise AssertionRejected("client suspended", client_id=iss)
        if alg not in client.algorithms:
            raise AssertionRejected(f"alg {alg} not registered for the client", client_id=iss)
        jku = header.get("jku")
        if jku is not None and (client.jwks_url is None or jku != client.jwks_url):
            raise AssertionRejected("jku differs from the registered JWKS URL", client_id=iss)
        key = self._key(client, kid, alg)
        try:
            token = jwt.decode(assertion, import_key(key), algorithms=[alg])
        except (JoseError, ValueError, TypeError) as exc:
            raise AssertionRejected(f"signature: {type(exc).__name__}", client_id=iss) from None
        self._check_claims(token.claims, client, audiences)
        return client

    def _key(self, client: Client, kid: str, alg: str) -> dict[str, Any]:
        for refresh in (False, True):
            if refresh and client.jwks_url is None:
                break
            try:
                jwks = self.jwks_source(client, refresh)
            except JwksError as exc:
                raise AssertionRejected(f"JWKS: {exc}", client_id=client.client_id) from None
            keys = [k for k in jwks.get("keys", ()) if isinstance(k, dict) and k.get("kid") == kid]
            fitting = [k for k in keys if alg in usable_for(k)]
            if len(fitting) == 1:
                return fitting[0]
            if len(fitting) > 1:
                raise AssertionRejected(f"kid {kid!r} selects several {alg} keys",
                                        client_id=client.client_id)
            if keys:  # the kid exists but its key type does not fit alg: no refetch helps
                raise AssertionRejected(f"kid {kid!r} is not a key for {alg}",
                                        client_id=client.client_id)
        raise AssertionRejected(f"no key with kid {kid!r}", client_id=client.client_id)

    def _check_claims(self, claims: dict[str, Any], client: Client, audiences: Sequence[str]) -> None:
        cid = client.client_id
        if claims.get("iss") != cid or claims.get("sub") != cid:
            raise AssertionRejected("iss or sub differ from the client", client_id=cid)
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a in audiences for a in auds):
            raise AssertionRejected(f"aud {aud!r} is not the token URL",
                                    f"aud must be the token endpoint URL {audiences[0]}", cid)
        now = self.now()
        exp = _number(claims, "exp")
        if exp is None:
            raise AssertionRejected("exp missing", "the assertion must carry exp", cid)
        if exp <= now - CLOCK_SKEW_S:
            raise AssertionRejected("exp past", "the assertion has expired", cid)
        if exp > now + MAX_ASSERTION_LIFETIME_S + CLOCK_SKEW_S:
            raise AssertionRejected("exp more than 5 minutes ahead",
                                    "exp must be at most 5 minutes ahead", cid)
        for name in ("nbf", "iat"):
            value = _number(claims, name)
            if value is not None and value > now + CLOCK_SKEW_S:
                raise AssertionRejected(f"{name} in the future", f"{name} is in the future", cid)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise AssertionRejected("jti missing", "the assertion must carry a jti (at most"
                                    f" {MAX_JTI_LENGTH} characters)", cid)
        # The key expires with the last moment this assertion could be accepted.
        if not self.store.registry_add(JTI_KIND, f"{cid} {jti}", {"exp": int(exp)},
                                       expires=int(exp) + CLOCK_SKEW_S + 1):
            raise AssertionRejected("jti replayed", client_id=cid)
