"""Write the platform's terminology (top-level ``terminology/``) as R4 JSON, one file per resource.

CodeSystems for the national tables use the OID URN as ``url`` (DOMAIN.md §B); local tables use
``{base}/CodeSystem/<id>``. Every CodeSystem has an "all codes" ValueSet ``{base}/ValueSet/<id>``;
extra ValueSets and ConceptMaps follow. ``{base}`` is ``DEFAULT_CANONICAL_BASE``.

Usage: python scripts/build_terminology.py   (rewrites terminology/*.json; deterministic)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import terminology_tables as t  # noqa: E402

from fhir_server.fhir import identifiers as ids  # noqa: E402

BASE = ids.DEFAULT_CANONICAL_BASE
OUT = ROOT / "terminology"
VERSION = "0.1.0"
DATE = "2025-06-01"
PUBLISHER = "示范城市区域全民健康信息平台 (demo-city regional health information platform)"
EN = "en"

Json = dict[str, Any]


def vs_url(vs_id: str) -> str:
    return f"{BASE}/ValueSet/{vs_id}"


def cm_url(cm_id: str) -> str:
    return f"{BASE}/ConceptMap/{cm_id}"


def _meta(kind: str, rid: str, url: str, name: str, title: str, description: str,
          version: str | None = VERSION) -> Json:
    out: Json = {"resourceType": kind, "id": rid, "url": url}
    if version:
        out["version"] = version
    out.update({"name": name, "title": title, "status": "active", "experimental": False,
                "date": DATE, "publisher": PUBLISHER, "description": description})
    return out


def concept(code: str, display: str, english: str | None = None, **props: Any) -> Json:
    out: Json = {"code": code, "display": display}
    if english:
        out["designation"] = [{"language": EN, "value": english}]
    prop_list = []
    for key, value in props.items():
        if value is None:
            continue
        pcode = key.replace("_", "-")
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool):
                prop_list.append({"code": pcode, "valueBoolean": v})
            elif isinstance(v, dict):
                prop_list.append({"code": pcode, "valueCoding": v})
            else:
                prop_list.append({"code": pcode, "valueCode": v})
    if prop_list:
        out["property"] = prop_list
    return out


def nest(concepts: list[Json], parents: dict[str, str]) -> list[Json]:
    """Turn a flat list into a concept tree by ``parents`` (child -> parent)."""
    by_code = {c["code"]: c for c in concepts}
    roots = []
    for c in concepts:
        parent = parents.get(c["code"])
        if parent is None:
            roots.append(c)
        else:
            by_code[parent].setdefault("concept", []).append(c)
    return roots


def count(concepts: list[Json]) -> int:
    return sum(1 + count(c.get("concept", [])) for c in concepts)


def code_system(cs_id: str, name: str, title: str, description: str, concepts: list[Json], *,
                oid: str | None = None, content: str = "complete", properties: list[Json] | None = None,
                hierarchical: bool = False) -> Json:
    url = oid or ids.code_system_url(BASE, cs_id)
    out = _meta("CodeSystem", cs_id, url, name, title, description,
                None if oid else VERSION)
    if oid:
        out["identifier"] = [{"system": "urn:ietf:rfc:3986", "value": oid}]
    out["caseSensitive"] = True
    out["valueSet"] = vs_url(cs_id)
    if hierarchical:
        out["hierarchyMeaning"] = "is-a"
    out["content"] = content
    out["count"] = count(concepts)
    if properties:
        out["property"] = properties
    out["concept"] = concepts
    return out


def all_codes(cs: Json) -> Json:
    vs_id = cs["id"]
    out = _meta("ValueSet", vs_id, vs_url(vs_id), cs["name"] + "VS", cs["title"],
                f"All codes of {cs['title']} ({cs['url']}).")
    out["compose"] = {"include": [{"system": cs["url"]}]}
    return out


def value_set(vs_id: str, name: str, title: str, description: str, include: list[Json],
              exclude: list[Json] | None = None) -> Json:
    out = _meta("ValueSet", vs_id, vs_url(vs_id), name, title, description)
    out["compose"] = {"include": include}
    if exclude:
        out["compose"]["exclude"] = exclude
    return out


def concept_map(cm_id: str, name: str, title: str, description: str, source_vs: str, target_vs: str,
                groups: list[tuple[str, str, list[tuple[str, str, str | None, str]]]]) -> Json:
    """``groups``: (source system, target system, [(source code, target code, target display,
    equivalence)])."""
    out = _meta("ConceptMap", cm_id, cm_url(cm_id), name, title, description)
    out["sourceCanonical"] = source_vs
    if target_vs.startswith("http://snomed.info/sct"):
        out["targetUri"] = target_vs
    else:
        out["targetCanonical"] = target_vs
    out_groups = []
    for source, target, rows in groups:
        elements: dict[str, Json] = {}
        for src, tgt, display, equivalence in rows:
            el = elements.setdefault(src, {"code": src, "target": []})
            target_json: Json = {"code": tgt}
            if display:
                target_json["display"] = display
            target_json["equivalence"] = equivalence
            el["target"].append(target_json)
        out_groups.append({"source": source, "target": target, "element": list(elements.values())})
    out["group"] = out_groups
    return out


def simple(cs_id: str, name: str, title: str, description: str, rows: list[t.Row], *,
           oid: str | None = None, parents: dict[str, str] | None = None, content: str = "complete") -> Json:
    concepts = [concept(code, display, english) for code, display, english in rows]
    if parents:
        concepts = nest(concepts, parents)
    return code_system(cs_id, name, title, description, concepts, oid=oid, content=content,
                       hierarchical=bool(parents))


STATUS_PROPS = [
    {"code": "status", "uri": "http://hl7.org/fhir/concept-properties#status", "type": "code",
     "description": "active | retired"},
]


def gbt_2260() -> Json:
    provinces = {code for code, _ in t.PROVINCES}
    concepts: list[Json] = []
    parents: dict[str, str] = {}
    for code, name in t.PROVINCES:
        concepts.append(concept(code, name, t.PROVINCE_EN[code], level="province", status="active"))
    for code, name in t.PREFECTURES:
        concepts.append(concept(code, name, None, level="prefecture", status="active"))
        parents[code] = code[:2] + "0000"
    for code, name, status, replaced_by in t.COUNTIES:
        concepts.append(concept(code, name, None, level="county", status=status, replaced_by=replaced_by))
        parents[code] = code[:4] + "00"
    for code, name in t.TOWNSHIPS:
        concepts.append(concept(code, name, None, level="township", status="active"))
        parents[code] = code[:6]
    assert all(p in provinces or any(c["code"] == p for c in concepts) for p in parents.values())
    props = [
        {"code": "level", "type": "code", "description": "province | prefecture | county | township"},
        *STATUS_PROPS,
        {"code": "replaced-by", "type": "code", "description": "the code that replaced a retired one"},
    ]
    return code_system(
        "gbt-2260", "GBT2260AdministrativeDivision", "GB/T 2260 中华人民共和国行政区划代码",
        "Administrative divisions: every province-level code, the prefectures and counties this"
        " platform's data uses (more are added as needed), and 9-digit township codes of the local"
        " supplement. Retired codes stay (status retired, replaced-by) because ID numbers carry the"
        " code in force when they were issued. Content is a fragment of the national table.",
        nest(concepts, parents), content="fragment", properties=props, hierarchical=True)


def nationality() -> Json:
    concepts = [concept(code, name, en, alpha2=a2, alpha3=a3)
                for code, name, en, a2, a3 in t.GBT_2659_NATIONALITY]
    props = [{"code": "alpha2", "type": "code", "description": "ISO 3166-1 alpha-2"},
             {"code": "alpha3", "type": "code", "description": "ISO 3166-1 alpha-3"}]
    return code_system(
        "gbt-2659-nationality", "GBT2659Nationality", "GB/T 2659 世界各国和地区名称代码(国籍)",
        "Countries and regions by GB/T 2659 (= ISO 3166-1) numeric code: the entries this platform"
        " uses and common ones (a fragment of the table).",
        concepts, oid=ids.CS_GBT2659_NATIONALITY, content="fragment", properties=props)


def vaccines() -> tuple[Json, list[Json]]:
    concepts = []
    for code, display, en, nip, _cvx, _ce, _sct, _se, route in t.VACCINES:
        diseases = [{"system": ids.CS_SNOMED, "code": d} for d in t.VACCINE_DISEASES.get(code, ())]
        concepts.append(concept(code, display, en, nip=nip, target_disease=diseases or None,
                                route=({"system": ids.CS_V3_ROUTE, "code": route} if route else None)))
    props = [
        {"code": "nip", "type": "boolean",
         "description": "true: 免疫规划疫苗 (national immunisation programme); false: 非免疫规划疫苗"},
        {"code": "target-disease", "type": "Coding", "description": "SNOMED CT disorder prevented"},
        {"code": "route", "type": "Coding", "description": "usual v3-RouteOfAdministration"},
    ]
    cs = code_system(
        "cn-nip-vaccine", "CnNipVaccine", "国家免疫规划疫苗及常用非免疫规划疫苗",
        "Vaccines of the national immunisation programme (property nip = true, 2021 schedule with"
        " the 2025 DTaP change) and common non-programme products (nip = false). National"
        " information-system vaccine codes were not available; add them when obtained.",
        concepts, properties=props)
    url = cs["url"]
    extra = [
        value_set("cn-nip-vaccines", "CnNipVaccines", "国家免疫规划疫苗",
                  "Vaccines of the national immunisation programme (免疫规划疫苗).",
                  [{"system": url, "filter": [{"property": "nip", "op": "=", "value": "true"}]}]),
        value_set("cn-non-nip-vaccines", "CnNonNipVaccines", "非免疫规划疫苗",
                  "Non-programme vaccine products (非免疫规划疫苗); bind extensibly: other products"
                  " may be coded with CVX or SNOMED CT.",
                  [{"system": url, "filter": [{"property": "nip", "op": "=", "value": "false"}]}]),
        concept_map("cn-nip-vaccine-to-cvx", "CnNipVaccineToCvx", "疫苗 → CVX",
                    "Vaccines to CDC CVX codes (unspecified-formulation codes are 'wider').",
                    vs_url("cn-nip-vaccine"), "http://hl7.org/fhir/ValueSet/vaccine-code",
                    [(url, ids.CS_CVX, [(c, cvx, None, eq) for c, _d, _e, _n, cvx, eq, *_ in t.VACCINES
                                        if cvx])]),
        concept_map("cn-nip-vaccine-to-snomed", "CnNipVaccineToSnomed", "疫苗 → SNOMED CT",
                    "Vaccines to SNOMED CT vaccine products.", vs_url("cn-nip-vaccine"),
                    "http://snomed.info/sct?fhir_vs",
                    [(url, ids.CS_SNOMED, [(v[0], v[6], None, v[7]) for v in t.VACCINES if v[6]])]),
    ]
    return cs, extra


def build() -> list[Json]:
    cs_url = ids.code_system_url
    out: list[Json] = []
    extra: list[Json] = []

    sex = simple("gbt-2261-1-sex", "GBT22611Sex", "GB/T 2261.1 人的性别代码",
                 "Sex (生理性别) by GB/T 2261.1-2003.", t.GBT_2261_1_SEX, oid=ids.CS_GBT2261_1_SEX)
    extra.append(concept_map(
        "gbt-2261-1-to-administrative-gender", "GBT22611ToAdministrativeGender",
        "GB/T 2261.1 性别 → AdministrativeGender", "1→male, 2→female, 0 and 9→unknown.",
        vs_url("gbt-2261-1-sex"), "http://hl7.org/fhir/ValueSet/administrative-gender",
        [(ids.CS_GBT2261_1_SEX, "http://hl7.org/fhir/administrative-gender",
          [("1", "male", "Male", "equivalent"), ("2", "female", "Female", "equivalent"),
           ("0", "unknown", "Unknown", "equivalent"), ("9", "unknown", "Unknown", "wider")])]))

    marital = simple("gbt-2261-2-marital-status", "GBT22612MaritalStatus", "GB/T 2261.2 婚姻状况代码",
                     "Marital status by GB/T 2261.2-2003 (21-23 are kinds of 20 已婚).",
                     t.GBT_2261_2_MARITAL, oid=ids.CS_GBT2261_2_MARITAL, parents=t.GBT_2261_2_PARENTS)
    v3 = ids.CS_V3_MARITAL
    extra.append(concept_map(
        "gbt-2261-2-to-v3-marital-status", "GBT22612ToV3MaritalStatus",
        "GB/T 2261.2 婚姻状况 → v3-MaritalStatus", "10→S, 20-23→M, 30→W, 40→D, 90→UNK.",
        vs_url("gbt-2261-2-marital-status"), "http://hl7.org/fhir/ValueSet/marital-status",
        [(ids.CS_GBT2261_2_MARITAL, v3,
          [("10", "S", "Never Married", "equivalent"), ("20", "M", "Married", "equivalent"),
           ("21", "M", "Married", "wider"), ("22", "M", "Married", "wider"),
           ("23", "M", "Married", "wider"), ("30", "W", "Widowed", "equivalent"),
           ("40", "D", "Divorced", "equivalent")]),
         (ids.CS_GBT2261_2_MARITAL, "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
          [("90", "UNK", "unknown", "equivalent")])]))
    extra.append(value_set(
        "patient-marital-status", "PatientMaritalStatus", "婚姻状况(GB/T 2261.2 与 HL7)",
        "Patient.maritalStatus: GB/T 2261.2 codes, the HL7 v3 marital status codes and UNK.",
        [{"system": ids.CS_GBT2261_2_MARITAL}, {"system": v3},
         {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "concept": [{"code": "UNK"}]}]))

    ethnicity = simple("gb-3304-ethnicity", "GB3304Ethnicity", "GB 3304 中国各民族名称的罗马字母拼写和代码",
                       "The 56 ethnic groups (01-56) plus 97 其他 and 98 外国血统中国籍人士; the English"
                       " designation is the standard's romanisation.", t.GB_3304_ETHNICITY,
                       oid=ids.CS_GB3304_ETHNICITY)
    id_doc = simple("cv02-01-101-id-doc-type", "CV0201101IdDocType", "CV02.01.101 身份证件类别代码",
                    "Identity document types (WS 364 value domain CV02.01.101).", t.CV02_01_101_ID_DOC,
                    oid=ids.CS_CV02_01_101_ID_DOC_TYPE)
    relationship = simple("gbt-4761-relationship", "GBT4761Relationship", "GB/T 4761 家庭关系代码",
                          "Family relationships (the codes this platform uses; a fragment).",
                          t.GBT_4761_RELATIONSHIP, oid=ids.CS_GBT4761_RELATIONSHIP,
                          parents=t.GBT_4761_PARENTS, content="fragment")
    extra.append(value_set(
        "patient-contact-relationship", "PatientContactRelationship", "联系人关系",
        "Patient.contact.relationship: the GB/T 4761 codes listed here and HL7 v2 table 0131.",
        [{"system": ids.CS_GBT4761_RELATIONSHIP,
          "concept": [{"code": c, "display": d} for c, d, _ in t.GBT_4761_RELATIONSHIP]},
         {"system": ids.CS_V2_0131}]))
    abo = simple("abo-blood-group", "AboBloodGroup", "ABO血型代码", "ABO blood group (WS 364).",
                 t.ABO, oid=ids.CS_ABO)
    rh = simple("rh-blood-group", "RhBloodGroup", "Rh(D)血型代码", "Rh(D) blood group (WS 364).",
                t.RH, oid=ids.CS_RH)
    doc = simple("wst-500-doc-type", "WST500DocumentType", "WS/T 500 电子病历共享文档类型",
                 "Shared document types of WS/T 500 (a fragment).", t.WST_500_DOC_TYPE,
                 oid=ids.CS_WST500_DOC_TYPE, content="fragment")
    out += [sex, marital, ethnicity, nationality(), id_doc, relationship, abo, rh, doc]

    admin = gbt_2260()
    out.append(admin)
    extra.append(value_set(
        "gbt-2260-province", "GBT2260Province", "省级行政区划",
        "The 34 province-level divisions of GB/T 2260.",
        [{"system": admin["url"], "concept": [{"code": c, "display": n} for c, n in t.PROVINCES]}]))

    local = [
        ("ehc-card-attr", "EhcCardAttr", "电子健康卡卡属性", "Card attribute.", t.EHC_CARD_ATTR),
        ("ehc-card-status", "EhcCardStatus", "电子健康卡状态", "Card status.", t.EHC_CARD_STATUS),
        ("ehc-identifier-type", "EhcIdentifierType", "健康卡相关标识类型",
         "Identifier types of the health-card family (Identifier.type).", t.EHC_IDENTIFIER_TYPE),
        ("visit-credential", "VisitCredential", "就诊凭证(所出示的卡)",
         "Which card or credential was presented at the visit.", t.VISIT_CREDENTIAL),
        ("nhsa-insutype", "NhsaInsutype", "医保险种类型(insutype)", "NHSA insurance type.",
         t.NHSA_INSUTYPE),
        ("nhsa-med-type", "NhsaMedType", "医疗类别(med_type)",
         "NHSA medical type (11/14/21 seen in public interface code; the others from the NHSA"
         " dictionary, to confirm).", t.NHSA_MED_TYPE),
        ("nhsa-mdtrt-cert-type", "NhsaMdtrtCertType", "就诊凭证类型(mdtrt_cert_type)",
         "NHSA visit credential type.", t.NHSA_MDTRT_CERT_TYPE),
        ("nhsa-refd-setl-flag", "NhsaRefdSetlFlag", "退费结算标志(refd_setl_flag)",
         "NHSA refund-settlement flag.", t.NHSA_REFD_SETL_FLAG),
        ("nhsa-stmt-rslt", "NhsaStmtRslt", "对账结果(stmt_rslt)", "Reconciliation result.",
         t.NHSA_STMT_RSLT),
        ("funding-source", "FundingSource", "疫苗资金来源", "Immunization.fundingSource.",
         t.FUNDING_SOURCE),
        ("immunization-activity", "ImmunizationActivity", "接种活动类型",
         "Kind of immunisation activity (Immunization.reasonCode).", t.IMMUNIZATION_ACTIVITY),
        ("immunization-not-done-reason", "ImmunizationNotDoneReason", "未接种原因",
         "Immunization.statusReason when not done.", t.IMMUNIZATION_NOT_DONE_REASON),
        ("referral-direction", "ReferralDirection", "转诊方向", "Referral direction.",
         t.REFERRAL_DIRECTION),
        ("referral-type", "ReferralType", "转诊类型", "Referral type (ServiceRequest.code).",
         t.REFERRAL_TYPE),
        ("referral-business-status", "ReferralBusinessStatus", "转诊业务状态",
         "Referral workflow state (Task.businessStatus).", t.REFERRAL_BUSINESS_STATUS),
        ("pregnancy-risk-color", "PregnancyRiskColor", "孕产妇妊娠风险五色分级",
         "Pregnancy risk grade by colour (2017 孕产妇妊娠风险评估与管理工作规范).", t.PREGNANCY_RISK_COLOR),
    ]
    for cs_id, name, title, description, rows in local:
        out.append(simple(cs_id, name, title, description, rows))

    qr = code_system(
        "ehc-qr-kind", "EhcQrKind", "电子健康卡二维码类型",
        "Kind of EHC QR code. The type digit seen in public samples is kept in a property; the"
        " digit-to-kind mapping is not confirmed (parse payloads by segment count).",
        [concept(c, d, e, type_digit=t.EHC_QR_DIGIT[c]) for c, d, e in t.EHC_QR_KIND],
        properties=[{"code": "type-digit", "type": "code", "description": "二维码类型 digit seen"}])
    out.append(qr)
    extra.append(concept_map(
        "visit-credential-to-nhsa-mdtrt-cert-type", "VisitCredentialToNhsaMdtrtCertType",
        "就诊凭证 → 医保就诊凭证类型", "Cards presented to the NHSA mdtrt_cert_type codes.",
        vs_url("visit-credential"), vs_url("nhsa-mdtrt-cert-type"),
        [(cs_url(BASE, "visit-credential"), cs_url(BASE, "nhsa-mdtrt-cert-type"),
          [(src, tgt, next(d for c, d, _ in t.NHSA_MDTRT_CERT_TYPE if c == tgt), "equivalent")
           for src, tgt in t.VISIT_CREDENTIAL_TO_NHSA.items()])]))

    vaccine_cs, vaccine_extra = vaccines()
    out.append(vaccine_cs)
    extra += vaccine_extra

    site = code_system(
        "vaccination-site", "VaccinationSite", "接种部位", "Vaccination site (7 口服: oral route).",
        [concept(c, d, e) for c, d, e, _s, _a in t.VACCINATION_SITE])
    out.append(site)
    extra.append(concept_map(
        "vaccination-site-to-snomed", "VaccinationSiteToSnomed", "接种部位 → SNOMED CT",
        "Vaccination sites to SNOMED CT body structures (7 口服 → oral cavity, related).",
        vs_url("vaccination-site"), "http://snomed.info/sct?fhir_vs",
        [(site["url"], ids.CS_SNOMED,
          [(c, sct, None, "relatedto" if c == "7" else "equivalent")
           for c, _d, _e, sct, _a in t.VACCINATION_SITE])]))
    extra.append(concept_map(
        "vaccination-site-to-v3-actsite", "VaccinationSiteToV3ActSite", "接种部位 → v3-ActSite",
        "Vaccination sites to HL7 v3 ActSite (buttock → gluteus medius is 'narrower').",
        vs_url("vaccination-site"), "http://hl7.org/fhir/ValueSet/immunization-site",
        [(site["url"], "http://terminology.hl7.org/CodeSystem/v3-ActSite",
          [(c, a, None, "narrower" if c in ("5", "6") else "equivalent")
           for c, _d, _e, _s, a in t.VACCINATION_SITE if a])]))

    mch = code_system(
        "mch-visit-type", "MchVisitType", "妇幼保健服务类型",
        "Maternal and child health visits (国家基本公共卫生服务规范 第三版): 5 prenatal checks,"
        " postpartum visit and 42-day check, newborn visit and child checks. The grouping codes"
        " are not selectable.",
        nest([concept(c, d, e, notSelectable=True if p is None else None)
              for c, d, e, p in t.MCH_VISIT_TYPE],
             {c: p for c, _d, _e, p in t.MCH_VISIT_TYPE if p}),
        properties=[{"code": "notSelectable", "uri": "http://hl7.org/fhir/concept-properties#notSelectable",
                     "type": "boolean", "description": "a grouping code"}],
        hierarchical=True)
    out.append(mch)

    code_systems = out
    return code_systems + [all_codes(cs) for cs in code_systems] + extra


def main() -> int:
    OUT.mkdir(exist_ok=True)
    resources = build()
    wanted = set()
    for res in resources:
        name = f"{res['resourceType']}-{res['id']}.json"
        wanted.add(name)
        (OUT / name).write_text(json.dumps(res, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for stale in OUT.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    print(f"terminology/: {len(resources)} resources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
