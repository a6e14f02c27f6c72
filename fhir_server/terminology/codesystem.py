"""A CodeSystem as an index: concepts by code, hierarchy, properties, designations. Pure, no I/O.

Built once from the R4 JSON of a CodeSystem (``content`` complete, or the compact extract of the
R4 core tables): nested ``concept.concept`` and the ``parent``/``child`` properties both give the
is-a hierarchy (a code may have several parents). A concept is *inactive* when its ``status``
property is ``retired`` or ``inactive``, or its ``inactive`` property is true; inactive codes stay
valid (GB/T 2260 keeps retired codes because ID numbers carry them) but are flagged in expansions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: R4 ``concept.property.value[x]`` keys, in the order they are looked for.
_VALUE_KEYS = ("valueCode", "valueString", "valueBoolean", "valueInteger", "valueDecimal",
               "valueDateTime", "valueCoding")


@dataclass(frozen=True, slots=True)
class Designation:
    value: str
    language: str | None = None
    use: Mapping[str, Any] | None = None  # a Coding

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.language:
            out["language"] = self.language
        if self.use:
            out["use"] = dict(self.use)
        out["value"] = self.value
        return out


@dataclass(slots=True)
class Concept:
    code: str
    display: str | None
    definition: str | None = None
    designations: tuple[Designation, ...] = ()
    #: property code -> (value key such as ``valueCode``, value) pairs, as written
    properties: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)

    @property
    def inactive(self) -> bool:
        if any(v in ("retired", "inactive") for _, v in self.properties.get("status", ())):
            return True
        return any(v is True for _, v in self.properties.get("inactive", ()))

    def property_strings(self, code: str) -> list[str]:
        """The values of property ``code`` as filter strings (booleans as ``true``/``false``)."""
        out: list[str] = []
        for key, value in self.properties.get(code, ()):
            if key == "valueCoding" and isinstance(value, dict):
                out.append(str(value.get("code", "")))
            elif isinstance(value, bool):
                out.append("true" if value else "false")
            else:
                out.append(str(value))
        return out

    def texts(self) -> Iterator[str]:
        """Code, display and designation values: what an ``$expand`` text filter looks in."""
        yield self.code
        if self.display:
            yield self.display
        for d in self.designations:
            yield d.value


def _designations(raw: Iterable[dict[str, Any]]) -> tuple[Designation, ...]:
    return tuple(Designation(str(d["value"]), d.get("language"), d.get("use"))
                 for d in raw if isinstance(d, dict) and d.get("value"))


class CodeSystemIndex:
    """One CodeSystem's concepts. ``complete`` is False for ``example``/``fragment``/``not-present``
    content and supplements: such a system cannot say a code is *not* in it."""

    def __init__(self, resource: Mapping[str, Any]) -> None:
        self.url: str = str(resource["url"])
        self.version: str | None = resource.get("version")
        self.name: str | None = resource.get("title") or resource.get("name")
        self.content: str = str(resource.get("content", "complete"))
        self.complete = self.content == "complete"
        self.case_sensitive: bool = resource.get("caseSensitive", True) is not False
        self.value_set: str | None = resource.get("valueSet")
        self.property_types: dict[str, str] = {
            p["code"]: p.get("type", "string") for p in resource.get("property", ()) if "code" in p}
        self.concepts: dict[str, Concept] = {}
        self.order: list[str] = []
        self._load(resource.get("concept", ()), None)
        for concept in self.concepts.values():  # hierarchy given by properties
            for parent in concept.property_strings("parent"):
                self._link(parent, concept.code)
            for child in concept.property_strings("child"):
                self._link(concept.code, child)
        self._folded: dict[str, str] | None = None

    def _load(self, raw: Iterable[dict[str, Any]], parent: str | None) -> None:
        for item in raw:
            code = item.get("code")
            if not isinstance(code, str):
                continue
            concept = self.concepts.get(code)
            if concept is None:
                props: dict[str, list[tuple[str, Any]]] = {}
                for p in item.get("property", ()):
                    for key in _VALUE_KEYS:
                        if key in p:
                            props.setdefault(p.get("code", ""), []).append((key, p[key]))
                            break
                concept = Concept(code, item.get("display"), item.get("definition"),
                                  _designations(item.get("designation", ())), props)
                self.concepts[code] = concept
                self.order.append(code)
            if parent is not None:
                self._link(parent, code)
            self._load(item.get("concept", ()), code)

    def _link(self, parent: str, child: str) -> None:
        p, c = self.concepts.get(parent), self.concepts.get(child)
        if p is None or c is None or parent == child:
            return
        if child not in p.children:
            p.children.append(child)
        if parent not in c.parents:
            c.parents.append(parent)

    def get(self, code: str) -> Concept | None:
        concept = self.concepts.get(code)
        if concept is None and not self.case_sensitive:
            if self._folded is None:
                self._folded = {c.casefold(): c for c in self.concepts}
            real = self._folded.get(code.casefold())
            concept = self.concepts.get(real) if real is not None else None
        return concept

    def descendants(self, code: str) -> list[str]:
        """Codes strictly below ``code`` (transitively), in hierarchy order; [] for unknown codes."""
        out: list[str] = []
        seen = {code}
        stack = list(reversed(self.concepts[code].children)) if code in self.concepts else []
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            out.append(c)
            stack.extend(reversed(self.concepts[c].children))
        return out

    def ancestors(self, code: str) -> list[str]:
        """Codes strictly above ``code`` (transitively), nearest first; [] for unknown codes."""
        out: list[str] = []
        seen = {code}
        queue = list(self.concepts[code].parents) if code in self.concepts else []
        while queue:
            c = queue.pop(0)
            if c in seen:
                continue
            seen.add(c)
            out.append(c)
            queue.extend(self.concepts[c].parents)
        return out

    def subsumes(self, a: str, b: str) -> str:
        """R4 ``$subsumes`` outcome of ``a`` against ``b`` (both must be known codes)."""
        a_code = self.concepts[a].code if a in self.concepts else a
        b_code = self.concepts[b].code if b in self.concepts else b
        if a_code == b_code:
            return "equivalent"
        if b_code in self.descendants(a_code):
            return "subsumes"
        if a_code in self.descendants(b_code):
            return "subsumed-by"
        return "not-subsumed"
