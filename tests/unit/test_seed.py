from __future__ import annotations

import calendar
import io
import json
import re
from collections import Counter, defaultdict
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fhir_server.fhir.identifiers import (
    DEFAULT_CANONICAL_BASE,
    cin_birth_date,
    cin_sex,
    identifier_systems,
    is_valid_cin,
    is_valid_ehc_id,
    is_valid_uscc,
)
from seed import SEED_REFERENCE_DATE, ProgressBar, generate, total_hint

TODAY = date(2026, 6, 30)
N = 50
SYS = identifier_systems()
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SCHEMA_PATH = SHARED / "fhir-r4" / "fhir.schema.json"
NIP = "https://fhir.demo-city.health.cn/CodeSystem/cn-nip-vaccine"
MCH = "https://fhir.demo-city.health.cn/CodeSystem/mch-visit-type"
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@pytest.fixture(scope="module")
def population() -> list[dict[str, Any]]:
    return list(generate(N, seed=1, today=TODAY))


def dumps(resources: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False, sort_keys=False) for r in resources)


def test_default_today_is_fixed() -> None:
    assert SEED_REFERENCE_DATE == TODAY
    assert dumps(list(generate(5))) == dumps(list(generate(5, today=TODAY)))


def test_deterministic(population: list[dict[str, Any]]) -> None:
    assert dumps(list(generate(N, seed=1, today=TODAY))) == dumps(population)
    other = list(generate(N, seed=2, today=TODAY))
    assert dumps(other) != dumps(population)
    # a prefix of patients does not depend on the population size
    small = list(generate(3, seed=1, today=TODAY))
    assert dumps(small) == dumps(population[: len(small)])


def test_ids_unique_and_valid(population: list[dict[str, Any]]) -> None:
    keys = [(r["resourceType"], r["id"]) for r in population]
    assert len(set(keys)) == len(keys)
    assert all(ID_RE.match(r["id"]) for r in population)


def iter_references(node: Any) -> Any:
    if isinstance(node, dict):
        if set(node) >= {"reference"} and isinstance(node["reference"], str):
            yield node["reference"]
        for v in node.values():
            yield from iter_references(v)
    elif isinstance(node, list):
        for v in node:
            yield from iter_references(v)


def test_references_point_backwards(population: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    count = 0
    for r in population:
        for reference in iter_references(r):
            count += 1
            assert reference in seen, f"{r['resourceType']}/{r['id']} -> {reference}"
        seen.add(f"{r['resourceType']}/{r['id']}")
    assert count > 0


def no_empty(node: Any, path: str = "$") -> None:
    if isinstance(node, dict):
        assert node, path
        for k, v in node.items():
            no_empty(v, f"{path}.{k}")
    elif isinstance(node, list):
        assert node, path
        for i, v in enumerate(node):
            no_empty(v, f"{path}[{i}]")
    elif isinstance(node, str):
        assert node.strip(), path
    else:
        assert node is not None, path


DT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")


def test_no_empty_values_and_timezones(population: list[dict[str, Any]]) -> None:
    for r in population:
        no_empty(r)
        text = json.dumps(r)
        for m in re.finditer(r'"(\d{4}-\d{2}-\d{2}T[^"]*)"', text):
            assert DT_RE.match(m.group(1)), m.group(1)


def by_type(population: list[dict[str, Any]], t: str) -> list[dict[str, Any]]:
    return [r for r in population if r["resourceType"] == t]


def ident(r: dict[str, Any], system: str) -> list[str]:
    return [i["value"] for i in r.get("identifier", []) if i["system"] == system]


def test_organizations(population: list[dict[str, Any]]) -> None:
    orgs = by_type(population, "Organization")
    kinds = Counter(r["type"][0]["coding"][0]["code"] for r in orgs)
    assert kinds["ins"] == 1
    assert kinds["prov"] == 9  # 3 hospitals, 4 CHCs, 1 clinic, 1 MCH
    for o in orgs:
        (uscc,) = ident(o, SYS.uscc)
        assert is_valid_uscc(uscc), uscc
        for code in ident(o, SYS.fixmedins_code):
            assert re.match(r"^[A-Z]\d{11}$", code)
    prov = [o for o in orgs if o["type"][0]["coding"][0]["code"] == "prov"]
    assert all(ident(o, SYS.fixmedins_code) for o in prov)
    names = {o["name"] for o in orgs}
    assert any("预防接种门诊" in n for n in names)
    assert sum("社区卫生服务中心" in n for n in names) == 4


def test_patients_cin_ehc(population: list[dict[str, Any]]) -> None:
    patients = by_type(population, "Patient")
    assert len(patients) == N
    ehcs: list[str] = []
    card_values: list[tuple[str, str]] = []
    for p in patients:
        (cin,) = ident(p, SYS.cin)
        assert is_valid_cin(cin, today=TODAY)
        assert cin_birth_date(cin).isoformat() == p["birthDate"]
        assert cin_sex(cin) == p["gender"]
        (ehc,) = ident(p, SYS.ehc_id)
        assert is_valid_ehc_id(ehc)
        ehc_ident = next(i for i in p["identifier"] if i["system"] == SYS.ehc_id)
        assert ehc_ident["use"] == "official" and ehc_ident["period"]["start"] <= TODAY.isoformat()
        ehcs.append(ehc)
        name = p["name"][0]
        assert name["text"] == name["family"] + "".join(name["given"])
        assert re.match(r"^[\u4e00-\u9fff]{2,4}$", name["text"])
        for i in p["identifier"]:
            if SYS.is_patient_card_system(i["system"]):
                card_values.append((i["system"], i["value"]))
            if i["system"] == SYS.health_record_no:
                assert re.match(r"^\d{17}$", i["value"])
        for t in p.get("telecom", []):
            assert re.match(r"^1[3-9]\d{9}$", t["value"])
        assert p["managingOrganization"]["reference"].startswith("Organization/org-chc-")
        assert p["address"][0]["extension"][0]["valueCode"].startswith("5101")
    assert len(set(ehcs)) == len(ehcs)
    assert len(set(card_values)) == len(card_values)


def age_years(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def test_age_distribution() -> None:
    patients = [r for r in generate(400, seed=3, today=TODAY) if r["resourceType"] == "Patient"]
    ages = [age_years(date.fromisoformat(p["birthDate"]), TODAY) for p in patients]
    children = sum(a <= 6 for a in ages)
    assert 0.25 * len(ages) < children < 0.45 * len(ages)
    assert any(a == 0 for a in ages)
    assert max(ages) <= 91


# ---- independent expectation of NIP doses (DOMAIN.md §8.1), written without seed.schedule


def plus_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


CHANGE = date(2025, 1, 1)
# family -> ages in months of each dose (DTaP handled separately)
TABLE = {
    "HepB": [0, 1, 6],
    "BCG": [0],
    "IPV": [2, 3],
    "bOPV": [4, 48],
    "MMR": [8, 18],
    "JE-L": [8, 24],
    "MPSV-A": [6, 9],
    "MPSV-AC": [36, 72],
    "HepA-L": [18],
}


def expected_doses(birth: date, today: date) -> dict[str, list[date]]:
    """vaccine family -> due dates of the doses due by ``today``."""
    out = {k: [plus_months(birth, m) for m in v if plus_months(birth, m) <= today]
           for k, v in TABLE.items()}
    # DTaP family: 2025 programme ages 2, 4, 6, 18 m, 6 y; 2021 programme 3, 4, 5, 18 m + DT 6 y.
    # A slot follows the 2025 programme when its 2025 due date is on/after 2025-01-01.
    dtp = []
    for new, old in ((2, 3), (4, 4), (6, 5), (18, 18), (72, 72)):
        due = plus_months(birth, new)
        if due < CHANGE:
            due = plus_months(birth, old)
        if due <= today:
            dtp.append(due)
    out["DTP"] = dtp
    return out


def family_of(imm: dict[str, Any]) -> str:
    code = next(c["code"] for c in imm["vaccineCode"]["coding"] if c["system"] == NIP)
    return "DTP" if code in ("DTaP", "DT") else code


def test_immunizations_follow_schedule(population: list[dict[str, Any]]) -> None:
    patients = {p["id"]: p for p in by_type(population, "Patient")}
    imms: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for imm in by_type(population, "Immunization"):
        imms[imm["patient"]["reference"].split("/")[1]].append(imm)
    children = [p for p in patients.values()
                if age_years(date.fromisoformat(p["birthDate"]), TODAY) <= 6]
    assert len(children) >= 8
    assert set(imms) <= {c["id"] for c in children}
    expected_total = given_total = 0
    newborns = 0
    for child in children:
        birth = date.fromisoformat(child["birthDate"])
        if (TODAY - birth).days < 365:
            newborns += 1
        exp = expected_doses(birth, TODAY)
        got: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for imm in imms[child["id"]]:
            got[family_of(imm)].append(imm)
        assert set(got) <= set(exp)
        for fam, due_dates in exp.items():
            doses = sorted(got[fam], key=lambda i: i["occurrenceDateTime"])
            expected_total += len(due_dates)
            given_total += len(doses)
            # the given doses are the first ones of the series (missed = series stopped)
            assert len(doses) <= len(due_dates), (child["id"], fam)
            for k, (imm, due) in enumerate(zip(doses, due_dates, strict=False)):
                when = datetime.fromisoformat(imm["occurrenceDateTime"]).date()
                assert birth <= when <= TODAY
                assert due <= when <= plus_months(due, 3), (child["id"], fam, k)
                if fam == "DTP":
                    code = next(c["code"] for c in imm["vaccineCode"]["coding"]
                                if c["system"] == NIP)
                    dose = imm["protocolApplied"][0]["doseNumberPositiveInt"]
                    if k == 4:
                        assert code == ("DTaP" if when >= CHANGE else "DT")
                        assert dose == (5 if code == "DTaP" else 1)
                    else:
                        assert code == "DTaP" and dose == k + 1
                else:
                    assert imm["protocolApplied"][0]["doseNumberPositiveInt"] == k + 1
                if due == birth:
                    assert imm["performer"][0]["actor"]["reference"] in (
                        "Organization/org-mch-1", "Organization/org-hosp-1")
    assert newborns >= 1
    assert given_total < expected_total  # some doses deliberately missed
    assert given_total >= 0.85 * expected_total


def test_no_dt_dtap_confusion() -> None:
    # reference date mid-2025: six-year-olds got DT before 2025-01-01 and DTaP-5 after it
    today = date(2025, 6, 30)
    rs = list(generate(200, seed=5, today=today))
    birth = {f"Patient/{r['id']}": date.fromisoformat(r["birthDate"])
             for r in rs if r["resourceType"] == "Patient"}
    dts = dtap5 = 0
    for imm in (r for r in rs if r["resourceType"] == "Immunization"):
        code = next(c["code"] for c in imm["vaccineCode"]["coding"] if c["system"] == NIP)
        when = datetime.fromisoformat(imm["occurrenceDateTime"]).date()
        pa = imm["protocolApplied"][0]
        if code == "DT":
            dts += 1
            assert when < CHANGE
        if code == "DTaP" and pa["doseNumberPositiveInt"] == 5:
            dtap5 += 1
            assert when >= CHANGE
            assert pa["seriesDosesPositiveInt"] == 5
        if code == "DTaP" and pa["seriesDosesPositiveInt"] == 4:
            assert pa["doseNumberPositiveInt"] <= 4
        if code == "DTaP" and pa["doseNumberPositiveInt"] == 1:
            born = birth[imm["patient"]["reference"]]
            months = 2 if plus_months(born, 2) >= CHANGE else 3
            assert when >= plus_months(born, months)
    assert dts > 0 and dtap5 > 0


def test_immunization_details(population: list[dict[str, Any]]) -> None:
    for imm in by_type(population, "Immunization"):
        assert imm["status"] == "completed" and imm["primarySource"] is True
        assert imm["expirationDate"] > imm["occurrenceDateTime"][:10]
        assert imm["doseQuantity"]["system"] == "http://unitsofmeasure.org"
        assert imm["doseQuantity"]["code"] == "mL"
        systems = {c["system"] for c in imm["vaccineCode"]["coding"]}
        assert {NIP, "http://hl7.org/fhir/sid/cvx"} <= systems
        assert imm["fundingSource"]["coding"][0]["code"] == "nip"
        assert imm["protocolApplied"][0]["series"] == "NIP-2021+DTaP-2025"
        assert imm["protocolApplied"][0]["targetDisease"]


def test_encounters(population: list[dict[str, Any]]) -> None:
    encs = by_type(population, "Encounter")
    assert encs
    values = set()
    for e in encs:
        (i,) = e["identifier"]
        assert re.match(r".*/sid/org/[0-9A-Z]{18}/(outpatient|inpatient)-no$", i["system"])
        assert (i["system"], i["value"]) not in values
        values.add((i["system"], i["value"]))
        assert len(i["value"]) <= 30
        assert e["class"]["code"] in ("AMB", "EMER", "IMP", "HH")
        assert e["period"]["start"] <= e["period"]["end"]
        if e["type"][0]["coding"][0]["system"] != MCH:
            assert e["reasonCode"][0]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10"


def _mch_visits(resources: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Patient reference -> (visit code, start) of its MCH encounters, in order."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e in by_type(resources, "Encounter"):
        coding = e["type"][0]["coding"][0]
        if coding["system"] == MCH:
            out[e["subject"]["reference"]].append((coding["code"], e["period"]["start"]))
    return out


def test_mch_visits() -> None:
    rs = list(generate(300, seed=1, today=TODAY))
    patients = {f"Patient/{p['id']}": p for p in by_type(rs, "Patient")}
    visits = _mch_visits(rs)
    children = prenatal = 0
    for subject, seen in visits.items():
        patient = patients[subject]
        born = date.fromisoformat(patient["birthDate"])
        age = TODAY.year - born.year - ((TODAY.month, TODAY.day) < (born.month, born.day))
        codes = [c for c, _ in seen]
        starts = [s for _, s in seen]
        assert starts == sorted(starts) and all(s[:10] < TODAY.isoformat() for s in starts)
        if codes[0].startswith(("child-check", "newborn")):
            children += 1
            assert age <= 6, (subject, age)  # child health checks are for children under 7
            assert all(c.startswith(("child-check", "newborn")) for c in codes)
            assert all(s[:10] >= patient["birthDate"] for s in starts)
        else:
            prenatal += 1
            assert patient["gender"] == "female" and 20 <= age <= 40
            assert codes == [c for c in ("prenatal-1", "prenatal-2", "prenatal-3", "prenatal-4",
                                         "prenatal-5", "postpartum-visit", "postpartum-42d")
                             ][:len(codes)]
    assert children > 50 and prenatal >= 3
    home = [e for e in by_type(rs, "Encounter") if e["class"]["code"] == "HH"]
    assert home and all(e["type"][0]["coding"][0]["code"] in ("newborn-visit", "postpartum-visit")
                        for e in home)


def test_referrals() -> None:
    rs = list(generate(200, seed=1, today=TODAY))
    srs = {r["id"]: r for r in rs if r["resourceType"] == "ServiceRequest"}
    ups = [s for s in srs.values() if s["extension"][0]["valueCode"] == "up"]
    downs = [s for s in srs.values() if s["extension"][0]["valueCode"] == "down"]
    assert ups and downs
    for d in downs:
        up = srs[d["basedOn"][0]["reference"].split("/")[1]]
        assert up["extension"][0]["valueCode"] == "up"
        assert up["performer"][0]["reference"] == d["requester"]["reference"].replace(
            "PractitionerRole/role-", "Organization/org-").rsplit("-", 1)[0]
        assert d["authoredOn"] >= up["authoredOn"]
    for s in srs.values():
        assert s["intent"] == "order"
        assert s["category"][0]["coding"][0]["code"] == "3457005"
        assert s["identifier"][0]["system"] == SYS.referral_no
        assert s["requester"]["reference"].startswith("PractitionerRole/")
    values = [s["identifier"][0]["value"] for s in srs.values()]
    assert len(set(values)) == len(values)
    tasks = [r for r in rs if r["resourceType"] == "Task"]
    assert len(tasks) == len(srs)


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.skipif(not SCHEMA_PATH.exists(), reason=f"{SCHEMA_PATH} not available")
def test_r4_json_schema(population: list[dict[str, Any]]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = load_schema()
    validators: dict[str, Any] = {}
    cls = jsonschema.validators.validator_for(schema)
    for r in population:
        t = r["resourceType"]
        if t not in validators:
            narrowed = {"$ref": f"#/definitions/{t}", "definitions": schema["definitions"]}
            validators[t] = cls(narrowed)
        errors = list(validators[t].iter_errors(r))
        assert not errors, (t, r["id"], [e.message for e in errors[:3]])


def test_total_hint_close() -> None:
    n = 300
    actual = sum(1 for _ in generate(n, seed=9, today=TODAY))
    assert 0.8 * actual < total_hint(n) < 1.2 * actual


def test_progress_bar_non_tty() -> None:
    buf = io.StringIO()
    bar = ProgressBar(100, "seed", stream=buf)
    for _ in range(100):
        bar.update()
    bar.close()
    lines = buf.getvalue().splitlines()
    assert 9 <= len(lines) <= 11
    assert lines[-1].startswith("seed [") and "100/100" in lines[-1]
    bar.update()  # after close: ignored
    assert buf.getvalue().splitlines() == lines


def test_clinical_records_carry_their_organisations_record_owner_tag() -> None:
    owner = f"{DEFAULT_CANONICAL_BASE}/CodeSystem/record-owner"
    expected = {"Encounter": lambda r: r["serviceProvider"]["reference"],
                "Patient": lambda r: r["managingOrganization"]["reference"],
                "Task": lambda r: r["owner"]["reference"],
                "ServiceRequest": lambda r: r["identifier"][0]["assigner"]["reference"]}
    seen = set()
    for res in generate(40, seed=5):
        tags = [t["code"] for t in res.get("meta", {}).get("tag", []) if t["system"] == owner]
        rtype = res["resourceType"]
        if rtype in expected:
            assert tags == [expected[rtype](res).partition("/")[2]], res["id"]
            seen.add(rtype)
        elif rtype == "Immunization":
            orgs = [p["actor"]["reference"] for p in res["performer"]
                    if p["actor"]["reference"].startswith("Organization/")]
            assert tags == [orgs[0].partition("/")[2]]
        elif rtype in ("Organization", "Practitioner", "PractitionerRole"):
            assert tags == []
    assert seen == set(expected)
