"""POST /fhir: batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

from flask import Response

from fhir_server.api import http
from fhir_server.api.fhir_views import fhir
from fhir_server.api.routes import Routed
from fhir_server.interactions.batch import process_bundle


@fhir.interaction("/", "POST", "transaction", "system")
def transaction() -> Response:
    """A ``transaction`` or ``batch`` Bundle; the Bundle's ``type`` says which."""
    http.params(())
    body = http.read_resource_body()
    doc = process_bundle(http.services(), http.base_url(), body, http.prefer())
    return http.json_response(doc)


# The same route serves ``batch`` (one URL and method, told apart by Bundle.type); record it so the
# CapabilityStatement, generated from the routed interactions, lists both system interactions.
fhir.routed.append(Routed("/", "POST", "batch", "system"))

__all__ = ["fhir"]
