"""Route registration that remembers which FHIR interaction each route serves.

The CapabilityStatement is generated from this record, so it lists exactly what is routed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Routed:
    rule: str
    method: str
    interaction: str  # a code of http://hl7.org/fhir/restful-interaction
    level: str  # "instance", "type" or "system"


class FhirBlueprint(Blueprint):
    def __init__(self, name: str, import_name: str, **kwargs: Any) -> None:
        super().__init__(name, import_name, **kwargs)
        self.routed: list[Routed] = []

    def interaction(self, rule: str, method: str, interaction: str, level: str) -> Callable[[F], F]:
        def decorate(view: F) -> F:
            self.routed.append(Routed(rule, method, interaction, level))
            self.add_url_rule(rule, view.__name__, view, methods=[method],
                              strict_slashes=False)
            return view

        return decorate
