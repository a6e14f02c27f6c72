"""Deterministic synthetic population for the EHC platform (FHIR R4 JSON dicts).

Same (patients, seed, base, today) → byte-identical output. Each patient has its own RNG seeded from
(seed, index), so output for patient *i* does not depend on how many patients are generated.
Resources are yielded in dependency order: Organizations, Practitioners, PractitionerRoles,
then per patient: Patient, Encounters, Immunizations, referral ServiceRequests with their
arrival Encounter and Task.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from fhir_server.auth.policy import OWNER_TAG_PATH
from fhir_server.fhir import identifiers as ids
from fhir_server.fhir.identifiers import (
    DEFAULT_CANONICAL_BASE,
    IdentifierSystems,
    identifier_systems,
    make_cin,
)

from . import names, regions
from .schedule import SERIES_ID, VACCINES, DueDose, due_doses

SEED_REFERENCE_DATE = date(2026, 6, 30)
"""Default "today": fixed so output does not depend on the wall clock. Pass ``today`` to move it."""

CST = timezone(timedelta(hours=8))
CHILD_SHARE = 0.35
MISSED_SERIES_RATE = 0.05  # per (child, vaccine family): the series stops at a random due dose
REFERRAL_RATE = 0.10  # adults with an up-referral
DOWN_REFERRAL_RATE = 0.5  # of those, with a down-referral back

Resource = dict[str, Any]


def ref(resource_type: str, rid: str, display: str | None = None) -> dict[str, str]:
    out = {"reference": f"{resource_type}/{rid}"}
    if display:
        out["display"] = display
    return out


def fhir_dt(d: date, minutes: int) -> str:
    """dateTime on ``d`` at ``minutes`` after midnight, Beijing time."""
    t = datetime(d.year, d.month, d.day, tzinfo=CST) + timedelta(minutes=minutes)
    return t.isoformat()


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def cc(
    system: str, code: str, display: str | None = None, text: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [coding(system, code, display)]}
    if text:
        out["text"] = text
    return out


def _gb11714_check(body8: str) -> str:
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in body8]
    total = sum(v * w for v, w in zip(values, weights, strict=True))
    c9 = 11 - total % 11
    return "X" if c9 == 10 else "0" if c9 == 11 else str(c9)


def make_uscc(prefix2: str, area6: str, org_serial8: str) -> str:
    """USCC: authority/category prefix, GB/T 2260 area, GB 11714 code, GB 32100 check."""
    org9 = org_serial8 + _gb11714_check(org_serial8)
    body = prefix2 + area6 + org9
    return body + ids.uscc_check_char(body)


# ------------------------------------------------------------------------------------------
# Organisations


@dataclass(frozen=True, slots=True)
class OrgSpec:
    key: str  # id suffix
    kind: str  # hospital | chc | clinic | mch | insurer | maker
    name: str
    district: str  # GB/T 2260
    street: str
    type_code: str  # organization-type
    type_text: str
    uscc_prefix: str
    serial: str  # 8 chars for GB 11714
    fixmedins: str | None = None


ORGS: tuple[OrgSpec, ...] = (
    OrgSpec("hosp-1", "hospital", "成都市示范第一人民医院", "510107", "科华北路88号", "prov",
            "三级甲等综合医院", "12", "45070001", "H51010700001"),
    OrgSpec("hosp-2", "hospital", "成都市示范第二人民医院", "510106", "蜀汉路66号", "prov",
            "二级甲等综合医院", "12", "45060002", "H51010600002"),
    OrgSpec("hosp-3", "hospital", "成都市双流区示范人民医院", "510116", "东升街120号", "prov",
            "二级甲等综合医院", "12", "45160003", "H51011600003"),
    OrgSpec("chc-1", "chc", "锦江区书院街街道社区卫生服务中心", "510104", "书院街21号", "prov",
            "社区卫生服务中心", "12", "46040011", "H51010400011"),
    OrgSpec("chc-2", "chc", "青羊区少城街道社区卫生服务中心", "510105", "长顺上街35号", "prov",
            "社区卫生服务中心", "12", "46050012", "H51010500012"),
    OrgSpec("chc-3", "chc", "成华区猛追湾街道社区卫生服务中心", "510108", "猛追湾街9号", "prov",
            "社区卫生服务中心", "12", "46080013", "H51010800013"),
    OrgSpec("chc-4", "chc", "龙泉驿区龙泉街道社区卫生服务中心", "510112", "龙泉街58号", "prov",
            "社区卫生服务中心", "12", "46120014", "H51011200014"),
    OrgSpec("vacc-1", "clinic", "成都市青羊区示范预防接种门诊", "510105", "清江东路12号", "prov",
            "预防接种门诊", "12", "47050021", "H51010500021"),
    OrgSpec("mch-1", "mch", "成都市示范妇幼保健院", "510104", "东大街168号", "prov",
            "妇幼保健院", "12", "48040031", "H51010400031"),
    OrgSpec("ins-1", "insurer", "成都市医疗保障事务中心", "510105", "草市街2号", "ins",
            "医疗保障经办机构", "12", "49050041"),
    OrgSpec("mfr-1", "maker", "北京示范生物制品有限公司", "110108", "北京市海淀区学院路1号",
            "bus", "疫苗上市许可持有人", "91", "M0A1B2C3"),
    OrgSpec("mfr-2", "maker", "上海示范疫苗股份有限公司", "310115", "上海市浦东新区张江路2号",
            "bus", "疫苗上市许可持有人", "91", "M1D2E3F4"),
    OrgSpec("mfr-3", "maker", "成都示范生物制品研究所有限责任公司", "510108", "成华区宝山路3号",
            "bus", "疫苗上市许可持有人", "91", "M2G3H4J5"),
)
ORG_BY_KEY = {o.key: o for o in ORGS}
HOSPITALS = tuple(o for o in ORGS if o.kind == "hospital")
CHCS = tuple(o for o in ORGS if o.kind == "chc")
PROVIDERS = tuple(o for o in ORGS if o.kind in ("hospital", "chc", "clinic", "mch"))
MAKERS = tuple(o for o in ORGS if o.kind == "maker")
STAFF_PER_ORG = 3


def org_id(o: OrgSpec) -> str:
    return f"org-{o.key}"


def org_uscc(o: OrgSpec) -> str:
    return make_uscc(o.uscc_prefix, o.district, o.serial)


def _address(base: str, district_code: str, line: str, city_override: str | None = None) -> dict[
    str, Any
]:
    d = regions.DISTRICT_BY_CODE.get(district_code)
    ext = [{"url": ids.ext_admin_division(base), "valueCode": district_code}]
    if d is None:  # out-of-city organisation: line holds the full address
        return {"extension": ext, "use": "work", "type": "physical", "text": line,
                "line": [line], "country": "CN"}
    return {
        "extension": ext,
        "use": "work",
        "type": "physical",
        "text": f"{regions.PROVINCE}{regions.CITY}{d.name}{line}",
        "line": [line],
        "city": city_override or regions.CITY,
        "district": d.name,
        "state": regions.PROVINCE,
        "postalCode": d.postal_code,
        "country": "CN",
    }


def build_organization(o: OrgSpec, base: str, sids: IdentifierSystems) -> Resource:
    identifier: list[dict[str, Any]] = [
        {"use": "official", "type": {"text": "统一社会信用代码"}, "system": sids.uscc,
         "value": org_uscc(o)}
    ]
    if o.fixmedins:
        identifier.append({"use": "secondary", "type": {"text": "定点医药机构编号"},
                           "system": sids.fixmedins_code, "value": o.fixmedins})
    org_type = ids.CS_ORG_TYPE
    type_display = {"prov": "Healthcare Provider", "ins": "Insurance Company",
                    "bus": "Non-Healthcare Business or Corporation"}[o.type_code]
    rng = random.Random(f"org-phone:{o.key}")
    return {
        "resourceType": "Organization",
        "id": org_id(o),
        "identifier": identifier,
        "active": True,
        "type": [cc(org_type, o.type_code, type_display, o.type_text)],
        "name": o.name,
        "telecom": [{"system": "phone", "value": f"028-{rng.randint(8000_0000, 8899_9999)}",
                     "use": "work"}],
        "address": [_address(base, o.district, o.street)],
    }


@dataclass(frozen=True, slots=True)
class Staff:
    pid: str  # Practitioner id
    role_id: str  # PractitionerRole id
    name: str
    org: OrgSpec


def staff_of(o: OrgSpec) -> list[Staff]:
    rng = random.Random(f"staff:{o.key}")
    out = []
    for k in range(1, STAFF_PER_ORG + 1):
        sex = rng.choice(("male", "female"))
        fam, giv = names.full_name(rng, sex, rng.randint(1965, 1995))
        out.append(Staff(f"prac-{o.key}-{k}", f"role-{o.key}-{k}", fam + giv, o))
    return out


STAFF: dict[str, list[Staff]] = {o.key: staff_of(o) for o in PROVIDERS}


def build_practitioner(s: Staff, k: int) -> tuple[Resource, Resource]:
    rng = random.Random(f"staff-detail:{s.pid}")
    sex = "male" if rng.random() < 0.5 else "female"
    fam, giv = s.name[0], s.name[1:]
    prac = {
        "resourceType": "Practitioner",
        "id": s.pid,
        "active": True,
        "name": [{"use": "official", "text": s.name, "family": fam, "given": [giv]}],
        "gender": sex,
        "telecom": [{"system": "phone", "value": _mobile(rng), "use": "work"}],
    }
    is_nurse = k == STAFF_PER_ORG  # the last of each org is a nurse
    role = {
        "resourceType": "PractitionerRole",
        "id": s.role_id,
        "active": True,
        "practitioner": ref("Practitioner", s.pid, s.name),
        "organization": ref("Organization", org_id(s.org), s.org.name),
        "code": [cc("http://terminology.hl7.org/CodeSystem/practitioner-role",
                    "nurse" if is_nurse else "doctor", "Nurse" if is_nurse else "Doctor",
                    "护士" if is_nurse else "医师")],
    }
    return prac, role


def _mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"


# ------------------------------------------------------------------------------------------
# Clinical tables

ICD10_CHILD = (("J06.9", "急性上呼吸道感染"), ("J20.9", "急性支气管炎"),
               ("A09.9", "胃肠炎和结肠炎"), ("L30.9", "皮炎"), ("H66.9", "中耳炎"))
ICD10_ADULT = (("J06.9", "急性上呼吸道感染"), ("I10", "特发性(原发性)高血压"),
               ("E11.9", "2型糖尿病不伴有并发症"), ("K29.7", "胃炎"), ("M54.5", "下背痛"),
               ("J44.9", "慢性阻塞性肺病"), ("I25.1", "动脉硬化性心脏病"), ("N39.0", "泌尿道感染"))
ICD10_IMP = (("J18.9", "肺炎"), ("I63.9", "脑梗死"), ("I21.9", "急性心肌梗死"),
             ("K35.8", "急性阑尾炎"), ("S72.0", "股骨颈骨折"))
ICD10_EMER = (("R07.4", "胸痛"), ("S06.0", "脑震荡"), ("R10.4", "腹痛"), ("T78.4", "变态反应"))
ICD10_REFERRAL = (("I10", "特发性(原发性)高血压"), ("E11.9", "2型糖尿病不伴有并发症"),
                  ("I25.1", "动脉硬化性心脏病"), ("J44.9", "慢性阻塞性肺病"), ("I63.9", "脑梗死"))
ENC_CLASS = {
    "AMB": ("ambulatory", "11429006", "Consultation"),
    "EMER": ("emergency", "50849002", "Emergency room admission"),
    "IMP": ("inpatient encounter", "32485007", "Hospital admission"),
    "HH": ("home health", "439708006", "Home visit"),
}
SITES = {"1": "左上臂", "2": "右上臂", "3": "左大腿", "4": "右大腿", "5": "左臀部", "6": "右臀部",
         "7": "口服"}
#: mch-visit-type child health checks: (code, display, age in days, encounter class)
CHILD_CHECKS = (
    ("newborn-visit", "新生儿家庭访视", 5, "HH"),
    ("child-check-1m", "满月健康检查", 28, "AMB"),
    ("child-check-3m", "3月龄健康检查", 91, "AMB"),
    ("child-check-6m", "6月龄健康检查", 182, "AMB"),
    ("child-check-8m", "8月龄健康检查", 243, "AMB"),
    ("child-check-12m", "12月龄健康检查", 365, "AMB"),
    ("child-check-18m", "18月龄健康检查", 548, "AMB"),
    ("child-check-24m", "24月龄健康检查", 730, "AMB"),
    ("child-check-30m", "30月龄健康检查", 913, "AMB"),
    ("child-check-36m", "36月龄健康检查", 1095, "AMB"),
    ("child-check-4y", "4岁健康检查", 1461, "AMB"),
    ("child-check-5y", "5岁健康检查", 1826, "AMB"),
    ("child-check-6y", "6岁健康检查", 2191, "AMB"),
)
CHILD_CHECK_RATE = 0.85  # share of due checks that took place
#: prenatal checks: (code, display, earliest week, latest week of gestation)
PRENATAL_VISITS = (
    ("prenatal-1", "第1次产前检查(孕13周前，建册)", 8, 12),
    ("prenatal-2", "第2次产前检查(孕16~20周)", 16, 20),
    ("prenatal-3", "第3次产前检查(孕21~24周)", 21, 24),
    ("prenatal-4", "第4次产前检查(孕28~36周)", 28, 36),
    ("prenatal-5", "第5次产前检查(孕37~40周)", 37, 38),
)
#: after delivery: (code, display, days after delivery, encounter class)
POSTPARTUM_VISITS = (
    ("postpartum-visit", "产后访视(出院后7日内)", 5, "HH"),
    ("postpartum-42d", "产后42天健康检查", 42, "AMB"),
)
PREGNANCY_RATE = 0.2  # women aged 20-40 with a pregnancy in the last 14 months
MARITAL = {"S": ("Never Married", "10", "未婚"), "M": ("Married", "20", "已婚"),
           "W": ("Widowed", "30", "丧偶"), "D": ("Divorced", "40", "离婚")}


# ------------------------------------------------------------------------------------------
# Patients


@dataclass(slots=True)
class Person:
    index: int
    pid: str
    rng: random.Random
    sex: str
    birth: date
    name: str
    cin: str
    district: regions.District
    chc: OrgSpec
    birth_org: OrgSpec


def _hex64(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest().upper()


def _age_years(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


class _Generator:
    def __init__(self, patients: int, seed: int, base: str, today: date) -> None:
        self.patients = patients
        self.seed = seed
        self.base = base.rstrip("/")
        self.today = today
        self.sids = identifier_systems(self.base)
        self.cs = ids.code_systems(self.base)
        self.cins: set[str] = set()

    # -- helpers
    def _stamp(self, i: int) -> str:
        return f"{self.seed}-{i:06d}"

    def _day_minutes(self, rng: random.Random) -> int:
        return rng.randint(8 * 60, 17 * 60 - 1)

    def run(self) -> Iterator[Resource]:
        for o in ORGS:
            yield build_organization(o, self.base, self.sids)
        roles = []
        for o in PROVIDERS:
            for k, s in enumerate(STAFF[o.key], start=1):
                prac, role = build_practitioner(s, k)
                yield prac
                roles.append(role)
        yield from roles
        for i in range(1, self.patients + 1):
            for res in self.patient_bundle(i):
                yield self._owned(res)

    def _owned(self, res: Resource) -> Resource:
        """The record-owner tag the platform stamps on API writes (fhir_server.auth.guard), so a
        hospital may change the seeded records of its own organisation, and only those."""
        org = owner_organization(res)
        if org is not None:
            meta = res.setdefault("meta", {})
            meta["tag"] = [*meta.get("tag", []), {"system": f"{self.base}/{OWNER_TAG_PATH}",
                                                  "code": org}]
        return res

    # -- person
    def make_person(self, i: int) -> Person:
        rng = random.Random(f"ehc-seed:{self.seed}:patient:{i}")
        if rng.random() < CHILD_SHARE:
            age_days = rng.randint(1, 7 * 365 - 1)
            birth = self.today - timedelta(days=age_days)
            while _age_years(birth, self.today) > 6:
                birth += timedelta(days=1)
        else:
            years = rng.triangular(7, 91, 42)
            birth = self.today - timedelta(days=int(years * 365.25))
        sex = "male" if rng.random() < 0.5 else "female"
        district = rng.choices(regions.CHENGDU_DISTRICTS, weights=regions.DISTRICT_WEIGHTS)[0]
        child = _age_years(birth, self.today) <= 6
        if not child and rng.random() < 0.15:
            area = rng.choice(regions.MIGRANT_AREAS)[0]
        else:
            area = district.code if child else rng.choice(regions.CHENGDU_DISTRICTS).code
        seq = rng.randint(0, 499) * 2 + (1 if sex == "male" else 0)
        cin = make_cin(area, birth, seq)
        while cin in self.cins:
            seq = (seq + 2) % 1000
            cin = make_cin(area, birth, seq)
        self.cins.add(cin)
        fam, giv = names.full_name(rng, sex, birth.year)
        chc = next((c for c in CHCS if c.district == district.code), CHCS[i % len(CHCS)])
        birth_org = ORG_BY_KEY["mch-1"] if rng.random() < 0.6 else ORG_BY_KEY["hosp-1"]
        return Person(i, f"pat-{self._stamp(i)}", rng, sex, birth, fam + giv, cin, district, chc,
                      birth_org)

    def patient_bundle(self, i: int) -> Iterator[Resource]:
        p = self.make_person(i)
        yield self.build_patient(p)
        yield from self.encounters(p)
        yield from self.mch_visits(p)
        if _age_years(p.birth, self.today) <= 6:
            yield from self.immunizations(p)
        elif _age_years(p.birth, self.today) >= 18 and p.rng.random() < REFERRAL_RATE:
            yield from self.referrals(p)

    def build_patient(self, p: Person) -> Resource:
        rng, s, base = p.rng, self.sids, self.base
        age = _age_years(p.birth, self.today)
        ehc_start = max(p.birth + timedelta(days=rng.randint(1, 40)),
                        date(2019, 1, 1) + timedelta(days=rng.randint(0, 900)))
        ehc_start = min(ehc_start, self.today)
        identifier: list[dict[str, Any]] = [
            {
                "use": "official",
                "type": {"coding": [coding(ids.CS_V2_0203, "JHN"),
                                    coding(self.cs.ehc_identifier_type, "EHC", "电子健康卡")],
                         "text": "电子健康卡ID"},
                "system": s.ehc_id,
                "value": _hex64("ehc", str(self.seed), "01", p.cin),
                "period": {"start": ehc_start.isoformat()},
            },
            {
                "use": "secondary",
                "type": {"coding": [coding(self.cs.ehc_identifier_type, "MINDEX", "主索引ID")]},
                "system": s.ehc_mindex,
                "value": _hex64("mindex", str(self.seed), p.cin),
            },
            {
                "use": "official",
                "type": {"coding": [coding(ids.CS_V2_0203, "NNCHN"),
                                    coding(ids.CS_CV02_01_101_ID_DOC_TYPE, "01", "居民身份证")],
                         "text": "居民身份证"},
                "system": s.cin,
                "value": p.cin,
            },
        ]
        if age >= 16 and rng.random() < 0.7:
            identifier.append({
                "use": "secondary",
                "type": {"coding": [coding(self.cs.ehc_identifier_type, "SSCARD", "社会保障卡")]},
                "system": s.sscard,
                "value": f"{rng.choice('ABCDEFGHJK')}{p.index % 100_000_000:08d}"
                f"{self.seed % 100:02d}",
            })
        if rng.random() < 0.6:
            identifier.append({
                "use": "secondary",
                "type": {"text": "城乡居民健康档案编号"},
                "system": s.health_record_no,
                "value": f"{p.district.code}{rng.randint(1, 20):03d}{rng.randint(1, 30):03d}"
                         f"{(p.index * 7 + self.seed) % 100_000:05d}",
            })
        if age <= 6:
            identifier.append({
                "use": "official",
                "type": {"text": "出生医学证明编号"},
                "system": s.birth_cert_no,
                "value": f"{'PQRST'[p.birth.year % 5]}{rng.randint(0, 99_999_999):08d}"
                         f"{p.index % 10}",
                "assigner": ref("Organization", org_id(p.birth_org), p.birth_org.name),
            })
        gb_sex = ("1", "男性") if p.sex == "male" else ("2", "女性")
        eth = rng.choices(regions.ETHNICITIES, weights=[e[2] for e in regions.ETHNICITIES])[0]
        street = rng.choice(p.district.streets)
        line = (f"{street}{rng.randint(1, 300)}号{rng.randint(1, 20)}栋{rng.randint(1, 4)}单元"
                f"{rng.randint(1, 30)}{rng.randint(1, 8):02d}室")
        address: dict[str, Any] = {
            "extension": [{"url": ids.ext_admin_division(base), "valueCode": p.district.code}],
            "use": "home",
            "type": "physical",
            "text": f"{regions.PROVINCE}{regions.CITY}{p.district.name}{line}",
            "line": [line],
            "city": regions.CITY,
            "district": p.district.name,
            "state": regions.PROVINCE,
            "postalCode": p.district.postal_code,
            "country": "CN",
        }
        if p.cin[:6] == p.district.code:  # registered (户籍) where they live
            address["extension"].append({"url": ids.ext_household_registration(base),
                                         "valueBoolean": True})
        res: Resource = {
            "resourceType": "Patient",
            "id": p.pid,
            "extension": [
                {"url": ids.ext_ethnicity(base),
                 "valueCoding": coding(ids.CS_GB3304_ETHNICITY, eth[0], eth[1])},
                {"url": ids.ext_nationality(base),
                 "valueCoding": coding(ids.CS_GBT2659_NATIONALITY, "156", "中国")},
                {"url": ids.ext_gbt2261_1_sex(base),
                 "valueCoding": coding(ids.CS_GBT2261_1_SEX, *gb_sex)},
            ],
            "identifier": identifier,
            "active": True,
            "name": [{"use": "official", "text": p.name, "family": p.name[0],
                      "given": [p.name[1:]]}],
        }
        if age >= 12:
            res["telecom"] = [{"system": "phone", "value": _mobile(rng), "use": "mobile"}]
        res["gender"] = p.sex
        res["birthDate"] = p.birth.isoformat()
        res["address"] = [address]
        if age >= 20:
            if age < 26:
                ms = rng.choices("SM", weights=(75, 25))[0]
            elif age < 65:
                ms = rng.choices("SMD", weights=(10, 82, 8))[0]
            else:
                ms = rng.choices("MWD", weights=(65, 30, 5))[0]
            disp, gb_code, gb_disp = MARITAL[ms]
            res["maritalStatus"] = {
                "coding": [coding(ids.CS_V3_MARITAL, ms, disp),
                           coding(ids.CS_GBT2261_2_MARITAL, gb_code, gb_disp)],
                "text": gb_disp,
            }
        if age < 18:
            mother = rng.random() < 0.6
            g_sex = "female" if mother else "male"
            g_fam = p.name[0] if not mother else names.surname(rng)
            g_giv = names.given_name(rng, g_sex, p.birth.year - 28)
            rel = ("52", "母亲") if mother else ("51", "父亲")
            res["contact"] = [{
                "relationship": [
                    cc(ids.CS_V2_0131, "N", "Next-of-Kin"),
                    cc(ids.CS_GBT4761_RELATIONSHIP, rel[0], rel[1], "监护人"),
                ],
                "name": {"use": "official", "text": g_fam + g_giv, "family": g_fam,
                         "given": [g_giv]},
                "telecom": [{"system": "phone", "value": _mobile(rng), "use": "mobile"}],
                "gender": g_sex,
            }]
        res["managingOrganization"] = ref("Organization", org_id(p.chc), p.chc.name)
        return res

    # -- encounters
    def _encounter(self, p: Person, k: int, cls: str, org: OrgSpec, start_day: date,
                   reason: tuple[str, str] | None, based_on: str | None = None,
                   rng: random.Random | None = None,
                   visit_type: tuple[str, str] | None = None) -> Resource:
        """One visit; ``visit_type`` (an MCH visit code) replaces the SNOMED type, ``rng`` the
        patient's main random stream."""
        rng = rng or p.rng
        staff = rng.choice(STAFF[org.key][:-1])
        start_min = self._day_minutes(rng)
        if cls == "IMP":
            end_day = start_day + timedelta(days=rng.randint(3, 12))
            end_min = rng.randint(9 * 60, 11 * 60)
            system = self.sids.org_inpatient_no(org_uscc(org))
            value = f"ZY{start_day:%Y}{self.seed % 100:02d}{p.index:06d}{k:02d}"
            id_type = ("urn:oid:2.16.156.10011.1.12", "住院号")
        else:
            end_day = start_day
            end_min = start_min + rng.randint(10, 90)
            system = self.sids.org_outpatient_no(org_uscc(org))
            value = f"MZ{start_day:%Y%m%d}{self.seed % 100:02d}{p.index:06d}{k:02d}"
            id_type = ("urn:oid:2.16.156.10011.1.11", "门(急)诊号")
        class_display, type_code, type_display = ENC_CLASS[cls]
        res: Resource = {
            "resourceType": "Encounter",
            "id": f"enc-{self._stamp(p.index)}-{k}",
            "identifier": [{
                "use": "usual",
                "type": {"coding": [coding(ids.CS_V2_0203, "VN", "Visit number"),
                                    coding(ids.CS_URN_IETF, id_type[0], id_type[1])],
                         "text": id_type[1]},
                "system": system,
                "value": value,
            }],
            "status": "finished",
            "class": coding(ids.CS_V3_ACT_CODE, cls, class_display),
            "type": [cc(self.cs.mch_visit_type, *visit_type, visit_type[1]) if visit_type
                     else cc(ids.CS_SNOMED, type_code, type_display)],
            "subject": ref("Patient", p.pid, p.name),
        }
        if based_on:
            res["basedOn"] = [ref("ServiceRequest", based_on)]
        res["participant"] = [{
            "type": [cc("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "ATND",
                        "attender")],
            "individual": ref("Practitioner", staff.pid, staff.name),
        }]
        res["period"] = {"start": fhir_dt(start_day, start_min), "end": fhir_dt(end_day, end_min)}
        if reason:
            res["reasonCode"] = [cc(ids.CS_ICD10, reason[0], reason[1], reason[1])]
        res["serviceProvider"] = ref("Organization", org_id(org), org.name)
        return res

    def _past_day(self, rng: random.Random, p: Person, within_days: int, margin: int = 1) -> date:
        """A day in (today - within_days, today - margin], not before birth."""
        earliest = max(p.birth, self.today - timedelta(days=within_days))
        latest = self.today - timedelta(days=margin)
        if latest <= earliest:
            return earliest
        return earliest + timedelta(days=rng.randint(0, (latest - earliest).days))

    def encounters(self, p: Person) -> Iterator[Resource]:
        rng = p.rng
        child = _age_years(p.birth, self.today) <= 6
        n = rng.randint(1, 3) if child else rng.randint(1, 4)
        for k in range(1, n + 1):
            roll = rng.random()
            cls = "AMB" if roll < 0.8 else ("EMER" if roll < 0.9 else "IMP")
            org = rng.choice(CHCS + HOSPITALS) if cls == "AMB" else rng.choice(HOSPITALS)
            margin = 14 if cls == "IMP" else 1
            day = self._past_day(rng, p, 3 * 365, margin)
            table = {"IMP": ICD10_IMP, "EMER": ICD10_EMER}.get(
                cls, ICD10_CHILD if child else ICD10_ADULT)
            yield self._encounter(p, k, cls, org, day, rng.choice(table))

    # -- maternal and child health (DOMAIN.md §7): own random stream, so adding them changed
    # nothing else of the output
    def mch_visits(self, p: Person) -> Iterator[Resource]:
        rng = random.Random(f"ehc-seed:{self.seed}:mch:{p.index}")
        age = _age_years(p.birth, self.today)
        if age <= 6:
            yield from self._child_checks(p, rng)
        elif p.sex == "female" and 20 <= age <= 40 and rng.random() < PREGNANCY_RATE:
            yield from self._pregnancy(p, rng)

    def _child_checks(self, p: Person, rng: random.Random) -> Iterator[Resource]:
        k = 50
        for code, display, days, cls in CHILD_CHECKS:
            day = p.birth + timedelta(days=days + rng.randint(0, 10))
            if day >= self.today or rng.random() > CHILD_CHECK_RATE:
                continue
            org = p.chc if cls == "HH" or rng.random() < 0.7 else ORG_BY_KEY["mch-1"]
            yield self._encounter(p, k, cls, org, day, None, rng=rng, visit_type=(code, display))
            k += 1

    def _pregnancy(self, p: Person, rng: random.Random) -> Iterator[Resource]:
        lmp = self.today - timedelta(days=rng.randint(60, 420))
        k = 70
        for code, display, week_lo, week_hi in PRENATAL_VISITS:
            day = lmp + timedelta(days=7 * rng.randint(week_lo, week_hi) + rng.randint(0, 6))
            if day >= self.today:
                return
            yield self._encounter(p, k, "AMB", ORG_BY_KEY["mch-1"], day, None, rng=rng,
                                  visit_type=(code, display))
            k += 1
        delivered = lmp + timedelta(days=7 * 39 + rng.randint(0, 10))
        for code, display, after, cls in POSTPARTUM_VISITS:
            day = delivered + timedelta(days=after + rng.randint(0, 3))
            if day >= self.today:
                return
            org = p.chc if cls == "HH" else ORG_BY_KEY["mch-1"]
            yield self._encounter(p, k, cls, org, day, None, rng=rng, visit_type=(code, display))
            k += 1

    # -- immunisations
    def immunizations(self, p: Person) -> Iterator[Resource]:
        rng = p.rng
        due = due_doses(p.birth, self.today)
        # deliberately missed: per family, the series may stop at one of the due doses
        stop: dict[str, int] = {}
        families = sorted({d.family for d in due})
        for fam in families:
            fam_doses = [d for d in due if d.family == fam]
            if rng.random() < MISSED_SERIES_RATE:
                stop[fam] = rng.randrange(len(fam_doses))
        given: list[DueDose] = []
        seen: dict[str, int] = {}
        for d in due:
            pos = seen.get(d.family, 0)
            seen[d.family] = pos + 1
            if d.family in stop and pos >= stop[d.family]:
                continue
            given.append(d)
        # group into visits by due date; one delay per visit
        all_due_dates = sorted({d.due for d in due_doses(p.birth, date.max.replace(year=9000))})
        visits: dict[date, list[DueDose]] = {}
        for d in given:
            visits.setdefault(d.due, []).append(d)
        clinic = ORG_BY_KEY["vacc-1"]
        n = 0
        for due_day, doses in visits.items():
            if due_day == p.birth:
                delay = 0 if "HepB-1" in {d.slot for d in doses} else rng.randint(0, 2)
            else:
                roll = rng.random()
                delay = (rng.randint(0, 3) if roll < 0.8 else rng.randint(4, 30) if roll < 0.95
                         else rng.randint(31, 60))
                nxt = [x for x in all_due_dates if x > due_day]
                if nxt:
                    delay = min(delay, max(0, (nxt[0] - due_day).days - 28))
            day = min(due_day + timedelta(days=delay), self.today)
            at_birth = due_day == p.birth
            org = p.birth_org if at_birth else clinic
            staff = STAFF[org.key][-1]  # the nurse
            minute = rng.randint(8 * 60 + 30, 16 * 60) if not at_birth else rng.randint(
                8 * 60, 20 * 60)
            for d in doses:
                n += 1
                yield self._immunization(p, n, d, day, minute, org, staff,
                                         catch_up=(day - due_day).days > 30)

    def _immunization(self, p: Person, n: int, d: DueDose, day: date, minute: int, org: OrgSpec,
                      staff: Staff, catch_up: bool) -> Resource:
        rng = p.rng
        v = VACCINES[d.vaccine]
        maker = MAKERS[(hash_int(d.vaccine) + day.year) % len(MAKERS)]
        lot = f"{day.year - rng.randint(0, 1)}{rng.randint(1, 12):02d}{rng.randint(1, 99):02d}" \
              f"{'ABC'[rng.randint(0, 2)]}{rng.randint(1, 999):03d}"
        expiry = day + timedelta(days=rng.randint(120, 720))
        site = v.site
        if site in ("1", "3") and rng.random() < 0.5:
            site = str(int(site) + 1)
        when = fhir_dt(day, minute)
        activity = ("catch-up", "补种") if catch_up else ("routine", "常规接种")
        return {
            "resourceType": "Immunization",
            "id": f"imm-{self._stamp(p.index)}-{n:02d}",
            "status": "completed",
            "vaccineCode": {
                "coding": [coding(self.cs.cn_nip_vaccine, v.code, v.display),
                           coding(ids.CS_CVX, v.cvx, v.cvx_display)],
                "text": v.display,
            },
            "patient": ref("Patient", p.pid, p.name),
            "occurrenceDateTime": when,
            "recorded": when,
            "primarySource": True,
            "manufacturer": ref("Organization", org_id(maker), maker.name),
            "lotNumber": lot,
            "expirationDate": expiry.isoformat(),
            "site": cc(self.cs.vaccination_site, site, SITES[site]),
            "route": cc(ids.CS_V3_ROUTE, v.route, v.route_display),
            "doseQuantity": {"value": v.dose_ml, "unit": "mL", "system": ids.CS_UCUM,
                             "code": "mL"},
            "performer": [
                {"function": cc(ids.CS_V2_0443, "AP", "Administering Provider"),
                 "actor": ref("Organization", org_id(org), org.name)},
                {"function": cc(ids.CS_V2_0443, "AP", "Administering Provider"),
                 "actor": ref("Practitioner", staff.pid, staff.name)},
            ],
            "reasonCode": [cc(self.cs.immunization_activity, *activity)],
            "fundingSource": cc(self.cs.funding_source, "nip", "免疫规划疫苗"),
            "protocolApplied": [{
                "series": SERIES_ID,
                "targetDisease": [cc(ids.CS_SNOMED, c, disp) for c, disp in v.target_diseases],
                "doseNumberPositiveInt": d.dose,
                "seriesDosesPositiveInt": d.series_doses,
            }],
        }

    # -- referrals
    def referrals(self, p: Person) -> Iterator[Resource]:
        rng = p.rng
        hosp = rng.choice(HOSPITALS)
        sender = rng.choice(STAFF[p.chc.key][:-1])
        receiver = rng.choice(STAFF[hosp.key][:-1])
        reason = rng.choice(ICD10_REFERRAL)
        up_day = self._past_day(rng, p, 2 * 365, margin=40)
        arrive = up_day + timedelta(days=rng.randint(1, 7))
        down = rng.random() < DOWN_REFERRAL_RATE
        stamp = self._stamp(p.index)
        up_id, down_id = f"sr-{stamp}-up", f"sr-{stamp}-down"
        inpatient = reason[0] in ("I63.9", "I25.1") or rng.random() < 0.3
        rtype = ("inpatient", "住院转诊") if inpatient else ("outpatient", "门诊转诊")
        up = self._referral(p, up_id, "up", p.chc, sender, hosp, reason, rtype, up_day,
                            status="completed")
        yield up
        k = 90
        enc = self._encounter(p, k, "IMP" if inpatient else "AMB", hosp, arrive, reason,
                              based_on=up_id)
        yield enc
        yield self._task(p, f"task-{stamp}-up", up, hosp, sender, "completed",
                         ("07", "已回转/结案") if down else ("04", "已到诊"), enc["id"])
        if down:
            end = datetime.fromisoformat(enc["period"]["end"]).date()
            down_day = min(end + timedelta(days=rng.randint(0, 3)), self.today)
            active = rng.random() < 0.4
            dn = self._referral(p, down_id, "down", hosp, receiver, p.chc, reason,
                                ("rehab", "康复转诊"), down_day,
                                status="active" if active else "completed", based_on=up_id)
            yield dn
            yield self._task(p, f"task-{stamp}-down", dn, p.chc, receiver,
                             "accepted" if active else "completed",
                             ("02", "已审核待接诊") if active else ("07", "已回转/结案"), None)

    def _referral(self, p: Person, rid: str, direction: str, from_org: OrgSpec, requester: Staff,
                  to_org: OrgSpec, reason: tuple[str, str], rtype: tuple[str, str],
                  day: date, status: str, based_on: str | None = None) -> Resource:
        rng = p.rng
        authored = fhir_dt(day, self._day_minutes(rng))
        res: Resource = {
            "resourceType": "ServiceRequest",
            "id": rid,
            "extension": [{"url": ids.ext_referral_direction(self.base), "valueCode": direction}],
            "identifier": [{
                "use": "official",
                "type": {"text": "转诊单号"},
                "system": self.sids.referral_no,
                "value": f"{from_org.fixmedins}-ZZ{day:%Y%m%d}{self.seed % 100:02d}"
                         f"{p.index:06d}{'U' if direction == 'up' else 'D'}",
                "assigner": ref("Organization", org_id(from_org), from_org.name),
            }],
        }
        if based_on:
            res["basedOn"] = [ref("ServiceRequest", based_on)]
        res.update({
            "status": status,
            "intent": "order",
            "category": [cc(ids.CS_SNOMED, "3457005", "Patient referral", "转诊")],
            "code": cc(self.cs.referral_type, *rtype, rtype[1]),
            "subject": ref("Patient", p.pid, p.name),
            "occurrencePeriod": {"start": day.isoformat(),
                                 "end": (day + timedelta(days=14)).isoformat()},
            "authoredOn": authored,
            "requester": ref("PractitionerRole", requester.role_id, requester.name),
            "performer": [ref("Organization", org_id(to_org), to_org.name)],
            "reasonCode": [cc(ids.CS_ICD10, reason[0], reason[1], reason[1])],
            "note": [{"text": "上转：请接诊并完善检查" if direction == "up"
                      else "下转：回社区继续康复治疗与随访"}],
        })
        return res

    def _task(self, p: Person, tid: str, sr: Resource, owner: OrgSpec, requester: Staff,
              status: str, business: tuple[str, str], output_enc: str | None) -> Resource:
        res: Resource = {
            "resourceType": "Task",
            "id": tid,
            "status": status,
            "businessStatus": cc(self.cs.referral_business_status, *business, business[1]),
            "intent": "order",
            "focus": ref("ServiceRequest", sr["id"]),
            "for": ref("Patient", p.pid, p.name),
            "authoredOn": sr["authoredOn"],
            "requester": ref("PractitionerRole", requester.role_id, requester.name),
            "owner": ref("Organization", org_id(owner), owner.name),
        }
        if output_enc:
            res["output"] = [{"type": {"text": "到诊就诊"},
                              "valueReference": ref("Encounter", output_enc)}]
        return res


def owner_organization(res: Resource) -> str | None:
    """The id of the organisation responsible for a seeded clinical record: the Encounter's service
    provider, the Patient's or EpisodeOfCare's managing organisation, the Task's owner, the
    vaccinating organisation, the referral's issuing organisation; None for the others."""
    candidates: list[Any] = [res.get("serviceProvider"), res.get("managingOrganization"),
                             res.get("owner")]
    if res.get("resourceType") == "Immunization":
        candidates += [p.get("actor") for p in res.get("performer", [])]
    if res.get("resourceType") == "ServiceRequest":
        candidates += [i.get("assigner") for i in res.get("identifier", [])]
    for ref_ in candidates:
        target = ref_.get("reference", "") if isinstance(ref_, dict) else ""
        if target.startswith("Organization/"):
            return str(target.partition("/")[2])
    return None


def hash_int(s: str) -> int:
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:4], "big")


def generate(
    patients: int,
    seed: int = 1,
    base: str = DEFAULT_CANONICAL_BASE,
    today: date | None = None,
) -> Iterator[Resource]:
    """Yield FHIR R4 resources (JSON-ready dicts), referenced resources before referrers."""
    if patients < 0:
        raise ValueError("patients must be >= 0")
    return _Generator(patients, seed, base, today or SEED_REFERENCE_DATE).run()


FIXED_RESOURCES = len(ORGS) + 2 * STAFF_PER_ORG * len(PROVIDERS)
AVG_RESOURCES_PER_PATIENT = 12.3  # measured on 2 000 patients at SEED_REFERENCE_DATE


def total_hint(patients: int) -> int:
    """Approximate number of resources ``generate(patients)`` yields (for a progress bar)."""
    return FIXED_RESOURCES + round(patients * AVG_RESOURCES_PER_PATIENT)
