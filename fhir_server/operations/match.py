"""``Patient/$match`` (https://hl7.org/fhir/R4/patient-operation-match.html).

Input: a Parameters resource with ``resource`` (a Patient, required), ``onlyCertainMatches``
(boolean) and ``count`` (positive integer); anything else is a 400.

**Certain** (score 1.0): a Patient, active or not, holding one of the input's card identifiers
(the systems for which ``IdentifierSystems.is_patient_card_system`` is true: EHC ID, card-system
master index, citizen ID, resident health card, social-security card, health record number, other
legal ID documents), superseded ones (``use: old``) included on either side. EHC IDs are compared
in upper case.

**Scored** otherwise. Candidates come from a few indexed searches (each capped at
:data:`CANDIDATES_PER_QUERY`): every phone (as given and as digits); birthdate + ``name`` (a
starts-with on text, family and given) for each family name and each text (whole, spaceless and
its first word); without a birth date, family + given and the texts. Each candidate is scored
(weights sum to 1.0):

=================  ======  =====================================================================
name               0.35    a full name equal after normalisation (NFKC, case- and accent-folded,
                           spaces and punctuation dropped): ``text``, or family+given in either
                           order, so 王小明 as ``text`` equals family 王 + given 小明;
                           0.15 when only the family name is equal
birthDate          0.25    equal (to the precision both give)
phone              0.20    a phone number equal (digits only, +86/0086 country code dropped)
gender             0.10    equal
address            0.10    a postal code, district or admin-division code (extension) equal
=================  ======  =====================================================================

Conflicts lower the score: a different birth date -0.25, a different gender (both male/female)
-0.1; a different active citizen ID (both sides, neither ``use: old``) means another person:
score 0. A scored match never reaches 1.0 (capped at 0.99). Grades: ``probable`` ≥ 0.8,
``possible`` ≥ 0.5, lower ones are dropped. For example name + birth date + gender + phone = 0.9
(probable), name + birth date + gender = 0.7 (possible).

Output: a ``searchset`` Bundle, entries by score (then id), each with ``search.score`` and the
``match-grade`` extension. ``onlyCertainMatches=true``: certain matches only, and none at all
(with an informational OperationOutcome) when more than one Patient is certain, as the
OperationDefinition asks. ``count`` caps the entries (default :data:`DEFAULT_COUNT`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.config import Settings
from fhir_server.errors import InvalidRequest
from fhir_server.fhir import jsonio
from fhir_server.fhir.bundles import bundle
from fhir_server.fhir.identifiers import OID_CIN, ext_admin_division, identifier_systems
from fhir_server.interactions.context import Services
from fhir_server.search.query import build_search
from fhir_server.store import SearchQuery, StoredResource

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
DEFAULT_COUNT = 20
CANDIDATES_PER_QUERY = 100
PROBABLE, POSSIBLE = 0.8, 0.5
W_NAME, W_FAMILY, W_BIRTH, W_PHONE, W_GENDER, W_ADDRESS = 0.35, 0.15, 0.25, 0.20, 0.10, 0.10
P_BIRTH, P_GENDER = 0.25, 0.10
MAX_SCORED = 0.99

_DROP = re.compile(r"[\s\-_.,·•'’()（）]+")


def _fail(message: str, expression: str = "Parameters") -> InvalidRequest:
    return InvalidRequest(message, expression=expression)


@dataclass(frozen=True, slots=True)
class MatchRequest:
    patient: dict[str, Any]
    only_certain: bool
    count: int


def parse(parameters: Any, settings: Settings) -> MatchRequest:
    """Validate the Parameters body; every departure from the OperationDefinition is a 400."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise _fail("Patient/$match takes a Parameters resource")
    allowed = {"resourceType", "id", "meta", "parameter"}
    extra = sorted(set(parameters) - allowed)
    if extra:
        raise _fail(f"Unexpected element {extra[0]!r} in Parameters", f"Parameters.{extra[0]}")
    items = parameters.get("parameter")
    if not isinstance(items, list) or not items:
        raise _fail("Parameters.parameter is required (at least the 'resource' parameter)")
    patient: dict[str, Any] | None = None
    only_certain: bool | None = None
    count: int | None = None
    for i, item in enumerate(items):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _fail("every parameter needs a name", where)
        name = item["name"]
        values = sorted(k for k in item if k != "name")
        if len(values) != 1:
            raise _fail(f"parameter {name!r} must have exactly one value", where)
        kind = values[0]
        value = item[kind]
        if name == "resource":
            if patient is not None:
                raise _fail("'resource' may be given only once", where)
            if kind != "resource" or not isinstance(value, dict):
                raise _fail("'resource' must hold a resource", where)
            if value.get("resourceType") != "Patient":
                raise _fail("'resource' must be a Patient", f"{where}.resource")
            patient = value
        elif name == "onlyCertainMatches":
            if only_certain is not None:
                raise _fail("'onlyCertainMatches' may be given only once", where)
            if kind != "valueBoolean" or not isinstance(value, bool):
                raise _fail("'onlyCertainMatches' must be a valueBoolean", where)
            only_certain = value
        elif name == "count":
            if count is not None:
                raise _fail("'count' may be given only once", where)
            if kind != "valueInteger" or isinstance(value, bool) or not isinstance(value, int):
                raise _fail("'count' must be a valueInteger", where)
            if value < 1:
                raise _fail("'count' must be at least 1", where)
            count = value
        else:
            raise _fail(f"Unknown parameter {name!r} for Patient/$match", where)
    if patient is None:
        raise _fail("The 'resource' parameter (a Patient) is required")
    return MatchRequest(patient, bool(only_certain),
                        min(count or DEFAULT_COUNT, settings.max_count))


# -- normalisation ---------------------------------------------------------------------------------

def norm(text: str) -> str:
    """NFKC, accents stripped, case-folded, spaces and punctuation dropped."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _DROP.sub("", plain.casefold())


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _names(patient: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in patient.get("name") or [] if isinstance(n, dict)]


def full_names(patient: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for name in _names(patient):
        for text in _strings(name.get("text")):
            if norm(text):
                out.add(norm(text))
        family = "".join(_strings(name.get("family")))
        given = "".join(_strings(name.get("given")))
        if family and given:
            out.add(norm(family + given))
            out.add(norm(given + family))
    return out


def families(patient: dict[str, Any]) -> set[str]:
    return {norm(f) for name in _names(patient) for f in _strings(name.get("family")) if norm(f)}


def phones(patient: dict[str, Any]) -> set[str]:
    out = set()
    for telecom in patient.get("telecom") or []:
        if isinstance(telecom, dict) and telecom.get("system") in ("phone", "sms", None):
            value = telecom.get("value")
            if isinstance(value, str):
                digits = re.sub(r"\D", "", value)
                if digits.startswith("0086"):
                    digits = digits[4:]
                elif digits.startswith("86") and len(digits) == 13:
                    digits = digits[2:]
                if len(digits) >= 5:
                    out.add(digits)
    return out


def _raw_phones(patient: dict[str, Any]) -> list[str]:
    return [t["value"] for t in patient.get("telecom") or []
            if isinstance(t, dict) and t.get("system") == "phone" and isinstance(t.get("value"), str)]


def address_keys(patient: dict[str, Any], base: str) -> set[str]:
    division = ext_admin_division(base)
    out = set()
    for address in patient.get("address") or []:
        if not isinstance(address, dict):
            continue
        postal = address.get("postalCode")
        if isinstance(postal, str) and postal.strip():
            out.add("postal:" + postal.strip())
        district = address.get("district")
        if isinstance(district, str) and norm(district):
            out.add("district:" + norm(district))
        for ext in address.get("extension") or []:
            if isinstance(ext, dict) and ext.get("url") == division and isinstance(
                    ext.get("valueCode"), str):
                out.add("division:" + ext["valueCode"])
    return out


def _identifiers(patient: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for ident in patient.get("identifier") or []:
        if (isinstance(ident, dict) and isinstance(ident.get("system"), str)
                and isinstance(ident.get("value"), str) and ident["value"]):
            yield ident


def card_identifiers(patient: dict[str, Any], base: str) -> list[tuple[str, str]]:
    systems = identifier_systems(base)
    out = []
    for ident in _identifiers(patient):
        system, value = ident["system"], ident["value"]
        if systems.is_patient_card_system(system):
            out.append((system, value))
            if system in (systems.ehc_id, systems.ehc_mindex) and value.upper() != value:
                out.append((system, value.upper()))
    return out


def _active_cins(patient: dict[str, Any]) -> set[str]:
    return {i["value"].upper() for i in _identifiers(patient)
            if i["system"] == OID_CIN and i.get("use") != "old"}


# -- scoring -------------------------------------------------------------------------------------

def score(query: dict[str, Any], candidate: dict[str, Any], base: str) -> float:
    """The weighted similarity of two Patients (module docstring), in [0, 0.99]."""
    mine, theirs = _active_cins(query), _active_cins(candidate)
    if mine and theirs and not mine & theirs:
        return 0.0
    total = 0.0
    if full_names(query) & full_names(candidate):
        total += W_NAME
    elif families(query) & families(candidate):
        total += W_FAMILY
    birth_q, birth_c = query.get("birthDate"), candidate.get("birthDate")
    if isinstance(birth_q, str) and isinstance(birth_c, str):
        precision = min(len(birth_q), len(birth_c))
        total += W_BIRTH if birth_q[:precision] == birth_c[:precision] else -P_BIRTH
    if phones(query) & phones(candidate):
        total += W_PHONE
    gender_q, gender_c = query.get("gender"), candidate.get("gender")
    if isinstance(gender_q, str) and gender_q == gender_c:
        total += W_GENDER
    elif {gender_q, gender_c} == {"male", "female"}:
        total -= P_GENDER
    if address_keys(query, base) & address_keys(candidate, base):
        total += W_ADDRESS
    return round(max(0.0, min(total, MAX_SCORED)), 4)


def grade(value: float) -> str | None:
    if value >= 1.0:
        return "certain"
    if value >= PROBABLE:
        return "probable"
    if value >= POSSIBLE:
        return "possible"
    return None


# -- candidates ----------------------------------------------------------------------------------

def _search(svc: Services, base: str, pairs: list[tuple[str, str]]) -> list[StoredResource]:
    request = build_search(("Patient",), pairs, strict=True, base_url=base)
    page = svc.store.search(SearchQuery(("Patient",), request.where, limit=CANDIDATES_PER_QUERY))
    return page.rows


def _escape(value: str) -> str:
    """Escape search-value metacharacters (``\\``, ``,``, ``$``, ``|``)."""
    return re.sub(r"([\\,$|])", r"\\\1", value)


def _candidate_searches(patient: dict[str, Any]) -> Iterable[list[tuple[str, str]]]:
    birth = patient.get("birthDate") if isinstance(patient.get("birthDate"), str) else None
    numbers = {*_raw_phones(patient), *phones(patient)}
    for phone in sorted(numbers):
        yield [("phone", _escape(phone))]
    names = _names(patient)
    fams = {f.strip() for n in names for f in _strings(n.get("family")) if f.strip()}
    givens = {g.strip() for n in names for g in _strings(n.get("given")) if g.strip()}
    texts = {t.strip() for n in names for t in _strings(n.get("text")) if t.strip()}
    # ``name`` (starts-with on text, family and given) finds 王小明 written as text only or as
    # family 王 + given 小明; a text's first word and its spaceless form cover "王 小明"
    prefixes = fams | {t.split()[0] for t in texts} | {"".join(t.split()) for t in texts}
    if birth:
        for prefix in sorted(prefixes):
            yield [("birthdate", _escape(birth)), ("name", _escape(prefix))]
    else:
        for family in sorted(fams):
            for given in sorted(givens) or [""]:
                yield [("name", _escape(family)), *([("given", _escape(given))] if given else [])]
        for text in sorted(texts):
            yield [("name", _escape(text))]


def match(svc: Services, base: str, parameters: Any) -> dict[str, Any]:
    """The ``searchset`` Bundle of Patients matching ``parameters["resource"]``."""
    svc.access.require("Patient", "s")
    request = parse(parameters, svc.settings)
    canonical = svc.settings.canonical_base
    patient = request.patient

    found: dict[str, tuple[float, StoredResource]] = {}
    for system, ident in card_identifiers(patient, canonical):
        for row in _search(svc, base, [("identifier", f"{_escape(system)}|{_escape(ident)}")]):
            found[row.id] = (1.0, row)

    if not request.only_certain:
        rows: dict[str, StoredResource] = {}
        for pairs in _candidate_searches(patient):
            for row in _search(svc, base, pairs):
                rows.setdefault(row.id, row)
        for rid, row in rows.items():
            if rid in found or row.body is None:
                continue
            value = score(patient, jsonio.loads_trusted(row.body), canonical)
            if grade(value) is not None:
                found[rid] = (value, row)

    ranked = sorted(found.values(), key=lambda item: (-item[0], item[1].id))
    outcome: list[dict[str, Any]] = []
    if request.only_certain:
        ranked = [item for item in ranked if item[0] >= 1.0]
        if len(ranked) > 1:
            outcome.append(_outcome(
                f"{len(ranked)} Patients hold the given card identifiers; none is returned as"
                " a certain match (onlyCertainMatches=true)"))
            ranked = []
    ranked = ranked[: request.count]
    entries = [_entry(base, value, row) for value, row in ranked]
    return bundle("searchset", entries + outcome, [], len(entries))


def _entry(base: str, value: float, row: StoredResource) -> dict[str, Any]:
    assert row.body is not None
    return {"fullUrl": f"{base}/Patient/{row.id}", "resource": orjson.Fragment(row.body),
            "search": {"mode": "match", "score": value, "extension": [
                {"url": MATCH_GRADE, "valueCode": grade(value)}]}}


def _outcome(text: str) -> dict[str, Any]:
    return {"resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "multiple-matches", "diagnostics": text}]},
        "search": {"mode": "outcome"}}
