"""Realistic Patient resources for the load tests (~1.5 KB of compact JSON each).

Modelled on the R4 example Patient: two identifiers (MRN and health-card number), official and
usual names, telecom, birth date, an address, an emergency contact and a managing organization.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

_FAMILY = ["Rossi", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo", "Conti"]
_GIVEN_M = ["Marco", "Luca", "Giuseppe", "Francesco", "Antonio", "Paolo"]
_GIVEN_F = ["Giulia", "Francesca", "Chiara", "Sara", "Anna", "Elena"]
_CITY = [("Torino", "TO", "10121"), ("Milano", "MI", "20121"), ("Bologna", "BO", "40121"),
         ("Firenze", "FI", "50121"), ("Napoli", "NA", "80121")]


def patient(rng: random.Random, number: str = "__N__", rid: str | None = None) -> dict[str, Any]:
    """One Patient; ``number`` goes into the identifiers (a placeholder for the wrk templates)."""
    female = rng.random() < 0.5
    given = rng.choice(_GIVEN_F if female else _GIVEN_M)
    family = rng.choice(_FAMILY)
    city, province, postal = rng.choice(_CITY)
    street = f"Via {rng.choice(['Roma', 'Garibaldi', 'Mazzini', 'Cavour', 'Dante'])} {rng.randint(1, 200)}"
    birth = f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{given} {family}, born {birth}, '
                   f"{street}, {city}</p></div>",
        },
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                     "code": "MR"}]},
                "system": "urn:oid:1.2.36.146.595.217.0.1",
                "value": f"MRN-{number}",
                "period": {"start": "2001-05-06"},
                "assigner": {"display": "Acme Healthcare"},
            },
            {
                "use": "official",
                "system": "http://hl7.it/sid/codiceFiscale",
                "value": f"HC{number}",
            },
        ],
        "active": True,
        "name": [
            {"use": "official", "family": family, "given": [given, rng.choice(_GIVEN_F + _GIVEN_M)]},
            {"use": "usual", "given": [given]},
        ],
        "telecom": [
            {"system": "phone", "value": f"+39 011 {rng.randint(1000000, 9999999)}", "use": "home"},
            {"system": "phone", "value": f"+39 333 {rng.randint(1000000, 9999999)}", "use": "mobile",
             "rank": 1},
            {"system": "email", "value": f"{given.lower()}.{family.lower()}@example.org"},
        ],
        "gender": "female" if female else "male",
        "birthDate": birth,
        "deceasedBoolean": False,
        "address": [
            {
                "use": "home", "type": "both", "text": f"{street}, {postal} {city} ({province})",
                "line": [street], "city": city, "district": province, "postalCode": postal,
                "country": "IT", "period": {"start": birth},
            }
        ],
        "contact": [
            {
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                                              "code": "N"}]}],
                "name": {"family": rng.choice(_FAMILY), "given": [rng.choice(_GIVEN_F)]},
                "telecom": [{"system": "phone", "value": f"+39 02 {rng.randint(1000000, 9999999)}"}],
                "gender": "female",
            }
        ],
        "managingOrganization": {"reference": "Organization/1"},
    }
    if rid is not None:
        doc = {"resourceType": "Patient", "id": rid, **{k: v for k, v in doc.items() if k != "resourceType"}}
    return doc


def body(rng: random.Random, number: str = "__N__", rid: str | None = None) -> bytes:
    return orjson.dumps(patient(rng, number, rid))
