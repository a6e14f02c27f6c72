"""ValueSet expansion (R4 ``compose``): pure, no I/O; the caller supplies the resolvers.

Supported: ``include``/``exclude`` with a ``concept`` list, a whole ``system``, ``filter`` (on
``concept``/``code``: ``is-a``, ``descendent-of``, ``is-not-a``, ``generalizes``, ``=``, ``in``,
``not-in``, ``regex``; on other properties, including ``parent``/``child``: ``=``, ``in``,
``not-in``, ``regex``, ``exists``), ``valueSet`` imports (intersected with each other and with the
system part), and ValueSets that carry only an ``expansion``.

A ValueSet cannot be expanded here (:class:`NotExpandable`) when it includes a whole system, or
filters one, that is unknown or not ``complete`` (SNOMED CT, LOINC, UCUM ...), imports an unknown
ValueSet, or uses a filter this module does not evaluate. Listing codes of an unknown system is
fine: the list is the expansion.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir_server.terminology.codesystem import CodeSystemIndex, Concept, Designation

Key = tuple[str, str]  # (system, code)


class NotExpandable(Exception):
    """The ValueSet (or one it imports) cannot be expanded by this server; the message says why."""


@dataclass(frozen=True, slots=True)
class Item:
    system: str
    code: str
    display: str | None = None
    version: str | None = None
    inactive: bool = False
    abstract: bool = False
    designations: tuple[Designation, ...] = ()

    def texts(self) -> Iterable[str]:
        yield self.code
        if self.display:
            yield self.display
        for d in self.designations:
            yield d.value

    def to_json(self, designations: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"system": self.system}
        if self.version:
            out["version"] = self.version
        if self.abstract:
            out["abstract"] = True
        if self.inactive:
            out["inactive"] = True
        out["code"] = self.code
        if self.display:
            out["display"] = self.display
        if designations and self.designations:
            out["designation"] = [d.to_json() for d in self.designations]
        return out


@dataclass(frozen=True, slots=True)
class Expansion:
    """The codes of a ValueSet, in compose order, and a set for membership tests."""

    items: tuple[Item, ...]
    keys: frozenset[Key]
    by_key: Mapping[Key, Item]
    by_code: Mapping[str, tuple[Item, ...]]

    @classmethod
    def of(cls, items: Iterable[Item]) -> Expansion:
        by_key: dict[Key, Item] = {}
        for item in items:
            by_key.setdefault((item.system, item.code), item)
        by_code: dict[str, list[Item]] = {}
        for item in by_key.values():
            by_code.setdefault(item.code, []).append(item)
        return cls(tuple(by_key.values()), frozenset(by_key), by_key,
                   {c: tuple(v) for c, v in by_code.items()})


CodeSystemResolver = Callable[[str, str | None], CodeSystemIndex | None]
ValueSetResolver = Callable[[str], Expansion]  # raises NotExpandable when unknown


def _item(cs: CodeSystemIndex, concept: Concept) -> Item:
    abstract = any(v is True for _, v in concept.properties.get("notSelectable", ()))
    return Item(cs.url, concept.code, concept.display, cs.version, concept.inactive, abstract,
                concept.designations)


def _split(value: str) -> set[str]:
    return {v.strip() for v in value.split(",") if v.strip()}


def _regex(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except re.error as exc:
        raise NotExpandable(f"filter regex {value!r} is not valid: {exc}") from exc


def _filter_codes(cs: CodeSystemIndex, flt: Mapping[str, Any]) -> set[str]:
    prop, op, value = flt.get("property"), flt.get("op"), flt.get("value")
    if not isinstance(prop, str) or not isinstance(op, str) or not isinstance(value, str):
        raise NotExpandable(f"filter {dict(flt)!r} needs property, op and value")
    if prop in ("concept", "code"):
        concept = cs.get(value)
        root = concept.code if concept else None
        if op == "is-a":
            return {root, *cs.descendants(root)} if root else set()
        if op == "descendent-of":
            return set(cs.descendants(root)) if root else set()
        if op == "is-not-a":
            below = {root, *cs.descendants(root)} if root else set()
            return set(cs.concepts) - below
        if op == "generalizes":
            return {root, *cs.ancestors(root)} if root else set()
        if op == "=":
            return {root} if root else set()
        if op == "in":
            return {c for c in _split(value) if c in cs.concepts}
        if op == "not-in":
            return set(cs.concepts) - _split(value)
        if op == "regex":
            pattern = _regex(value)
            return {c for c in cs.concepts if pattern.fullmatch(c)}
        raise NotExpandable(f"filter op {op!r} on {prop!r} is not supported")
    if prop == "parent" and op == "=":
        return set(cs.concepts[value].children) if value in cs.concepts else set()
    if prop == "child" and op == "=":
        return set(cs.concepts[value].parents) if value in cs.concepts else set()
    if prop not in cs.property_types and prop not in ("status", "inactive", "notSelectable"):
        raise NotExpandable(f"{cs.url} has no property {prop!r} to filter on")
    if op == "=":
        return {c.code for c in cs.concepts.values() if value in c.property_strings(prop)}
    if op == "in":
        wanted = _split(value)
        return {c.code for c in cs.concepts.values() if wanted & set(c.property_strings(prop))}
    if op == "not-in":
        unwanted = _split(value)
        return {c.code for c in cs.concepts.values() if not unwanted & set(c.property_strings(prop))}
    if op == "regex":
        pattern = _regex(value)
        return {c.code for c in cs.concepts.values()
                if any(pattern.fullmatch(v) for v in c.property_strings(prop))}
    if op == "exists":
        want = value == "true"
        return {c.code for c in cs.concepts.values() if bool(c.property_strings(prop)) == want}
    raise NotExpandable(f"filter op {op!r} on property {prop!r} is not supported")


def _system_part(part: Mapping[str, Any], code_system: CodeSystemResolver) -> list[Item] | None:
    system = part.get("system")
    if not isinstance(system, str):
        return None
    version = part.get("version")
    cs = code_system(system, version)
    concepts = part.get("concept")
    if concepts:
        items = []
        for c in concepts:
            code = c.get("code")
            if not isinstance(code, str):
                continue
            known = cs.get(code) if cs is not None else None
            if known is not None and cs is not None:
                base = _item(cs, known)
                items.append(Item(base.system, base.code, c.get("display") or base.display,
                                  base.version, base.inactive, base.abstract,
                                  _designations_merge(c, base.designations)))
            elif cs is None or not cs.complete:
                items.append(Item(system, code, c.get("display"), version, False, False,
                                  _designations_merge(c, ())))
            # a code the (complete) system does not have is not in the value set
        return items
    if cs is None:
        raise NotExpandable(f"the code system {system}{'|' + version if version else ''} is not"
                            " known to this server")
    if not cs.complete:
        raise NotExpandable(f"the code system {system} is not complete here (content"
                            f" {cs.content})")
    codes: set[str] | None = None
    for flt in part.get("filter", ()):
        found = _filter_codes(cs, flt)
        codes = found if codes is None else codes & found
    return [_item(cs, cs.concepts[c]) for c in cs.order if codes is None or c in codes]


def _designations_merge(raw: Mapping[str, Any], known: tuple[Designation, ...]) -> tuple[Designation, ...]:
    extra = tuple(Designation(str(d["value"]), d.get("language"), d.get("use"))
                  for d in raw.get("designation", ()) if isinstance(d, dict) and d.get("value"))
    return extra + known if extra else known


def _part(part: Mapping[str, Any], code_system: CodeSystemResolver,
          value_set: ValueSetResolver) -> list[Item]:
    items = _system_part(part, code_system)
    imports = part.get("valueSet") or ()
    if not imports:
        if items is None:
            raise NotExpandable("an include/exclude has neither system nor valueSet")
        return items
    sets = [value_set(str(url)) for url in imports]
    keys = frozenset.intersection(*(s.keys for s in sets))
    if items is not None:
        return [i for i in items if (i.system, i.code) in keys]
    first = sets[0]
    return [i for i in first.items if (i.system, i.code) in keys]


def _contains(raw: Iterable[Mapping[str, Any]]) -> Iterable[Item]:
    for c in raw:
        if isinstance(c.get("system"), str) and isinstance(c.get("code"), str):
            yield Item(c["system"], c["code"], c.get("display"), c.get("version"),
                       c.get("inactive") is True, c.get("abstract") is True,
                       _designations_merge(c, ()))
        yield from _contains(c.get("contains", ()))


def expand(resource: Mapping[str, Any], code_system: CodeSystemResolver,
           value_set: ValueSetResolver) -> Expansion:
    """All codes of the ValueSet ``resource`` (``compose``, else its stored ``expansion``)."""
    compose = resource.get("compose")
    if not isinstance(compose, Mapping):
        expansion = resource.get("expansion")
        if isinstance(expansion, Mapping) and "contains" in expansion:
            return Expansion.of(_contains(expansion["contains"]))
        raise NotExpandable(f"ValueSet {resource.get('url')} has neither compose nor expansion")
    items: list[Item] = []
    for part in compose.get("include", ()):
        items.extend(_part(part, code_system, value_set))
    excluded: set[Key] = set()
    for part in compose.get("exclude", ()):
        excluded.update((i.system, i.code) for i in _part(part, code_system, value_set))
    if compose.get("inactive") is False:
        items = [i for i in items if not i.inactive]
    return Expansion.of(i for i in items if (i.system, i.code) not in excluded)
