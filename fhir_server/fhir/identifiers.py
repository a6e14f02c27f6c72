"""Identifier systems, check characters and canonical URLs of the platform (DOMAIN.md §A, §B, §C).

Pure functions, no I/O. ``{base}`` (the platform canonical) is a setting, so every local URI is
built from a base; national tables keep their ``urn:oid:`` URIs.

Check characters:

* GB 11643 citizen ID (CIN): ISO 7064 MOD 11-2, weights ``2^(17-i) mod 11``; verified on the
  DOMAIN.md vectors ``34052419800101001X`` and ``11010020171225006X`` (unit tests).
* GB 32100 unified social credit code (USCC): weights ``3^i mod 31`` over the 31-character alphabet
  ``0-9ABCDEFGHJKLMNPQRTUWXY``, check ``31 - (sum mod 31)`` with 31 → 0. Tagged **[M]** in
  DOMAIN.md (no text of the standard was available). The algorithm reproduces the check
  characters of six publicly printed codes of large companies (recalled, not looked up; see the
  tests): strong evidence (1/31 chance each by luck), but not the standard text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

DEFAULT_CANONICAL_BASE = "https://fhir.demo-city.health.cn"

# --------------------------------------------------------------------------------------------
# National OIDs (DOMAIN.md §3.2)

OID_CIN = "urn:oid:2.16.156.10011.1.3"
OID_HEALTH_RECORD_NO = "urn:oid:2.16.156.10011.1.2"
OID_RHC = "urn:oid:2.16.156.10011.1.19"
OID_OUTPATIENT_NO = "urn:oid:2.16.156.10011.1.11"
OID_INPATIENT_NO = "urn:oid:2.16.156.10011.1.12"
OID_MRN = "urn:oid:2.16.156.10011.1.13"

# National code systems (DOMAIN.md §B), as urn:oid
CS_GBT2659_NATIONALITY = "urn:oid:2.16.156.10011.2.3.3.1"
CS_GB3304_ETHNICITY = "urn:oid:2.16.156.10011.2.3.3.3"
CS_GBT2261_1_SEX = "urn:oid:2.16.156.10011.2.3.3.4"
CS_GBT2261_2_MARITAL = "urn:oid:2.16.156.10011.2.3.3.5"
CS_OCCUPATION = "urn:oid:2.16.156.10011.2.3.3.7"
CS_GBT4761_RELATIONSHIP = "urn:oid:2.16.156.10011.2.3.3.8"
CS_CV02_01_101_ID_DOC_TYPE = "urn:oid:2.16.156.10011.2.3.1.1"
CS_ABO = "urn:oid:2.16.156.10011.2.3.1.85"
CS_RH = "urn:oid:2.16.156.10011.2.3.1.250"
CS_DEPARTMENT = "urn:oid:2.16.156.10011.2.3.2.62"
CS_WS363_DATA_ELEMENT = "urn:oid:2.16.156.10011.2.2.1"
CS_WST500_DOC_TYPE = "urn:oid:2.16.156.10011.2.4"

# International code systems used by the seed data and profiles
CS_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CS_V2_0131 = "http://terminology.hl7.org/CodeSystem/v2-0131"
CS_V2_0443 = "http://terminology.hl7.org/CodeSystem/v2-0443"
CS_V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CS_V3_MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
CS_V3_ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
CS_ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
CS_ICD10 = "http://hl7.org/fhir/sid/icd-10"
CS_CVX = "http://hl7.org/fhir/sid/cvx"
CS_SNOMED = "http://snomed.info/sct"
CS_LOINC = "http://loinc.org"
CS_UCUM = "http://unitsofmeasure.org"
CS_URN_IETF = "urn:ietf:rfc:3986"

# Local code system ids (DOMAIN.md §B); URL = {base}/CodeSystem/<id>
LOCAL_CODE_SYSTEM_IDS: tuple[str, ...] = (
    "gbt-2260",
    "ehc-card-attr",
    "ehc-card-status",
    "ehc-qr-kind",
    "ehc-identifier-type",
    "visit-credential",
    "nhsa-insutype",
    "nhsa-med-type",
    "nhsa-mdtrt-cert-type",
    "nhsa-refd-setl-flag",
    "nhsa-stmt-rslt",
    "cn-nip-vaccine",
    "funding-source",
    "immunization-activity",
    "vaccination-site",
    "referral-direction",
    "referral-type",
    "referral-business-status",
    "mch-visit-type",
    "pregnancy-risk-color",
)


def code_system_url(base: str, cs_id: str) -> str:
    """URL of a local CodeSystem, ``{base}/CodeSystem/<id>``."""
    return f"{_strip(base)}/CodeSystem/{cs_id}"


def _strip(base: str) -> str:
    return base.rstrip("/")


@dataclass(frozen=True, slots=True)
class CodeSystems:
    """Local CodeSystem URLs for one canonical base (national ones are module constants)."""

    base: str

    def url(self, cs_id: str) -> str:
        return code_system_url(self.base, cs_id)

    @property
    def gbt2260(self) -> str:
        return self.url("gbt-2260")

    @property
    def ehc_identifier_type(self) -> str:
        return self.url("ehc-identifier-type")

    @property
    def ehc_card_status(self) -> str:
        return self.url("ehc-card-status")

    @property
    def visit_credential(self) -> str:
        return self.url("visit-credential")

    @property
    def cn_nip_vaccine(self) -> str:
        return self.url("cn-nip-vaccine")

    @property
    def funding_source(self) -> str:
        return self.url("funding-source")

    @property
    def immunization_activity(self) -> str:
        return self.url("immunization-activity")

    @property
    def vaccination_site(self) -> str:
        return self.url("vaccination-site")

    @property
    def referral_direction(self) -> str:
        return self.url("referral-direction")

    @property
    def referral_type(self) -> str:
        return self.url("referral-type")

    @property
    def referral_business_status(self) -> str:
        return self.url("referral-business-status")

    @property
    def mch_visit_type(self) -> str:
        return self.url("mch-visit-type")

    @property
    def pregnancy_risk_color(self) -> str:
        return self.url("pregnancy-risk-color")


def code_systems(base: str = DEFAULT_CANONICAL_BASE) -> CodeSystems:
    return CodeSystems(_strip(base))


# --------------------------------------------------------------------------------------------
# Extension / profile URLs (DOMAIN.md §C)


def structure_definition_url(base: str, name: str) -> str:
    return f"{_strip(base)}/StructureDefinition/{name}"


def ext_admin_division(base: str) -> str:
    """Address extension, ``valueCode`` = GB/T 2260 code (6, 9 or 12 digits)."""
    return structure_definition_url(base, "admin-division")


def ext_ethnicity(base: str) -> str:
    """Patient extension, ``valueCoding`` from GB 3304 (:data:`CS_GB3304_ETHNICITY`)."""
    return structure_definition_url(base, "ethnicity")


def ext_nationality(base: str) -> str:
    """Patient extension, ``valueCoding`` from GB/T 2659 (:data:`CS_GBT2659_NATIONALITY`)."""
    return structure_definition_url(base, "nationality")


def ext_gbt2261_1_sex(base: str) -> str:
    """Patient extension, ``valueCoding`` from GB/T 2261.1 (:data:`CS_GBT2261_1_SEX`)."""
    return structure_definition_url(base, "gbt2261-1-sex")


def ext_referral_direction(base: str) -> str:
    """ServiceRequest extension, ``valueCode`` up | down | lateral."""
    return structure_definition_url(base, "referral-direction")


def ext_household_registration(base: str) -> str:
    return structure_definition_url(base, "household-registration")


def ext_vaccine_trace_code(base: str) -> str:
    return structure_definition_url(base, "vaccine-trace-code")


def ext_visit_credential(base: str) -> str:
    return structure_definition_url(base, "visit-credential")


PROFILE_NAMES: tuple[str, ...] = (
    "rhip-patient",
    "rhip-encounter",
    "rhip-immunization",
    "rhip-referral",
    "rhip-referral-task",
)


def profile_url(base: str, name: str) -> str:
    """Canonical of a local profile, e.g. ``profile_url(base, "rhip-patient")``."""
    return structure_definition_url(base, name)


# --------------------------------------------------------------------------------------------
# Identifier systems (DOMAIN.md §A)


@dataclass(frozen=True, slots=True)
class IdentifierSystems:
    """Canonical identifier system URIs for one platform base (DOMAIN.md §A)."""

    base: str
    ehc_id: str
    ehc_mindex: str
    cin: str
    rhc: str
    health_record_no: str
    sscard: str
    nhsa_psn_no: str
    nhsa_mdtrt_id: str
    nhsa_setl_id: str
    fixmedins_code: str
    uscc: str
    referral_no: str
    birth_cert_no: str
    mch_handbook_no: str

    def id_doc(self, code: str) -> str:
        """Other legal ID documents by CV02.01.101 code: ``{base}/sid/id-doc/{code}``."""
        return f"{self.base}/sid/id-doc/{code}"

    @property
    def id_doc_prefix(self) -> str:
        return f"{self.base}/sid/id-doc/"

    def org_outpatient_no(self, org_key: str) -> str:
        """Outpatient/emergency visit number scoped per organisation (USCC or fixmedins code)."""
        return f"{self.base}/sid/org/{org_key}/outpatient-no"

    def org_inpatient_no(self, org_key: str) -> str:
        return f"{self.base}/sid/org/{org_key}/inpatient-no"

    def org_mrn(self, org_key: str) -> str:
        return f"{self.base}/sid/org/{org_key}/mrn"

    @property
    def patient_card_systems(self) -> frozenset[str]:
        """Systems whose (system, value) must be unique among active Patients.

        ``id-doc/*`` is a family: test membership with :meth:`is_patient_card_system`.
        """
        return frozenset(
            {
                self.ehc_id,
                self.ehc_mindex,
                self.cin,
                self.rhc,
                self.sscard,
                self.health_record_no,
            }
        )

    def is_patient_card_system(self, system: str) -> bool:
        """True for the unique-per-active-Patient systems, including every ``id-doc/{code}``."""
        if system in self.patient_card_systems:
            return True
        return system.startswith(self.id_doc_prefix) and len(system) > len(self.id_doc_prefix)


def identifier_systems(base: str = DEFAULT_CANONICAL_BASE) -> IdentifierSystems:
    b = _strip(base)
    return IdentifierSystems(
        base=b,
        ehc_id=f"{b}/sid/ehc-id",
        ehc_mindex=f"{b}/sid/ehc-mindex",
        cin=OID_CIN,
        rhc=OID_RHC,
        health_record_no=OID_HEALTH_RECORD_NO,
        sscard=f"{b}/sid/sscard",
        nhsa_psn_no=f"{b}/sid/nhsa/psn-no",
        nhsa_mdtrt_id=f"{b}/sid/nhsa/mdtrt-id",
        nhsa_setl_id=f"{b}/sid/nhsa/setl-id",
        fixmedins_code=f"{b}/sid/nhsa/fixmedins-code",
        uscc=f"{b}/sid/uscc",
        referral_no=f"{b}/sid/referral-no",
        birth_cert_no=f"{b}/sid/birth-cert-no",
        mch_handbook_no=f"{b}/sid/mch-handbook-no",
    )


# --------------------------------------------------------------------------------------------
# GB 11643-1999 citizen identity number

CIN_RE = re.compile(
    r"^[1-9]\d{5}(18|19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[0-9X]$"
)
_CIN_WEIGHTS: tuple[int, ...] = tuple(pow(2, 17 - i, 11) for i in range(17))
_CIN_CHECK = "10X98765432"


def cin_check_char(body17: str) -> str:
    """MOD 11-2 check character of the first 17 digits of a citizen ID number."""
    if len(body17) != 17 or not body17.isascii() or not body17.isdigit():
        raise ValueError("a CIN body is 17 ASCII digits")
    total = sum(int(c) * w for c, w in zip(body17, _CIN_WEIGHTS, strict=True))
    return _CIN_CHECK[total % 11]


def _cin_date(value: str) -> date | None:
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None


def is_valid_cin(value: str, today: date | None = None) -> bool:
    """Format, MOD 11-2 check character and a real birth date not after ``today``.

    Upper-case ``X`` only: normalise a lower-case ``x`` before calling.
    """
    if not CIN_RE.match(value):
        return False
    if cin_check_char(value[:17]) != value[17]:
        return False
    born = _cin_date(value)
    if born is None:
        return False
    return born <= (today or date.today())


def cin_birth_date(value: str) -> date:
    """Birth date (characters 7–14) of a citizen ID number; ``ValueError`` if not a real date."""
    if not CIN_RE.match(value):
        raise ValueError(f"not a citizen ID number: {value!r}")
    born = _cin_date(value)
    if born is None:
        raise ValueError(f"citizen ID number with an impossible birth date: {value!r}")
    return born


def cin_sex(value: str) -> str:
    """``"male"`` (odd digit 17) or ``"female"`` (even)."""
    if not CIN_RE.match(value):
        raise ValueError(f"not a citizen ID number: {value!r}")
    return "male" if int(value[16]) % 2 == 1 else "female"


def make_cin(area6: str, birth: date, seq3: int) -> str:
    """Build a valid CIN from a GB/T 2260 county code, birth date and sequence (odd = male)."""
    if len(area6) != 6 or not area6.isdigit() or area6[0] == "0":
        raise ValueError(f"bad GB/T 2260 area code: {area6!r}")
    if not 0 <= seq3 <= 999:
        raise ValueError("sequence code is 0..999")
    body = f"{area6}{birth:%Y%m%d}{seq3:03d}"
    return body + cin_check_char(body)


# --------------------------------------------------------------------------------------------
# GB 32100-2015 unified social credit code

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_RE = re.compile(r"^[159Y][1239]\d{6}[0-9A-HJ-NP-RTUWXY]{9}[0-9A-HJ-NP-RTUWXY]$")
USCC_WEIGHTS: tuple[int, ...] = tuple(pow(3, i, 31) for i in range(17))
_USCC_INDEX = {c: i for i, c in enumerate(USCC_ALPHABET)}


def uscc_check_char(body17: str) -> str:
    """GB 32100 check character of the first 17 characters of a USCC ([M], see module doc)."""
    if len(body17) != 17:
        raise ValueError("a USCC body is 17 characters")
    try:
        total = sum(_USCC_INDEX[c] * w for c, w in zip(body17, USCC_WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the USCC alphabet") from exc
    return USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(value: str) -> bool:
    """Structure (DOMAIN §A row 13, restricted to the USCC alphabet) plus the check character."""
    if not USCC_RE.match(value):
        return False
    return uscc_check_char(value[:17]) == value[17]


# --------------------------------------------------------------------------------------------
# Other formats

EHC_ID_RE = re.compile(r"^[0-9A-F]{64}$")
#: NHSA fixmedins_code (定点医药机构编号), e.g. H51202100005
DESIGNATED_INSTITUTION_CODE_RE = re.compile(r"^[A-Z]\d{11}$")
BIRTH_CERT_NO_RE = re.compile(r"^[A-Z]\d{9}$")
HEALTH_RECORD_NO_RE = re.compile(r"^\d{17}$")


def is_valid_ehc_id(value: str) -> bool:
    """EHC ID / MindexID format: 64 upper-case hex characters (opaque, not recomputable)."""
    return EHC_ID_RE.match(value) is not None


def is_valid_fixmedins_code(value: str) -> bool:
    return DESIGNATED_INSTITUTION_CODE_RE.match(value) is not None


def is_valid_birth_cert_no(value: str) -> bool:
    return BIRTH_CERT_NO_RE.match(value) is not None
