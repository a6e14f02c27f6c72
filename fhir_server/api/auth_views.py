"""OAuth endpoints (SMART Backend Services) and SMART discovery.

``POST /auth/token``, ``POST /auth/introspect``, ``POST /auth/revoke`` answer in OAuth JSON
(RFC 6749 section 5.2), never OperationOutcomes; ``GET /fhir/.well-known/smart-configuration`` is
always JSON. They work whether or not the FHIR endpoints enforce tokens (``FHIR_AUTH``).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from authlib.oauth2.rfc6749 import OAuth2Error  # type: ignore[import-untyped]
from flask import Blueprint, Response, current_app, g, request

from fhir_server.api.http import base_url, services
from fhir_server.auth import audit, grants
from fhir_server.auth.discovery import INTROSPECT_PATH, REVOKE_PATH, TOKEN_PATH, smart_configuration
from fhir_server.auth.tokens import BackendAuthorizationServer, note
from fhir_server.store import StoreUnavailable

log = logging.getLogger("fhir_server.auth")
auth = Blueprint("auth", __name__)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM = "application/x-www-form-urlencoded"


def server() -> BackendAuthorizationServer:
    """The app's authorization server, created on first use."""
    found = current_app.extensions.get("oauth")
    if found is None:
        found = current_app.extensions.setdefault("oauth", BackendAuthorizationServer(services()))
    assert isinstance(found, BackendAuthorizationServer)
    return found


def _oauth_error(status: int, error: str, description: str,
                 headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": error, "error_description": description})
    return Response(body, status, {**_NO_STORE, **(headers or {})}, content_type="application/json")


@auth.errorhandler(Exception)
def _failed(exc: Exception) -> Response:
    """Store outages and bugs on these endpoints still answer in OAuth JSON."""
    if isinstance(exc, StoreUnavailable):
        log.warning("OAuth endpoint: store unavailable: %s", exc)
        return _oauth_error(503, "temporarily_unavailable", "the server is temporarily unavailable",
                            {"Retry-After": "1"})
    log.exception("OAuth endpoint failed (request %s)", g.get("request_id", "-"))
    return _oauth_error(500, "server_error", "internal server error")


def _check_form() -> Response | None:
    """A form POST with each parameter at most once (RFC 6749 section 3.2)."""
    mime = request.mimetype
    if mime != _FORM:
        return _oauth_error(400, "invalid_request", f"the request body must be {_FORM}")
    for name in request.form:
        if len(request.form.getlist(name)) > 1:
            return _oauth_error(400, "invalid_request", f"parameter {name} is repeated")
    for name in request.args:
        if name in request.form:
            return _oauth_error(400, "invalid_request", f"parameter {name} is both in the URL"
                                " and in the body")
    return None


def _respond(make: Any) -> Response:
    try:
        response: Response = make()
    except OAuth2Error as error:  # raised before authlib's own handling (e.g. insecure transport)
        response = server().handle_error_response(None, error)
    return response


@auth.route(TOKEN_PATH, methods=["POST"])
def token() -> Response:
    """https://build.fhir.org/ig/HL7/smart-app-launch/backend-services.html#obtaining-an-access-token"""
    invalid = _check_form()
    if invalid is None and not request.form.get("grant_type"):
        invalid = _oauth_error(400, "invalid_request", "grant_type is required")
    if invalid is not None:
        note("malformed token request")
        response = invalid
    else:
        response = _respond(server().create_token_response)
    return _audited(response)


def _audited(response: Response) -> Response:
    if response.status_code == 200:
        outcome, reason = "success", ""
    else:
        try:
            outcome = str(orjson.loads(response.get_data()).get("error", "error"))
        except orjson.JSONDecodeError:
            outcome = "error"
        reason = g.get("oauth_reason") or outcome
    try:
        audit.record_token_request(services(), g.get("oauth_client_id"), outcome, reason,
                                   request.remote_addr, g.get("request_id"))
    except Exception:
        log.exception("audit of a token request failed (request %s)", g.get("request_id", "-"))
        digest = g.get("oauth_token_hash")
        if digest:  # no unaudited access: take the token back
            services().store.registry_delete(grants.TOKEN_KIND, digest)
            grants.forget(services().store, digest)
        return _oauth_error(503, "temporarily_unavailable", "the server is temporarily unavailable",
                            {"Retry-After": "1"})
    return response


@auth.route(INTROSPECT_PATH, methods=["POST"])
def introspect() -> Response:
    """RFC 7662: ``active``, ``scope``, ``client_id``, ``exp`` for the caller's own tokens."""
    invalid = _check_form()
    return invalid or _respond(lambda: server().create_endpoint_response("introspection"))


@auth.route(REVOKE_PATH, methods=["POST"])
def revoke() -> Response:
    """RFC 7009: 200 whether or not the token existed (only the caller's own tokens are revoked)."""
    invalid = _check_form()
    return invalid or _respond(lambda: server().create_endpoint_response("revocation"))


@auth.route("/fhir/.well-known/smart-configuration", methods=["GET"])
def smart_config() -> Response:
    body = orjson.dumps(smart_configuration(base_url()))
    return Response(body, 200, {"Cache-Control": "public, max-age=300"},
                    content_type="application/json")


def _method_not_allowed(allowed: str) -> Response:
    return _oauth_error(405, "invalid_request", f"use {allowed}", {"Allow": allowed})


@auth.route(TOKEN_PATH, methods=["GET", "PUT", "DELETE", "PATCH"], endpoint="token_other")
@auth.route(INTROSPECT_PATH, methods=["GET", "PUT", "DELETE", "PATCH"], endpoint="introspect_other")
@auth.route(REVOKE_PATH, methods=["GET", "PUT", "DELETE", "PATCH"], endpoint="revoke_other")
def other_methods() -> Response:
    return _method_not_allowed("POST")

