"""The audit trail (IHE BALP): one AuditEvent per FHIR interaction and per token request.

With ``FHIR_AUTH=on`` every request to a FHIR endpoint (the public CapabilityStatement excepted) is
audited, denials included (401, 403, the 404 of an instance outside the client's policy):

* **writes** (create, update, patch, delete, and every write of a batch or transaction entry): one
  AuditEvent per version written, put in the data's own store transaction
  (:mod:`fhir_server.auth.audit_store`): no data without its audit, no audit of data not written;
* **everything else** (reads, searches, history, operations, Bundles, writes that wrote nothing,
  and every failure): after the response is built, before it is sent, :func:`after_request`
  queues a job for the per-process background writer (:mod:`fhir_server.auth.audit_writer`), which
  writes the events in one transaction every ``FHIR_AUDIT_INTERVAL_MS`` (1 s by default). **A
  read audit can be lost if the process is killed within that window**; write audits cannot. If
  the backlog is full the request gets 503.

Events follow BALP (:mod:`fhir_server.auth.audit_events`): one per Patient the response concerns
(the Patients of every resource returned, and the Patient named in the URL), the client by its
client_id, its organisation, its network address and the SHA-256 of its token (never the token),
the request id (``X-Request-Id``) for correlation, the raw query base64-encoded for searches.

Token requests (``POST /auth/token``, :func:`record_token_request`): a success is written at once
(if it cannot be, the endpoint takes the token back and answers 503); a failure is queued.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Flask, Request, Response, current_app, g, request
from flask.ctx import _AppCtxGlobals

from fhir_server.auth import grants
from fhir_server.auth.audit_events import (
    WRITE_INTERACTIONS,
    AuditRecord,
    Caller,
    Rest,
    Server,
    patients_of,
    rest_records,
    token_record,
)
from fhir_server.auth.audit_store import AuditedStore, Written, refuse_audit_write
from fhir_server.auth.audit_writer import write, writer
from fhir_server.config import Settings
from fhir_server.errors import ServiceUnavailable, outcome_json
from fhir_server.fhir import jsonio
from fhir_server.fhir.instants import now_us
from fhir_server.interactions.context import Services
from fhir_server.store import Store

log = logging.getLogger("fhir_server.audit")

PUBLIC_ENDPOINTS = frozenset({"fhir.metadata"})  # the same as api/access.py: not audited
_SEARCHES = frozenset({"search-type", "search-system", "search-compartment"})
_WRITES = frozenset({"create", "update", "patch", "delete"})
_UNAUDITED_KEY = "fhir_append_only"


@dataclass(frozen=True, slots=True)
class Route:
    interaction: str  # restful-interaction code, or "operation"
    operation: str | None  # "Patient/$everything"


class RequestAudit:
    """What the audit knows of the request in progress (``flask.g.audit``), worked out only when
    needed (most of a read's audit is built later, by the background writer).

    It holds what it needs of the request's services (settings, grant, the raw store) and the
    request id, not ``flask.g``, which holds it: that back reference would make every request a
    reference cycle, freed only by the garbage collector (and promoted to older generations when a
    collection catches a request in flight, which then brings on full collections of the whole
    heap). The audited store finds it through ``g`` when a transaction writes."""

    __slots__ = ("_caller", "_route", "_routed", "grant", "raw", "req", "request_id", "settings",
                 "written")

    def __init__(self, svc: Services, req: Request | None = None,
                 globals_: _AppCtxGlobals | None = None) -> None:
        self.settings = svc.settings
        self.grant = svc.access.grant
        self.raw = _raw(svc)
        self.req = _current() if req is None else req
        found = (g if globals_ is None else globals_).get("request_id")
        self.request_id: str | None = found if isinstance(found, str) else None
        self.written = 0  # versions written (and audited) in committed transactions
        self._route: Route | None = None
        self._routed = False
        self._caller: Caller | None = None

    @property
    def route(self) -> Route | None:
        if not self._routed:
            self._route, self._routed = route(self.req), True
        return self._route

    @property
    def caller(self) -> Caller:
        if self._caller is None:
            grant = self.grant
            address = self.req.remote_addr
            self._caller = Caller(address) if grant is None else _caller(
                address, grant.client_id, grant.organization, grant.role, grant.token_hash)
        return self._caller

    @property
    def server(self) -> Server:
        return _server(self.settings, self.req)

    def write_events(self, written: list[Written]) -> list[AuditRecord]:
        """The audit records of the versions one transaction wrote (called inside it)."""
        ts = now_us()
        out = []
        caller, server, request_id = self.caller, self.server, self.request_id
        for w in written:
            interaction = WRITE_INTERACTIONS.get(w.method, "update")
            action = "C" if w.created and w.body is not None else None
            event = Rest(interaction, ts, 200, caller, server, request_id,
                         (f"{w.type}/{w.id}/_history/{w.version}",), action=action)
            out += rest_records(event, _patients(w.body))
        return out

    def committed(self, count: int) -> None:
        self.written += count


# -- request hooks --------------------------------------------------------------------------------
def audited(svc: Services) -> Services:
    """``svc`` (a client's view of the services, made once per token and shared by its requests)
    with its store audited: the writes of a transaction are audited in it, as the request in
    progress describes them (:func:`begin` put its :class:`RequestAudit` in ``flask.g``)."""
    svc.store = AuditedStore(svc.store, _raw(svc), _write_events, _committed)
    return svc


def begin(svc: Services, req: Request | None = None,
          globals_: _AppCtxGlobals | None = None) -> RequestAudit:
    """Start the audit of an authenticated request (``svc``: its :func:`audited` services);
    refuses a write of an AuditEvent before anything else is done. ``req`` and ``globals_``: the
    request and ``flask.g`` objects, if the caller has them (else read through the proxies)."""
    context = RequestAudit(svc, req, globals_)
    if globals_ is None:
        g.audit = context
    else:
        globals_.audit = context
    _refuse_audit_write_route(context)
    return context


def _write_events(written: list[Written]) -> list[AuditRecord]:
    """The audit records of one transaction's writes, for the request in progress."""
    context: RequestAudit = g.audit
    return context.write_events(written)


def _committed(count: int) -> None:
    context: RequestAudit = g.audit
    context.committed(count)


def unaudited(svc: Services) -> Services:
    """``FHIR_AUTH=off``: no audit, but the audit trail stays append-only (one view per app)."""
    _refuse_audit_write_route(None)
    view: Services | None = current_app.extensions.get(_UNAUDITED_KEY)
    if view is None:
        raw = svc.raw_store or svc.store
        view = svc.view(AuditedStore(raw, raw))
        current_app.extensions[_UNAUDITED_KEY] = view
    return view


def _refuse_audit_write_route(context: RequestAudit | None) -> None:
    req = context.req if context is not None else request
    if not req.view_args or req.view_args.get("rtype") != "AuditEvent":
        return
    found = context.route if context is not None else route(_current())
    if found is not None and found.interaction in _WRITES:
        refuse_audit_write("AuditEvent")


def after_request(response: Response) -> Response:
    """Queue the request's audit (``after_request`` of the app; only FHIR endpoints with auth on).
    Answers 503 instead of the response when the audit cannot be queued."""
    req = _current()
    if req.blueprint != "fhir" or req.endpoint in PUBLIC_ENDPOINTS:
        return response
    context: RequestAudit | None = g.get("audit")
    if context is None:  # refused before authentication completed (no token, bad token, 406...)
        svc: Services = current_app.extensions["fhir"]
        if not svc.settings.auth:
            return response
        context = RequestAudit(svc, req)
    try:
        if _queue(response, req, context):
            return response
        log.error("audit backlog full: request %s refused", g.get("request_id", "-"))
    except Exception:
        log.exception("audit of request %s failed", g.get("request_id", "-"))
    error = ServiceUnavailable("The audit trail cannot be written; try again shortly")
    return Response(jsonio.dumps(outcome_json(error.issues)), 503, {"Retry-After": "1"},
                    content_type="application/fhir+json; charset=utf-8")


def _queue(response: Response, req: Request, context: RequestAudit) -> bool:
    found = context.route
    status = response.status_code
    if found is None:
        return True  # not a FHIR interaction route (nothing to audit)
    if found.interaction in _WRITES and status < 400 and context.written:
        return True  # audited in the data's transaction
    interaction = found.interaction
    args = req.view_args or {}
    rid = args.get("rid")
    rtype = args.get("rtype")
    if rid and not rtype:  # an instance operation with a literal type (/Patient/<rid>/$everything)
        rtype = req.path.split("/")[2]
    # a Patient's own read (the commonest) names its Patient in the URL: its body is not needed
    body = b"" if response.is_streamed or (status < 400 and _own_record(interaction, rtype)) \
        else response.get_data()
    if interaction == "transaction" and b'"batch-response"' in body[:200]:
        interaction = "batch"
    what: str | None = None
    if rtype and rid:
        vid = args.get("vid")
        what = f"{rtype}/{rid}/_history/{vid}" if vid else f"{rtype}/{rid}"
    named = _named_patient(rtype, rid, args)
    query = _raw_query(req) if interaction in _SEARCHES or req.query_string or \
        interaction == "operation" else None
    return writer().submit(context.raw, _request_records, interaction, now_us(), status,
                           context.caller, context.server, context.request_id, what, query,
                           found.operation, body, named)


def _request_records(interaction: str, recorded: int, status: int, caller: Caller, server: Server,
                     request_id: str | None, what: str | None, query: bytes | None,
                     operation: str | None, body: bytes, named: str | None
                     ) -> list[AuditRecord]:
    """A request's audit records, built in the writer thread from what :func:`_queue` queued
    (flat: one object per waiting request for the garbage collector to track, where a partial,
    its arguments and a namedtuple were four, promoted to older generations as they waited)."""
    patients: list[str] = [named] if named else []
    outcome_desc = None
    if status >= 400:
        outcome_desc = _diagnostics(body)
    elif body:  # the Patients of what was returned (a Patient's own read comes without its body)
        patients += _patients(body)
    event = Rest(interaction, recorded, status, caller, server, request_id,
                 (what,) if what else (), query, outcome_desc, operation)
    return rest_records(event, patients, now_us())


def _own_record(interaction: str, rtype: str | None) -> bool:
    """A read of a Patient: the Patient it concerns is the one the URL names (no body needed)."""
    return rtype == "Patient" and interaction in ("read", "vread")


def _patients(body: bytes | None) -> list[str]:
    if not body:
        return []
    try:
        return patients_of(jsonio.loads_trusted(body))
    except orjson.JSONDecodeError:
        return []


def _diagnostics(body: bytes) -> str | None:
    try:
        doc = jsonio.loads_trusted(body)
    except orjson.JSONDecodeError:
        return None
    issues = doc.get("issue") if isinstance(doc, dict) else None
    if isinstance(issues, list):
        texts = [i.get("diagnostics") for i in issues if isinstance(i, dict)]
        found = "; ".join(t for t in texts if isinstance(t, str))
        return found[:2000] or None
    return None


def _named_patient(rtype: str | None, rid: str | None, args: dict[str, Any]) -> str | None:
    """The Patient the URL names: ``Patient/x``, ``Patient/x/...`` and compartment searches."""
    if rtype == "Patient" and rid:
        return f"Patient/{rid}"
    if args.get("ctype") == "Patient" and args.get("cid"):
        return f"Patient/{args['cid']}"
    return None


def _raw_query(req: Request) -> bytes:
    """The request as BALP records a query: ``METHOD path?query`` (and a form body after a blank
    line, re-encoded from the parsed form, since the raw body has been consumed)."""
    line = f"{req.method} {req.path}".encode()
    if req.query_string:
        line += b"?" + req.query_string
    if req.method == "POST" and req.mimetype == "application/x-www-form-urlencoded":
        line += b"\n\n" + urlencode(list(req.form.items(multi=True))).encode()
    return line


def route(req: Request) -> Route | None:
    """The FHIR interaction of the matched route, from the ``fhir`` blueprint's record."""
    rule = req.url_rule
    if rule is None:
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    table: dict[tuple[str, str], Route] | None = app.extensions.get("fhir_audit_routes")
    if table is None:
        table = _routes(app)
        app.extensions["fhir_audit_routes"] = table
    method = "GET" if req.method == "HEAD" else req.method  # HEAD: a GET without body
    return table.get((rule.rule, method))


def _routes(app: Flask) -> dict[tuple[str, str], Route]:
    blueprint = app.blueprints["fhir"]
    prefix = (blueprint.url_prefix or "").rstrip("/")
    table: dict[tuple[str, str], Route] = {}
    for routed in getattr(blueprint, "routed", ()):
        operation = routed.interaction if routed.level == "operation" else None
        interaction = "operation" if operation else routed.interaction
        key = (prefix + "/" + routed.rule.lstrip("/"), routed.method)
        table.setdefault(key, Route(interaction, operation))  # POST /: transaction before batch
    return table


def _server(settings: Settings, req: Request) -> Server:
    base = settings.base_url
    if base is None:  # as http.base_url() has it, without building request.host_url each time
        environ = req.environ
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        base = f"{req.scheme}://{host}/fhir"
    return _server_of(base, settings.canonical_base)


@lru_cache(maxsize=64)
def _server_of(base: str, canonical: str) -> Server:
    return Server(base, canonical)


@lru_cache(maxsize=4096)
def _caller(address: str | None, client_id: str, organization: str, role: str,
            token_hash: str) -> Caller:
    """One Caller per client, address and token: equal events share their cached parts."""
    return Caller(address, client_id, organization, role, token_hash)


def _current() -> Request:
    """The request itself rather than the ``flask.request`` proxy, which looks the context up again
    for every attribute read (the audit reads a dozen per request: that was half its cost)."""
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    return req


def _raw(svc: Services) -> Store:
    return svc.raw_store or svc.store


# -- token requests ------------------------------------------------------------------------------
def record_token_request(svc: Services, client_id: str | None, outcome: str, reason: str,
                         remote_addr: str | None, request_id: str | None) -> None:
    """Record one token request (called by ``POST /auth/token`` for every request).

    ``client_id``: the client the request claimed to be (the assertion's ``iss``), None if it
    named none; ``outcome``: ``"success"`` or the OAuth error code returned (``invalid_client``,
    ``invalid_scope``, ``invalid_request``, ``unsupported_grant_type``...); ``reason``: which check
    failed, in a few words ("" on success; never the assertion or token). If this raises, a token
    just issued is revoked and the client gets 503 ``temporarily_unavailable``.
    """
    if not svc.settings.auth:
        return
    store = _raw(svc)
    digest: str | None = g.get("oauth_token_hash") if outcome == "success" else None
    record = store.registry_get(grants.TOKEN_KIND, digest) if digest else None
    organization = role = None
    if record is not None:
        organization, role = record.get("organization"), record.get("role")
    elif client_id:
        from fhir_server.auth.clients import ClientRegistry

        client = ClientRegistry(store).get(client_id)
        if client is not None:
            organization, role = client.organization, client.role
    scope = record.get("scope") if record is not None else request.form.get("scope")
    caller = Caller(remote_addr, client_id, organization, role, digest)
    event = token_record(now_us(), caller, _server(svc.settings, _current()), request_id, outcome, reason,
                         scope if isinstance(scope, str) else None)
    if outcome == "success":  # no token without its audit
        write(store, [event._replace(ts=now_us())], exclusive=False)
    elif not writer().submit(store, lambda: [event._replace(ts=now_us())]):
        raise ServiceUnavailable("audit backlog full")


def flush(timeout: float = 10.0) -> bool:
    """Wait until the queued audits of this process are written (tests, shutdown)."""
    return writer().flush(timeout)


