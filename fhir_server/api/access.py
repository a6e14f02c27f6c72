"""Who is calling: the bearer token of every FHIR request becomes the request's :class:`Access`.

Runs before each view of the ``fhir`` blueprint (after content negotiation). With ``FHIR_AUTH=off``
nothing is checked. The CapabilityStatement stays public (SMART clients read it before they have a
token). The compiled :class:`Access` of a token is cached per process (its grant is a snapshot taken
when the token was issued, so the cache never outlives what it describes; revocation is checked by
``grants.authenticate`` on every request).
"""

from __future__ import annotations

import threading

from flask import Request, current_app, g, request
from flask.ctx import _AppCtxGlobals

from fhir_server.auth import audit, grants, rate_limit
from fhir_server.auth.policy import Access
from fhir_server.interactions.context import Services

PUBLIC_ENDPOINTS = frozenset({"fhir.metadata"})
_CACHE_SIZE = 1024
_cache: dict[str, Access] = {}
_lock = threading.Lock()


def _access(grant: grants.Grant, canonical: str) -> Access:
    """The compiled :class:`Access` of ``grant`` (per token hash; read without a lock, a plain
    dict lookup; the oldest entry goes first when full)."""
    access = _cache.get(grant.token_hash)
    if access is not None and (access.grant is grant or access.grant == grant):
        return access
    access = Access(grant, canonical)
    with _lock:
        while len(_cache) >= _CACHE_SIZE:
            del _cache[next(iter(_cache))]
        _cache[grant.token_hash] = access
    return access


def authenticate() -> None:
    """``before_request``: 401 without a valid token; else the request's guarded services, their
    writes audited (auth/audit.py; with auth off, only kept from writing AuditEvents); 429 when
    the client is over its rate limit (auth/rate_limit.py; checked once the request's audit knows
    the client, so the refusal is audited as the client's). The request and ``g`` objects are
    read once (each read through Flask's proxies looks the context up again)."""
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    if req.endpoint in PUBLIC_ENDPOINTS:
        return
    glob: _AppCtxGlobals = g._get_current_object()
    svc: Services = current_app.extensions["fhir"]
    settings = svc.settings
    if not settings.auth:
        glob.fhir_services = audit.unaudited(svc)
        return
    raw = svc.raw_store
    assert raw is not None
    grant = grants.authenticate(raw, settings, req.environ.get("HTTP_AUTHORIZATION"))
    view = svc.for_access(_access(grant, settings.canonical_base))
    glob.fhir_services = audit.audited(view, req, glob)
    rate_limit.check(raw, settings.rate_limit_window_s, grant.client_id)
