"""Client registrations: who may ask for tokens, with which keys, for which organisation.

Kept in the store's registry (kind ``client``, key the client_id), managed from the CLI. Every
input is validated here with a message naming what is wrong (:class:`ClientError`).
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fhir_server.auth.grants import TOKEN_KIND, forget
from fhir_server.auth.roles import ROLES
from fhir_server.auth.scopes import parse_scope
from fhir_server.fhir import structure
from fhir_server.store import Store

KIND = "client"
ALGORITHMS = ("RS384", "ES384")
#: joserfc key type and curve each algorithm needs
KEY_TYPES = {"RS384": ("RSA", None), "ES384": ("EC", "P-384")}
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~:\-]{0,127}")
_ORGANIZATION = re.compile(r"Organization/[A-Za-z0-9\-.]{1,64}")
_POLICY = re.compile(r"(?:(?P<prefix>write|compartment):)?(?P<type>\*|[A-Z][A-Za-z]+)\?(?P<query>.+)")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_JWKS_KEYS = 32


class ClientError(ValueError):
    """A registration input is invalid, or the client does not exist (the CLI prints it)."""


@dataclass(frozen=True)
class Client:
    client_id: str
    role: str
    organization: str  # "Organization/ID": the organisation this client acts for
    jwks: dict[str, Any] | None  # the public JWKS, or None when jwks_url is registered
    jwks_url: str | None
    scope: str  # the scope ceiling (space-separated SMART system scopes)
    policy: tuple[str, ...]  # data policy criteria (see roles.POLICY_SYNTAX)
    status: str = "active"  # "active" | "suspended"
    algorithms: tuple[str, ...] = ALGORITHMS
    rate_limit: int | None = None  # requests per minute, None: no limit
    created: int = 0  # unix seconds

    @property
    def active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["policy"], out["algorithms"] = list(self.policy), list(self.algorithms)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Client:
        return cls(
            client_id=data["client_id"], role=data["role"], organization=data["organization"],
            jwks=data.get("jwks"), jwks_url=data.get("jwks_url"), scope=data["scope"],
            policy=tuple(data.get("policy") or ()), status=data.get("status", "active"),
            algorithms=tuple(data.get("algorithms") or ALGORITHMS),
            rate_limit=data.get("rate_limit"), created=int(data.get("created", 0)))


# -- validation ---------------------------------------------------------------------------------
def check_client_id(client_id: str) -> str:
    if not _CLIENT_ID.fullmatch(client_id):
        raise ClientError(f"client id {client_id!r} is not valid: 1-128 characters of letters,"
                          " digits and . _ ~ : - (starting with a letter or digit)")
    return client_id


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ClientError(f"unknown role {role!r}: one of {', '.join(sorted(ROLES))}")
    return role


def check_organization(organization: str) -> str:
    if not _ORGANIZATION.fullmatch(organization):
        raise ClientError(f"organization {organization!r} must be a reference of the form"
                          " Organization/<id> (id: letters, digits, - and ., at most 64)")
    return organization


def check_jwks_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ClientError(f"JWKS URL {url!r} must be an absolute https:// URL")
    if parts.username or parts.password or parts.fragment:
        raise ClientError(f"JWKS URL {url!r} must not carry credentials or a fragment")
    return url


def check_jwks(jwks: Any) -> dict[str, Any]:
    """A public JWK Set with at least one key usable for RS384 or ES384, every key with a kid."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ClientError('the JWKS must be a JSON object with a non-empty "keys" array')
    keys = jwks["keys"]
    if len(keys) > MAX_JWKS_KEYS:
        raise ClientError(f"the JWKS has {len(keys)} keys; at most {MAX_JWKS_KEYS} are accepted")
    seen: set[tuple[str, str]] = set()
    for n, key in enumerate(keys):
        if not isinstance(key, dict):
            raise ClientError(f"JWKS keys[{n}] is not a JSON object")
        if _PRIVATE_MEMBERS & key.keys():
            raise ClientError(f"JWKS keys[{n}] holds private or secret key material: register"
                              " the public keys only")
        kid, kty = key.get("kid"), key.get("kty")
        if not isinstance(kid, str) or not kid:
            raise ClientError(f"JWKS keys[{n}] has no kid (assertions select their key by kid)")
        if (kid, str(kty)) in seen:
            raise ClientError(f"JWKS keys[{n}]: another {kty} key has the kid {kid!r}")
        seen.add((kid, str(kty)))
    try:
        KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ClientError(f"the JWKS cannot be read: {exc}") from None
    if not any(usable_for(key) for key in keys):
        raise ClientError("the JWKS has no key usable for RS384 (an RSA key) or ES384 (an EC P-384"
                          " key)")
    return {"keys": [dict(key) for key in keys]}


def usable_for(key: dict[str, Any]) -> list[str]:
    """The algorithms of :data:`ALGORITHMS` a JWK (as JSON) can verify."""
    out = []
    for alg, (kty, crv) in KEY_TYPES.items():
        if key.get("kty") == kty and (crv is None or key.get("crv") == crv) \
                and key.get("alg") in (None, alg) and key.get("use") in (None, "sig"):
            out.append(alg)
    return out


def check_scope(scope: str) -> str:
    items = scope.split()
    if not items:
        raise ClientError("the scope ceiling is empty")
    for item in items:
        parsed = parse_scope(item)
        if parsed is None:
            raise ClientError(f"{item!r} is not a SMART resource scope (context/Type.letters with"
                              " letters in cruds order, e.g. system/Encounter.rs)")
        if parsed.context != "system":
            raise ClientError(f"{item!r}: backend clients get system/ scopes only")
    return " ".join(items)


def check_policy(criteria: str) -> str:
    match = _POLICY.fullmatch(criteria)
    if match is None:
        raise ClientError(f"policy {criteria!r} is not of the form [write:|compartment:]Type?query"
                          " or *?query")
    rtype = match["type"]
    if match["prefix"] == "compartment" and rtype != "Patient":
        raise ClientError(f"policy {criteria!r}: only compartment:Patient?query is supported")
    if rtype != "*" and rtype not in structure.RESOURCE_TYPES:
        raise ClientError(f"policy {criteria!r}: {rtype!r} is not an R4 resource type")
    from fhir_server.auth.policy import check_rule  # the search core, loaded when needed

    try:
        check_rule(criteria)
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    return criteria


def check_rate_limit(rate_limit: int | None) -> int | None:
    if rate_limit is not None and (isinstance(rate_limit, bool) or not isinstance(rate_limit, int)
                                   or rate_limit <= 0):
        raise ClientError("the rate limit must be a positive whole number of requests per minute")
    return rate_limit


def new_client(client_id: str, role: str, organization: str, *, jwks: Any = None,
               jwks_url: str | None = None, scope: str | None = None,
               policy: list[str] | tuple[str, ...] | None = None,
               rate_limit: int | None = None) -> Client:
    """A validated registration; ``scope`` and ``policy`` default to the role's preset."""
    check_client_id(client_id)
    preset = ROLES[check_role(role)]
    check_organization(organization)
    if (jwks is None) == (jwks_url is None):
        raise ClientError("give exactly one of a JWKS (--jwks FILE) or a JWKS URL (--jwks-url)")
    check_rate_limit(rate_limit)
    return Client(
        client_id=client_id, role=role, organization=organization,
        jwks=check_jwks(jwks) if jwks is not None else None,
        jwks_url=check_jwks_url(jwks_url) if jwks_url is not None else None,
        scope=check_scope(scope if scope is not None else preset.ceiling),
        policy=tuple(check_policy(p) for p in policy) if policy is not None else preset.policy,
        rate_limit=rate_limit, created=int(time.time()))


# -- the registry -------------------------------------------------------------------------------
class ClientRegistry:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, client_id: str) -> Client | None:
        if not _CLIENT_ID.fullmatch(client_id):
            return None
        data = self.store.registry_get(KIND, client_id)
        return Client.from_json(data) if data is not None else None

    def require(self, client_id: str) -> Client:
        client = self.get(client_id)
        if client is None:
            raise ClientError(f"no client {client_id!r} is registered")
        return client

    def list(self) -> list[Client]:
        return [Client.from_json(data) for _, data in self.store.registry_list(KIND)]

    def add(self, client: Client) -> Client:
        if not self.store.registry_add(KIND, client.client_id, client.to_json()):
            raise ClientError(f"a client {client.client_id!r} is registered already (remove it"
                              " first to replace it)")
        return client

    def suspend(self, client_id: str) -> Client:
        """Suspend: no new tokens, and the tokens it holds stop working."""
        client = self._set_status(client_id, "suspended")
        revoke_client_tokens(self.store, client_id)
        return client

    def activate(self, client_id: str) -> Client:
        return self._set_status(client_id, "active")

    def set_rate_limit(self, client_id: str, rate_limit: int | None) -> Client:
        """Requests per minute (None: no limit); every process applies it within ~2 s
        (auth/rate_limit.py re-reads it as often as the grants' cache)."""
        client = replace(self.require(client_id), rate_limit=check_rate_limit(rate_limit))
        self.store.registry_put(KIND, client_id, client.to_json())
        return client

    def remove(self, client_id: str) -> Client:
        client = self.require(client_id)
        self.store.registry_delete(KIND, client_id)
        revoke_client_tokens(self.store, client_id)
        return client

    def _set_status(self, client_id: str, status: str) -> Client:
        client = replace(self.require(client_id), status=status)
        self.store.registry_put(KIND, client_id, client.to_json())
        return client


def revoke_client_tokens(store: Store, client_id: str) -> int:
    """Delete every access token issued to ``client_id``; returns how many."""
    count = 0
    for key, record in store.registry_list(TOKEN_KIND):
        if record.get("client_id") == client_id:
            forget(store, key)
            if store.registry_delete(TOKEN_KIND, key):
                count += 1
    return count
