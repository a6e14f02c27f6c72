"""Terminology: the platform's code tables (top-level ``terminology/``) and the R4 core ones.

:func:`terminology` gives the process-wide :class:`Terminology` service (validate-code, expand,
lookup, subsumes, translate, and code sets for the token search modifiers).
"""

from fhir_server.terminology.service import Terminology, terminology

__all__ = ["Terminology", "terminology"]
