"""The one place where exceptions become OperationOutcomes."""

from __future__ import annotations

import logging

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException

from fhir_server.api.http import outcome_response
from fhir_server.errors import FhirError, Issue
from fhir_server.store import StoreUnavailable, VersionConflict

log = logging.getLogger("fhir_server.error")

_HTTP_CODES = {
    400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
    406: "not-supported", 408: "timeout", 409: "conflict", 410: "deleted", 411: "invalid",
    412: "conflict", 413: "too-costly", 414: "too-costly", 415: "not-supported",
    429: "throttled", 431: "too-costly",
}


def handle(exc: Exception) -> Response:
    if isinstance(exc, FhirError):
        return outcome_response(exc.issues, exc.status, exc.headers)
    if isinstance(exc, StoreUnavailable):
        log.warning("store unavailable: %s", exc)
        issue = Issue("error", "transient", f"The store is unavailable: {exc}")
        return outcome_response([issue], 503, {"Retry-After": "1"})
    if isinstance(exc, VersionConflict):
        return outcome_response([Issue("error", "conflict", str(exc))], 409)
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        if status == 404:
            message = "No such FHIR endpoint: check the URL (the FHIR base is /fhir)"
        elif status == 405:
            message = "This method is not supported at this URL"
        elif status == 413:
            message = "The request body is larger than this server accepts"
        else:
            message = exc.description or exc.name
        issue = Issue("error", _HTTP_CODES.get(status, "exception"), message)
        headers = {}
        if status == 405:
            allow = exc.get_response().headers.get("Allow")
            if allow:
                headers["Allow"] = allow
        return outcome_response([issue], status, headers)
    request_id = getattr(g, "request_id", "-")
    log.exception("unhandled error (request %s)", request_id)
    issue = Issue(
        "fatal", "exception",
        f"Internal server error; quote request id {request_id} when reporting it",
    )
    return outcome_response([issue], 500)


def register(app: Flask) -> None:
    app.register_error_handler(Exception, handle)
