"""Who is calling: the bearer token of every FHIR request becomes the request's :class:`Access`.

Runs before each view of the ``fhir`` blueprint (after content negotiation). With ``FHIR_AUTH=off``
nothing is checked. The CapabilityStatement stays public (SMART clients read it before they have a
token). A token's services (its compiled :class:`Access`, the store guarded by it and audited) are
made once and kept per app (the grant is a snapshot taken when the token was issued, so the cache
never outlives what it describes; revocation is checked by ``grants.authenticate`` on every
request): a request then only adds its own :class:`~fhir_server.auth.audit.RequestAudit`.
"""

from __future__ import annotations

import threading

from flask import Flask, Request, current_app, g, request
from flask.ctx import _AppCtxGlobals

from fhir_server.auth import audit, grants, rate_limit
from fhir_server.auth.policy import Access
from fhir_server.interactions.context import Services

PUBLIC_ENDPOINTS = frozenset({"fhir.metadata"})
_CACHE_SIZE = 1024
_VIEWS = "fhir_token_services"
_lock = threading.Lock()


def _services(app: Flask, svc: Services, grant: grants.Grant) -> Services:
    """The audited services of ``grant``'s token in ``app`` (per token hash; read without a lock,
    a plain dict lookup; the oldest entry goes first when full). Shared by the token's concurrent
    requests: nothing in them is per request."""
    views: dict[str, Services] | None = app.extensions.get(_VIEWS)
    if views is None:
        views = app.extensions.setdefault(_VIEWS, {})
    view = views.get(grant.token_hash)
    if view is not None and (view.access.grant is grant or view.access.grant == grant):
        return view
    view = audit.audited(svc.for_access(Access(grant, svc.settings.canonical_base)))
    with _lock:
        while len(views) >= _CACHE_SIZE:
            del views[next(iter(views))]
        views[grant.token_hash] = view
    return view


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
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    svc: Services = app.extensions["fhir"]
    settings = svc.settings
    if not settings.auth:
        glob.fhir_services = audit.unaudited(svc)
        return
    raw = svc.raw_store
    assert raw is not None
    grant = grants.authenticate(raw, settings, req.environ.get("HTTP_AUTHORIZATION"))
    view = _services(app, svc, grant)
    audit.begin(view, req, glob)
    glob.fhir_services = view
    rate_limit.check(raw, settings.rate_limit_window_s, grant.client_id)
