"""The platform's terminology (terminology/*.json) and the R4 core tables, through the service.

Expected codes are written out by hand from DOMAIN.md §3.3 and §B.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_server.fhir import structure
from fhir_server.fhir.identifiers import DEFAULT_CANONICAL_BASE, LOCAL_CODE_SYSTEM_IDS
from fhir_server.terminology import Terminology, terminology
from fhir_server.terminology.loader import conformance_root

B = DEFAULT_CANONICAL_BASE
ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "terminology").glob("*.json"))
SEX = "urn:oid:2.16.156.10011.2.3.3.4"
MARITAL = "urn:oid:2.16.156.10011.2.3.3.5"
ETHNICITY = "urn:oid:2.16.156.10011.2.3.3.3"
GBT2260 = f"{B}/CodeSystem/gbt-2260"
VACCINE = f"{B}/CodeSystem/cn-nip-vaccine"


@pytest.fixture(scope="module")
def term() -> Terminology:
    return terminology()


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def codes(term: Terminology, vs: str) -> set[str]:
    found = term.codes_in(vs)
    assert found is not None, vs
    return {c for _, c in found}


# -- the files --------------------------------------------------------------------------------------

def test_default_conformance_dir_is_the_source_tree() -> None:
    assert conformance_root() == ROOT
    assert conformance_root("/x") == Path("/x")
    assert len(FILES) >= 60


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_is_valid_r4_named_by_type_and_id(path: Path) -> None:
    resource = load(path)
    assert structure.validate(resource) == []
    assert path.name == f"{resource['resourceType']}-{resource['id']}.json"
    assert resource["url"].startswith((f"{B}/", "urn:oid:"))


def test_every_code_system_has_an_all_codes_value_set(term: Terminology) -> None:
    systems = [load(p) for p in FILES if p.name.startswith("CodeSystem-")]
    for cs in systems:
        assert cs["valueSet"] == f"{B}/ValueSet/{cs['id']}"
        vs = load(ROOT / "terminology" / f"ValueSet-{cs['id']}.json")
        assert vs["compose"]["include"] == [{"system": cs["url"]}]
        assert cs["count"] == len(term.code_system(cs["url"]).concepts)  # type: ignore[union-attr]
    local = {cs["id"] for cs in systems if cs["url"].startswith(B)}
    assert set(LOCAL_CODE_SYSTEM_IDS) <= local


def test_a_value_set_is_expanded_once_then_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """``validate_code`` after the first call uses the cached expansion (how fast loading and
    lookups are: ``bench/terminology_load.py``, not a timed test)."""
    from fhir_server.terminology import service

    calls: list[str] = []
    real = service.expand

    def counting(resource: Any, *args: Any) -> Any:
        calls.append(resource["url"])
        return real(resource, *args)

    monkeypatch.setattr(service, "expand", counting)
    fresh = Terminology.load()
    for code, expected in (("1", True), ("2", True), ("3", False)) * 100:
        assert fresh.validate_code(f"{B}/ValueSet/gbt-2261-1-sex", SEX, code) is expected
    assert calls == [f"{B}/ValueSet/gbt-2261-1-sex"]


# -- national tables --------------------------------------------------------------------------------

def test_gbt_2261_1_sex_has_exactly_0_1_2_9(term: Terminology) -> None:
    assert codes(term, f"{B}/ValueSet/gbt-2261-1-sex") == {"0", "1", "2", "9"}
    assert term.validate_code(f"{B}/ValueSet/gbt-2261-1-sex", SEX, "1", "男性") is True
    assert term.validate_code(f"{B}/ValueSet/gbt-2261-1-sex", SEX, "1", "Male") is True
    assert term.validate_code(f"{B}/ValueSet/gbt-2261-1-sex", SEX, "1", "女性") is False
    assert term.validate_code(f"{B}/ValueSet/gbt-2261-1-sex", SEX, "3") is False


def test_gbt_2261_2_marital_status(term: Terminology) -> None:
    assert codes(term, f"{B}/ValueSet/gbt-2261-2-marital-status") == {
        "10", "20", "21", "22", "23", "30", "40", "90"}
    cs = term.code_system(MARITAL)
    assert cs is not None and cs.subsumes("20", "22") == "subsumes"
    both = codes(term, f"{B}/ValueSet/patient-marital-status")
    assert {"10", "20", "90", "S", "M", "W", "D", "UNK"} <= both


def test_gb_3304_has_56_groups_plus_97_and_98(term: Terminology) -> None:
    expected = {f"{i:02d}" for i in range(1, 57)} | {"97", "98"}
    assert codes(term, f"{B}/ValueSet/gb-3304-ethnicity") == expected
    info = term.lookup(ETHNICITY, "01")
    assert info is not None and info["display"] == "汉族"
    assert term.lookup(ETHNICITY, "56")["display"] == "基诺族"  # type: ignore[index]
    assert term.lookup(ETHNICITY, "07")["display"] == "彝族"  # type: ignore[index]
    assert term.lookup(ETHNICITY, "57") is None


def test_nationality_and_id_documents(term: Terminology) -> None:
    info = term.lookup("urn:oid:2.16.156.10011.2.3.3.1", "156")
    assert info is not None and info["display"] == "中国"
    for code in ("344", "446", "158"):
        assert term.lookup("urn:oid:2.16.156.10011.2.3.3.1", code) is not None
    # a fragment: a code it does not list cannot be called wrong
    assert term.validate_code(f"{B}/ValueSet/gbt-2659-nationality", None, "999") is None
    assert codes(term, f"{B}/ValueSet/cv02-01-101-id-doc-type") == {
        "01", "02", "03", "04", "05", "06", "07", "99"}


def test_gbt_2260_hierarchy(term: Terminology) -> None:
    assert len(codes(term, f"{B}/ValueSet/gbt-2260-province")) == 34
    assert term.subsumes(GBT2260, "510000", "510104") == "subsumes"  # 四川省 ⊃ 锦江区
    assert term.subsumes(GBT2260, "510104", "510100") == "subsumed-by"
    assert term.subsumes(GBT2260, "510104", "500112") == "not-subsumed"
    below = term.descendants(GBT2260, "510100")
    assert below is not None and {"510100", "510104", "510117", "510122"} <= below
    assert "511002" not in below and "510000" not in below
    assert term.ancestors(GBT2260, "500112005") == frozenset({"500112005", "500112", "500100", "500000"})
    retired = term.lookup(GBT2260, "510122")
    assert retired is not None and retired["display"] == "双流县"
    props = {p["code"]: next(v for k, v in p.items() if k != "code") for p in retired["property"]}
    assert props["status"] == "retired" and props["replaced-by"] == "510116"
    assert props["inactive"] is True


def test_seed_codes_are_in_the_tables(term: Terminology) -> None:
    from seed import regions, schedule

    for district in regions.CHENGDU_DISTRICTS:
        assert term.lookup(GBT2260, district.code) is not None, district
    for code, _name in regions.MIGRANT_AREAS:
        assert term.lookup(GBT2260, code) is not None, code
    for code, name, _share in regions.ETHNICITIES:
        assert term.lookup(ETHNICITY, code)["display"] == name  # type: ignore[index]
    for vaccine in schedule.VACCINES.values():
        assert term.validate_code(f"{B}/ValueSet/cn-nip-vaccines", VACCINE, vaccine.code,
                                  vaccine.display) is True


# -- local tables -----------------------------------------------------------------------------------

def test_nip_and_non_nip_vaccines(term: Terminology) -> None:
    nip = codes(term, f"{B}/ValueSet/cn-nip-vaccines")
    assert nip == {"HepB", "BCG", "IPV", "bOPV", "DTaP", "DT", "MMR", "JE-L", "JE-I", "MPSV-A",
                   "MPSV-AC", "HepA-L", "HepA-I"}
    other = codes(term, f"{B}/ValueSet/cn-non-nip-vaccines")
    assert {"PCV13", "EV71", "RV", "DTaP-IPV/Hib", "Flu"} <= other and not nip & other
    assert codes(term, f"{B}/ValueSet/cn-nip-vaccine") == nip | other


def test_vaccine_maps(term: Terminology) -> None:
    def cvx(code: str) -> list[tuple[str, str]]:
        return [(t.code, t.equivalence) for t in term.translate(code, VACCINE, target_system="http://hl7.org/fhir/sid/cvx")]

    expected = {"HepB": "08", "BCG": "19", "IPV": "10", "bOPV": "178", "DTaP": "20", "DT": "28",
                "MMR": "03", "JE-L": "129", "JE-I": "129", "MPSV-A": "108", "MPSV-AC": "108",
                "HepA-L": "85", "HepA-I": "85"}
    for code, target in expected.items():
        assert [c for c, _ in cvx(code)] == [target], code
    assert cvx("bOPV") == [("178", "equivalent")] and cvx("JE-L") == [("129", "wider")]
    snomed = term.translate("HepB", VACCINE, target="http://snomed.info/sct?fhir_vs")
    assert [(t.system, t.code) for t in snomed] == [("http://snomed.info/sct", "836374004")]


def test_sex_and_marital_maps(term: Terminology) -> None:
    male = term.translate("1", SEX, target="http://hl7.org/fhir/ValueSet/administrative-gender")
    assert [(t.system, t.code, t.equivalence) for t in male] == [
        ("http://hl7.org/fhir/administrative-gender", "male", "equivalent")]
    assert [t.code for t in term.translate("9", SEX)] == ["unknown"]
    assert [t.code for t in term.translate("22", MARITAL)] == ["M"]
    assert [(t.system, t.code) for t in term.translate("90", MARITAL)] == [
        ("http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "UNK")]


def test_visit_credential_map(term: Terminology) -> None:
    vc = f"{B}/CodeSystem/visit-credential"
    assert [t.code for t in term.translate("NHSA-EC", vc)] == ["01"]
    assert [t.code for t in term.translate("CIN", vc)] == ["02"]
    assert [t.code for t in term.translate("SSC", vc)] == ["03"]
    assert term.translate("EHC-QR", vc) == []


def test_mch_visit_types_are_grouped(term: Terminology) -> None:
    mch = f"{B}/CodeSystem/mch-visit-type"
    assert term.descendants(mch, "prenatal") == frozenset(
        {"prenatal", "prenatal-1", "prenatal-2", "prenatal-3", "prenatal-4", "prenatal-5"})
    assert term.subsumes(mch, "child-health", "child-check-6y") == "subsumes"
    expansion = term.expand(f"{B}/ValueSet/mch-visit-type", filter="产前")
    assert expansion["expansion"]["total"] == 6
    assert expansion["expansion"]["contains"][0] == {
        "system": mch, "version": "0.1.0", "abstract": True, "code": "prenatal", "display": "产前检查"}


# -- R4 core ----------------------------------------------------------------------------------------

def test_r4_core_required_bindings(term: Terminology) -> None:
    gender = "http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1"
    assert term.validate_code(gender, "http://hl7.org/fhir/administrative-gender", "male") is True
    assert term.validate_code(gender, "http://hl7.org/fhir/administrative-gender", "mal") is False
    assert codes(term, gender) == {"male", "female", "other", "unknown"}
    assert term.validate_code("http://hl7.org/fhir/ValueSet/immunization-status|4.0.1", None,
                              "not-done") is True
    assert term.validate_code("http://hl7.org/fhir/ValueSet/request-intent|4.0.1", None,
                              "order") is True
    assert term.validate_code("http://hl7.org/fhir/ValueSet/marital-status|4.0.1",
                              "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "M") is True
    # LOINC, UCUM ... are not held here: the binding cannot be checked
    assert term.validate_code("http://hl7.org/fhir/ValueSet/observation-codes", "http://loinc.org",
                              "8302-2") is None
    assert term.validate_code("http://hl7.org/fhir/ValueSet/ucum-units|4.0.1",
                              "http://unitsofmeasure.org", "mg") is None
    assert term.validate_code("http://hl7.org/fhir/ValueSet/administrative-gender|3.0.2", None,
                              "male") is None  # another version


def test_r4_core_is_a_filters(term: Terminology) -> None:
    found = codes(term, "http://hl7.org/fhir/ValueSet/resource-types")
    assert {"Patient", "Immunization", "ValueSet"} <= found
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    assert term.subsumes(clinical, "active", "relapse") == "subsumes"
    assert term.descendants(clinical, "active") == frozenset({"active", "recurrence", "relapse"})
    assert term.subsumes("http://hl7.org/fhir/name-use", "maiden", "old") == "subsumed-by"


def _codings(node: Any) -> Any:
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and isinstance(node.get("code"), str):
            yield node
        for value in node.values():
            yield from _codings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _codings(value)


def test_every_seed_coding_of_our_tables_is_known_with_its_display(term: Terminology) -> None:
    from seed import generate

    ours = {url for url, r in term.code_system_resources.items()
            if url.startswith(("urn:oid:2.16.156.", B)) and r.get("content") != "not-present"}
    checked = 0
    for resource in generate(40, seed=3):
        for coding in _codings(resource):
            if coding["system"] not in ours:
                continue
            info = term.lookup(coding["system"], coding["code"])
            assert info is not None, coding
            if "display" in coding:
                shown = {info["display"], *(d["value"] for d in info["designation"])}
                assert coding["display"] in shown, coding
            checked += 1
    assert checked > 500
