"""One NamingSystem per identifier system of DOMAIN.md §A (R4 NamingSystem has no ``url``: each is
found by its ``uniqueId``). Systems under a national OID also list the OID as a second uniqueId.
The per-organisation visit number systems are families (``{base}/sid/org/{orgKey}/...``): their
NamingSystem names the pattern, with ``{orgKey}`` as a placeholder (uniqueId type ``other``)."""

from __future__ import annotations

from typing import Any

from fhir_server.fhir import identifiers as ids

DATE = "2026-11-23"
PUBLISHER = "ehc-fhir 区域全民健康信息平台"
ID_DOCS = {"02": "居民户口簿", "03": "护照", "04": "军官证", "05": "驾驶证",
           "06": "港澳居民来往内地通行证", "07": "台湾居民来往内地通行证", "99": "其他法定有效证件"}


def _ns(nid: str, name: str, description: str, uri: str, oid: str | None = None,
        kind: str = "identifier", rule: str | None = None, other: bool = False) -> dict[str, Any]:
    unique: list[dict[str, Any]] = [
        {"type": "other" if other else "uri", "value": uri, "preferred": True}]
    if oid:
        unique.append({"type": "oid", "value": oid, "preferred": False})
    out: dict[str, Any] = {
        "resourceType": "NamingSystem",
        "id": nid,
        "name": "".join(p[:1].upper() + p[1:] for p in nid.replace("-", " ").split()),
        "status": "active",
        "kind": kind,
        "date": DATE,
        "publisher": PUBLISHER,
        "responsible": "区域全民健康信息平台",
        "description": f"{name}: {description}" + (f" Validation: {rule}" if rule else ""),
        "jurisdiction": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "CN"}]}],
        "uniqueId": unique,
    }
    return out


def naming_systems(base: str) -> list[dict[str, Any]]:
    s = ids.identifier_systems(base)
    org = f"{s.base}/sid/org/{{orgKey}}"
    out = [
        _ns("ehc-id", "电子健康卡ID", "EHC ID issued by the card-management system (卡管); opaque, "
            "superseded IDs kept with use = old.", s.ehc_id, rule="^[0-9A-F]{64}$"),
        _ns("ehc-mindex", "主索引ID", "Master index ID of the card system (MindexID); sensitive.",
            s.ehc_mindex, rule="^[0-9A-F]{64}$"),
        _ns("cin", "公民身份号码", "Citizen identity number (GB 11643-1999).", s.cin,
            "2.16.156.10011.1.3", rule="18 characters, MOD 11-2 check character, birth date"),
        _ns("rhc", "居民健康卡号", "Physical resident health card number.", s.rhc,
            "2.16.156.10011.1.19", rule="at most 32 characters"),
        _ns("health-record-no", "城乡居民健康档案编号", "Resident health record number.",
            s.health_record_no, "2.16.156.10011.1.2", rule="17 digits [M]"),
        _ns("sscard", "社会保障卡卡号", "Social security card number.", s.sscard,
            rule="^[0-9A-Z]{6,20}$ [M]"),
        _ns("nhsa-psn-no", "医保人员编号", "NHSA person number (psn_no).", s.nhsa_psn_no,
            rule="at most 30 characters"),
        _ns("org-outpatient-no", "门(急)诊号", "Outpatient/emergency visit serial of one hospital "
            "(NHSA ipt_otp_no); {orgKey} = USCC or fixmedins code.", f"{org}/outpatient-no",
            "2.16.156.10011.1.11", rule="at most 30 characters", other=True),
        _ns("org-inpatient-no", "住院号", "Inpatient visit serial of one hospital.",
            f"{org}/inpatient-no", "2.16.156.10011.1.12", rule="at most 30 characters",
            other=True),
        _ns("org-mrn", "病案号", "Medical record number of one hospital.", f"{org}/mrn",
            "2.16.156.10011.1.13", rule="at most 30 characters", other=True),
        _ns("nhsa-mdtrt-id", "医保就诊ID", "NHSA visit ID (mdtrt_id).", s.nhsa_mdtrt_id,
            rule="at most 30 characters"),
        _ns("nhsa-setl-id", "医保结算ID", "NHSA settlement ID (setl_id); never an Encounter "
            "identifier.", s.nhsa_setl_id, rule="at most 30 characters"),
        _ns("nhsa-fixmedins-code", "定点医药机构编号", "NHSA designated institution code.",
            s.fixmedins_code, rule="^[A-Z][0-9]{11}$ [M]"),
        _ns("uscc", "统一社会信用代码", "Unified social credit code (GB 32100-2015).", s.uscc,
            rule="18 characters, GB 32100 check character"),
        _ns("referral-no", "转诊单号", "Two-way referral number, issuer-prefixed.", s.referral_no),
        _ns("birth-cert-no", "出生医学证明编号", "Birth medical certificate number.",
            s.birth_cert_no, rule="^[A-Z][0-9]{9}$"),
        _ns("mch-handbook-no", "母子健康手册号", "Maternal and child health handbook number.",
            s.mch_handbook_no),
    ]
    for code, label in ID_DOCS.items():
        out.append(_ns(f"id-doc-{code}", f"{label} (CV02.01.101 {code})",
                       f"Number of a {label} (identity document type {code}).", s.id_doc(code),
                       rule="^[0-9A-Za-z-]{4,32}$"))
    return out
