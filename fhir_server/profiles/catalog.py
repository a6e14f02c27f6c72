"""The platform's invariants (DOMAIN.md §A, §C): key, severity, message, FHIRPath, native check.

One definition serves twice: ``scripts/build_profiles.py`` writes the FHIRPath ``expression`` into
the StructureDefinitions, and the validator runs the ``native`` function instead of fhirpathpy when
the profile still carries exactly that expression (a profile edited by hand falls back to
fhirpathpy). ``tests/unit/test_profiles_invariants.py`` checks that both agree.

A native returns True (holds), False (broken) or None (cannot be evaluated: e.g. the Patient a
reference points to is not available). Pure, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from fhir_server.fhir import identifiers as ids

Resolver = Callable[[str], "dict[str, Any] | None"]


@dataclass(slots=True)
class EvalContext:
    """What an invariant may look at besides its context element."""

    resource: dict[str, Any]  # %resource: the resource the element belongs to
    resolver: Resolver | None = None  # reference string -> resource (None: resolve() unavailable)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    root: dict[str, Any] | None = None  # %rootResource when it differs (inside contained)
    #: FHIRPath ``memberOf()``: (value set, system, code) -> True/False, None when unknown
    member_of: Callable[[str, str | None, str], bool | None] | None = None

    @property
    def root_resource(self) -> dict[str, Any]:
        return self.root if self.root is not None else self.resource


Native = Callable[[Any, EvalContext], "bool | None"]


@dataclass(frozen=True, slots=True)
class Rule:
    key: str
    severity: str  # error | warning
    human: str
    expression: str
    native: Native | None = None
    focus: str | None = None  # child reported in the issue expression, e.g. "value"


# ---------------------------------------------------------------------------------------------
# small helpers over JSON


def _items(obj: Any, key: str) -> list[Any]:
    if not isinstance(obj, dict):
        return []
    value = obj.get(key)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _str(obj: Any, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


def _ext_values(obj: Any, url: str) -> Iterator[Any]:
    for ext in _items(obj, "extension"):
        if isinstance(ext, dict) and ext.get("url") == url:
            for key, value in ext.items():
                if key.startswith("value"):
                    yield value


def _value(item: Any) -> Any:
    """FHIRPath ``value`` of the context: ``Identifier.value``, or an extension's ``value[x]``."""
    if not isinstance(item, dict):
        return None
    if "value" in item:
        return item["value"]
    for key, value in item.items():
        if key.startswith("value"):
            return value
    return None


def _matches(pattern: str) -> Native:
    """``value.matches(pattern)`` on the context element (None, i.e. empty, without a value)."""
    compiled = re.compile(pattern)

    def check(item: Any, _ctx: EvalContext) -> bool | None:
        value = _value(item)
        if value is None:
            return None
        return isinstance(value, str) and compiled.search(value) is not None

    return check


def _max_length(limit: int) -> Native:
    def check(item: Any, _ctx: EvalContext) -> bool | None:
        value = _value(item)
        return None if not isinstance(value, str) else len(value) <= limit

    return check


# ---------------------------------------------------------------------------------------------
# GB 11643 citizen ID number

CIN_REGEX = ("^[1-9][0-9]{5}(18|19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"
             "[0-9]{3}[0-9X]$")
#: YYYYMMDD that is a real calendar date (leap years included), without backslashes
CALENDAR_REGEX = ("^([0-9]{4}(0[13578]|1[02])(0[1-9]|[12][0-9]|3[01])|[0-9]{4}(0[469]|11)"
                  "(0[1-9]|[12][0-9]|30)|[0-9]{4}02(0[1-9]|1[0-9]|2[0-8])|([0-9]{2}(0[48]|"
                  "[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)0229)$")
_CIN = re.compile(CIN_REGEX)
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CIN_DATE = "(value.substring(6, 4) + '-' + value.substring(10, 2) + '-' + value.substring(12, 2))"


def _cin_checksum_expression() -> str:
    terms = " + ".join(f"value.substring({i}, 1).toInteger() * {w}" for i, w in enumerate(_WEIGHTS))
    return (f"value.matches('^[0-9]{{17}}[0-9X]$') implies "
            f"'10X98765432'.substring(({terms}) mod 11, 1) = value.substring(17, 1)")


def _cin_value(item: Any) -> str | None:
    value = _str(item, "value")
    return value if value is not None and _CIN.match(value) else None


def _cin_format(item: Any, _ctx: EvalContext) -> bool | None:
    value = item.get("value") if isinstance(item, dict) else None
    if value is None:
        return None
    return isinstance(value, str) and _CIN.match(value) is not None


def _cin_checksum(item: Any, _ctx: EvalContext) -> bool | None:
    value = _str(item, "value")
    if value is None or not re.match(r"^[0-9]{17}[0-9X]$", value):
        return True
    return ids.cin_check_char(value[:17]) == value[17]


_CALENDAR = re.compile(CALENDAR_REGEX)


def _cin_date(item: Any, ctx: EvalContext) -> bool | None:
    value = _cin_value(item)
    if value is None:
        return True
    if not _CALENDAR.match(value[6:14]):
        return False
    born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    return born <= ctx.now.date()


def _cin_birthdate(item: Any, ctx: EvalContext) -> bool | None:
    value = _cin_value(item)
    birth = _str(ctx.resource, "birthDate")
    if value is None or birth is None:
        return True
    return f"{value[6:10]}-{value[10:12]}-{value[12:14]}".startswith(birth)


def _cin_sex(item: Any, ctx: EvalContext) -> bool | None:
    value = _cin_value(item)
    gender = _str(ctx.resource, "gender")
    if value is None or gender not in ("male", "female"):
        return True
    return (int(value[16]) % 2 == 1) == (gender == "male")


# ---------------------------------------------------------------------------------------------
# dates


def _local_date(value: str) -> str:
    return value[:10]


def _occurrence(resource: Any) -> str | None:
    return _str(resource, "occurrenceDateTime")


def _parse_instant(value: str) -> datetime | None:
    if len(value) <= 10 or "T" not in value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _imm_not_future(resource: Any, ctx: EvalContext) -> bool | None:
    when = _occurrence(resource)
    if when is None:
        return True
    instant = _parse_instant(when)
    if instant is not None and instant.tzinfo is not None:
        return instant <= ctx.now
    return when[:10] <= (ctx.now.date() + timedelta(days=1)).isoformat()


def _imm_expiry(resource: Any, _ctx: EvalContext) -> bool | None:
    expiry, when = _str(resource, "expirationDate"), _occurrence(resource)
    if expiry is None or when is None:
        return True
    return expiry >= when[: len(expiry)]


def _imm_after_birth(resource: Any, ctx: EvalContext) -> bool | None:
    when = _occurrence(resource)
    patient = resource.get("patient") if isinstance(resource, dict) else None
    reference = _str(patient, "reference")
    if when is None or reference is None:
        return True
    if ctx.resolver is None:
        return None
    target = ctx.resolver(reference)
    if target is None:
        return None
    birth = _str(target, "birthDate")
    return True if birth is None else _local_date(when) >= birth


def _imm_status_reason(resource: Any, _ctx: EvalContext) -> bool | None:
    return resource.get("status") != "not-done" or "statusReason" in resource


# ---------------------------------------------------------------------------------------------
# the catalogue


@dataclass(frozen=True, slots=True)
class Urls:
    """The base-dependent URIs the invariants mention."""

    base: str

    @property
    def sids(self) -> ids.IdentifierSystems:
        return ids.identifier_systems(self.base)

    @property
    def cs(self) -> ids.CodeSystems:
        return ids.code_systems(self.base)


def _codings(cc: Any) -> list[dict[str, Any]]:
    return [c for c in _items(cc, "coding") if isinstance(c, dict)]


@cache
def local_rules(base: str = ids.DEFAULT_CANONICAL_BASE) -> dict[str, Rule]:
    """Every invariant of the local profiles and extensions, by key, for the canonical ``base``."""
    u = Urls(base.rstrip("/"))
    s, cs = u.sids, u.cs
    org_prefix = f"{s.base}/sid/org/"
    sex_ext = ids.ext_gbt2261_1_sex(s.base)
    direction_ext = ids.ext_referral_direction(s.base)
    nip, funding = cs.cn_nip_vaccine, cs.funding_source
    rules: list[Rule] = []

    def add(key: str, severity: str, human: str, expression: str, native: Native | None,
            focus: str | None = None) -> None:
        rules.append(Rule(key, severity, human, expression, native, focus))

    # -- Patient identifiers
    add("cin-format", "error", "公民身份号码格式错误 (GB 11643: 6-digit area, 8-digit birth date, "
        "3-digit sequence, check character) / citizen ID number has the wrong format",
        f"value.matches('{CIN_REGEX}')", _cin_format, "value")
    add("cin-checksum", "error", "公民身份号码校验码错误 (ISO 7064 MOD 11-2) / the citizen ID "
        "number's check character is wrong", _cin_checksum_expression(), _cin_checksum, "value")
    add("cin-date", "error", "公民身份号码中的出生日期不是有效日期或晚于今天 / the birth date in the "
        "citizen ID number is not a real date, or is in the future",
        f"value.matches('{CIN_REGEX}') implies (value.substring(6, 8).matches('{CALENDAR_REGEX}')"
        f" and {_CIN_DATE}.toDate() <= today())", _cin_date, "value")
    add("cin-birthdate", "error", "公民身份号码中的出生日期与 birthDate 不一致 / the birth date in "
        "the citizen ID number differs from Patient.birthDate",
        f"value.matches('{CIN_REGEX}') implies (%resource.birthDate.empty() or "
        f"{_CIN_DATE}.startsWith(%resource.birthDate.toString()))", _cin_birthdate, "value")
    add("cin-sex", "warning", "公民身份号码第17位奇偶与性别不一致 (奇数为男) / digit 17 of the "
        "citizen ID number does not agree with Patient.gender (odd = male)",
        f"value.matches('{CIN_REGEX}') implies (%resource.gender.empty() or "
        "(%resource.gender in ('male' | 'female')).not() or "
        "((value.substring(16, 1).toInteger() mod 2 = 1) = (%resource.gender = 'male')))",
        _cin_sex, "value")
    add("ehc-format", "error", "电子健康卡ID须为64位大写十六进制 (二维码内容不是ID) / the health card "
        "ID must be 64 upper-case hex characters (a QR payload is not an ID)",
        "value.matches('^[0-9A-F]{64}$')", _matches("^[0-9A-F]{64}$"), "value")
    add("mindex-format", "error", "主索引ID须为64位大写十六进制 / the card-system master index ID "
        "must be 64 upper-case hex characters",
        "value.matches('^[0-9A-F]{64}$')", _matches("^[0-9A-F]{64}$"), "value")
    add("birthcert-format", "error", "出生医学证明编号须为1个字母加9位数字 / the birth certificate "
        "number is one letter and 9 digits", "value.matches('^[A-Z][0-9]{9}$')",
        _matches("^[A-Z][0-9]{9}$"), "value")
    add("hrn-format", "warning", "城乡居民健康档案编号通常为17位数字 / the health record number is "
        "usually 17 digits", "value.matches('^[0-9]{17}$')", _matches("^[0-9]{17}$"), "value")
    add("sscard-format", "warning", "社会保障卡卡号通常为6-20位数字或大写字母 / the social security "
        "card number is usually 6-20 digits or capitals", "value.matches('^[0-9A-Z]{6,20}$')",
        _matches("^[0-9A-Z]{6,20}$"), "value")
    add("rhc-length", "error", "居民健康卡号不超过32个字符 / the resident health card number has at "
        "most 32 characters", "value.length() <= 32", _max_length(32), "value")
    add("psn-length", "error", "医保人员编号不超过30个字符 / the NHSA person number has at most 30 "
        "characters", "value.length() <= 30", _max_length(30), "value")

    def ehc_current(patient: Any, _ctx: EvalContext) -> bool | None:
        current = [i for i in _items(patient, "identifier")
                   if isinstance(i, dict) and i.get("system") == s.ehc_id and i.get("use") != "old"]
        return len(current) <= 1

    add("rhip-pat-ehc", "error", "至多一个在用的电子健康卡ID (旧卡用 use=old) / at most one current "
        "health card ID (superseded ones have use = old)",
        f"identifier.where(system = '{s.ehc_id}' and (use.empty() or use != 'old')).count() <= 1",
        ehc_current)

    def has_id(patient: Any, _ctx: EvalContext) -> bool | None:
        for i in _items(patient, "identifier"):
            system = _str(i, "system") or ""
            if system in (s.ehc_id, s.cin, s.birth_cert_no) or (
                    system.startswith(s.id_doc_prefix)):
                return True
        return False

    add("rhip-pat-id", "error", "须有电子健康卡ID、公民身份号码、其他身份证件或出生医学证明编号之一 / "
        "a resident needs a health card ID, a citizen ID number, another ID document or a birth "
        "certificate number",
        f"identifier.where(system = '{s.ehc_id}' or system = '{s.cin}' or "
        f"system.startsWith('{s.id_doc_prefix}') or system = '{s.birth_cert_no}').exists()", has_id)
    id_doc = re.compile(r"^[0-9A-Za-z-]{4,32}$")

    def id_doc_format(patient: Any, _ctx: EvalContext) -> bool | None:
        for i in _items(patient, "identifier"):
            if (_str(i, "system") or "").startswith(s.id_doc_prefix):
                value = _str(i, "value")
                if value is None or not id_doc.match(value):
                    return False
        return True

    add("rhip-pat-iddoc", "error", "其他身份证件号码须为4-32位字母、数字或连字符 / other ID document "
        "numbers are 4-32 letters, digits or hyphens",
        f"identifier.where(system.startsWith('{s.id_doc_prefix}'))"
        ".all(value.matches('^[0-9A-Za-z-]{4,32}$'))", id_doc_format)
    sexes = {"1": ("male",), "2": ("female",), "0": ("unknown", "other"), "9": ("unknown", "other")}

    def sex_agrees(patient: Any, _ctx: EvalContext) -> bool | None:
        gender = _str(patient, "gender")
        for value in _ext_values(patient, sex_ext):
            code = _str(value, "code")
            if code in sexes and gender not in sexes[code]:  # other codes: the binding's
                return False
        return True

    add("rhip-pat-sex", "error", "GB/T 2261.1 性别与 gender 不一致 (1=male, 2=female, 0/9=unknown "
        "或 other) / the GB/T 2261.1 sex does not agree with Patient.gender",
        f"extension.where(url = '{sex_ext}').value.code.all(($this = '1' and %resource.gender = "
        "'male') or ($this = '2' and %resource.gender = 'female') or (($this = '0' or $this = '9')"
        " and (%resource.gender = 'unknown' or %resource.gender = 'other')) or ($this in ('0' | '1' | "
        "'2' | '9')).not())", sex_agrees)

    # -- Encounter
    def visit_numbers(encounter: Any) -> list[dict[str, Any]]:
        return [i for i in _items(encounter, "identifier") if isinstance(i, dict)
                and (_str(i, "system") or "").startswith(org_prefix)
                and (_str(i, "system") or "").endswith(("/outpatient-no", "/inpatient-no"))]

    add("rhip-enc-visitno", "error", "须有且只有一个门(急)诊号或住院号 (system {base}/sid/org/{机构}/"
        "outpatient-no|inpatient-no) / exactly one hospital visit number is required",
        f"identifier.where(system.startsWith('{org_prefix}') and (system.endsWith('/outpatient-no')"
        " or system.endsWith('/inpatient-no'))).count() = 1",
        lambda enc, _ctx: len(visit_numbers(enc)) == 1)

    def org_serial_length(encounter: Any, _ctx: EvalContext) -> bool | None:
        for i in _items(encounter, "identifier"):
            if (_str(i, "system") or "").startswith(org_prefix):
                value = _str(i, "value")
                if value is None or len(value) > 30:
                    return False
        return True

    add("rhip-enc-visitno-length", "error", "院内就诊流水号不超过30个字符 (医保 ipt_otp_no) / a "
        "hospital visit number has at most 30 characters",
        f"identifier.where(system.startsWith('{org_prefix}')).all(value.length() <= 30)",
        org_serial_length)

    def encounter_class(encounter: Any, _ctx: EvalContext) -> bool | None:
        cls = encounter.get("class") if isinstance(encounter, dict) else None
        if not isinstance(cls, dict):
            return True
        return cls.get("system") == ids.CS_V3_ACT_CODE and cls.get("code") in (
            "AMB", "EMER", "IMP", "HH")

    add("rhip-enc-class", "error", "就诊类别须为 v3-ActCode AMB、EMER、IMP 或 HH / the encounter "
        "class is v3-ActCode AMB, EMER, IMP or HH",
        f"class.empty() or (class.system = '{ids.CS_V3_ACT_CODE}' and "
        "class.code in ('AMB' | 'EMER' | 'IMP' | 'HH'))", encounter_class)
    add("mdtrt-length", "error", "医保就诊ID不超过30个字符 / the NHSA visit ID has at most 30 "
        "characters", "value.length() <= 30", _max_length(30), "value")

    # -- Immunization
    add("rhip-imm-birth", "error", "接种日期早于受种者出生日期 / the vaccination is dated before the "
        "patient's birth",
        "patient.resolve().birthDate.empty() or occurrence.ofType(dateTime).empty() or "
        "occurrence.ofType(dateTime).toString().substring(0, 10) >= "
        "patient.resolve().birthDate.toString()", _imm_after_birth, "occurrenceDateTime")
    add("rhip-imm-future", "error", "接种日期不能晚于当前时间 / the vaccination is dated in the future",
        "occurrence.ofType(dateTime).empty() or (occurrence.ofType(dateTime).toString().length() "
        "> 10 and occurrence.ofType(dateTime) <= now()) or (occurrence.ofType(dateTime).toString()"
        ".length() <= 10 and occurrence.ofType(dateTime).toString() <= (today() + 1 day)"
        ".toString())", _imm_not_future, "occurrenceDateTime")
    add("rhip-imm-expiry", "error", "疫苗有效期早于接种日期 / the vaccine expired before the "
        "vaccination date",
        "expirationDate.empty() or occurrence.ofType(dateTime).empty() or "
        "expirationDate.toString() >= occurrence.ofType(dateTime).toString()"
        ".substring(0, expirationDate.toString().length())", _imm_expiry, "expirationDate")

    nip_vs = f"{s.base}/ValueSet/cn-nip-vaccines"

    def nip_vaccine(imm: Any, ctx: EvalContext) -> bool | None:
        """A coding in the NIP value set (cn-nip-vaccine also has non-NIP products)."""
        codings = [c for c in _codings(imm.get("vaccineCode")) if c.get("system") == nip]
        if not codings:
            return False
        if ctx.member_of is None:
            return None
        found = [ctx.member_of(nip_vs, nip, str(c.get("code"))) for c in codings]
        return True if any(found) else (None if None in found else False)

    def nip_funding(imm: Any, ctx: EvalContext) -> bool | None:
        nip_dose = nip_vaccine(imm, ctx)
        if not nip_dose:
            return None if nip_dose is None else True
        return any(c.get("system") == funding and c.get("code") == "nip"
                   for c in _codings(imm.get("fundingSource")))

    add("rhip-imm-nip-funding", "warning", "免疫规划疫苗的资金来源应为 nip / a national immunisation "
        "programme vaccine should have fundingSource nip",
        f"vaccineCode.coding.where(memberOf('{nip_vs}')).exists() implies "
        f"fundingSource.coding.where(system = '{funding}' and code = 'nip').exists()",
        nip_funding, "fundingSource")

    def nip_series(imm: Any, ctx: EvalContext) -> bool | None:
        nip_dose = nip_vaccine(imm, ctx)
        if not nip_dose:
            return None if nip_dose is None else True
        return all(isinstance(p, dict) and "seriesDosesPositiveInt" in p
                   for p in _items(imm, "protocolApplied"))

    add("rhip-imm-nip-series", "warning", "免疫规划疫苗应记录程序总剂次 / a national immunisation "
        "programme dose should give the series' number of doses",
        f"vaccineCode.coding.where(memberOf('{nip_vs}')).exists() implies "
        "protocolApplied.all(seriesDoses.ofType(positiveInt).exists())", nip_series)
    add("rhip-imm-status-reason", "warning", "未接种 (not-done) 应说明原因 (禁忌/拒种/暂缓) / a dose "
        "not given should say why", "status = 'not-done' implies statusReason.exists()",
        _imm_status_reason, "statusReason")
    add("trace-code-format", "warning", "疫苗追溯码通常为20位数字 / the vaccine trace code is usually "
        "20 digits", "value.matches('^[0-9]{20}$')", _matches("^[0-9]{20}$"), "value")

    # -- ServiceRequest (referral)
    def down_based_on(sr: Any, _ctx: EvalContext) -> bool | None:
        if "down" not in _ext_values(sr, direction_ext):
            return True
        return "basedOn" in sr

    add("rhip-sr-down", "warning", "下转单应通过 basedOn 指向原上转单 / a down-referral should point "
        "to the original up-referral with basedOn",
        f"extension.where(url = '{direction_ext}').value = 'down' implies basedOn.exists()",
        down_based_on, "basedOn")

    def icd10(sr: Any, _ctx: EvalContext) -> bool | None:
        return all(any(c.get("system") == ids.CS_ICD10 for c in _codings(r))
                   for r in _items(sr, "reasonCode"))

    add("rhip-sr-icd10", "warning", "转诊诊断应有 ICD-10 编码 / the referral diagnosis should carry "
        "an ICD-10 code",
        f"reasonCode.all(coding.where(system = '{ids.CS_ICD10}').exists())", icd10, "reasonCode")

    # -- extensions
    add("admin-division-format", "error", "行政区划代码须为6、9或12位数字 (GB/T 2260) / the "
        "administrative division code is 6, 9 or 12 digits",
        "value.matches('^[1-9][0-9]{5}([0-9]{3}([0-9]{3})?)?$')",
        _matches("^[1-9][0-9]{5}([0-9]{3}([0-9]{3})?)?$"), "value")
    add("admdvs-format", "error", "医保区划为6位数字 / an NHSA region code is 6 digits",
        "value.matches('^[0-9]{6}$')", _matches("^[0-9]{6}$"), "value")
    add("setl-length", "error", "医保结算ID不超过30个字符 / the NHSA settlement ID has at most 30 "
        "characters", "value.length() <= 30", _max_length(30), "value")

    def money(ext: Any) -> Iterator[dict[str, Any]]:
        for sub in _items(ext, "extension"):
            value = sub.get("valueMoney") if isinstance(sub, dict) else None
            if isinstance(value, dict):
                yield value

    add("money-cny", "error", "金额币种须为 CNY / amounts are in CNY",
        "extension.value.ofType(Money).all(currency = 'CNY')",
        lambda ext, _ctx: all(m.get("currency") == "CNY" for m in money(ext)))
    two_places = re.compile(r"^-?[0-9]+(\.[0-9]{1,2})?$")

    def money_scale(ext: Any, _ctx: EvalContext) -> bool | None:
        for m in money(ext):
            value = m.get("value")
            if value is None or isinstance(value, bool):
                return False
            if two_places.match(str(value)) is None:
                return False
        return True

    add("money-scale", "error", "金额最多保留两位小数 / amounts have at most 2 decimal places",
        "extension.value.ofType(Money).all(value.toString().matches('^-?[0-9]+([.][0-9]{1,2})?$'))",
        money_scale)
    return {r.key: r for r in rules}
