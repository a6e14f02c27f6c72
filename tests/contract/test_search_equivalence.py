"""Property test: the store's compiled search agrees with the in-memory IR evaluator.

Random data (Patients, Observations, Encounters built from a small vocabulary with accents, Chinese
characters, dates at every precision, identifiers with and without systems, quantities, references
between them) is loaded through the interactions (so it is indexed exactly as over HTTP); random
query strings over the same vocabulary go through ``build_search``, and the ids from
``store.search`` (one large page) and ``store.count`` must equal the ids of
:func:`fhir_server.search.evaluate.search` over :func:`fhir_server.search.index.extract` of the
stored bodies. ``hypothesis`` is not a dependency: a seeded ``random.Random`` makes it deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from fhir_server.errors import InvalidRequest
from fhir_server.fhir import jsonio
from fhir_server.interactions.load import load
from fhir_server.search.evaluate import search as evaluate
from fhir_server.search.index import IndexEntry, extract
from fhir_server.search.query import build_search
from fhir_server.store import SearchQuery, Store

SEEDS = (11, 22, 33)
QUERIES_PER_SEED = 300
NOW = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z, for ``ap``
BASE = "http://localhost/fhir"

EHC = "https://fhir.demo-city.health.cn/sid/ehc-id"
CIN = "urn:oid:2.16.156.10011.1.3"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

FAMILIES = ["Wáng", "Wang", "王", "Li", "李", "Müller", "muller", "Zhāng", "张", "Smith",
            "Smith-Jones", "Ng"]
GIVENS = ["Xiǎomíng", "小明", "Anna", "Ánna", "Björn", "Na", "娜", "Jo", "John"]
GENDERS = ["male", "female", "other", "unknown"]
BIRTH_DATES = ["1990", "1990-05", "1990-05-01", "1985-12-31", "2000-02-29", "2000-03",
               "1990-05-02", "2021"]
ID_SYSTEMS = [EHC, CIN, None]
ID_VALUES = ["A1", "B2", "123", "x-9"]
OBS_CODES = [(LOINC, "8480-6", "Systolic blood pressure"), (LOINC, "8462-4", "收缩压"),
             (LOINC, "29463-7", "Body weight"), (None, "8480-6", None),
             ("http://snomed.info/sct", "27113001", "Body weight"), (LOINC, "8867-4", None)]
OBS_STATUS = ["final", "amended", "preliminary"]
QUANTITIES: list[tuple[str, str | None, str | None, str | None]] = [
    # value, unit, system, code
    ("70", "kg", UCUM, "kg"), ("70.0", "kg", UCUM, "kg"), ("70.25", "kg", None, None),
    ("118.5", "mmHg", UCUM, "mm[Hg]"), ("130", "mmHg", UCUM, "mm[Hg]"), ("130", "mmHg", None, None),
    ("0.5", "g", UCUM, "g"), ("-3", None, None, None), ("1e2", "kg", UCUM, "kg"),
    ("100", "kg", UCUM, "kg"),
]
DATES = ["2024", "2024-01", "2024-01-10", "2024-01-10T09:30:00+08:00", "2024-01-10T01:30:00Z",
         "2024-06-02", "2023-12-31T23:59:59Z", "2024-06-01T00:00:00Z", "2024-01-11"]
ENC_STATUS = ["finished", "in-progress", "planned"]
ENC_CLASS = ["AMB", "IMP", "EMER"]
VALUE_STRINGS = ["阳性", "positive", "Négatif", "neg"]

FIXED: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "hosp", "name": "成都市第一人民医院"},
    {"resourceType": "Organization", "id": "clinic", "name": "Clínica São José"},
    {"resourceType": "Practitioner", "id": "dr-li", "name": [{"family": "李", "given": ["医生"]}]},
    {"resourceType": "Practitioner", "id": "dr-who", "name": [{"family": "Smith"}]},
]
ORGS = ["hosp", "clinic", "gone"]
PRACTITIONERS = ["dr-li", "dr-who"]


def _maybe(rng: random.Random, p: float = 0.5) -> bool:
    return rng.random() < p


def _quantity(rng: random.Random) -> dict[str, Any]:
    value, unit, system, code = rng.choice(QUANTITIES)
    q: dict[str, Any] = {"value": Decimal(value)}
    if unit:
        q["unit"] = unit
    if system:
        q["system"] = system
    if code:
        q["code"] = code
    return q


def _codeable(rng: random.Random) -> dict[str, Any]:
    system, code, display = rng.choice(OBS_CODES)
    coding: dict[str, Any] = {"code": code}
    if system:
        coding["system"] = system
    if display and _maybe(rng):
        coding["display"] = display
    concept: dict[str, Any] = {"coding": [coding]}
    if _maybe(rng, 0.3):
        concept["text"] = rng.choice(["收缩压", "Body weight", "BP"])
    return concept


def dataset(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    patients = [f"p{n}" for n in range(20)]
    encounters = [f"e{n}" for n in range(14)]
    out: list[dict[str, Any]] = list(FIXED)
    claimed: set[str] = set()
    for pid in patients:
        p: dict[str, Any] = {"resourceType": "Patient", "id": pid}
        if _maybe(rng, 0.8):
            p["gender"] = rng.choice(GENDERS)
        if _maybe(rng, 0.8):
            p["birthDate"] = rng.choice(BIRTH_DATES)
        if _maybe(rng, 0.4):
            p["active"] = _maybe(rng)
        names = []
        for _ in range(rng.choice([0, 1, 1, 2])):
            name: dict[str, Any] = {}
            if _maybe(rng, 0.9):
                name["family"] = rng.choice(FAMILIES)
            if _maybe(rng, 0.7):
                name["given"] = rng.sample(GIVENS, rng.choice([1, 2]))
            if _maybe(rng, 0.2):
                name["text"] = f"{name.get('family', '')}{''.join(name.get('given', []))}" or "无名"
            if name:
                names.append(name)
        if names:
            p["name"] = names
        idents = []
        for _ in range(rng.choice([0, 1, 2])):
            ident: dict[str, Any] = {"value": rng.choice(ID_VALUES)}
            system = rng.choice(ID_SYSTEMS)
            if system:
                ident["system"] = system
            idents.append(ident)
        if idents:
            p["identifier"] = idents
            # A health-card identifier belongs to one active Patient (the platform enforces it):
            # a later Patient repeating one is an inactive duplicate, as after a merge.
            cards = {f"{i['system']}|{i['value']}" for i in idents if i.get("system")}
            if p.get("active") is not False:
                if cards & claimed:
                    p["active"] = False
                else:
                    claimed.update(cards)
        if _maybe(rng, 0.5):
            p["managingOrganization"] = {"reference": f"Organization/{rng.choice(ORGS)}"}
        if _maybe(rng, 0.4):
            p["generalPractitioner"] = [{"reference": f"Practitioner/{rng.choice(PRACTITIONERS)}"}]
        out.append(p)
    subjects = [*patients, "ghost"]
    for eid in encounters:
        e: dict[str, Any] = {"resourceType": "Encounter", "id": eid,
                             "status": rng.choice(ENC_STATUS),
                             "class": {"system": ACT, "code": rng.choice(ENC_CLASS)}}
        if _maybe(rng, 0.9):
            e["subject"] = {"reference": f"Patient/{rng.choice(subjects)}"}
        if _maybe(rng, 0.5):
            e["serviceProvider"] = {"reference": f"Organization/{rng.choice(ORGS)}"}
        if _maybe(rng, 0.4):
            e["participant"] = [{"individual": {
                "reference": f"Practitioner/{rng.choice(PRACTITIONERS)}"}}]
        if _maybe(rng, 0.8):
            period = {"start": rng.choice(DATES)}
            if _maybe(rng):
                period["end"] = rng.choice([d for d in DATES if d >= period["start"][:4]])
            e["period"] = period
        out.append(e)
    for n in range(26):
        o: dict[str, Any] = {"resourceType": "Observation", "id": f"o{n}",
                             "status": rng.choice(OBS_STATUS), "code": _codeable(rng)}
        if _maybe(rng, 0.9):
            o["subject"] = {"reference": f"Patient/{rng.choice(subjects)}"}
        if _maybe(rng, 0.5):
            o["encounter"] = {"reference": f"Encounter/{rng.choice(encounters)}"}
        if _maybe(rng, 0.3):
            o["performer"] = [{"reference": f"Practitioner/{rng.choice(PRACTITIONERS)}"}]
        when = rng.random()
        if when < 0.6:
            o["effectiveDateTime"] = rng.choice(DATES)
        elif when < 0.8:
            o["effectivePeriod"] = {"start": rng.choice(DATES[:3]), "end": rng.choice(DATES[5:6])}
        value = rng.random()
        if value < 0.6:
            o["valueQuantity"] = _quantity(rng)
        elif value < 0.75:
            o["valueString"] = rng.choice(VALUE_STRINGS)
        if _maybe(rng, 0.25):
            o["component"] = [{"code": _codeable(rng), "valueQuantity": _quantity(rng)}
                              for _ in range(rng.choice([1, 2]))]
        out.append(o)
    return out


# -- query generation -----------------------------------------------------------------------------

Gen = Callable[[random.Random], tuple[str, str]]
DATE_PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
QUERY_DATES = [*DATES, *BIRTH_DATES, "2024-01-10T09:30", "2024-01-10T09:30:00.000+08:00",
               "1990-05-01T12:00:00Z"]
QUERY_NUMBERS = ["70", "70.0", "70.25", "118.5", "130", "0.5", "-3", "100", "1e2", "69.99", "200",
                 "0"]
NAME_WORDS = ["wang", "Wáng", "王", "li", "李", "mül", "muller", "Müller", "zhang", "张", "smith",
              "smith-jones", "ann", "Ánna", "小", "娜", "jo", "bj", "ng", "x"]


def _ors(rng: random.Random, choose: Callable[[], str]) -> str:
    return ",".join(choose() for _ in range(rng.choice([1, 1, 1, 2])))


def _token_value(rng: random.Random, systems: Sequence[str | None], codes: Sequence[str]) -> str:
    system, code = rng.choice(list(systems)), rng.choice(list(codes))
    form = rng.random()
    if form < 0.35:
        return code
    if form < 0.6:
        return f"{system}|{code}" if system else f"|{code}"
    if form < 0.8:
        return f"|{code}"
    return f"{system}|" if system else code


def _token(name: str, systems: Sequence[str | None], codes: Sequence[str],
           texts: Sequence[str] = ()) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str]:
        r = rng.random()
        if r < 0.15:
            return f"{name}:not", _ors(rng, lambda: _token_value(rng, systems, codes))
        if r < 0.25 and texts:
            return f"{name}:text", rng.choice(list(texts))
        if r < 0.32:
            return f"{name}:missing", rng.choice(["true", "false"])
        return name, _ors(rng, lambda: _token_value(rng, systems, codes))
    return gen


def _string(name: str, words: Sequence[str]) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str]:
        modifier = rng.choice(["", "", ":exact", ":contains", ":missing"])
        if modifier == ":missing":
            return name + modifier, rng.choice(["true", "false"])
        return name + modifier, _ors(rng, lambda: rng.choice(list(words)))
    return gen


def _date(name: str) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str]:
        if _maybe(rng, 0.08):
            return f"{name}:missing", rng.choice(["true", "false"])
        return name, _ors(rng, lambda: rng.choice(DATE_PREFIXES) + rng.choice(QUERY_DATES))
    return gen


def _quantity_value(rng: random.Random) -> str:
    value = rng.choice(DATE_PREFIXES) + rng.choice(QUERY_NUMBERS)
    unit = rng.random()
    if unit < 0.5:
        return value
    if unit < 0.7:
        return f"{value}|{UCUM}|{rng.choice(['kg', 'mm[Hg]', 'g'])}"
    if unit < 0.85:
        return f"{value}||{rng.choice(['kg', 'mmHg', 'mm[Hg]'])}"
    return f"{value}|http://other|kg"


def _quantity_param(name: str) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str]:
        if _maybe(rng, 0.08):
            return f"{name}:missing", rng.choice(["true", "false"])
        return name, _ors(rng, lambda: _quantity_value(rng))
    return gen


def _reference(name: str, target: str, ids: Sequence[str]) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str]:
        form = rng.random()
        if form < 0.1:
            return f"{name}:missing", rng.choice(["true", "false"])
        if form < 0.4:
            return name, _ors(rng, lambda: f"{target}/{rng.choice(list(ids))}")
        if form < 0.6:
            return f"{name}:{target}", _ors(rng, lambda: rng.choice(list(ids)))
        if form < 0.7:
            return name, f"{BASE}/{target}/{rng.choice(list(ids))}"
        return name, _ors(rng, lambda: rng.choice(list(ids)))
    return gen


def _fixed(*options: tuple[str, Gen]) -> Gen:
    """A chained / _has parameter: a prefix before the inner generator's key."""
    def gen(rng: random.Random) -> tuple[str, str]:
        prefix, inner = rng.choice(options)
        key, value = inner(rng)
        return prefix + key, value
    return gen


PIDS = [f"p{n}" for n in range(22)] + ["ghost"]
EIDS = [f"e{n}" for n in range(15)]
NAME = _string("name", NAME_WORDS)
FAMILY = _string("family", NAME_WORDS)
GIVEN = _string("given", NAME_WORDS)
GENDER = _token("gender", [None, "http://hl7.org/fhir/administrative-gender"], GENDERS)
IDENTIFIER = _token("identifier", [EHC, CIN, None], ID_VALUES, ["a1", "1"])
BIRTHDATE = _date("birthdate")
ACTIVE = _token("active", [None], ["true", "false"])
OBS_CODE = _token("code", [LOINC, "http://snomed.info/sct", None],
                  ["8480-6", "8462-4", "29463-7", "27113001", "8867-4"],
                  ["收缩", "systolic", "body", "bp", "weight"])
OBS_STATUS_GEN = _token("status", [None, "http://hl7.org/fhir/observation-status"], OBS_STATUS)
ENC_CLASS_GEN = _token("class", [ACT, None], ENC_CLASS, ["amb"])
ENC_STATUS_GEN = _token("status", [None], ENC_STATUS)
ORG_NAME = _string("name", ["成都", "第一", "clinica", "Clínica", "são", "sao jose", "hosp"])
PRACT_NAME = _string("name", ["李", "医生", "smith", "sm"])


def _composite(rng: random.Random) -> tuple[str, str]:
    code = _token_value(rng, [LOINC, None], ["8480-6", "8462-4", "29463-7", "27113001"])
    if _maybe(rng, 0.7):
        return ("code-value-quantity" if _maybe(rng) else "component-code-value-quantity",
                f"{code}${_quantity_value(rng)}")  # composites: multipleOr is false
    return "code-value-string", f"{code}${rng.choice(['阳性', 'pos', 'neg', 'négatif'])}"


PATIENT_CHAIN_TARGETS: list[tuple[str, Gen]] = [
    ("organization.", _string("name", ["成都", "clínica", "sao"])),
    ("general-practitioner:Practitioner.", PRACT_NAME),
]
PATIENT: list[Gen] = [
    NAME, FAMILY, GIVEN, GENDER, IDENTIFIER, BIRTHDATE, ACTIVE,
    _reference("organization", "Organization", ORGS),
    _reference("general-practitioner", "Practitioner", PRACTITIONERS),
    _fixed(*PATIENT_CHAIN_TARGETS),
    _fixed(("_has:Observation:subject:", OBS_CODE), ("_has:Observation:patient:", _quantity_param(
        "value-quantity")), ("_has:Encounter:subject:", ENC_CLASS_GEN),
           ("_has:Encounter:subject:_has:Observation:encounter:", OBS_STATUS_GEN),
           ("_has:Observation:subject:", _date("date"))),
    _token("_id", [None], PIDS),
]
OBSERVATION: list[Gen] = [
    OBS_CODE, OBS_STATUS_GEN, _date("date"), _quantity_param("value-quantity"),
    _quantity_param("component-value-quantity"), _string("value-string", ["阳", "pos", "neg", "négatif"]),
    _reference("subject", "Patient", PIDS), _reference("patient", "Patient", PIDS),
    _reference("encounter", "Encounter", EIDS),
    _reference("performer", "Practitioner", PRACTITIONERS),
    _fixed(("subject:Patient.", NAME), ("subject:Patient.", GENDER), ("patient.", BIRTHDATE),
           ("subject:Patient.", IDENTIFIER), ("encounter.", ENC_CLASS_GEN),
           ("encounter.", _date("date")), ("subject:Patient.organization.", ORG_NAME),
           ("encounter.subject.", FAMILY), ("encounter.patient.general-practitioner.", PRACT_NAME),
           ("performer:Practitioner.", PRACT_NAME)),
    _composite,
    _fixed(("_has:Observation:has-member:", OBS_STATUS_GEN)),
]
ENCOUNTER: list[Gen] = [
    ENC_CLASS_GEN, ENC_STATUS_GEN, _date("date"), _reference("subject", "Patient", PIDS),
    _reference("patient", "Patient", PIDS), _reference("service-provider", "Organization", ORGS),
    _reference("participant", "Practitioner", PRACTITIONERS),
    _fixed(("subject:Patient.", NAME), ("patient.", BIRTHDATE), ("service-provider.", ORG_NAME),
           ("subject:Patient.organization.", ORG_NAME), ("patient.", GENDER),
           ("participant:Practitioner.", PRACT_NAME)),
    _fixed(("_has:Observation:encounter:", OBS_CODE),
           ("_has:Observation:encounter:", _quantity_param("value-quantity"))),
]
GENERATORS = {"Patient": PATIENT, "Observation": OBSERVATION, "Encounter": ENCOUNTER}


def random_query(rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    rtype = rng.choice(sorted(GENERATORS))
    gens = GENERATORS[rtype]
    pairs = [rng.choice(gens)(rng) for _ in range(rng.choice([1, 1, 2, 2, 3]))]
    if _maybe(rng, 0.1):
        pairs.append(pairs[0])  # the same parameter twice (AND)
    return rtype, pairs


# -- the comparison -------------------------------------------------------------------------------

def _memory(store: Store, resources: list[dict[str, Any]]) -> tuple[
        Callable[[str, str], Sequence[IndexEntry]], Callable[[str], list[str]]]:
    entries: dict[tuple[str, str], list[IndexEntry]] = {}
    for r in resources:
        stored = store.read(r["resourceType"], r["id"])
        assert stored is not None and stored.body is not None
        entries[(r["resourceType"], r["id"])] = extract(jsonio.loads(stored.body))

    def entries_of(rtype: str, rid: str) -> Sequence[IndexEntry]:
        return entries.get((rtype, rid), [])

    def all_ids(rtype: str) -> list[str]:
        return [rid for (t, rid) in entries if t == rtype]

    return entries_of, all_ids


@pytest.mark.parametrize("seed", SEEDS)
def test_store_search_equals_in_memory_evaluation(app: Flask, store: Store, seed: int) -> None:
    resources = dataset(seed)
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(resources)))
    entries_of, all_ids = _memory(store, resources)
    rng = random.Random(seed * 1000 + 7)
    invalid: list[str] = []
    nonempty = 0
    for _ in range(QUERIES_PER_SEED):
        rtype, pairs = random_query(rng)
        url = f"{rtype}?" + "&".join(f"{k}={v}" for k, v in pairs)
        try:
            request = build_search([rtype], pairs, base_url=BASE, now=NOW)
        except InvalidRequest as exc:
            invalid.append(f"{url}: {exc}")
            continue
        expected = evaluate(request.where, rtype, entries_of, all_ids)
        page = store.search(SearchQuery((rtype,), request.where, limit=10_000))
        got = sorted(row.id for row in page.rows)
        assert got == expected, url
        assert store.count((rtype,), request.where) == len(expected), url
        nonempty += bool(expected)
    assert not invalid  # the generator makes valid queries only
    assert nonempty >= QUERIES_PER_SEED // 4  # and enough of them match something


PRECISE = [
    {"resourceType": "Observation", "id": "temp", "status": "final", "code": {"text": "t"},
     "valueQuantity": {"value": Decimal("37.513178311087856"), "unit": "Cel"}},
    {"resourceType": "Observation", "id": "big", "status": "final", "code": {"text": "b"},
     "valueQuantity": {"value": Decimal("1000000000000000001"), "unit": "g"}},
]


@pytest.mark.xfail(strict=True, reason="the SQLite index keeps numbers and quantities as float"
                   " (REAL, index_tables.py): value-quantity=37.513178311087856 and"
                   " value-quantity=gt1000000000000000000 match in memory (exact decimals) but not"
                   " in the store")
@pytest.mark.parametrize("value", ["37.513178311087856", "gt1000000000000000000"])
def test_store_keeps_decimal_precision(app: Flask, store: Store, value: str) -> None:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(PRECISE)))
    entries_of, all_ids = _memory(store, PRECISE)
    request = build_search(["Observation"], [("value-quantity", value)], base_url=BASE, now=NOW)
    expected = evaluate(request.where, "Observation", entries_of, all_ids)
    assert len(expected) == 1
    page = store.search(SearchQuery(("Observation",), request.where, limit=10_000))
    assert sorted(row.id for row in page.rows) == expected
