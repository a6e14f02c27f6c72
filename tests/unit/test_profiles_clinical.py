"""rhip-encounter, rhip-immunization, rhip-referral, rhip-referral-task and the Encounter
extensions: each constraint broken alone on a valid seed resource gives exactly the named issues."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from fhir_server.fhir.identifiers import CS_SNOMED, CS_V3_ACT_CODE
from tests.profile_cases import CS, SD, SYS, Case, check, err, pick, warn

Resource = dict[str, Any]
ENC_EXT = "Encounter.extension[0]"


def mch(r: Resource) -> bool:
    return r["type"][0]["coding"][0]["system"] == CS + "mch-visit-type"


def plain(r: Resource) -> bool:
    return not mch(r) and "basedOn" not in r


def _ext(url: str, *parts: tuple[str, str, Any]) -> dict[str, Any]:
    return {"url": SD + url, "extension": [{"url": n, k: v} for n, k, v in parts]}


CARD = "A" * 64
CREDENTIAL = ("medium", "valueCoding", {"system": CS + "visit-credential", "code": "EHC-QR"})
SETTLEMENT = ("setlId", "valueString", "S2026070100001")


def _add_ext(ext: dict[str, Any]) -> Any:
    return lambda r: r.setdefault("extension", []).append(ext)


def _money(value: Any, currency: str = "CNY") -> tuple[str, str, Any]:
    return ("medfeeSumamt", "valueMoney", {"value": value, "currency": currency})


ENCOUNTER = [
    Case("rhip-enc-visitno-missing", "Encounter", lambda r: r.update(identifier=[
        {"system": SYS.referral_no, "value": "H51010400011-ZZ1"}]),
         (err("rhip-enc-visitno", "Encounter"),), plain),
    Case("rhip-enc-visitno-two", "Encounter", lambda r: r["identifier"].append(
        {**r["identifier"][0], "system": r["identifier"][0]["system"].replace("outpatient",
                                                                              "inpatient")}),
         (err("rhip-enc-visitno", "Encounter"),), plain),
    Case("rhip-enc-visitno-length", "Encounter", lambda r: r["identifier"][0].update(
        value="M" * 31), (err("rhip-enc-visitno-length", "Encounter"),), plain),
    Case("rhip-enc-class", "Encounter", lambda r: r.update(
        **{"class": {"system": CS_V3_ACT_CODE, "code": "VR"}}),
         (err("rhip-enc-class", "Encounter"),), plain),
    Case("mdtrt-length", "Encounter", lambda r: r["identifier"].append(
        {"system": SYS.nhsa_mdtrt_id, "value": "9" * 31}),
         (err("mdtrt-length", "Encounter.identifier[1].value"),), plain),
    Case("mdtrt-max", "Encounter", lambda r: r["identifier"].extend(
        [{"system": SYS.nhsa_mdtrt_id, "value": "1"}, {"system": SYS.nhsa_mdtrt_id, "value": "2"}]),
         (err("Encounter.identifier:nhsaMdtrtId", "Encounter.identifier"),), plain),
    Case("subject-required", "Encounter", lambda r: r.pop("subject"),
         (err("Encounter.subject", "Encounter.subject"),), plain),
    Case("subject-target", "Encounter", lambda r: r.update(subject={"reference": "Group/g1"}),
         (err("Encounter.subject", "Encounter.subject.reference"),), plain),
    Case("service-provider-required", "Encounter", lambda r: r.pop("serviceProvider"),
         (err("Encounter.serviceProvider", "Encounter.serviceProvider"),), plain),
    Case("period-start-required", "Encounter", lambda r: r["period"].pop("start"),
         (err("Encounter.period.start", "Encounter.period.start"),), plain),
    Case("mch-visit-binding", "Encounter", lambda r: r["type"][0]["coding"][0].update(
        code="prenatal-9"), (err("Encounter.type:mchVisit", "Encounter.type[0]"),), mch),
    Case("visit-credential-medium-required", "Encounter", _add_ext(_ext(
        "visit-credential", ("ehcId", "valueString", CARD))),
         (err("Extension.extension:medium", f"{ENC_EXT}.extension"),), plain),
    Case("visit-credential-ehc-format", "Encounter", _add_ext(_ext(
        "visit-credential", CREDENTIAL, ("ehcId", "valueString", CARD + ":1"))),
         (err("ehc-format", f"{ENC_EXT}.extension[1].valueString"),), plain),
    Case("visit-credential-binding", "Encounter", _add_ext(_ext(
        "visit-credential", ("medium", "valueCoding", {"system": CS + "visit-credential",
                                                       "code": "CASH"}))),
         (err("Extension.extension:medium.value[x]", f"{ENC_EXT}.extension[0].valueCoding"),),
         plain),
    Case("nhsa-visit-admdvs", "Encounter", _add_ext(_ext(
        "nhsa-visit", ("insuplcAdmdvs", "valueCode", "5101"))),
         (err("admdvs-format", f"{ENC_EXT}.extension[0].valueCode"),), plain),
    Case("settlement-id-required", "Encounter", _add_ext(_ext(
        "nhsa-settlement", _money(Decimal("12.50")))),
         (err("Extension.extension:setlId", f"{ENC_EXT}.extension"),), plain),
    Case("settlement-id-length", "Encounter", _add_ext(_ext(
        "nhsa-settlement", ("setlId", "valueString", "S" * 31))),
         (err("setl-length", f"{ENC_EXT}.extension[0].valueString"),), plain),
    Case("money-cny", "Encounter", _add_ext(_ext(
        "nhsa-settlement", SETTLEMENT, _money(Decimal("12.50"), "USD"))),
         (err("money-cny", ENC_EXT),), plain),
    Case("money-scale", "Encounter", _add_ext(_ext(
        "nhsa-settlement", SETTLEMENT, _money(Decimal("12.345")))),
         (err("money-scale", ENC_EXT),), plain),
]


def _before_birth(r: Resource) -> None:
    patient = pick("Patient", lambda p: f"Patient/{p['id']}" == r["patient"]["reference"])
    born = date.fromisoformat(patient["birthDate"])
    r["occurrenceDateTime"] = f"{born - timedelta(days=1)}T10:00:00+08:00"


def _performers(r: Resource, keep: str) -> None:
    r["performer"] = [p for p in r["performer"] if p["actor"]["reference"].startswith(keep)]


IMMUNIZATION = [
    Case("rhip-imm-birth", "Immunization", _before_birth,
         (err("rhip-imm-birth", "Immunization.occurrenceDateTime"),)),
    Case("rhip-imm-future", "Immunization", lambda r: r.update(
        occurrenceDateTime="2099-01-01T10:00:00+08:00", expirationDate="2099-12-31"),
         (err("rhip-imm-future", "Immunization.occurrenceDateTime"),)),
    Case("rhip-imm-expiry", "Immunization", lambda r: r.update(
        expirationDate=str(date.fromisoformat(r["occurrenceDateTime"][:10]) - timedelta(days=1))),
         (err("rhip-imm-expiry", "Immunization.expirationDate"),)),
    Case("rhip-imm-nip-funding", "Immunization", lambda r: r["fundingSource"]["coding"][0].update(
        code="non-nip"), (warn("rhip-imm-nip-funding", "Immunization.fundingSource"),)),
    Case("rhip-imm-nip-series", "Immunization",
         lambda r: r["protocolApplied"][0].pop("seriesDosesPositiveInt"),
         (warn("rhip-imm-nip-series", "Immunization"),)),
    Case("rhip-imm-status-reason", "Immunization", lambda r: r.update(status="not-done"),
         (warn("rhip-imm-status-reason", "Immunization.statusReason"),)),
    Case("manufacturer-required", "Immunization", lambda r: r.pop("manufacturer"),
         (err("Immunization.manufacturer", "Immunization.manufacturer"),)),
    Case("lot-required", "Immunization", lambda r: r.pop("lotNumber"),
         (err("Immunization.lotNumber", "Immunization.lotNumber"),)),
    Case("expiry-required", "Immunization", lambda r: r.pop("expirationDate"),
         (err("Immunization.expirationDate", "Immunization.expirationDate"),)),
    Case("occurrence-type", "Immunization", lambda r: r.update(
        occurrenceString="去年秋天", occurrenceDateTime=None) or r.pop("occurrenceDateTime"),
         (err("Immunization.occurrence[x]", "Immunization.occurrenceString"),)),
    Case("local-vaccine-binding", "Immunization", lambda r: r["vaccineCode"]["coding"][0].update(
        code="BCG2"), (err("Immunization.vaccineCode.coding:local",
                           "Immunization.vaccineCode.coding[0]"),
                       warn("Immunization.vaccineCode", "Immunization.vaccineCode"))),
    Case("local-vaccine-max", "Immunization", lambda r: r["vaccineCode"]["coding"].append(
        {"system": CS + "cn-nip-vaccine", "code": "PCV13"}),
         (err("Immunization.vaccineCode.coding:local", "Immunization.vaccineCode.coding"),)),
    Case("site-extensible", "Immunization", lambda r: r["site"]["coding"][0].update(code="9"),
         (warn("Immunization.site", "Immunization.site"),)),
    Case("route-extensible", "Immunization", lambda r: r.update(route={"coding": [
        {"system": CS_SNOMED, "code": "78421000"}]}), (warn("Immunization.route",
                                                            "Immunization.route"),)),
    Case("dose-quantity-pattern", "Immunization", lambda r: r["doseQuantity"].update(code="ml"),
         (err("Immunization.doseQuantity", "Immunization.doseQuantity"),)),
    Case("performer-organization", "Immunization", lambda r: _performers(r, "Practitioner/"),
         (err("Immunization.performer:organization", "Immunization.performer"),)),
    Case("performer-administering", "Immunization", lambda r: _performers(r, "Organization/"),
         (err("Immunization.performer:administering", "Immunization.performer"),)),
    Case("funding-binding", "Immunization", lambda r: r["fundingSource"]["coding"][0].update(
        code="self"), (err("Immunization.fundingSource", "Immunization.fundingSource"),
                       warn("rhip-imm-nip-funding", "Immunization.fundingSource"))),
    Case("funding-required", "Immunization", lambda r: r.pop("fundingSource"),
         (err("Immunization.fundingSource", "Immunization.fundingSource"),
          warn("rhip-imm-nip-funding", "Immunization.fundingSource"))),
    Case("activity-extensible", "Immunization", lambda r: r["reasonCode"][0]["coding"][0].update(
        code="campaign"), (warn("Immunization.reasonCode", "Immunization.reasonCode[0]"),)),
    Case("protocol-required", "Immunization", lambda r: r.pop("protocolApplied"),
         (err("Immunization.protocolApplied", "Immunization.protocolApplied"),)),
    Case("target-disease-required", "Immunization",
         lambda r: r["protocolApplied"][0].pop("targetDisease"),
         (err("Immunization.protocolApplied.targetDisease",
              "Immunization.protocolApplied[0].targetDisease"),)),
    Case("trace-code-format", "Immunization", _add_ext(
        {"url": SD + "vaccine-trace-code", "valueString": "8123"}),
         (warn("trace-code-format", "Immunization.extension[0].valueString"),)),
    Case("patient-target", "Immunization", lambda r: r.update(patient={"reference": "Group/g"}),
         (err("Immunization.patient", "Immunization.patient.reference"),)),
]


def up(r: Resource) -> bool:
    return r["extension"][0]["valueCode"] == "up"


REFERRAL = [
    Case("direction-required", "ServiceRequest", lambda r: r.pop("extension"),
         (err("ServiceRequest.extension:direction", "ServiceRequest.extension"),), up),
    Case("direction-binding", "ServiceRequest", lambda r: r["extension"][0].update(
        valueCode="sideways"), (err("Extension.value[x]", "ServiceRequest.extension[0].valueCode"),),
         up),
    Case("rhip-sr-down", "ServiceRequest", lambda r: r["extension"][0].update(valueCode="down"),
         (warn("rhip-sr-down", "ServiceRequest.basedOn"),), up),
    Case("rhip-sr-icd10", "ServiceRequest", lambda r: r.update(reasonCode=[{"text": "高血压"}]),
         (warn("rhip-sr-icd10", "ServiceRequest.reasonCode"),), up),
    Case("referral-no-required", "ServiceRequest", lambda r: r.pop("identifier"),
         (err("ServiceRequest.identifier:referralNo", "ServiceRequest.identifier"),), up),
    Case("intent-fixed", "ServiceRequest", lambda r: r.update(intent="plan"),
         (err("ServiceRequest.intent", "ServiceRequest.intent"),), up),
    Case("category-referral", "ServiceRequest", lambda r: r["category"][0]["coding"][0].update(
        code="108252007"), (err("ServiceRequest.category:referral", "ServiceRequest.category"),),
         up),
    Case("code-binding", "ServiceRequest", lambda r: r["code"]["coding"][0].update(code="home"),
         (err("ServiceRequest.code", "ServiceRequest.code"),), up),
    Case("requester-target", "ServiceRequest", lambda r: r.update(
        requester={"reference": "Practitioner/prac-chc-1-1"}),
         (err("ServiceRequest.requester", "ServiceRequest.requester.reference"),), up),
    Case("requester-required", "ServiceRequest", lambda r: r.pop("requester"),
         (err("ServiceRequest.requester", "ServiceRequest.requester"),), up),
    Case("performer-required", "ServiceRequest", lambda r: r.pop("performer"),
         (err("ServiceRequest.performer", "ServiceRequest.performer"),), up),
    Case("reason-required", "ServiceRequest", lambda r: r.pop("reasonCode"),
         (err("ServiceRequest.reasonCode", "ServiceRequest.reasonCode"),), up),
    Case("task-business-status", "Task", lambda r: r["businessStatus"]["coding"][0].update(
        code="99"), (err("Task.businessStatus", "Task.businessStatus"),)),
    Case("task-focus-target", "Task", lambda r: r.update(focus={"reference": "Encounter/e1"}),
         (err("Task.focus", "Task.focus.reference"),)),
    Case("task-owner-required", "Task", lambda r: r.pop("owner"),
         (err("Task.owner", "Task.owner"),)),
    Case("task-intent-fixed", "Task", lambda r: r.update(intent="plan"),
         (err("Task.intent", "Task.intent"),)),
]

CASES = ENCOUNTER + IMMUNIZATION + REFERRAL


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rtype}-{c.id}" for c in CASES])
def test_each_constraint(case: Case) -> None:
    case.run()


def test_birth_rule_needs_the_patient() -> None:
    """rhip-imm-birth uses resolve(): without a resolver (or an unknown Patient) it is skipped."""
    r = pick("Immunization")
    _before_birth(r)
    assert check(r, resolver=None) == []
    r["patient"] = {"reference": "Patient/unknown"}
    assert check(r) == []


def test_a_complete_encounter_with_every_extension_conforms() -> None:
    r = pick("Encounter", plain)
    r["identifier"].append({"system": SYS.nhsa_mdtrt_id, "value": "MDTRT2026070100001"})
    r["extension"] = [
        _ext("visit-credential", CREDENTIAL, ("ehcId", "valueString", CARD),
             ("qrKind", "valueCode", "dynamic"), ("scanTime", "valueDateTime",
                                                  r["period"]["start"])),
        _ext("nhsa-visit", ("insutype", "valueCoding", {"system": CS + "nhsa-insutype",
                                                        "code": "390"}),
             ("insuplcAdmdvs", "valueCode", "510100")),
        _ext("nhsa-settlement", SETTLEMENT, _money(Decimal("128.5")),
             ("fundPaySumamt", "valueMoney", {"value": 100, "currency": "CNY"})),
    ]
    assert check(r) == []


def test_non_nip_vaccines_need_no_nip_funding() -> None:
    r = pick("Immunization")
    r["vaccineCode"] = {"coding": [{"system": CS + "cn-nip-vaccine", "code": "PCV13"}]}
    r["fundingSource"]["coding"][0]["code"] = "non-nip"
    r["protocolApplied"][0].pop("seriesDosesPositiveInt")
    assert check(r) == []
