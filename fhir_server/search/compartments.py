"""Compartments (https://hl7.org/fhir/R4/compartmentdefinition.html) as search conditions.

Loaded once from ``fhir/data/r4_compartments.json`` (written by ``scripts/extract_spec.py`` from the
official CompartmentDefinitions; R4 ships the Patient one). A resource is in the compartment of
``Patient/123`` when one of the compartment's parameters for its type refers to ``Patient/123``;
the Patient itself is in its own compartment (by ``_id``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from fhir_server.search import ir


@cache
def _definitions() -> MappingProxyType[str, MappingProxyType[str, tuple[str, ...]]]:
    text = resources.files("fhir_server.fhir").joinpath("data/r4_compartments.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return MappingProxyType({
        code: MappingProxyType({rtype: tuple(params) for rtype, params in c["resources"].items()})
        for code, c in data["compartments"].items()})


def compartments() -> frozenset[str]:
    """The compartment types defined (``Patient``)."""
    return frozenset(_definitions())


def compartment_params(compartment: str, rtype: str) -> tuple[str, ...]:
    """The reference parameters of ``rtype`` that put a resource in ``compartment`` (may be empty)."""
    return _definitions().get(compartment, MappingProxyType({})).get(rtype, ())


def compartment_types(compartment: str) -> frozenset[str]:
    """Resource types that can be in ``compartment`` (the compartment's own type included);
    empty for an unknown compartment."""
    defs = _definitions().get(compartment)
    if defs is None:
        return frozenset()
    return frozenset(defs) | {compartment}


def compartment_filter(compartment: str, compartment_id: str, rtype: str) -> ir.Node | None:
    """The condition "this ``rtype`` resource is in the compartment ``compartment/compartment_id``":
    an ``Or`` over the compartment's parameters for ``rtype`` of
    ``(entry p (and (eq type compartment) (eq id compartment_id)))``, plus
    ``(entry _id (eq code compartment_id))`` for the compartment's own type; ``None`` when
    ``rtype`` cannot be in the compartment (or the compartment is unknown)."""
    if compartment not in _definitions():
        return None
    items: list[ir.Node] = []
    if rtype == compartment:
        items.append(ir.Entry("_id", "token", ir.Cmp("code", "eq", compartment_id)))
    target = ir.And((ir.Cmp("type", "eq", compartment), ir.Cmp("id", "eq", compartment_id)))
    items.extend(ir.Entry(p, "reference", target) for p in compartment_params(compartment, rtype))
    return ir.any_of(items) if items else None
