"""Typed index entries of a resource, one per value of each of its search parameters.

:func:`extract` evaluates every search parameter of the resource's type (compiled once per type,
see :mod:`fhir_server.search.fhirpath`) and turns each value into entries by parameter type:

* token: Coding, CodeableConcept (each coding, and its ``text``), Identifier (``type_system``/
  ``type_code`` from ``Identifier.type`` for ``:of-type``), ContactPoint (its ``value`` as the code,
  as HAPI does), code/id/string/uri/boolean primitives (code only); ``text`` is the display or
  CodeableConcept text for ``:text``;
* string: ``norm`` (NFKD, diacritics dropped, case-folded, whitespace collapsed) and ``exact``;
  HumanName and Address are expanded into their parts and ``text``;
* date: a half-open [low, high) in UTC microseconds (a partial date covers its whole precision; a
  dateTime without a time zone is taken as UTC, see :mod:`fhir_server.search.dates`); Period
  (an open end is :data:`~fhir_server.search.dates.DATE_MIN_US`/``DATE_MAX_US``), Timing.event;
* number: the exact ``value`` and its implicit precision range ``low``/``high``;
* quantity: ``value``, its range, ``system``/``code``/``unit``; Range gives low/high without value;
  Money gives the ISO 4217 currency as code;
* reference: ``type``/``id``/``version`` for literal references (relative, or absolute with a
  ``Type/id`` tail: those also keep ``url``), ``url`` (+ ``version`` from ``url|version``) for
  canonicals and other URIs, ``identifier_*`` for logical references;
* uri: ``value``;
* composite: one entry per combination of component values taken from the same element.

Parameters without an expression and ``_has _type _text _content _list _query`` are not indexed,
nor are ``special`` parameters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from itertools import product
from typing import Any, ClassVar

from fhir_server.errors import FhirError
from fhir_server.search.dates import DATE_MAX_US, DATE_MIN_US, date_range, number_range
from fhir_server.search.fhirpath import CompiledPath, compile_path
from fhir_server.search.params import Registry, SearchParam
from fhir_server.search.params import registry as default_registry

NOT_INDEXED = frozenset({"_has", "_type", "_text", "_content", "_list", "_query"})


@dataclass(frozen=True, slots=True)
class TokenEntry:
    param: str
    system: str | None
    code: str | None
    text: str | None = None
    type_system: str | None = None
    type_code: str | None = None
    param_type: ClassVar[str] = "token"


@dataclass(frozen=True, slots=True)
class StringEntry:
    param: str
    norm: str
    exact: str
    param_type: ClassVar[str] = "string"


@dataclass(frozen=True, slots=True)
class DateEntry:
    param: str
    low: int
    high: int
    param_type: ClassVar[str] = "date"


@dataclass(frozen=True, slots=True)
class NumberEntry:
    param: str
    value: Decimal
    low: Decimal
    high: Decimal
    param_type: ClassVar[str] = "number"


@dataclass(frozen=True, slots=True)
class QuantityEntry:
    param: str
    value: Decimal | None
    low: Decimal | None
    high: Decimal | None
    system: str | None
    code: str | None
    unit: str | None
    param_type: ClassVar[str] = "quantity"


@dataclass(frozen=True, slots=True)
class ReferenceEntry:
    param: str
    type: str | None = None
    id: str | None = None
    version: str | None = None
    url: str | None = None
    identifier_system: str | None = None
    identifier_value: str | None = None
    param_type: ClassVar[str] = "reference"


@dataclass(frozen=True, slots=True)
class UriEntry:
    param: str
    value: str
    param_type: ClassVar[str] = "uri"


@dataclass(frozen=True, slots=True)
class CompositeEntry:
    param: str
    components: tuple[IndexEntry, ...]
    param_type: ClassVar[str] = "composite"


IndexEntry = (TokenEntry | StringEntry | DateEntry | NumberEntry | QuantityEntry | ReferenceEntry
              | UriEntry | CompositeEntry)
Converter = Callable[[str, Any, "str | None"], Iterator[IndexEntry]]


# -- string ---------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """Search form of a string: accents removed (NFKD), case-folded, whitespace collapsed."""
    if text.isascii():  # NFKD changes no ASCII text, and ASCII case-folding is lower()
        return _SPACE.sub(" ", text.lower()).strip()
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACE.sub(" ", stripped.casefold()).strip()


_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _strings(param: str, value: Any, ftype: str | None) -> Iterator[IndexEntry]:
    if isinstance(value, str):
        yield StringEntry(param, normalise(value), value)
        return
    if not isinstance(value, dict):
        return
    if ftype == "HumanName" or (ftype is None and ("family" in value or "given" in value)):
        parts: tuple[str, ...] = _NAME_PARTS
    elif ftype == "Address" or (ftype is None and ("city" in value or "line" in value)):
        parts = _ADDRESS_PARTS
    else:
        return
    for part in parts:
        got = value.get(part)
        for item in got if isinstance(got, list) else [got]:
            if isinstance(item, str):
                yield StringEntry(param, normalise(item), item)


# -- token ----------------------------------------------------------------------------------------

def _coding(param: str, coding: Any, text: str | None = None) -> Iterator[IndexEntry]:
    if isinstance(coding, dict) and ("code" in coding or "system" in coding):
        shown = coding.get("display") if text is None else text
        yield TokenEntry(param, coding.get("system"), coding.get("code"),
                         normalise(shown) if isinstance(shown, str) else None)


def _tokens(param: str, value: Any, ftype: str | None) -> Iterator[IndexEntry]:
    if isinstance(value, bool):
        yield TokenEntry(param, None, "true" if value else "false")
        return
    if isinstance(value, str):
        yield TokenEntry(param, None, value)
        return
    if not isinstance(value, dict):
        return
    if ftype is None:
        ftype = ("CodeableConcept" if "coding" in value or set(value) == {"text"}
                 else "Coding" if "code" in value
                 else "ContactPoint" if value.get("system") in _CONTACT_SYSTEMS
                 else "Identifier" if "value" in value else None)
    if ftype == "CodeableConcept":
        text = value.get("text")
        codings = value.get("coding") or []
        for coding in codings:
            yield from _coding(param, coding, text if isinstance(text, str) else None)
        if isinstance(text, str) and not codings:
            yield TokenEntry(param, None, None, normalise(text))
    elif ftype == "Coding":
        yield from _coding(param, value)
    elif ftype == "Identifier":
        id_type = value.get("type") or {}
        type_coding = (id_type.get("coding") or [{}])[0]
        type_text = id_type.get("text")
        if "value" in value or "system" in value:
            yield TokenEntry(param, value.get("system"), value.get("value"),
                             normalise(type_text) if isinstance(type_text, str) else None,
                             type_coding.get("system"), type_coding.get("code"))
    elif ftype == "ContactPoint" and isinstance(value.get("value"), str):
        yield TokenEntry(param, None, value["value"])


_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


# -- date -----------------------------------------------------------------------------------------

def _range(text: Any) -> tuple[int, int] | None:
    if not isinstance(text, str):
        return None
    try:
        return date_range(text, "date")
    except FhirError:
        return None  # a time, or a malformed value: nothing to index


def _dates(param: str, value: Any, ftype: str | None) -> Iterator[IndexEntry]:
    if isinstance(value, str):
        rng = _range(value)
        if rng:
            yield DateEntry(param, *rng)
        return
    if not isinstance(value, dict):
        return
    if ftype == "Period" or (ftype is None and ("start" in value or "end" in value)):
        start, end = _range(value.get("start")), _range(value.get("end"))
        if start or end:
            yield DateEntry(param, start[0] if start else DATE_MIN_US,
                            end[1] if end else DATE_MAX_US)
    elif ftype == "Timing" or (ftype is None and "event" in value):
        for event in value.get("event") or []:
            rng = _range(event)
            if rng:
                yield DateEntry(param, *rng)


# -- number and quantity --------------------------------------------------------------------------

def _decimal(value: Any) -> tuple[Decimal, Decimal, Decimal] | None:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None
    try:
        low, high = number_range(str(value), "number")
    except (FhirError, InvalidOperation):
        return None
    return Decimal(value), low, high


def _numbers(param: str, value: Any, ftype: str | None) -> Iterator[IndexEntry]:
    got = _decimal(value)
    if got:
        yield NumberEntry(param, *got)


def _quantities(param: str, value: Any, ftype: str | None) -> Iterator[IndexEntry]:
    if not isinstance(value, dict):
        return
    if "currency" in value and "value" in value:  # Money
        got = _decimal(value["value"])
        if got:
            yield QuantityEntry(param, *got, "urn:iso:std:iso:4217", value["currency"], None)
        return
    if ftype == "Range" or (ftype is None and ("low" in value or "high" in value)):
        low, high = value.get("low") or {}, value.get("high") or {}
        lo, hi = _decimal(low.get("value")), _decimal(high.get("value"))
        if lo or hi:
            unit_of = low if lo else high
            yield QuantityEntry(param, None, lo[0] if lo else None, hi[0] if hi else None,
                                unit_of.get("system"), unit_of.get("code"), unit_of.get("unit"))
        return
    got = _decimal(value.get("value"))
    if got:
        yield QuantityEntry(param, *got, value.get("system"), value.get("code"), value.get("unit"))


# -- reference and uri ----------------------------------------------------------------------------

_LITERAL = re.compile(
    r"(?:(?P<base>https?://.+)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/(?P<version>[^/]+))?")


def _canonical(param: str, text: str) -> ReferenceEntry:
    url, _, version = text.partition("|")
    return ReferenceEntry(param, url=url, version=version or None)


def _references(param: str, value: Any, ftype: str | None) -> Iterator[IndexEntry]:
    if isinstance(value, str):  # canonical / uri
        yield _canonical(param, value)
        return
    if not isinstance(value, dict):
        return
    ref = value.get("reference")
    if isinstance(ref, str) and ref.startswith("#"):  # a contained resource: present, not searchable
        yield ReferenceEntry(param, url=ref)
    elif isinstance(ref, str):
        m = _LITERAL.fullmatch(ref)
        if m:
            yield ReferenceEntry(param, m["type"], m["id"], m["version"],
                                 ref if m["base"] else None)
        else:
            yield _canonical(param, ref)
    ident = value.get("identifier")
    if isinstance(ident, dict) and ("value" in ident or "system" in ident):
        yield ReferenceEntry(param, identifier_system=ident.get("system"),
                             identifier_value=ident.get("value"))


def _uris(param: str, value: Any, ftype: str | None) -> Iterator[IndexEntry]:
    if isinstance(value, str):
        yield UriEntry(param, value)


CONVERTERS: dict[str, Converter] = {
    "token": _tokens, "string": _strings, "date": _dates, "number": _numbers,
    "quantity": _quantities, "reference": _references, "uri": _uris,
}


# -- plans ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Plan:
    param: SearchParam
    path: CompiledPath
    convert: Converter | None  # None for composites
    #: (component code, compiled per element type of the composite's expression, converter)
    components: tuple[tuple[str, dict[str, CompiledPath], Converter], ...] = ()


def _plan_for(reg: Registry, param: SearchParam) -> _Plan | None:
    if param.code in NOT_INDEXED or param.type == "special" or not param.expression:
        return None
    path = compile_path(param.expression, param.base)
    if param.type != "composite":
        return _Plan(param, path, CONVERTERS[param.type])
    components = []
    for code, expression in param.components:
        sub = reg.get(param.base, code)
        if sub is None or sub.type not in CONVERTERS:
            return None
        compiled = {t: compile_path(expression, t) for t in path.types}
        components.append((code, compiled, CONVERTERS[sub.type]))
    return _Plan(param, path, None, tuple(components))


@cache
def _plans(reg: Registry, rtype: str) -> tuple[_Plan, ...]:
    plans = (_plan_for(reg, p) for _, p in sorted(reg.for_type(rtype).items()))
    return tuple(p for p in plans if p is not None)


def extract(resource: dict[str, Any], registry: Registry | None = None) -> list[IndexEntry]:
    """All index entries of ``resource`` (duplicates removed, in parameter order)."""
    reg = registry or default_registry()
    out: dict[IndexEntry, None] = {}
    for plan in _plans(reg, resource["resourceType"]):
        code = plan.param.code
        if plan.convert is not None:
            for value, ftype in plan.path.typed(resource):
                for entry in plan.convert(code, value, ftype):
                    out[entry] = None
            continue
        for element, etype in plan.path.typed(resource):
            per_component: list[list[IndexEntry]] = []
            for sub_code, compiled, convert in plan.components:
                path = compiled.get(etype) if etype else None
                if path is None:  # composite expression run by fhirpathpy: types unknown
                    per_component = []
                    break
                per_component.append([e for v, t in path.typed(element)
                                      for e in convert(sub_code, v, t)])
            for combination in product(*per_component) if per_component else ():
                out[CompositeEntry(code, tuple(combination))] = None
    return list(out)
