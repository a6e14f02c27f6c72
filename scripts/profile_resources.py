"""The differentials of the resource profiles (DOMAIN.md §C): rhip-patient, rhip-encounter,
rhip-immunization, rhip-referral (ServiceRequest) and rhip-referral-task (Task)."""

from __future__ import annotations

from typing import Any

from profile_sources import Builder, Source, binding, by_system, by_url, el, ext_slice, ref

from fhir_server.fhir import identifiers as ids


def _id_slice(b: Builder, owner: str, name: str, system: str, lo: int, hi: str, short: str,
              keys: tuple[str, ...], url: str, extra: tuple[dict[str, Any], ...] = ()
              ) -> list[dict[str, Any]]:
    s = f"{owner}.identifier:{name}"
    head = el(s, short=short, min=lo, max=hi)
    if keys:
        head["constraint"] = [b.constraint(k, url) for k in keys]
    return [head, el(f"{s}.system", min=1, fixedUri=system), el(f"{s}.value", min=1), *extra]


def patient(b: Builder) -> Source:
    url, s = b.url("rhip-patient"), b.sids
    root = el("Patient", short="居民 (电子健康卡持卡人)", constraint=[
        b.constraint(k, url) for k in ("rhip-pat-id", "rhip-pat-ehc", "rhip-pat-iddoc",
                                       "rhip-pat-sex")])
    elements = [
        root,
        el("Patient.extension", slicing=by_url()),
        ext_slice("Patient.extension:gbtSex", b.url("gbt2261-1-sex"), 0, "1", "GB/T 2261.1 性别"),
        ext_slice("Patient.extension:ethnicity", b.url("ethnicity"), 0, "1", "民族"),
        ext_slice("Patient.extension:nationality", b.url("nationality"), 0, "1", "国籍"),
        el("Patient.identifier", slicing=by_system(), min=1),
        *_id_slice(b, "Patient", "ehcId", s.ehc_id, 0, "*", "电子健康卡ID (旧卡 use=old)",
                   ("ehc-format",), url, (el("Patient.identifier:ehcId.period", min=1),)),
        *_id_slice(b, "Patient", "mindex", s.ehc_mindex, 0, "1", "主索引ID",
                   ("mindex-format",), url),
        *_id_slice(b, "Patient", "cin", s.cin, 0, "1", "公民身份号码",
                   ("cin-format", "cin-checksum", "cin-date", "cin-birthdate", "cin-sex"), url),
        *_id_slice(b, "Patient", "healthRecordNo", s.health_record_no, 0, "1",
                   "城乡居民健康档案编号", ("hrn-format",), url),
        *_id_slice(b, "Patient", "rhc", s.rhc, 0, "*", "居民健康卡号", ("rhc-length",), url),
        *_id_slice(b, "Patient", "sscard", s.sscard, 0, "1", "社会保障卡卡号",
                   ("sscard-format",), url),
        *_id_slice(b, "Patient", "nhsaPsn", s.nhsa_psn_no, 0, "*", "医保人员编号",
                   ("psn-length",), url),
        *_id_slice(b, "Patient", "birthCert", s.birth_cert_no, 0, "1", "出生医学证明编号",
                   ("birthcert-format",), url),
        el("Patient.name", min=1),
        el("Patient.name.text", min=1, short="中文姓名全称"),
        el("Patient.gender", min=1),
        el("Patient.birthDate", min=1),
        el("Patient.address.extension", slicing=by_url()),
        ext_slice("Patient.address.extension:adminDivision", b.url("admin-division"), 1, "1",
                  "行政区划 (县级及以下)"),
        ext_slice("Patient.address.extension:householdRegistration",
                  b.url("household-registration"), 0, "1", "户籍地址标志"),
        el("Patient.maritalStatus", binding=binding("extensible", b.vs("patient-marital-status"))),
        el("Patient.contact.relationship",
           binding=binding("extensible", b.vs("patient-contact-relationship"))),
    ]
    return Source("rhip-patient", "居民 Patient (rhip-patient)", "A resident of the regional "
                  "platform, keyed by the electronic health card: identifiers sliced by system "
                  "with format and check-digit invariants, Chinese name, GB/T 2261.1 sex, GB 3304 "
                  "ethnicity, GB/T 2659 nationality and GB/T 2260 divisions on addresses.",
                  "Patient", elements)


def encounter(b: Builder) -> Source:
    url, s = b.url("rhip-encounter"), b.sids
    root = el("Encounter", short="就诊", constraint=[
        b.constraint(k, url) for k in ("rhip-enc-visitno", "rhip-enc-visitno-length",
                                       "rhip-enc-class")])
    elements = [
        root,
        el("Encounter.extension", slicing=by_url()),
        ext_slice("Encounter.extension:visitCredential", b.url("visit-credential"), 0, "1",
                  "就诊凭证"),
        ext_slice("Encounter.extension:nhsaVisit", b.url("nhsa-visit"), 0, "1", "医保就诊信息"),
        ext_slice("Encounter.extension:nhsaSettlement", b.url("nhsa-settlement"), 0, "*",
                  "医保结算"),
        el("Encounter.identifier", slicing=by_system(), min=1,
           comment="The hospital visit number ({base}/sid/org/{orgKey}/outpatient-no or "
                   "inpatient-no) is required by the invariant rhip-enc-visitno: its system is "
                   "a family per organisation, which a value discriminator cannot express."),
        *_id_slice(b, "Encounter", "nhsaMdtrtId", s.nhsa_mdtrt_id, 0, "1", "医保就诊ID",
                   ("mdtrt-length",), url),
        *_id_slice(b, "Encounter", "referralNo", s.referral_no, 0, "1", "转诊单号", (), url),
        el("Encounter.type", slicing={
            "discriminator": [{"type": "pattern", "path": "$this"}], "ordered": False,
            "rules": "open"}),
        el("Encounter.type:mchVisit", min=0, max="1", short="妇幼保健服务类型",
           patternCodeableConcept={"coding": [{"system": b.cs.mch_visit_type}]},
           binding=binding("required", b.vs("mch-visit-type"))),
        el("Encounter.subject", min=1, type=ref(b.url("rhip-patient"))),
        el("Encounter.period", min=1),
        el("Encounter.period.start", min=1),
        el("Encounter.serviceProvider", min=1, type=ref("Organization")),
    ]
    return Source("rhip-encounter", "就诊 Encounter (rhip-encounter)", "A visit of a resident "
                  "at a hospital of the platform: one hospital visit number, class AMB/EMER/IMP/"
                  "HH, subject, start and service provider required; the presented card and the "
                  "NHSA visit and settlements as extensions.", "Encounter", elements)


def immunization(b: Builder) -> Source:
    url, cs = b.url("rhip-immunization"), b.cs
    root = el("Immunization", short="预防接种记录", constraint=[
        b.constraint(k, url) for k in ("rhip-imm-birth", "rhip-imm-future", "rhip-imm-expiry",
                                       "rhip-imm-nip-funding", "rhip-imm-nip-series",
                                       "rhip-imm-status-reason")])
    perf = "Immunization.performer"
    elements = [
        root,
        el("Immunization.extension", slicing=by_url()),
        ext_slice("Immunization.extension:traceCode", b.url("vaccine-trace-code"), 0, "1",
                  "疫苗追溯码"),
        el("Immunization.statusReason",
           binding=binding("extensible", b.vs("immunization-not-done-reason"))),
        el("Immunization.vaccineCode",
           binding=binding("extensible", b.vs("cn-nip-vaccine"), "NIP and non-NIP vaccines")),
        el("Immunization.vaccineCode.coding", slicing=by_system()),
        el("Immunization.vaccineCode.coding:local", min=0, max="1", short="本地疫苗编码",
           binding=binding("required", b.vs("cn-nip-vaccine"))),
        el("Immunization.vaccineCode.coding:local.system", min=1, fixedUri=cs.cn_nip_vaccine),
        el("Immunization.vaccineCode.coding:local.code", min=1),
        el("Immunization.patient", type=ref(b.url("rhip-patient"))),
        el("Immunization.occurrence[x]", type=[{"code": "dateTime"}]),
        el("Immunization.manufacturer", min=1),
        el("Immunization.lotNumber", min=1),
        el("Immunization.expirationDate", min=1),
        el("Immunization.site", binding=binding("extensible", b.vs("vaccination-site"))),
        el("Immunization.route", binding=binding(
            "extensible", "http://hl7.org/fhir/ValueSet/immunization-route")),
        el("Immunization.doseQuantity",
           patternQuantity={"system": ids.CS_UCUM, "code": "mL"}),
        el(perf, slicing={"discriminator": [{"type": "type", "path": "actor.resolve()"}],
                                 "ordered": False, "rules": "open"}),
        el(f"{perf}:administering", min=1, max="1", short="接种人员"),
        el(f"{perf}:administering.actor", type=ref("Practitioner")),
        el(f"{perf}:organization", min=1, max="1", short="接种单位"),
        el(f"{perf}:organization.actor", type=ref("Organization")),
        el("Immunization.fundingSource", min=1,
           binding=binding("required", b.vs("funding-source"))),
        el("Immunization.reasonCode",
           binding=binding("extensible", b.vs("immunization-activity"))),
        el("Immunization.protocolApplied", min=1),
        el("Immunization.protocolApplied.targetDisease", min=1),
        el("Immunization.protocolApplied.doseNumber[x]", type=[{"code": "positiveInt"}]),
        el("Immunization.protocolApplied.seriesDoses[x]", type=[{"code": "positiveInt"}]),
    ]
    return Source("rhip-immunization", "预防接种 Immunization (rhip-immunization)",
                  "A dose of vaccine given (WS 375.12): local vaccine code, lot, manufacturer, "
                  "expiry, vaccinator and vaccination unit, funding source and the dose in its "
                  "series; not dated before birth or in the future, nor after the expiry date.",
                  "Immunization", elements)


def referral(b: Builder) -> Source:
    url, s = b.url("rhip-referral"), b.sids
    root = el("ServiceRequest", short="双向转诊单", constraint=[
        b.constraint(k, url) for k in ("rhip-sr-down", "rhip-sr-icd10")])
    elements = [
        root,
        el("ServiceRequest.extension", slicing=by_url()),
        ext_slice("ServiceRequest.extension:direction", b.url("referral-direction"), 1, "1",
                  "转诊方向"),
        el("ServiceRequest.identifier", slicing=by_system()),
        *_id_slice(b, "ServiceRequest", "referralNo", s.referral_no, 1, "1", "转诊单号", (), url),
        el("ServiceRequest.intent", fixedCode="order"),
        el("ServiceRequest.category", slicing={
            "discriminator": [{"type": "pattern", "path": "$this"}], "ordered": False,
            "rules": "open"}),
        el("ServiceRequest.category:referral", min=1, max="1", patternCodeableConcept={
            "coding": [{"system": ids.CS_SNOMED, "code": "3457005"}]}),
        el("ServiceRequest.code", min=1, binding=binding("required", b.vs("referral-type"))),
        el("ServiceRequest.subject", type=ref(b.url("rhip-patient"))),
        el("ServiceRequest.requester", min=1, type=ref("PractitionerRole")),
        el("ServiceRequest.performer", min=1,
           type=ref("Organization", "HealthcareService", "PractitionerRole")),
        el("ServiceRequest.reasonCode", min=1, short="转诊诊断 (ICD-10)"),
    ]
    return Source("rhip-referral", "双向转诊 ServiceRequest (rhip-referral)", "A two-way "
                  "referral order (双向转诊): referral number, direction, referral type, "
                  "requesting practitioner role, receiving organisation and the diagnosis.",
                  "ServiceRequest", elements)


def referral_task(b: Builder) -> Source:
    elements = [
        el("Task", short="转诊流程任务"),
        el("Task.businessStatus", min=1,
           binding=binding("required", b.vs("referral-business-status"))),
        el("Task.intent", fixedCode="order"),
        el("Task.focus", min=1, type=ref(b.url("rhip-referral"))),
        el("Task.for", min=1, type=ref(b.url("rhip-patient"))),
        el("Task.owner", min=1, type=ref("Organization", "PractitionerRole")),
    ]
    return Source("rhip-referral-task", "转诊流程 Task (rhip-referral-task)", "The workflow "
                  "state of a referral (Task.focus = the ServiceRequest): business status from "
                  "referral-business-status, the receiving organisation as owner.", "Task",
                  elements)


def resources(b: Builder) -> list[Source]:
    return [patient(b), encounter(b), immunization(b), referral(b), referral_task(b)]
