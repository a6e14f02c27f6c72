"""rhip-patient and its extensions: each constraint broken alone on a valid seed Patient gives
exactly the named issue (key and FHIRPath expression)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from fhir_server.fhir.identifiers import (
    CS_GB3304_ETHNICITY,
    CS_GBT2261_2_MARITAL,
    cin_check_char,
    make_cin,
)
from fhir_server.profiles import registry
from tests.profile_cases import BASE, SD, SYS, Case, check, err, index_of, pick, systems, warn

Resource = dict[str, Any]
CIN = "Patient.identifier[2]"  # seed order: EHC ID, master index, CIN, ...


def adult(r: Resource) -> bool:
    return (r["birthDate"] < "2000" and r["gender"] == "male" and SYS.sscard in systems(r)
            and SYS.health_record_no in systems(r))


def child(r: Resource) -> bool:
    return SYS.birth_cert_no in systems(r)


def _cin(r: Resource) -> dict[str, Any]:
    return r["identifier"][index_of(r, SYS.cin)]


def _set_cin(r: Resource, born: str, seq: int = 11, check: str | None = None) -> None:
    body = _cin(r)["value"][:6] + born + f"{seq:03d}"
    _cin(r)["value"] = body + (check or cin_check_char(body))


def _wrong_check(r: Resource) -> None:
    value = _cin(r)["value"]
    _cin(r)["value"] = value[:17] + ("0" if value[17] != "0" else "1")


def _ext(r: Resource, name: str) -> dict[str, Any]:
    return next(e for e in r["extension"] if e["url"] == SD + name)


def _add_id(system: str, value: str, **extra: Any) -> Any:
    return lambda r: r["identifier"].append({"system": system, "value": value, **extra})


def _second_card(r: Resource) -> None:
    r["identifier"].append({"system": SYS.ehc_id, "value": "A" * 64, "period": {"start": "2026-01-01"}})


def _gender(r: Resource, gender: str, gb: str) -> None:
    r["gender"] = gender
    _ext(r, "gbt2261-1-sex")["valueCoding"]["code"] = gb


def _no_gender(r: Resource) -> None:
    del r["gender"]
    r["extension"] = [e for e in r["extension"] if e["url"] != SD + "gbt2261-1-sex"]


def _address_ext(r: Resource, name: str) -> dict[str, Any]:
    return next(e for e in r["address"][0]["extension"] if e["url"] == SD + name)


CASES = [
    Case("cin-format", "Patient", lambda r: _cin(r).update(value="51010419900101"),
         (err("cin-format", f"{CIN}.value"),), adult),
    Case("cin-checksum", "Patient", _wrong_check, (err("cin-checksum", f"{CIN}.value"),), adult),
    Case("cin-date-impossible", "Patient",
         lambda r: (_set_cin(r, "19900230"), r.update(birthDate="1990-02")),
         (err("cin-date", f"{CIN}.value"),), adult),
    Case("cin-date-future", "Patient",
         lambda r: (_set_cin(r, "20990101"), r.update(birthDate="2099-01-01")),
         (err("cin-date", f"{CIN}.value"),), adult),
    Case("cin-birthdate", "Patient", lambda r: r.update(
        birthDate=str(date.fromisoformat(r["birthDate"]) - timedelta(days=1))),
         (err("cin-birthdate", f"{CIN}.value"),), adult),
    Case("cin-sex", "Patient", lambda r: _gender(r, "female", "2"),
         (warn("cin-sex", f"{CIN}.value"),), adult),
    Case("ehc-format", "Patient", lambda r: r["identifier"][0].update(value="ab" * 32),
         (err("ehc-format", "Patient.identifier[0].value"),), adult),
    Case("ehc-qr-payload", "Patient", lambda r: r["identifier"][0].update(
        value=r["identifier"][0]["value"] + ":1"),
         (err("ehc-format", "Patient.identifier[0].value"),), adult),
    Case("ehc-period", "Patient", lambda r: r["identifier"][0].pop("period"),
         (err("Patient.identifier:ehcId.period", "Patient.identifier[0].period"),), adult),
    Case("rhip-pat-ehc", "Patient", _second_card, (err("rhip-pat-ehc", "Patient"),), adult),
    Case("mindex-format", "Patient", lambda r: r["identifier"][1].update(value="X1"),
         (err("mindex-format", "Patient.identifier[1].value"),), adult),
    Case("mindex-max", "Patient", _add_id(SYS.ehc_mindex, "B" * 64),
         (err("Patient.identifier:mindex", "Patient.identifier"),), adult),
    Case("hrn-format", "Patient",
         lambda r: r["identifier"][index_of(r, SYS.health_record_no)].update(value="5101"),
         (warn("hrn-format", "Patient.identifier[4].value"),), adult),
    Case("sscard-format", "Patient",
         lambda r: r["identifier"][index_of(r, SYS.sscard)].update(value="ab-1"),
         (warn("sscard-format", "Patient.identifier[3].value"),), adult),
    Case("rhc-length", "Patient", _add_id(SYS.rhc, "1" * 33),
         (err("rhc-length", "Patient.identifier[5].value"),), adult),
    Case("psn-length", "Patient", _add_id(SYS.nhsa_psn_no, "P" * 31),
         (err("psn-length", "Patient.identifier[5].value"),), adult),
    Case("slice-value-required", "Patient", lambda r: r["identifier"].append({"system": SYS.rhc}),
         (err("Patient.identifier:rhc.value", "Patient.identifier[5].value"),), adult),
    Case("birthcert-format", "Patient",
         lambda r: r["identifier"][index_of(r, SYS.birth_cert_no)].update(value="A12345"),
         (err("birthcert-format", f"Patient.identifier[{3}].value"),),
         lambda r: child(r) and len(r["identifier"]) == 4),
    Case("rhip-pat-id", "Patient",
         lambda r: r.update(identifier=[i for i in r["identifier"]
                                        if i["system"] not in (SYS.ehc_id, SYS.cin)]),
         (err("rhip-pat-id", "Patient"),), adult),
    Case("rhip-pat-iddoc", "Patient", _add_id(SYS.id_doc("03"), "E1"),
         (err("rhip-pat-iddoc", "Patient"),), adult),
    Case("rhip-pat-sex", "Patient", lambda r: _ext(r, "gbt2261-1-sex")["valueCoding"].update(
        code="2"), (err("rhip-pat-sex", "Patient"),), adult),
    Case("gbt-sex-binding", "Patient", lambda r: _ext(r, "gbt2261-1-sex")["valueCoding"].update(
        code="5"), (err("Extension.value[x]", "Patient.extension[2].valueCoding"),), adult),
    Case("ethnicity-binding", "Patient", lambda r: _ext(r, "ethnicity")["valueCoding"].update(
        code="99"), (err("Extension.value[x]", "Patient.extension[0].valueCoding"),), adult),
    Case("ethnicity-max", "Patient", lambda r: r["extension"].append(
        {"url": SD + "ethnicity", "valueCoding": {"system": CS_GB3304_ETHNICITY, "code": "01"}}),
         (err("Patient.extension:ethnicity", "Patient.extension"),), adult),
    Case("name-required", "Patient", lambda r: r.pop("name"),
         (err("Patient.name", "Patient.name"),), adult),
    Case("name-text-required", "Patient", lambda r: r["name"][0].pop("text"),
         (err("Patient.name.text", "Patient.name[0].text"),), adult),
    Case("gender-required", "Patient", _no_gender, (err("Patient.gender", "Patient.gender"),), adult),
    Case("birthdate-required", "Patient", lambda r: r.pop("birthDate"),
         (err("Patient.birthDate", "Patient.birthDate"),), adult),
    Case("admin-division-required", "Patient", lambda r: r["address"][0].update(extension=[
        e for e in r["address"][0]["extension"] if e["url"] != SD + "admin-division"]),
         (err("Patient.address.extension:adminDivision", "Patient.address[0].extension"),),
         lambda r: adult(r) and len(r["address"][0]["extension"]) == 2),
    Case("admin-division-format", "Patient",
         lambda r: _address_ext(r, "admin-division").update(valueCode="5101"),
         (err("admin-division-format", "Patient.address[0].extension[0].valueCode"),), adult),
    Case("household-registration-type", "Patient",
         lambda r: r["address"][0]["extension"].append(
             {"url": SD + "household-registration", "valueString": "户籍"}),
         (err("Extension.value[x]", "Patient.address[0].extension[1].valueString"),
          err("Extension.value[x]", "Patient.address[0].extension[1].valueBoolean")),
         lambda r: adult(r) and len(r["address"][0]["extension"]) == 1),
    Case("marital-extensible", "Patient", lambda r: r.update(maritalStatus={
        "coding": [{"system": CS_GBT2261_2_MARITAL, "code": "99"}]}),
         (warn("Patient.maritalStatus", "Patient.maritalStatus"),), adult),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_patient_constraint(case: Case) -> None:
    case.run()


def test_codes_of_fragment_code_systems_are_not_judged() -> None:
    """GB/T 2659 and GB/T 2260 are published as fragments (the entries the platform uses): a
    code missing from them may exist, so the extensible bindings raise nothing."""
    r = pick("Patient", adult)
    r["extension"][1]["valueCoding"]["code"] = "999"
    r["address"][0]["extension"][0]["valueCode"] = "510199"
    assert check(r) == []


def test_old_health_cards_are_allowed() -> None:
    r = pick("Patient", adult)
    r["identifier"].append({"use": "old", "system": SYS.ehc_id, "value": "C" * 64,
                            "period": {"start": "2020-01-01", "end": "2024-01-01"}})
    assert check(r) == []


def test_a_child_with_a_birth_certificate_conforms_and_needs_no_other_id() -> None:
    r = pick("Patient", child)
    assert check(r) == []
    r["identifier"] = [i for i in r["identifier"] if i["system"] == SYS.birth_cert_no]
    assert check(r) == []


def test_sex_codes_0_and_9_go_with_unknown_or_other() -> None:
    r = pick("Patient", adult)
    for gb, gender in (("9", "unknown"), ("0", "other")):
        r["gender"] = gender
        r["extension"][2]["valueCoding"]["code"] = gb
        assert check(r) == []  # cin-sex only judges male/female


def test_another_id_document_satisfies_rhip_pat_id() -> None:
    r = pick("Patient", adult)
    r["identifier"] = [i for i in r["identifier"] if i["system"] not in (SYS.ehc_id, SYS.cin)]
    r["identifier"].append({"system": SYS.id_doc("03"), "value": "E12345678"})
    assert check(r) == []


def test_citizen_id_of_a_valid_february_29() -> None:
    r = pick("Patient", adult)
    r["identifier"][2]["value"] = make_cin("510104", date(2000, 2, 29), 11)
    r["birthDate"] = "2000-02-29"
    assert check(r) == []


def test_identifier_systems_are_those_of_identifiers_py() -> None:
    profile = registry().get(SD + "rhip-patient")
    assert profile is not None
    fixed = {e["id"]: e["fixedUri"] for e in profile.resource["snapshot"]["element"]
             if "fixedUri" in e}
    assert fixed["Patient.identifier:cin.system"] == SYS.cin
    assert fixed["Patient.identifier:ehcId.system"] == SYS.ehc_id == f"{BASE}/sid/ehc-id"
    assert fixed["Patient.identifier:mindex.system"] == SYS.ehc_mindex
    assert fixed["Patient.identifier:birthCert.system"] == SYS.birth_cert_no
