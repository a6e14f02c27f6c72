"""Errors that carry their HTTP status and become OperationOutcomes in one place.

No Flask import here: the core raises these, the API layer (and batch entries) render them with
:func:`to_outcome`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue: what is wrong and where (FHIRPath ``expression``)."""

    severity: str  # fatal | error | warning | information
    code: str  # http://hl7.org/fhir/issue-type
    diagnostics: str
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def error(code: str, diagnostics: str, expression: str | None = None) -> Issue:
    return Issue("error", code, diagnostics, (expression,) if expression else ())


def warning(code: str, diagnostics: str, expression: str | None = None) -> Issue:
    return Issue("warning", code, diagnostics, (expression,) if expression else ())


class FhirError(Exception):
    """Base class: ``status`` is the HTTP status, ``code`` the OperationOutcome issue type."""

    status: int = 500
    code: str = "exception"

    def __init__(
        self,
        message: str,
        *,
        expression: str | Sequence[str] | None = None,
        issues: Iterable[Issue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if issues is not None:
            self.issues: tuple[Issue, ...] = tuple(issues)
        else:
            expr: tuple[str, ...]
            if expression is None:
                expr = ()
            elif isinstance(expression, str):
                expr = (expression,)
            else:
                expr = tuple(expression)
            self.issues = (Issue("error", self.code, message, expr),)
        self.headers: dict[str, str] = dict(headers or {})


class InvalidRequest(FhirError):
    """The request is malformed: bad parameters, headers or JSON (400)."""

    status, code = 400, "invalid"


class InvalidResource(FhirError):
    """The resource does not conform to the R4 structure (400)."""

    status, code = 400, "structure"


class Unprocessable(FhirError):
    """Well-formed but breaks a profile or business rule (422)."""

    status, code = 422, "processing"


class Unauthorized(FhirError):
    """No bearer token, or an invalid, expired or revoked one (401, RFC 6750 challenge)."""

    status, code = 401, "login"
    CHALLENGE = 'Bearer error="invalid_token"'

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": self.CHALLENGE, **(headers or {})})


class Forbidden(FhirError):
    """The token does not grant this type or interaction, or a write falls outside the client's
    data policy (403). Reads outside the policy are a :class:`NotFound` instead."""

    status, code = 403, "forbidden"


class NotFound(FhirError):
    status, code = 404, "not-found"


class Gone(FhirError):
    status, code = 410, "deleted"


class MethodNotAllowed(FhirError):
    status, code = 405, "not-supported"


class NotAcceptable(FhirError):
    status, code = 406, "not-supported"


class UnsupportedMediaType(FhirError):
    status, code = 415, "not-supported"


class Conflict(FhirError):
    status, code = 409, "conflict"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class PayloadTooLarge(FhirError):
    status, code = 413, "too-costly"


class ServiceUnavailable(FhirError):
    status, code = 503, "transient"


def outcome_json(issues: Iterable[Issue]) -> dict[str, Any]:
    items = [i.to_json() for i in issues]
    if not items:
        items = [{"severity": "information", "code": "informational", "diagnostics": "All OK"}]
    return {"resourceType": "OperationOutcome", "issue": items}


def to_outcome(exc: FhirError) -> dict[str, Any]:
    return outcome_json(exc.issues)
