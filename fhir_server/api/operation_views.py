"""Extended operations ($everything, $match ...): thin views over ``operations/``.

Route precedence: Werkzeug ranks rules with more static parts first, so
``/Patient/<rid>/$everything`` (two static parts) beats the compartment search
``/<ctype>/<cid>/<rtype>`` and ``/Patient/$everything`` beats the read ``/<rtype>/<rid>``
(tests/api/test_everything.py checks both). Each route is recorded with the interaction code
``Patient/$<name>`` and the level ``operation``; the CapabilityStatement lists it as an operation
of the Patient resource.
"""

from __future__ import annotations

from flask import Response

from fhir_server.api import http
from fhir_server.api.fhir_views import fhir
from fhir_server.errors import InvalidRequest
from fhir_server.operations.everything import PARAMETERS as EVERYTHING_PARAMETERS
from fhir_server.operations.everything import everything
from fhir_server.operations.match import match

__all__ = ["fhir"]


def _everything_params() -> dict[str, str]:
    """Single-valued parameters, except ``_type`` (0..*: repeats are joined with commas); unknown
    ones are a 400 unless ``Prefer: handling=lenient``."""
    query: dict[str, str] = {}
    for key, value in http.query_pairs():
        if key not in EVERYTHING_PARAMETERS:
            if http.lenient():
                continue
            raise InvalidRequest(f"Unknown parameter {key!r} for Patient/$everything",
                                 expression=key)
        if key == "_type" and key in query:
            query[key] += "," + value
        elif key in query:
            raise InvalidRequest(f"Parameter {key!r} may be given only once", expression=key)
        else:
            query[key] = value
    return query


@fhir.interaction("/Patient/<rid>/$everything", "GET", "Patient/$everything", "operation")
def patient_everything(rid: str) -> Response:
    query = _everything_params()
    doc = everything(http.services(), http.base_url(), f"Patient/{rid}/$everything", rid, query)
    return http.json_response(doc)


@fhir.interaction("/Patient/$everything", "GET", "Patient/$everything", "operation")
def patient_everything_type() -> Response:
    query = _everything_params()
    doc = everything(http.services(), http.base_url(), "Patient/$everything", None, query)
    return http.json_response(doc)


@fhir.interaction("/Patient/$match", "POST", "Patient/$match", "operation")
def patient_match() -> Response:
    http.params(())
    body = http.read_resource_body()
    return http.json_response(match(http.services(), http.base_url(), body))
