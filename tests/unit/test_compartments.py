from __future__ import annotations

from fhir_server.search.compartments import (
    compartment_filter,
    compartment_params,
    compartment_types,
    compartments,
)
from fhir_server.search.params import registry


def test_encounter_in_patient_compartment() -> None:
    assert str(compartment_filter("Patient", "123", "Encounter")) == (
        '(entry patient (and (eq type "Patient") (eq id "123")))')


def test_observation_has_several_parameters() -> None:
    assert str(compartment_filter("Patient", "p1", "Observation")) == (
        '(or (entry subject (and (eq type "Patient") (eq id "p1")))'
        ' (entry performer (and (eq type "Patient") (eq id "p1"))))')


def test_patient_itself_by_id_and_link() -> None:
    assert str(compartment_filter("Patient", "p1", "Patient")) == (
        '(or (entry _id (eq code "p1")) (entry link (and (eq type "Patient") (eq id "p1"))))')


def test_types_outside_the_compartment() -> None:
    assert compartment_filter("Patient", "p1", "Medication") is None
    assert compartment_filter("Patient", "p1", "Nope") is None
    assert compartment_filter("Nope", "p1", "Observation") is None
    assert compartment_types("Nope") == frozenset()


def test_compartment_types() -> None:
    types = compartment_types("Patient")
    assert {"Patient", "Encounter", "Observation", "Account", "Group"} <= types
    assert "Medication" not in types and "Organization" not in types
    assert compartments() == frozenset({"Patient"})


def test_every_compartment_parameter_is_a_reference_that_can_point_at_patient() -> None:
    reg = registry()
    for rtype in compartment_types("Patient") - {"Patient"}:
        params = compartment_params("Patient", rtype)
        assert params, rtype
        for code in params:
            sp = reg.get(rtype, code)
            assert sp is not None and sp.type == "reference", (rtype, code)
            assert not sp.targets or "Patient" in sp.targets, (rtype, code)
