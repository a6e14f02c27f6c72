"""Extended operations ($everything, $match ...): thin views over ``operations/``."""

from __future__ import annotations

from fhir_server.api.fhir_views import fhir

__all__ = ["fhir"]
