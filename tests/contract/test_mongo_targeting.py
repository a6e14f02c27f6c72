"""Shard key and targeting of the MongoDB store, without a server: ``pc`` values, the compiled filter
documents that name ``pc`` (and those that must not), the soundness of "this parameter fixes pc" over
every Patient-compartment type, and the sorts read from stored, indexed fields."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.search import ir
from fhir_server.search.compartments import compartment_filter, compartment_params, compartment_types
from fhir_server.search.index import extract
from fhir_server.search.query import build_search
from fhir_server.store.base import NewVersion
from fhir_server.store.mongo import compile as mc
from fhir_server.store.mongo.documents import (
    BIG,
    LAST_TEXT,
    SORT_INDEXES,
    compartment_owner,
    entry_doc,
    owner_params,
    sort_keys,
)
from fhir_server.store.mongo.store import INDEXES, _by_key, _current_doc
from tests.contract.test_mongo_compile import FakeResolver

BASE = "http://localhost/fhir"
BASIC = {"type": {"$eq": "Observation"}, "alive": {"$eq": True}}


def pc_of(resource: dict[str, Any]) -> str:
    idx = [entry_doc(e) for e in extract(resource)]
    return compartment_owner(resource["resourceType"], resource["id"], idx)


def where(rtype: str, *pairs: tuple[str, str]) -> ir.Node:
    return build_search([rtype], list(pairs), base_url=BASE).where


def flt(rtype: str, node: ir.Node) -> mc.Filter:
    return mc.search_filter((rtype,), node, FakeResolver())


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


# -- pc ----------------------------------------------------------------------------------------------
def test_pc_of_a_patient_is_itself() -> None:
    assert pc_of({"resourceType": "Patient", "id": "p1",
                  "link": [{"other": ref("Patient/p9"), "type": "seealso"}]}) == "Patient/p1"


def test_pc_of_an_observation_is_its_subject_first() -> None:
    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}}
    assert pc_of({**obs, "subject": ref("Patient/p1")}) == "Patient/p1"
    assert pc_of({**obs, "subject": ref("Patient/p1"),
                  "performer": [ref("Patient/p2")]}) == "Patient/p1"
    assert pc_of({**obs, "subject": ref("Group/g"), "performer": [ref("Practitioner/d"),
                                                                   ref("Patient/p2")]}) == "Patient/p2"
    assert pc_of({**obs, "subject": ref("Patient/p1/_history/3")}) == "Patient/p1"
    assert pc_of({**obs, "subject": ref("Patient/gone")}) == "Patient/gone"  # dangling: counts
    assert pc_of({**obs, "subject": {"identifier": {"system": "s", "value": "v"}}}) == \
        "Observation/o1"  # a logical reference names no Patient id
    assert pc_of(obs) == "Observation/o1"


def test_pc_of_an_encounter_and_of_shared_directories() -> None:
    assert pc_of({"resourceType": "Encounter", "id": "e1", "status": "finished",
                  "class": {"code": "AMB"}, "subject": ref("Patient/p7"),
                  "participant": [{"individual": ref("Practitioner/d1")}]}) == "Patient/p7"
    assert pc_of({"resourceType": "Organization", "id": "o1", "name": "x"}) == "Organization/o1"
    assert pc_of({"resourceType": "Practitioner", "id": "d1"}) == "Practitioner/d1"


def test_the_document_carries_pc_and_a_deletion_leaves_it_alone() -> None:
    body = b"{}"
    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
           "subject": ref("Patient/p1")}
    doc = _current_doc(NewVersion("Observation", "o1", 1, 0, "PUT", body, tuple(extract(obs))))
    assert doc["pc"] == "Patient/p1"
    assert "pc" not in _current_doc(NewVersion("Observation", "o1", 2, 0, "DELETE", None))
    assert _current_doc(NewVersion("Patient", "p1", 2, 0, "DELETE", None))["pc"] == "Patient/p1"


# -- which parameters fix pc ---------------------------------------------------------------------------
def test_owner_params() -> None:
    assert owner_params("Observation") == {"subject": False, "patient": True}
    assert owner_params("Encounter") == {"subject": False, "patient": True}
    assert owner_params("Condition") == {"subject": False, "patient": True}
    assert owner_params("Immunization") == {"patient": False}
    for rtype in ("Patient", "Organization", "Practitioner",
                  "Account",  # subject repeats: the second patient is not pc
                  "Group", "Appointment", "AuditEvent", "Provenance", "Person", "Schedule"):
        assert owner_params(rtype) == {}, rtype


# Reference strings to try on every parameter that claims to fix pc.
REFERENCES = ["Patient/p1", "Patient/p1/_history/2", "http://other.example/fhir/Patient/p1",
              "https://x.org/Patient/p1/_history/v1", "urn:uuid:Patient/p1", "Patient/p1/extra",
              "Group/p1", "Practitioner/p1", "#contained", "Patient/", "patient/p1",
              "http://x.org/Group/Patient/p1", "http://x.org/Patient/Group/p1", "Patient/p_1"]


@pytest.mark.parametrize("rtype", sorted(compartment_types("Patient") - {"Patient"}))
def test_a_patient_reference_through_an_owner_param_is_pc(rtype: str) -> None:
    """Soundness of the targeting: for every type, every parameter said to fix pc, and references
    of every shape in the element pc is read from (alone, or beside another patient in the other
    compartment parameters): if the resource has an index entry Patient/x of that parameter, its
    pc is Patient/x."""
    params = owner_params(rtype)
    if not params:
        return
    first = compartment_params("Patient", rtype)[0]
    from fhir_server.search.params import registry

    expression = registry().get(rtype, first).expression or ""
    element = expression.removesuffix(".where(resolve() is Patient)").split(".")[1]
    for text in REFERENCES:
        for other in (None, "Patient/p2"):
            resource: dict[str, Any] = {"resourceType": rtype, "id": "r1", element: ref(text)}
            if other:  # the other compartment parameters name a second patient
                for extra in compartment_params("Patient", rtype)[1:]:
                    path = (registry().get(rtype, extra).expression or "").split(".")
                    if len(path) == 2 and path[1] != element:
                        resource[path[1]] = [ref(other)]
            entries = [entry_doc(e) for e in extract(resource)]
            pc = compartment_owner(rtype, "r1", entries)
            for e in entries:
                if e["p"] in params and e.get("type") == "Patient":
                    assert pc == f"Patient/{e['id']}", (rtype, text, other, e)
                if e["p"] in params and params[e["p"]]:  # patient-only: only Patient entries
                    assert e.get("type") in ("Patient", None), (rtype, text, e)


# -- targeted filters ----------------------------------------------------------------------------------
def test_a_reference_to_a_patient_through_subject_is_targeted() -> None:
    assert flt("Observation", where("Observation", ("subject", "Patient/p1"))) == {"$and": [
        {**BASIC, "pc": {"$eq": "Patient/p1"}},
        {"idx": {"$elemMatch": {"p": {"$eq": "subject"}, "type": {"$eq": "Patient"},
                                "id": {"$eq": "p1"}}}}]}
    assert flt("Observation", where("Observation", ("subject", f"{BASE}/Patient/p1")))[
        "$and"][0]["pc"] == {"$eq": "Patient/p1"}
    # patient= targets Group too, but its expression keeps Patient references only
    assert flt("Observation", where("Observation", ("patient", "p1")))["$and"][0]["pc"] == {
        "$eq": "Patient/p1"}
    both = flt("Observation", where("Observation", ("subject", "Patient/p1,Patient/p2")))
    assert both["$and"][0]["pc"] == {"$in": ["Patient/p1", "Patient/p2"]}
    # two patients ANDed: no resource has both as subject; pc in the empty set says so
    none = flt("Observation", where("Observation", ("subject", "Patient/p1"),
                                    ("subject", "Patient/p2")))
    assert none["$and"][0]["pc"] == {"$in": []}
    # with other conditions: pc still fixed by the subject
    mixed = flt("Observation", where("Observation", ("subject", "Patient/p1"), ("status", "final")))
    assert mixed["$and"][0]["pc"] == {"$eq": "Patient/p1"}


@pytest.mark.parametrize("pairs", [
    [("performer", "Patient/p1")],  # the second compartment parameter: pc may be the subject
    [("subject", "p1")],  # Group/p1 or Device/p1 would match too
    [("subject:Patient.name", "wang")],  # a chain
    [("subject:identifier", "urn:x|1")],  # a logical reference
    [("subject", "Group/g1")],
    [("subject:missing", "false")],
    [("code", "8480-6")],
])
def test_other_observation_searches_are_not_targeted(pairs: list[tuple[str, str]]) -> None:
    assert "pc" not in str(flt("Observation", where("Observation", *pairs)))


def test_not_and_or_of_untargeted_stay_untargeted() -> None:
    by_subject = where("Observation", ("subject", "Patient/p1"))
    by_code = where("Observation", ("code", "x"))
    assert mc.owners(ir.Not(by_subject), "Observation") is None
    assert mc.owners(ir.Or((by_subject, by_code)), "Observation") is None
    assert mc.owners(ir.And((by_subject, by_code)), "Observation") == {"Patient/p1"}
    assert mc.owners(ir.And(), "Observation") is None


def test_compartment_searches_are_targeted_where_the_compartment_is_pc() -> None:
    def pc(rtype: str) -> Any:
        node = compartment_filter("Patient", "p1", rtype)
        assert node is not None
        return mc.owners(node, rtype)

    assert pc("Encounter") == {"Patient/p1"}  # one compartment parameter: patient
    assert pc("Immunization") == {"Patient/p1"}
    assert pc("Observation") is None  # subject or performer: a performer's record is elsewhere
    assert pc("Condition") is None  # patient or asserter
    assert pc("Patient") is None  # itself, or a Patient linking to it
    assert pc("Account") is None  # subject repeats


def test_patients_by_id_are_targeted() -> None:
    assert mc.owners(where("Patient", ("_id", "a,b")), "Patient") == {"Patient/a", "Patient/b"}
    assert mc.owners(ir.IdIn(("a",)), "Patient") == {"Patient/a"}
    assert mc.owners(ir.IdIn(("a",)), "Observation") is None
    assert mc.owners(where("Observation", ("_id", "a")), "Observation") is None
    assert flt("Patient", where("Patient", ("_id", "a")))["$and"][0] == {
        "type": {"$eq": "Patient"}, "alive": {"$eq": True}, "pc": {"$eq": "Patient/a"}}
    assert _by_key("Patient", "a") == {"_id": {"$eq": "Patient/a"}, "pc": {"$eq": "Patient/a"}}
    assert _by_key("Observation", "a") == {"_id": {"$eq": "Observation/a"}}


def test_a_multi_type_search_targets_each_branch_alone() -> None:
    node = ir.Or((ir.IdIn(("a",)), ir.TypeIs(("Organization",))))
    assert mc.search_filter(("Organization", "Patient"), node, FakeResolver()) == {"$or": [
        {"type": {"$eq": "Organization"}, "alive": {"$eq": True}},
        {"$and": [{"type": {"$eq": "Patient"}, "alive": {"$eq": True}, "pc": {"$eq": "Patient/a"}},
                  {"id": {"$in": ["a"]}}]}]}


# -- sorts read from stored fields ----------------------------------------------------------------------
def test_sort_plan_reads_indexed_fields_for_the_common_sorts() -> None:
    assert mc.sort_plan([("_lastUpdated", "date", True), ("_id", "token", False)],
                        ("Observation",)) == [("ts", None), ("id", None)]
    assert mc.sort_plan([("date", "date", False)], ("Observation", "Encounter")) == [
        ("sk.date.lo", None)]
    assert mc.sort_plan([("birthdate", "date", True)], ("Patient",)) == [("sk.birthdate.hi", None)]
    assert mc.sort_plan([("family", "string", False), ("name", "string", True)], ("Patient",)) == [
        ("sk.family.lo", None), ("sk.name.hi", None)]
    # not in INDEXED_SORTS, or not defined by every type searched: an expression
    assert mc.sort_plan([("gender", "token", False)], ("Patient",)) == [
        ("_k0", {"$ifNull": ["$sk.gender.lo", {"$literal": LAST_TEXT}]})]
    assert mc.sort_plan([("date", "date", False)], ("Observation", "Patient"))[0][0] == "_k0"
    assert mc.sort_plan([("name", "token", False)], ("Patient",))[0][0] == "_k0"  # wrong type


@pytest.mark.parametrize("param", ["$where", "sk.x", "name.$ne", "date.lo", ""])
def test_sort_fields_never_come_from_user_text(param: str) -> None:
    assert mc.sort_field(param, "date", False, ("Observation",)) is None


def test_every_indexed_sort_has_its_index() -> None:
    resources = [keys for collection, keys, _ in INDEXES if collection == "resources"]
    for keys in SORT_INDEXES:
        assert keys in resources
    for field, direction in (("ts", 1), ("ts", -1), ("sk.date.lo", 1), ("sk.date.hi", -1),
                             ("sk.birthdate.lo", 1), ("sk.family.hi", -1), ("sk.name.lo", 1)):
        assert [("type", 1), ("alive", 1), (field, direction), ("id", 1)] in resources
    assert [("pc", 1), ("type", 1), ("alive", 1)] in resources


def test_live_documents_carry_sentinels_for_the_indexed_sorts() -> None:
    patient = [entry_doc(e) for e in extract({"resourceType": "Patient", "id": "p",
                                              "name": [{"family": "Wáng"}]})]
    keys = sort_keys(patient, "Patient")
    assert keys["birthdate"] == {"lo": BIG, "hi": -BIG}
    assert keys["family"] == {"lo": "wang", "hi": "wang"}
    assert "date" not in keys  # not a Patient parameter
    assert "gender" not in keys  # not an indexed sort: no sentinel
    assert sort_keys(patient) == {k: v for k, v in keys.items() if k != "birthdate"}
