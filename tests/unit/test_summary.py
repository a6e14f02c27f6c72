"""``_summary`` and ``_elements`` subsets; expected outputs written by hand from the R4 spec."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from fhir_server.errors import InvalidRequest
from fhir_server.fhir.structure import validate
from fhir_server.fhir.summary import SUBSETTED, select_elements, summarize
from tests.shared_data import examples

DIV = '<div xmlns="http://www.w3.org/1999/xhtml">Peter Chalmers</div>'
BIRTH_TIME = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                             "valueDateTime": "1974-12-25T14:35:45-05:00"}]}
TAG = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
       "code": "SUBSETTED", "display": "Resource encoded in summary mode"}

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "2", "tag": [{"system": "urn:t", "code": "x"}]},
    "text": {"status": "generated", "div": DIV},
    "extension": [{"url": "http://example.org/x", "valueString": "e"}],
    "identifier": [{"system": "urn:oid:1.2.3", "value": "12345"}],
    "active": True,
    "name": [{"extension": [{"url": "http://example.org/n", "valueCode": "c"}],
              "family": "Chalmers", "given": ["Peter", "James"]}],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": BIRTH_TIME,
    "maritalStatus": {"text": "married"},
    "photo": [{"contentType": "image/png", "data": "AAAA"}],
    "contact": [{"name": {"family": "Chalmers"}}],
    "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}],
}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Hb</div>'},
    "status": "final",
    "category": [{"text": "laboratory"}],
    "code": {"text": "Hemoglobin"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2020-01-01",
    "valueSampledData": {"origin": {"value": 0}, "period": 10, "dimensions": 1, "data": "1 2 3"},
    "interpretation": [{"text": "normal"}],
    "note": [{"text": "fasting"}],
    "component": [{"code": {"text": "part"}, "valueQuantity": {"value": Decimal("13.5")},
                   "interpretation": [{"text": "high"}]}],
}


def test_fixtures_are_valid() -> None:
    assert validate(PATIENT) == []
    assert validate(OBSERVATION) == []


def test_summary_true_patient() -> None:
    assert summarize(PATIENT, "true") == {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "2", "tag": [{"system": "urn:t", "code": "x"}, TAG]},
        "identifier": [{"system": "urn:oid:1.2.3", "value": "12345"}],
        "active": True,
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "_birthDate": BIRTH_TIME,
        "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}],
    }


def test_summary_true_observation() -> None:
    assert summarize(OBSERVATION, "true") == {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"tag": [TAG]},
        "status": "final",
        "code": {"text": "Hemoglobin"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2020-01-01",
        "valueSampledData": {"origin": {"value": 0}, "period": 10, "dimensions": 1},
        "component": [{"code": {"text": "part"}, "valueQuantity": {"value": Decimal("13.5")}}],
    }


def test_summary_text() -> None:
    assert summarize(PATIENT, "text") == {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "2", "tag": [{"system": "urn:t", "code": "x"}, TAG]},
        "text": {"status": "generated", "div": DIV},
    }
    assert summarize(OBSERVATION, "text") == {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"tag": [TAG]},
        "text": OBSERVATION["text"],
        "status": "final",
        "code": {"text": "Hemoglobin"},
    }


def test_summary_data() -> None:
    expected = {k: v for k, v in OBSERVATION.items() if k != "text"}
    expected = {"resourceType": "Observation", "id": "o1", "meta": {"tag": [TAG]},
                **{k: v for k, v in expected.items() if k not in ("resourceType", "id")}}
    out = summarize(OBSERVATION, "data")
    assert out == expected
    assert list(out)[:3] == ["resourceType", "id", "meta"]


def test_summary_false_and_nothing_removed() -> None:
    assert summarize(PATIENT, "false") == PATIENT
    small = {"resourceType": "Patient", "id": "x", "active": True}
    assert summarize(small, "true") == small  # nothing removed: no tag
    assert summarize(small, "data") == small


def test_tag_not_duplicated() -> None:
    tagged = {**PATIENT, "meta": {"tag": [TAG]}}
    assert summarize(tagged, "text")["meta"] == {"tag": [TAG]}


@pytest.mark.parametrize("mode", ["count", "TRUE", "", "yes"])
def test_bad_summary_mode(mode: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        summarize(PATIENT, mode)
    assert info.value.issues[0].expression == ("_summary",)
    assert "_summary" in info.value.message


def test_elements_patient() -> None:
    assert select_elements(PATIENT, ["name", "birthDate"]) == {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "2", "tag": [{"system": "urn:t", "code": "x"}, TAG]},
        "name": PATIENT["name"],
        "birthDate": "1974-12-25",
        "_birthDate": BIRTH_TIME,
    }


def test_elements_observation_choice_and_mandatory() -> None:
    expected = {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"tag": [TAG]},
        "status": "final",
        "code": {"text": "Hemoglobin"},
        "valueSampledData": OBSERVATION["valueSampledData"],
    }
    assert select_elements(OBSERVATION, ["value"]) == expected
    assert select_elements(OBSERVATION, ["value[x]"]) == expected
    assert select_elements(OBSERVATION, [" value ", ""]) == expected
    assert select_elements(OBSERVATION, ["valueSampledData"]) == expected
    # the mandatory elements alone
    assert select_elements(OBSERVATION, ["id"]) == {
        k: v for k, v in expected.items() if k != "valueSampledData"
    }


def test_elements_everything_selected_has_no_tag() -> None:
    small = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
             "note": [{"text": "n"}]}
    assert select_elements(small, ["note"]) == small


@pytest.mark.parametrize("name", ["nmae", "valueFoo", "Patient.name", "name.family"])
def test_elements_unknown_name(name: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        select_elements(PATIENT, ["gender", name])
    assert name in info.value.message
    assert info.value.issues[0].expression == ("_elements",)


def test_input_never_mutated() -> None:
    for resource in (PATIENT, OBSERVATION):
        before = copy.deepcopy(resource)
        for mode in ("true", "text", "data", "false"):
            summarize(resource, mode)
        select_elements(resource, ["identifier"])
        assert resource == before


def test_summaries_of_examples_stay_valid() -> None:
    for name, resource in examples():
        for mode in ("true", "text", "data"):
            out = summarize(resource, mode)
            assert validate(out) == [], (name, mode)
            assert out == resource or out["meta"]["tag"][-1] == TAG, (name, mode)
    assert SUBSETTED == TAG
