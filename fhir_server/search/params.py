"""The R4 search-parameter registry: one :class:`SearchParam` per (resource type, code).

Loaded once from ``fhir/data/r4_search_parameters.json`` (written by ``scripts/extract_spec.py``
from the official SearchParameter bundle). A parameter shared by several bases (``clinical-code``
on AllergyIntolerance, Condition, ...) becomes one :class:`SearchParam` per base whose
``expression`` holds only the union branches of that base. The ``Resource`` parameters (``_id``,
``_lastUpdated``, ``_tag``, ``_profile``, ``_security``, ``_source``, and the expression-less
``_content``, ``_query``) and ``DomainResource``'s ``_text`` are copied onto every type they apply
to, with ``Resource.`` in the expression replaced by the type name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

PARAM_TYPES = frozenset(
    {"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"})
COMMON_CODES = ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source")


@dataclass(frozen=True, slots=True)
class SearchParam:
    code: str
    type: str
    base: str
    expression: str | None
    url: str
    targets: tuple[str, ...] = ()
    #: (component parameter code, expression relative to the composite's element)
    components: tuple[tuple[str, str], ...] = ()
    xpath_usage: str = "normal"
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    multiple_or: bool = True
    multiple_and: bool = True


class Registry:
    """Search parameters by resource type and code."""

    def __init__(self, params: list[SearchParam], resource_types: list[str]) -> None:
        by_type: dict[str, dict[str, SearchParam]] = {}
        for p in params:
            by_type.setdefault(p.base, {})[p.code] = p
        self._by_type = {t: MappingProxyType(m) for t, m in by_type.items()}
        self._empty: Mapping[str, SearchParam] = MappingProxyType({})
        self.resource_types = tuple(resource_types)
        self.by_url: Mapping[str, tuple[SearchParam, ...]] = {}

    def get(self, rtype: str, code: str) -> SearchParam | None:
        return self._by_type.get(rtype, self._empty).get(code)

    def for_type(self, rtype: str) -> Mapping[str, SearchParam]:
        return self._by_type.get(rtype, self._empty)

    def types(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_type))


def _narrow_to(expression: str | None, root: str, rtype: str) -> str | None:
    if expression is None:
        return None
    if expression.startswith(root + "."):
        return rtype + expression[len(root):]
    return expression


def build_registry(data: Mapping[str, Any], resource_types: list[str],
                   domain_types: frozenset[str] | None = None) -> Registry:
    """A registry from the extracted table; ``Resource``/``DomainResource`` parameters are copied
    onto every concrete type (``domain_types``: the DomainResource subtypes, all if None)."""
    raw = data["parameters"]
    code_of_url = {p["url"]: p["code"] for p in raw}
    params: list[SearchParam] = []
    for p in raw:
        components = tuple(
            (code_of_url.get(c["definition"], c["definition"]), c["expression"])
            for c in p.get("component", ()))
        common = {
            "code": p["code"], "type": p["type"], "url": p["url"],
            "targets": tuple(p.get("target", ())), "components": components,
            "xpath_usage": p.get("xpathUsage", "normal"),
            "modifiers": tuple(p.get("modifier", ())),
            "comparators": tuple(p.get("comparator", ())),
            "multiple_or": p.get("multipleOr", True), "multiple_and": p.get("multipleAnd", True),
        }
        for base in p["base"]:
            if base in ("Resource", "DomainResource"):
                for rtype in resource_types:
                    if base == "DomainResource" and domain_types is not None \
                            and rtype not in domain_types:
                        continue
                    params.append(SearchParam(
                        base=rtype, expression=_narrow_to(p["expressions"][base], base, rtype),
                        **common))
            else:
                params.append(SearchParam(base=base, expression=p["expressions"][base], **common))
    registry = Registry(params, resource_types)
    by_url: dict[str, list[SearchParam]] = {}
    for sp in params:
        by_url.setdefault(sp.url, []).append(sp)
    registry.by_url = {u: tuple(v) for u, v in by_url.items()}
    return registry


@cache
def registry() -> Registry:
    """The R4 registry, loaded once per process."""
    pkg = resources.files("fhir_server.fhir")
    data = json.loads(pkg.joinpath("data/r4_search_parameters.json").read_text("utf-8"))
    structure = json.loads(pkg.joinpath("data/r4_structure.json").read_text("utf-8"))
    rtypes: list[str] = structure["resourceTypes"]
    domain = frozenset(t for t in rtypes if t not in ("Bundle", "Binary", "Parameters"))
    return build_registry(data, rtypes, domain)
