"""Profiles: the platform's StructureDefinitions (top-level ``profiles/``), compiled once, and a
validator checking resources against them and against the R4 base rules.

    from fhir_server.profiles import registry, Validator
"""

from fhir_server.profiles.loader import Registry, registry
from fhir_server.profiles.validator import Validator

__all__ = ["Registry", "Validator", "registry"]
