"""Index extraction: expectations written out by hand for a few small resources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fhir_server.search.index import (
    CompositeEntry,
    DateEntry,
    IndexEntry,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
    extract,
    normalise,
)
from tests.shared_data import examples


def us(text: str) -> int:
    """UTC microseconds of an ISO instant, computed with the standard library."""
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def of(entries: list[IndexEntry], *params: str) -> set[IndexEntry]:
    return {e for e in entries if e.param in params}


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"lastUpdated": "2024-05-06T07:08:09.123Z",
             "tag": [{"system": "urn:tags", "code": "vip"}],
             "profile": ["http://example.org/StructureDefinition/cn-patient"]},
    "identifier": [{"system": "urn:sys", "value": "123",
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                         "code": "MR"}], "text": "Medical record"}}],
    "active": True,
    "name": [{"family": "Müller", "given": ["Zoë  Ann"]}],
    "telecom": [{"system": "phone", "value": "555-1234"}, {"system": "email", "value": "z@x.org"}],
    "gender": "female",
    "birthDate": "1980-02",
    "address": [{"city": "Beijing", "line": ["1 Main St"]}],
    "generalPractitioner": [{"reference": "Practitioner/d1"}],
    "managingOrganization": {"reference": "http://ex.org/fhir/Organization/o1/_history/2"},
}


def test_patient() -> None:
    got = extract(PATIENT)
    assert of(got, "_id") == {TokenEntry("_id", None, "p1")}
    assert of(got, "_lastUpdated") == {
        DateEntry("_lastUpdated", us("2024-05-06T07:08:09.123Z"), us("2024-05-06T07:08:09.124Z"))}
    assert of(got, "_tag") == {TokenEntry("_tag", "urn:tags", "vip")}
    assert of(got, "_profile") == {
        UriEntry("_profile", "http://example.org/StructureDefinition/cn-patient")}
    assert of(got, "identifier") == {TokenEntry(
        "identifier", "urn:sys", "123", "medical record",
        "http://terminology.hl7.org/CodeSystem/v2-0203", "MR")}
    assert of(got, "active") == {TokenEntry("active", None, "true")}
    assert of(got, "gender") == {TokenEntry("gender", None, "female")}
    assert of(got, "family") == {StringEntry("family", "muller", "Müller")}
    assert of(got, "given") == {StringEntry("given", "zoe ann", "Zoë  Ann")}
    assert of(got, "name") == {StringEntry("name", "muller", "Müller"),
                               StringEntry("name", "zoe ann", "Zoë  Ann")}
    assert of(got, "address") == {StringEntry("address", "beijing", "Beijing"),
                                  StringEntry("address", "1 main st", "1 Main St")}
    assert of(got, "address-city") == {StringEntry("address-city", "beijing", "Beijing")}
    assert of(got, "phone") == {TokenEntry("phone", None, "555-1234")}
    assert of(got, "email") == {TokenEntry("email", None, "z@x.org")}
    assert of(got, "telecom") == {TokenEntry("telecom", None, "555-1234"),
                                  TokenEntry("telecom", None, "z@x.org")}
    assert of(got, "birthdate") == {
        DateEntry("birthdate", us("1980-02-01T00:00:00Z"), us("1980-03-01T00:00:00Z"))}
    assert of(got, "general-practitioner") == {
        ReferenceEntry("general-practitioner", "Practitioner", "d1")}
    assert of(got, "organization") == {ReferenceEntry(
        "organization", "Organization", "o1", "2", "http://ex.org/fhir/Organization/o1/_history/2")}
    # fhirpathpy fallback: ``exists() and != false`` is false for a patient without deceased[x]
    assert of(got, "deceased") == {TokenEntry("deceased", None, "false")}


OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "bp",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "BP"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2021-03-04T10:00:00+08:00",
    "valueQuantity": {"value": Decimal("1.50"), "unit": "mmHg",
                      "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
    "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
         "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    ],
}


def test_observation() -> None:
    got = extract(OBSERVATION)
    assert of(got, "code") == {TokenEntry("code", "http://loinc.org", "85354-9", "bp")}
    assert of(got, "subject", "patient") == {ReferenceEntry("subject", "Patient", "p1"),
                                             ReferenceEntry("patient", "Patient", "p1")}
    assert of(got, "date") == {
        DateEntry("date", us("2021-03-04T02:00:00Z"), us("2021-03-04T02:00:01Z"))}
    ucum = "http://unitsofmeasure.org"
    assert of(got, "value-quantity") == {QuantityEntry(
        "value-quantity", Decimal("1.50"), Decimal("1.495"), Decimal("1.505"), ucum, "mm[Hg]",
        "mmHg")}
    systolic = QuantityEntry("component-value-quantity", Decimal(120), Decimal("119.5"),
                             Decimal("120.5"), ucum, "mm[Hg]", None)
    diastolic = QuantityEntry("component-value-quantity", Decimal(80), Decimal("79.5"),
                              Decimal("80.5"), ucum, "mm[Hg]", None)
    assert of(got, "component-value-quantity") == {systolic, diastolic}
    # combinations are taken from the same component only: no 8480-6 with 80
    assert of(got, "component-code-value-quantity") == {
        CompositeEntry("component-code-value-quantity", (
            TokenEntry("component-code", "http://loinc.org", "8480-6"), systolic)),
        CompositeEntry("component-code-value-quantity", (
            TokenEntry("component-code", "http://loinc.org", "8462-4"), diastolic)),
    }
    assert of(got, "code-value-quantity") == {CompositeEntry("code-value-quantity", (
        TokenEntry("code", "http://loinc.org", "85354-9", "bp"),
        QuantityEntry("value-quantity", Decimal("1.50"), Decimal("1.495"), Decimal("1.505"),
                      ucum, "mm[Hg]", "mmHg")))}


def test_encounter_period_open_end() -> None:
    enc = {"resourceType": "Encounter", "id": "e1", "status": "in-progress",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
           "period": {"start": "2022-01-01T08:00:00Z"},
           "length": {"value": 3, "unit": "h"}}
    got = extract(enc)
    assert of(got, "date") == {
        DateEntry("date", us("2022-01-01T08:00:00Z"), us("9999-12-31T23:59:59.999999Z") + 1)}
    assert of(got, "class") == {
        TokenEntry("class", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP")}
    assert of(got, "length") == {
        QuantityEntry("length", Decimal(3), Decimal("2.5"), Decimal("3.5"), None, None, "h")}
    closed = extract({**enc, "period": {"start": "2022-01-01", "end": "2022-01-03"}})
    assert of(closed, "date") == {
        DateEntry("date", us("2022-01-01T00:00:00Z"), us("2022-01-04T00:00:00Z"))}


def test_immunization() -> None:
    imm = {"resourceType": "Immunization", "id": "i1", "status": "completed",
           "vaccineCode": {"coding": [{"system": "urn:oid:1.2.36.1.2001.1005.17", "code": "FLUVAX",
                                       "display": "Fluvax"}]},
           "patient": {"reference": "Patient/p1"},
           "occurrenceDateTime": "2013-01-10",
           "lotNumber": "AAJN11K",
           "manufacturer": {"identifier": {"system": "urn:mfr", "value": "hl7"}},
           "reaction": [{"date": "2013-01-10"}]}
    got = extract(imm)
    day = DateEntry("date", us("2013-01-10T00:00:00Z"), us("2013-01-11T00:00:00Z"))
    assert of(got, "date") == {day}
    assert of(got, "reaction-date") == {DateEntry("reaction-date", day.low, day.high)}
    assert of(got, "vaccine-code") == {
        TokenEntry("vaccine-code", "urn:oid:1.2.36.1.2001.1005.17", "FLUVAX", "fluvax")}
    assert of(got, "lot-number") == {StringEntry("lot-number", "aajn11k", "AAJN11K")}
    assert of(got, "manufacturer") == {
        ReferenceEntry("manufacturer", identifier_system="urn:mfr", identifier_value="hl7")}
    assert of(got, "patient") == {ReferenceEntry("patient", "Patient", "p1")}
    assert of(got, "status") == {TokenEntry("status", None, "completed")}


def test_number_and_normalise() -> None:
    risk = {"resourceType": "RiskAssessment", "id": "r", "status": "final",
            "subject": {"reference": "Patient/p1"},
            "prediction": [{"probabilityDecimal": Decimal("0.25")}]}
    assert of(extract(risk), "probability") == {
        NumberEntry("probability", Decimal("0.25"), Decimal("0.245"), Decimal("0.255"))}
    assert normalise("  Ḡrüße\tWELT ") == "grusse welt"


def test_every_example_extracts() -> None:
    total = 0
    for _, res in examples():
        total += len(extract(res))
    assert total > 2000
