"""The terminology service: validate-code, expand, lookup, subsumes, translate, and the code sets
behind the token search modifiers ``:in``/``:not-in``/``:above``/``:below``.

One :class:`Terminology` per process (:func:`terminology`, cached per conformance directory). Loading
parses the JSON only; a CodeSystem is indexed on first use and a ValueSet expanded on first use, and
both are cached, so ``validate_code`` after the first call is a dict lookup.

Canonical URLs may carry ``|version``: a resource without a version, or with that version, matches;
another version is unknown here.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from fhir_server.errors import FhirError, InvalidRequest, NotFound
from fhir_server.terminology import loader
from fhir_server.terminology.codesystem import CodeSystemIndex, Concept
from fhir_server.terminology.conceptmap import ConceptMaps, Translation
from fhir_server.terminology.expansion import Expansion, Item, NotExpandable, expand

__all__ = ["CannotExpand", "Terminology", "Translation", "terminology"]


class CannotExpand(FhirError):
    """A known ValueSet this server cannot expand (it draws on SNOMED CT, LOINC, UCUM ...)."""

    status, code = 422, "not-supported"


def split_canonical(url: str) -> tuple[str, str | None]:
    base, _, version = url.partition("|")
    return base, version or None


def _version_ok(resource: Mapping[str, Any], version: str | None) -> bool:
    return version is None or resource.get("version") in (None, version)


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """Outcome of one ``$validate-code``: ``result`` None when the ValueSet cannot be checked."""

    result: bool | None
    message: str | None = None
    display: str | None = None  # the display the code system gives, when known


def _display_ok(item: Item, display: str) -> bool:
    wanted = display.strip().casefold()
    return any(t.strip().casefold() == wanted for t in (item.display, *(d.value for d in item.designations))
               if t)


def describe(cs: CodeSystemIndex, concept: Concept) -> dict[str, Any]:
    """What ``$lookup`` returns about a concept, as plain JSON-ready values."""
    props: list[dict[str, Any]] = []
    for pcode, values in concept.properties.items():
        props.extend({"code": pcode, key: value} for key, value in values)
    props.extend({"code": "parent", "valueCode": p} for p in concept.parents
                 if p not in concept.property_strings("parent"))
    props.extend({"code": "child", "valueCode": c} for c in concept.children
                 if c not in concept.property_strings("child"))
    if "inactive" not in concept.properties:
        props.append({"code": "inactive", "valueBoolean": concept.inactive})
    return {"name": cs.name or cs.url, "version": cs.version, "code": concept.code,
            "display": concept.display, "definition": concept.definition,
            "designation": [d.to_json() for d in concept.designations], "property": props}


class Terminology:
    """CodeSystems, ValueSets and ConceptMaps by canonical URL (the last loaded wins)."""

    def __init__(self, code_systems: Iterable[dict[str, Any]], value_sets: Iterable[dict[str, Any]],
                 concept_maps: Iterable[dict[str, Any]]) -> None:
        self.code_system_resources: dict[str, dict[str, Any]] = {r["url"]: r for r in code_systems}
        self.value_set_resources: dict[str, dict[str, Any]] = {r["url"]: r for r in value_sets}
        for url, cs in self.code_system_resources.items():  # implicit "all codes" value sets
            vs = cs.get("valueSet")
            if isinstance(vs, str) and split_canonical(vs)[0] not in self.value_set_resources:
                self.value_set_resources[split_canonical(vs)[0]] = {
                    "resourceType": "ValueSet", "url": split_canonical(vs)[0],
                    "version": cs.get("version"), "name": cs.get("name"), "status": cs.get("status"),
                    "compose": {"include": [{"system": url}]}}
        self._maps_raw = list(concept_maps)
        self._maps: ConceptMaps | None = None
        self._indexes: dict[str, CodeSystemIndex] = {}
        self._expansions: dict[str, Expansion | NotExpandable] = {}
        self._lock = threading.RLock()

    @classmethod
    def load(cls, conformance_dir: str | None = None, canonical_base: str | None = None) -> Terminology:
        content = loader.load(conformance_dir, canonical_base)
        return cls(content.code_systems, content.value_sets, content.concept_maps)

    # -- resolution -------------------------------------------------------------------------

    def code_system(self, url: str, version: str | None = None) -> CodeSystemIndex | None:
        """The indexed CodeSystem ``url`` (optionally ``url|version``), or None when unknown."""
        base, v = split_canonical(url)
        version = version or v
        resource = self.code_system_resources.get(base)
        if resource is None or not _version_ok(resource, version):
            return None
        index = self._indexes.get(base)
        if index is None:
            with self._lock:
                index = self._indexes.get(base)
                if index is None:
                    index = CodeSystemIndex(resource)
                    self._indexes[base] = index
        return index

    def value_set(self, url: str) -> dict[str, Any] | None:
        """The ValueSet resource ``url`` (optionally ``url|version``), or None when unknown."""
        base, version = split_canonical(url)
        resource = self.value_set_resources.get(base)
        return resource if resource is not None and _version_ok(resource, version) else None

    def _expansion(self, url: str, stack: tuple[str, ...] = ()) -> Expansion:
        """The cached expansion of ValueSet ``url``; raises :class:`NotExpandable`."""
        base = split_canonical(url)[0]
        cached = self._expansions.get(base)
        if cached is None:
            resource = self.value_set(url)
            if resource is None:
                raise NotExpandable(f"the ValueSet {url} is not known to this server")
            if base in stack:
                raise NotExpandable(f"the ValueSet {url} imports itself")
            try:
                cached = expand(resource, self.code_system,
                                lambda u: self._expansion(u, (*stack, base)))
            except NotExpandable as exc:
                cached = exc
            with self._lock:
                self._expansions[base] = cached
        elif self.value_set(url) is None:  # a version that does not match
            raise NotExpandable(f"the ValueSet {url} is not known to this server")
        if isinstance(cached, NotExpandable):
            raise cached
        return cached

    def expansion_of(self, resource: Mapping[str, Any]) -> Expansion:
        """Expand a ValueSet resource given by value (a stored one, a ``valueSet`` parameter)."""
        url = resource.get("url")
        known = self.value_set(url) if isinstance(url, str) else None
        if known is not None and known.get("compose") == resource.get("compose"):
            return self._expansion(str(url))
        return expand(resource, self.code_system, self._expansion)

    # -- the API ------------------------------------------------------------------------------

    def codes_in(self, valueset: str) -> frozenset[tuple[str, str]] | None:
        """(system, code) pairs of the ValueSet; None when unknown or not expandable here."""
        try:
            return self._expansion(valueset).keys
        except NotExpandable:
            return None

    def check_code(self, valueset: str, system: str | None, code: str,
                   display: str | None = None) -> ValidationResult:
        """Like :meth:`validate_code`, with the reason when the answer is not True."""
        try:
            exp = self._expansion(valueset)
        except NotExpandable as exc:
            return ValidationResult(None, str(exc))
        return self.check_in(exp, valueset, system, code, display)

    def check_in(self, exp: Expansion, label: str, system: str | None, code: str,
                 display: str | None = None) -> ValidationResult:
        if system is None:
            found = exp.by_code.get(code, ())
            item = found[0] if found else None
        else:
            item = exp.by_key.get((system, code))
        coded = f"{system}|{code}" if system else code
        if item is None:
            return ValidationResult(False, f"the code {coded!r} is not in the value set {label}")
        if display is not None and (item.display or item.designations) and not _display_ok(item, display):
            return ValidationResult(False, f"the display {display!r} is not a display of {coded!r}"
                                    f" (expected {item.display!r})", item.display)
        return ValidationResult(True, None, item.display)

    def validate_code(self, valueset: str, system: str | None, code: str,
                      display: str | None = None) -> bool | None:
        """True/False when the ValueSet (canonical URL, optionally ``|version``) is known and can be
        expanded; None when it is unknown or not expandable here (the binding cannot be checked).

        ``system`` None matches the code in any system of the ValueSet. A ``display`` must equal
        (case-insensitively) the concept's display or one of its designations."""
        return self.check_code(valueset, system, code, display).result

    def expand(self, valueset: str, filter: str | None = None, offset: int = 0,
               count: int | None = None) -> dict[str, Any]:
        """The ValueSet with an ``expansion``; :class:`NotFound` when unknown, :class:`CannotExpand`
        when it draws on systems this server does not have."""
        resource = self.value_set(valueset)
        if resource is None:
            raise NotFound(f"ValueSet {valueset} is not known to this server", expression="url")
        try:
            exp = self._expansion(valueset)
        except NotExpandable as exc:
            raise CannotExpand(f"ValueSet {valueset} cannot be expanded here: {exc}") from exc
        return self.expansion_resource(resource, exp, filter, offset, count)

    def expansion_resource(self, resource: Mapping[str, Any], exp: Expansion, filter: str | None = None,
                           offset: int = 0, count: int | None = None,
                           designations: bool = False) -> dict[str, Any]:
        items: list[Item] = list(exp.items)
        if filter:
            needle = filter.strip().casefold()
            items = [i for i in items if any(needle in t.casefold() for t in i.texts())]
        page = items[offset:] if count is None else items[offset:offset + count]
        parameters: list[dict[str, Any]] = []
        if filter:
            parameters.append({"name": "filter", "valueString": filter})
        if offset:
            parameters.append({"name": "offset", "valueInteger": offset})
        if count is not None:
            parameters.append({"name": "count", "valueInteger": count})
        out: dict[str, Any] = {"resourceType": "ValueSet"}
        for key in ("id", "url", "version", "name", "title", "status"):
            if resource.get(key) is not None:
                out[key] = resource[key]
        out.setdefault("status", "active")
        expansion: dict[str, Any] = {
            "identifier": f"urn:uuid:{uuid.uuid4()}",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "total": len(items),
            "offset": offset,
        }
        if parameters:
            expansion["parameter"] = parameters
        if page:
            expansion["contains"] = [i.to_json(designations) for i in page]
        out["expansion"] = expansion
        return out

    def lookup(self, system: str, code: str, version: str | None = None) -> dict[str, Any] | None:
        """``name``, ``version``, ``code``, ``display``, ``definition``, ``designation`` (R4 JSON),
        ``property`` (R4 ``{code, value[x]}`` incl. ``parent``/``child``, ``inactive``); None for an
        unknown system or code."""
        cs = self.code_system(system, version)
        concept = cs.get(code) if cs is not None else None
        if cs is None or concept is None:
            return None
        return describe(cs, concept)

    def subsumes(self, system: str, a: str, b: str) -> str:
        """``equivalent``, ``subsumes`` (a is above b), ``subsumed-by`` or ``not-subsumed``."""
        cs = self.code_system(system)
        if cs is None:
            raise NotFound(f"CodeSystem {system} is not known to this server", expression="system")
        for name, code in (("codeA", a), ("codeB", b)):
            if cs.get(code) is None:
                raise InvalidRequest(f"{code!r} is not a code of {system}", expression=name)
        concept_a, concept_b = cs.get(a), cs.get(b)
        assert concept_a is not None and concept_b is not None
        return cs.subsumes(concept_a.code, concept_b.code)

    def _descendants_or_ancestors(self, system: str, code: str, below: bool) -> frozenset[str] | None:
        cs = self.code_system(system)
        concept = cs.get(code) if cs is not None else None
        if cs is None or concept is None:
            return None
        related = cs.descendants(concept.code) if below else cs.ancestors(concept.code)
        return frozenset((concept.code, *related))

    def descendants(self, system: str, code: str) -> frozenset[str] | None:
        """``code`` and every code below it (is-a); None for an unknown system or code."""
        return self._descendants_or_ancestors(system, code, True)

    def ancestors(self, system: str, code: str) -> frozenset[str] | None:
        """``code`` and every code above it (is-a); None for an unknown system or code."""
        return self._descendants_or_ancestors(system, code, False)

    def systems_with(self, code: str) -> list[str]:
        """Known, complete systems that have ``code`` (for ``:below``/``:above`` without a system)."""
        out = []
        for url in self.code_system_resources:
            cs = self.code_system(url)
            if cs is not None and cs.complete and cs.get(code) is not None:
                out.append(url)
        return out

    @property
    def concept_maps(self) -> ConceptMaps:
        if self._maps is None:
            self._maps = ConceptMaps(self._maps_raw)
        return self._maps

    def translate(self, code: str, system: str, source: str | None = None, target: str | None = None,
                  *, url: str | None = None, target_system: str | None = None) -> list[Translation]:
        """Translations of ``system|code`` by the known ConceptMaps (``source``/``target``: the
        maps' source/target ValueSets; ``target`` may also name a target system)."""
        return self.concept_maps.translate(system, code, url=url, source=source, target=target,
                                           target_system=target_system)


@cache
def terminology(conformance_dir: str | None = None, canonical_base: str | None = None) -> Terminology:
    """The process-wide terminology for a conformance directory (and canonical base, when it is
    not the default the files are written with), loaded once."""
    return Terminology.load(conformance_dir, canonical_base)
