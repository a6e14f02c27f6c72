"""POST /fhir: batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

from fhir_server.api.fhir_views import fhir

__all__ = ["fhir"]
