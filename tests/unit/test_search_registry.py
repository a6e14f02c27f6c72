from __future__ import annotations

from fhir_server.search.params import COMMON_CODES, registry


def test_shared_expression_is_narrowed_per_base() -> None:
    reg = registry()
    code = reg.get("Condition", "code")
    assert code is not None and code.expression == "Condition.code" and code.type == "token"
    allergy = reg.get("AllergyIntolerance", "code")
    assert allergy is not None
    assert allergy.expression == "AllergyIntolerance.code | AllergyIntolerance.reaction.substance"
    assert reg.get("DeviceRequest", "code").expression == "(DeviceRequest.code as CodeableConcept)"  # type: ignore[union-attr]


def test_common_parameters_on_every_type() -> None:
    reg = registry()
    for rtype in ("Patient", "Observation", "Bundle", "Binary"):
        params = reg.for_type(rtype)
        for code in COMMON_CODES:
            assert code in params, (rtype, code)
    assert reg.get("Patient", "_id").expression == "Patient.id"  # type: ignore[union-attr]
    assert reg.get("Patient", "_lastUpdated").type == "date"  # type: ignore[union-attr]


def test_composites_and_targets() -> None:
    reg = registry()
    cvq = reg.get("Observation", "component-code-value-quantity")
    assert cvq is not None and cvq.type == "composite"
    assert cvq.components == (("component-code", "code"), ("component-value-quantity",
                                                          "value.as(Quantity)"))
    subject = reg.get("Observation", "subject")
    assert subject is not None and "Patient" in subject.targets
    assert reg.get("Patient", "nope") is None
    assert len(reg.for_type("Patient")) >= 30
