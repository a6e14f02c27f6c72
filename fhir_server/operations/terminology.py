"""Terminology operations (https://hl7.org/fhir/R4/terminology-service.html):
``ValueSet/$expand``, ``ValueSet/$validate-code``, ``CodeSystem/$lookup``,
``CodeSystem/$validate-code``, ``CodeSystem/$subsumes``, ``ConceptMap/$translate``.

Each function takes the parsed parameters (:mod:`.terminology_input`) and, at instance level, the
stored resource; it returns the response resource. Resolution at type level: the terminology
service (``terminology/`` and the R4 core tables) by canonical URL, then a stored resource with that
``url`` (so a client's own ValueSet or ConceptMap works too), else 404 naming the parameter.

Errors: a missing or malformed parameter, an unknown code given to ``$lookup``/``$subsumes``: 400;
an unknown ValueSet/CodeSystem/ConceptMap: 404; a ValueSet that draws on systems this server does
not hold (SNOMED CT, LOINC ...), or a code outside the fragment of a CodeSystem held here: 422
``not-supported``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from fhir_server.errors import InvalidRequest, NotFound
from fhir_server.interactions.context import Services
from fhir_server.operations.terminology_input import Param, declare, parameters
from fhir_server.search.query import build_search
from fhir_server.store import SearchQuery
from fhir_server.terminology.codesystem import CodeSystemIndex, Concept
from fhir_server.terminology.conceptmap import ConceptMaps
from fhir_server.terminology.expansion import Expansion, NotExpandable
from fhir_server.terminology.service import CannotExpand, describe, split_canonical

Json = dict[str, Any]

EXPAND = declare(Param("url", "uri"), Param("valueSet", "resource"),
                 Param("valueSetVersion", "string"), Param("filter", "string"),
                 Param("count", "integer"), Param("offset", "integer"),
                 Param("includeDesignations", "boolean"), Param("activeOnly", "boolean"))
LOOKUP = declare(Param("system", "uri"), Param("code", "code"), Param("version", "string"),
                 Param("coding", "Coding"), Param("property", "code", repeats=True))
VS_VALIDATE = declare(Param("url", "uri"), Param("valueSet", "resource"),
                      Param("valueSetVersion", "string"), Param("code", "code"),
                      Param("system", "uri"), Param("systemVersion", "string"),
                      Param("display", "string"), Param("coding", "Coding"),
                      Param("codeableConcept", "CodeableConcept"))
CS_VALIDATE = declare(Param("url", "uri"), Param("codeSystem", "resource"), Param("code", "code"),
                      Param("version", "string"), Param("display", "string"),
                      Param("coding", "Coding"), Param("codeableConcept", "CodeableConcept"))
TRANSLATE = declare(Param("url", "uri"), Param("conceptMap", "resource"),
                    Param("conceptMapVersion", "string"), Param("code", "code"),
                    Param("system", "uri"), Param("version", "string"), Param("source", "uri"),
                    Param("coding", "Coding"), Param("codeableConcept", "CodeableConcept"),
                    Param("target", "uri"), Param("targetsystem", "uri"),
                    Param("reverse", "boolean"))
SUBSUMES = declare(Param("codeA", "code"), Param("codeB", "code"), Param("system", "uri"),
                   Param("version", "string"), Param("codingA", "Coding"),
                   Param("codingB", "Coding"))


def _with_version(url: str, version: str | None) -> str:
    return f"{url}|{version}" if version and "|" not in url else url


def _stored(svc: Services, rtype: str, canonical: str) -> Json | None:
    """A stored ``rtype`` whose ``url`` (and version, when given) matches ``canonical``."""
    url, version = split_canonical(canonical)
    request = build_search((rtype,), [("url", url)])
    for row in svc.store.search(SearchQuery((rtype,), request.where, limit=20)).rows:
        if row.body is None:
            continue
        resource: Json = orjson.loads(row.body)
        if resource.get("url") == url and (version is None or resource.get("version") == version):
            return resource
    return None


def _check_type(resource: Json, rtype: str, name: str) -> Json:
    if resource.get("resourceType") != rtype:
        raise InvalidRequest(f"{name} must be a {rtype}", expression=name)
    return resource


# -- ValueSet ---------------------------------------------------------------------------------------

def _value_set(svc: Services, p: Json, instance: Json | None) -> tuple[Json, Expansion]:
    term = svc.terminology
    if instance is not None:
        resource = instance
    elif "valueSet" in p:
        resource = _check_type(p["valueSet"], "ValueSet", "valueSet")
    elif "url" in p:
        url = _with_version(p["url"], p.get("valueSetVersion"))
        known = term.value_set(url)
        stored = None if known is not None else _stored(svc, "ValueSet", url)
        if known is None and stored is None:
            raise NotFound(f"ValueSet {url} is not known to this server", expression="url")
        resource = known if known is not None else stored  # type: ignore[assignment]
    else:
        raise InvalidRequest("url (or valueSet) is required", expression="url")
    try:
        return resource, term.expansion_of(resource)
    except NotExpandable as exc:
        raise CannotExpand(f"ValueSet {resource.get('url', '')} cannot be expanded here: {exc}") from exc


def expand(svc: Services, p: Json, instance: Json | None = None) -> Json:
    resource, exp = _value_set(svc, p, instance)
    if p.get("activeOnly"):
        exp = Expansion.of(i for i in exp.items if not i.inactive)
    return svc.terminology.expansion_resource(resource, exp, p.get("filter"), p.get("offset", 0),
                                              p.get("count"), p.get("includeDesignations", False))


def _codings(p: Json, system_param: str | None = "system") -> list[tuple[str | None, str, str | None]]:
    """(system, code, display) to check: ``code`` (+ ``system``, ``display``), ``coding`` or the
    codings of ``codeableConcept``."""
    out: list[tuple[str | None, str, str | None]] = []
    if "code" in p:
        out.append((p.get(system_param) if system_param else None, p["code"], p.get("display")))
    for name in ("coding", "codeableConcept"):
        if name not in p:
            continue
        codings = [p[name]] if name == "coding" else p[name].get("coding", [])
        for i, c in enumerate(codings):
            if not isinstance(c, dict) or not isinstance(c.get("code"), str):
                where = name if name == "coding" else f"{name}.coding[{i}]"
                raise InvalidRequest(f"{where} needs a code", expression=where)
            out.append((c.get("system"), c["code"], c.get("display")))
    if not out:
        raise InvalidRequest("code, coding or codeableConcept is required", expression="code")
    return out


def _result(results: Iterable[tuple[bool, str | None, str | None]]) -> Json:
    found = list(results)
    ok = next((r for r in found if r[0]), None)
    if ok is not None:
        return parameters(("result", "valueBoolean", True), ("display", "valueString", ok[2]))
    messages = "; ".join(m for _, m, _ in found if m)
    display = next((d for _, _, d in found if d), None)
    return parameters(("result", "valueBoolean", False), ("message", "valueString", messages or None),
                      ("display", "valueString", display))


def validate_value_set_code(svc: Services, p: Json, instance: Json | None = None) -> Json:
    resource, exp = _value_set(svc, p, instance)
    label = resource.get("url") or resource.get("id") or "ValueSet"
    checks: list[tuple[bool, str | None, str | None]] = []
    for system, code, display in _codings(p):
        r = svc.terminology.check_in(exp, label, system, code, display)
        checks.append((bool(r.result), r.message, r.display))
    return _result(checks)


# -- CodeSystem -------------------------------------------------------------------------------------

def _code_system(svc: Services, url: str | None, version: str | None, instance: Json | None,
                 param: str = "system", given: Json | None = None) -> CodeSystemIndex:
    if instance is not None:
        return CodeSystemIndex(instance)
    if given is not None:
        return CodeSystemIndex(_check_type(given, "CodeSystem", "codeSystem"))
    if not url:
        raise InvalidRequest(f"{param} is required", expression=param)
    cs = svc.terminology.code_system(url, version)
    if cs is None:
        stored = _stored(svc, "CodeSystem", _with_version(url, version))
        if stored is None:
            shown = _with_version(url, version)
            raise NotFound(f"CodeSystem {shown} is not known to this server", expression=param)
        cs = CodeSystemIndex(stored)
    return cs


def _concept(cs: CodeSystemIndex, code: str, param: str) -> Concept:
    concept = cs.get(code)
    if concept is None:
        partial = "" if cs.complete else f" (this server holds only a {cs.content} of it)"
        raise InvalidRequest(f"{code!r} is not a code of {cs.url}{partial}", expression=param)
    return concept


def lookup(svc: Services, p: Json, instance: Json | None = None) -> Json:
    coding = p.get("coding", {})
    system = p.get("system") or coding.get("system")
    code = p.get("code") or coding.get("code")
    if not code:
        raise InvalidRequest("code (or coding) is required", expression="code")
    cs = _code_system(svc, system, p.get("version") or coding.get("version"), instance)
    info = describe(cs, _concept(cs, code, "code"))
    wanted = set(p.get("property", ()))
    out = parameters(("name", "valueString", info["name"]), ("version", "valueString", info["version"]),
                     ("display", "valueString", info["display"]))
    items = out["parameter"]
    if info["definition"] and (not wanted or "definition" in wanted):
        items.append({"name": "definition", "valueString": info["definition"]})
    if not wanted or "designation" in wanted:
        for d in info["designation"]:
            parts = [{"name": "language", "valueCode": d["language"]}] if "language" in d else []
            if "use" in d:
                parts.append({"name": "use", "valueCoding": d["use"]})
            parts.append({"name": "value", "valueString": d["value"]})
            items.append({"name": "designation", "part": parts})
    for prop in info["property"]:
        if wanted and prop["code"] not in wanted:
            continue
        key = next(k for k in prop if k != "code")
        items.append({"name": "property", "part": [{"name": "code", "valueCode": prop["code"]},
                                                     {"name": "value", key: prop[key]}]})
    return out


def validate_code_system_code(svc: Services, p: Json, instance: Json | None = None) -> Json:
    cs = _code_system(svc, p.get("url"), p.get("version"), instance, "url", p.get("codeSystem"))
    checks: list[tuple[bool, str | None, str | None]] = []
    for system, code, display in _codings(p, None):
        if system is not None and system != cs.url:
            checks.append((False, f"the system {system!r} is not {cs.url}", None))
            continue
        concept = cs.get(code)
        if concept is None:
            if not cs.complete:
                raise CannotExpand(f"{cs.url} is held here only as a {cs.content}: cannot tell"
                                   f" whether {code!r} is one of its codes")
            checks.append((False, f"{code!r} is not a code of {cs.url}", None))
            continue
        if display is not None and not _display_matches(concept, display):
            checks.append((False, f"the display {display!r} is not a display of {code!r}"
                           f" (expected {concept.display!r})", concept.display))
            continue
        checks.append((True, None, concept.display))
    return _result(checks)


def _display_matches(concept: Concept, display: str) -> bool:
    wanted = display.strip().casefold()
    return any(t.strip().casefold() == wanted
               for t in (concept.display, *(d.value for d in concept.designations)) if t)


def subsumes(svc: Services, p: Json, instance: Json | None = None) -> Json:
    a = p.get("codeA") or p.get("codingA", {}).get("code")
    b = p.get("codeB") or p.get("codingB", {}).get("code")
    system = p.get("system")
    for name in ("codingA", "codingB"):
        other = p.get(name, {}).get("system")
        if other and system and other != system:
            raise InvalidRequest(f"{name}.system {other!r} differs from system {system!r}",
                                 expression=name)
        system = system or other
    for name, value in (("codeA", a), ("codeB", b)):
        if not value:
            raise InvalidRequest(f"{name} (or {name.replace('code', 'coding')}) is required",
                                 expression=name)
    assert a is not None and b is not None
    cs = _code_system(svc, system, p.get("version"), instance)
    outcome = cs.subsumes(_concept(cs, a, "codeA").code, _concept(cs, b, "codeB").code)
    return parameters(("outcome", "valueCode", outcome))


# -- ConceptMap -------------------------------------------------------------------------------------

def translate(svc: Services, p: Json, instance: Json | None = None) -> Json:
    if p.get("reverse"):
        raise InvalidRequest("reverse translation is not supported", expression="reverse")
    codings = _codings(p)
    url = p.get("url")
    maps = svc.terminology.concept_maps
    if instance is not None or "conceptMap" in p:
        given = instance if instance is not None else _check_type(p["conceptMap"], "ConceptMap",
                                                                    "conceptMap")
        maps, url = ConceptMaps([given]), None
    elif url is not None:
        url = _with_version(url, p.get("conceptMapVersion"))
        if split_canonical(url)[0] not in maps.maps:
            stored = _stored(svc, "ConceptMap", url)
            if stored is None:
                raise NotFound(f"ConceptMap {url} is not known to this server", expression="url")
            maps, url = ConceptMaps([stored]), None
    matches: list[Json] = []
    positive = False
    for system, code, _display in codings:
        if not system:
            raise InvalidRequest("system is required with code", expression="system")
        for t in maps.translate(system, code, url=url, source=p.get("source"), target=p.get("target"),
                                target_system=p.get("targetsystem")):
            positive = positive or t.positive
            part: list[Json] = [{"name": "equivalence", "valueCode": t.equivalence}]
            if t.code:
                concept = {"system": t.system, "code": t.code}
                if t.display:
                    concept["display"] = t.display
                part.append({"name": "concept", "valueCoding": concept})
            part.append({"name": "source", "valueUri": t.map_url})
            matches.append({"name": "match", "part": part})
    shown = ", ".join(f"{s}|{c}" for s, c, _ in codings)
    out = parameters(("result", "valueBoolean", positive),
                     ("message", "valueString", None if positive else
                      f"no translation of {shown} found" + (" (only unmatched/disjoint entries)"
                                                            if matches else "")))
    out["parameter"].extend(matches)
    return out
