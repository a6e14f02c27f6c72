"""Who is calling: the bearer token of every FHIR request becomes the request's :class:`Access`.

Runs before each view of the ``fhir`` blueprint (after content negotiation). With ``FHIR_AUTH=off``
nothing is checked. The CapabilityStatement stays public (SMART clients read it before they have a
token). The compiled :class:`Access` of a token is cached per process (its grant is a snapshot taken
when the token was issued, so the cache never outlives what it describes; revocation is checked by
``grants.authenticate`` on every request).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from flask import current_app, g, request

from fhir_server.auth import audit, grants, rate_limit
from fhir_server.auth.policy import Access
from fhir_server.interactions.context import Services

PUBLIC_ENDPOINTS = frozenset({"fhir.metadata"})
_CACHE_SIZE = 1024
_cache: OrderedDict[str, Access] = OrderedDict()
_lock = threading.Lock()


def _access(grant: grants.Grant, canonical: str) -> Access:
    with _lock:
        access = _cache.get(grant.token_hash)
        if access is not None and access.grant == grant:
            _cache.move_to_end(grant.token_hash)
            return access
    access = Access(grant, canonical)
    with _lock:
        _cache[grant.token_hash] = access
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return access


def authenticate() -> None:
    """``before_request``: 401 without a valid token; else the request's guarded services, their
    writes audited (auth/audit.py; with auth off, only kept from writing AuditEvents); 429 when
    the client is over its rate limit (auth/rate_limit.py; checked once the request's audit knows
    the client, so the refusal is audited as the client's)."""
    svc: Services = current_app.extensions["fhir"]
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    if not svc.settings.auth:
        g.fhir_services = audit.unaudited(svc)
        return
    assert svc.raw_store is not None
    grant = grants.authenticate(svc.raw_store, svc.settings, request.headers.get("Authorization"))
    g.fhir_services = audit.audited(svc.for_access(_access(grant, svc.settings.canonical_base)))
    rate_limit.check(svc.raw_store, svc.settings.rate_limit_window_s, grant.client_id)


