"""Access tokens: issued, stored hashed, looked up for every request, revoked.

A token is 32 random bytes (``secrets.token_urlsafe(32)``). The store keeps only its SHA-256 (hex)
as the registry key (kind ``token``), with what the enforcement needs: client, role, organisation,
the granted scopes, the data policy and the expiry (a snapshot taken at issuance: a registration
changed later applies to the next token, at most 300 s on; suspending or removing a client deletes
its tokens). :func:`authenticate` turns an ``Authorization`` header into a :class:`Grant`.

Lookup cost: one registry get by primary key. A per-process cache keeps a token's grant for at
most :data:`CACHE_SECONDS` (2 s), so a busy client costs one lookup per 2 s. Revocation stays
prompt: revoking through this process (the revocation endpoint, :func:`revoke`) evicts the entry at
once, and a revocation by another process (another worker, the CLI suspending a client) is seen
here within 2 s, inside the 5 s the design allows. Unknown tokens are never cached.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from fhir_server.auth.scopes import Scope, format_scopes, parse_scopes
from fhir_server.config import Settings
from fhir_server.errors import Unauthorized
from fhir_server.store import Store

TOKEN_KIND = "token"
MAX_LIFETIME_S = 300
CACHE_SECONDS = 2.0
_CACHE_SIZE = 4096
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{20,128}")


@dataclass(frozen=True)
class Grant:
    """What an access token allows: the enforcement's input."""

    client_id: str
    role: str
    organization: str  # "Organization/ID"
    scopes: tuple[Scope, ...]
    policy: tuple[str, ...]
    token_hash: str  # sha256 hex of the access token (audit records this, never the token)
    expires: int  # unix seconds

    @property
    def scope(self) -> str:
        return format_scopes(self.scopes)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _grant(digest: str, record: dict[str, Any]) -> Grant:
    return Grant(client_id=record["client_id"], role=record["role"],
                 organization=record["organization"], scopes=tuple(parse_scopes(record["scope"])),
                 policy=tuple(record.get("policy") or ()), token_hash=digest,
                 expires=int(record["exp"]))


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[Grant, float]] = {}

    def get(self, digest: str, now: float) -> Grant | None:
        hit = self.entries.get(digest)
        if hit is None or now - hit[1] > CACHE_SECONDS:
            return None
        return hit[0]

    def put(self, grant: Grant, now: float) -> None:
        with self.lock:
            if len(self.entries) >= _CACHE_SIZE:
                self.entries = {k: v for k, v in self.entries.items() if now - v[1] <= CACHE_SECONDS}
                if len(self.entries) >= _CACHE_SIZE:
                    self.entries.clear()
            self.entries[grant.token_hash] = (grant, now)

    def evict(self, digest: str) -> None:
        with self.lock:
            self.entries.pop(digest, None)


_caches: weakref.WeakKeyDictionary[Any, _Cache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


_last: tuple[weakref.ref[Any], _Cache] | None = None  # the store asked last, and its cache


def _cache(store: Store) -> _Cache:
    global _last
    last = _last
    if last is not None and last[0]() is store:  # a process has one store: no weak-dict lookup
        return last[1]
    cache = _caches.get(store)
    if cache is None:
        with _caches_lock:
            cache = _caches.setdefault(store, _Cache())
    _last = (weakref.ref(store), cache)
    return cache


def issue(store: Store, client_id: str, role: str, organization: str, scopes: list[Scope],
          policy: tuple[str, ...], lifetime_s: int) -> tuple[str, Grant]:
    """Create and store a token; returns the token (shown once, never stored) and its grant."""
    token = secrets.token_urlsafe(32)
    digest = token_hash(token)
    now = int(time.time())
    exp = now + max(1, min(lifetime_s, MAX_LIFETIME_S))
    record = {"client_id": client_id, "role": role, "organization": organization,
              "scope": format_scopes(scopes), "policy": list(policy), "iat": now, "exp": exp}
    store.registry_put(TOKEN_KIND, digest, record, expires=exp)
    return token, _grant(digest, record)


def lookup(store: Store, token: str) -> Grant | None:
    """The grant of an active token (straight from the store, no cache), or None."""
    if not _TOKEN.fullmatch(token):
        return None
    digest = token_hash(token)
    record = store.registry_get(TOKEN_KIND, digest)
    if record is None or int(record["exp"]) <= time.time():
        return None
    return _grant(digest, record)


def revoke(store: Store, token: str) -> bool:
    """Delete the token; this process forgets it at once (others within :data:`CACHE_SECONDS`)."""
    if not _TOKEN.fullmatch(token):
        return False
    digest = token_hash(token)
    _cache(store).evict(digest)
    return store.registry_delete(TOKEN_KIND, digest)


def forget(store: Store, digest: str) -> None:
    """Drop a token hash from this process's cache (after deleting it from the store)."""
    _cache(store).evict(digest)


def authenticate(store: Store, settings: Settings, authorization_header: str | None) -> Grant:
    """The grant of the bearer token in ``authorization_header``.

    Raises :class:`~fhir_server.errors.Unauthorized` (401, ``WWW-Authenticate: Bearer
    error="invalid_token"``) when there is no token or it is unknown, expired or revoked.
    """
    if not authorization_header:
        raise Unauthorized("This server requires an OAuth 2.0 bearer token (SMART Backend"
                           " Services): see /fhir/.well-known/smart-configuration")
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _TOKEN.fullmatch(token):
        raise Unauthorized("The Authorization header must be 'Bearer <access token>'")
    digest = token_hash(token)
    cache = _cache(store)
    now = time.time()
    grant = cache.get(digest, time.monotonic())
    if grant is None:
        record = store.registry_get(TOKEN_KIND, digest)
        if record is None:
            raise Unauthorized("The access token is invalid, expired or revoked")
        grant = _grant(digest, record)
        cache.put(grant, time.monotonic())
    if grant.expires <= now:
        cache.evict(digest)
        raise Unauthorized("The access token is invalid, expired or revoked")
    return grant
