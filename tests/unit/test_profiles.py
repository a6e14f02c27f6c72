"""profiles/: what is published (StructureDefinitions with snapshots, NamingSystems), that it is
what scripts/build_profiles.py writes, that it is valid R4, and the validator's base-spec checks:
every official example still validates, seed data conforms, and base rules are enforced."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fhir_server.fhir import identifiers as ids
from fhir_server.fhir import structure
from fhir_server.profiles import Validator, registry
from fhir_server.profiles.enforcement import Enforcement
from fhir_server.profiles.loader import read_resources
from fhir_server.terminology.service import terminology
from seed import SEED_REFERENCE_DATE, generate
from tests.profile_cases import BASE, NOW, PROFILE, SD, SYS, validator
from tests.shared_data import examples, needs_shared, shared_dir

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("rhip-patient", "rhip-encounter", "rhip-immunization", "rhip-referral",
            "rhip-referral-task")
EXTENSIONS = ("gbt2261-1-sex", "ethnicity", "nationality", "admin-division",
              "household-registration", "visit-credential", "nhsa-visit", "nhsa-settlement",
              "referral-direction", "vaccine-trace-code")


def published() -> list[dict[str, Any]]:
    return list(read_resources(ROOT))


def test_every_profile_and_extension_is_published_with_a_snapshot() -> None:
    sds = {r["id"]: r for r in published() if r["resourceType"] == "StructureDefinition"}
    assert set(sds) == set(PROFILES) | set(EXTENSIONS)
    for name, sd in sds.items():
        assert sd["url"] == ids.structure_definition_url(BASE, name)
        assert sd["derivation"] == "constraint" and sd["fhirVersion"] == "4.0.1"
        snapshot = [e["id"] for e in sd["snapshot"]["element"]]
        assert len(snapshot) == len(set(snapshot))
        assert snapshot[0] == sd["type"]
        assert {e["id"] for e in sd["differential"]["element"]} <= set(snapshot)
        if sd["type"] == "Extension":
            url = next(e for e in sd["snapshot"]["element"] if e["id"] == "Extension.url")
            assert url["fixedUri"] == sd["url"] and sd["context"]


def test_extension_urls_are_those_of_identifiers_py() -> None:
    for fn in (ids.ext_admin_division, ids.ext_ethnicity, ids.ext_nationality,
               ids.ext_gbt2261_1_sex, ids.ext_referral_direction, ids.ext_household_registration,
               ids.ext_vaccine_trace_code, ids.ext_visit_credential):
        assert registry().get(fn(BASE)) is not None, fn.__name__
    for name in ids.PROFILE_NAMES:
        assert registry().get(ids.profile_url(BASE, name)) is not None


def test_a_naming_system_per_identifier_system() -> None:
    systems = {u["value"] for r in published() if r["resourceType"] == "NamingSystem"
               for u in r["uniqueId"] if u.get("preferred")}
    expected = {SYS.ehc_id, SYS.ehc_mindex, SYS.cin, SYS.rhc, SYS.health_record_no, SYS.sscard,
                SYS.nhsa_psn_no, SYS.nhsa_mdtrt_id, SYS.nhsa_setl_id, SYS.fixmedins_code,
                SYS.uscc, SYS.referral_no, SYS.birth_cert_no, SYS.mch_handbook_no,
                SYS.org_outpatient_no("{orgKey}"), SYS.org_inpatient_no("{orgKey}"),
                SYS.org_mrn("{orgKey}"), *(SYS.id_doc(c) for c in
                                           ("02", "03", "04", "05", "06", "07", "99"))}
    assert systems == expected
    cin = next(r for r in published() if r.get("id") == "cin")
    assert {"type": "oid", "value": "2.16.156.10011.1.3", "preferred": False} in cin["uniqueId"]


def test_conformance_resources_are_valid_r4() -> None:
    """Structure and the base invariants of StructureDefinition (sdf-*) and NamingSystem."""
    for resource in published():
        assert structure.validate(resource) == [], resource["id"]
        errors = [i for i in validator().validate(resource) if i.severity == "error"]
        assert errors == [], (resource["id"], errors)


@pytest.mark.skipif(not (shared_dir() / "fhir-r4").is_dir(), reason="../shared/fhir-r4 missing")
def test_the_files_are_what_the_build_script_writes(tmp_path: Path) -> None:
    rules = tmp_path / "rules" / "r4_rules.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_profiles.py"), "--out",
                    str(tmp_path), "--rules", str(rules)], check=True, capture_output=True)
    assert rules.read_bytes() == (ROOT / "fhir_server/profiles/data/r4_rules.json").read_bytes()
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert written == sorted(p.name for p in (ROOT / "profiles").glob("*.json"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (ROOT / "profiles" / name).read_bytes(), name


@pytest.mark.parametrize(("name", "resource"), examples(), ids=[n for n, _ in examples()])
def test_official_examples_still_validate_against_the_base_spec(name: str, resource: Any) -> None:
    assert structure.validate(resource) == []
    issues = validator().validate(resource, resource.get("meta", {}).get("profile", []))
    assert [i for i in issues if i.severity in ("error", "fatal")] == [], name
    # the only warnings: profiles this server does not have (vitalsigns ...)
    assert all(i.code == "not-supported" for i in issues), issues


@needs_shared
def test_official_patient_examples_do_not_conform_to_rhip_patient() -> None:
    patients = [r for _, r in examples() if r["resourceType"] == "Patient"]
    assert patients
    for p in patients:
        keys = {i.diagnostics.split(": ", 1)[0] for i in validator().validate(p, [SD + "rhip-patient"])
                if i.severity == "error"}
        assert "rhip-pat-id" in keys  # no health card, citizen ID or birth certificate


def test_the_seed_population_conforms() -> None:
    resources = list(generate(150, seed=2, today=SEED_REFERENCE_DATE))
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    checked = 0
    for r in resources:
        profile = PROFILE.get(r["resourceType"])
        if profile:
            assert validator().validate(r, [SD + profile], resolver=by_ref.get, now=NOW) == [], r["id"]
            checked += 1
    assert checked > 1000


@needs_shared
@pytest.mark.parametrize(("mutate", "key", "where"), [
    (lambda r: r.update(gender="man"), "Patient.gender", "Patient.gender"),
    (lambda r: r["contact"].append({"gender": "male"}), "pat-1", "Patient.contact[1]"),
    (lambda r: r["telecom"].insert(0, {"value": "x"}), "cpt-2", "Patient.telecom[0]"),
    (lambda r: r["identifier"][0].update(period={"start": "2020-02-01", "end": "2020-01-01"}),
     "per-1", "Patient.identifier[0].period"),
])
def test_base_rules_are_checked(mutate: Any, key: str, where: str) -> None:
    patient = copy.deepcopy(next(r for _, r in examples() if r.get("id") == "example"
                                 and r["resourceType"] == "Patient"))
    mutate(patient)
    issues = [i for i in validator().validate(patient) if i.severity == "error"]
    assert [(i.diagnostics.split(": ", 1)[0], i.expression[0]) for i in issues] == [(key, where)]


@needs_shared
def test_unknown_and_mismatched_profiles() -> None:
    patient = next(r for _, r in examples() if r["resourceType"] == "Patient")
    issues = validator().validate(patient, ["http://example.org/StructureDefinition/other"])
    assert [(i.severity, i.code) for i in issues] == [("warning", "not-supported")]
    issues = validator().validate(patient, [SD + "rhip-encounter"])
    assert [(i.severity, i.code) for i in issues] == [("error", "processing")]
    assert validator().validate(patient, ["http://hl7.org/fhir/StructureDefinition/Patient"]) == []


@pytest.mark.parametrize(("setting", "expected"), [
    (None, {"Patient": ("rhip-patient",), "Encounter": ("rhip-encounter",),
            "Immunization": ("rhip-immunization",), "ServiceRequest": ("rhip-referral",)}),
    ("off", {}),
    ("rhip-referral-task, " + SD + "rhip-patient", {"Task": ("rhip-referral-task",),
                                                     "Patient": ("rhip-patient",)}),
])
def test_enforced_profiles_setting(setting: str | None, expected: dict[str, Any]) -> None:
    rules = Enforcement(setting, None, BASE)
    got = rules.by_type if rules.names else {}
    assert {t: tuple(u.rsplit("/", 1)[1] for u in urls) for t, urls in got.items()} == expected


def test_an_unknown_enforced_profile_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="rhip-nothing"):
        Enforcement("rhip-nothing", None, BASE).load()


def test_profiles_follow_the_canonical_base() -> None:
    other = "https://fhir.example.org/ehc"
    rebased = registry(None, other)
    assert rebased.get(f"{other}/StructureDefinition/rhip-patient") is not None
    assert rebased.get(SD + "rhip-patient") is None
    check = Validator(rebased, terminology(None)).validate
    people = [r for r in generate(20, seed=1, base=other, today=SEED_REFERENCE_DATE)
              if r["resourceType"] == "Patient"]
    assert people and all(check(p, [f"{other}/StructureDefinition/rhip-patient"], now=NOW) == []
                          for p in people)
    # data written for the default base: its admin-division extension is not this platform's
    default_people = [r for r in generate(3, seed=1, today=SEED_REFERENCE_DATE)
                      if r["resourceType"] == "Patient"]
    keys = {i.diagnostics.split(": ", 1)[0] for p in default_people
            for i in check(p, [f"{other}/StructureDefinition/rhip-patient"], now=NOW)}
    assert keys == {"Patient.address.extension:adminDivision"}
    profile = rebased.get(f"{other}/StructureDefinition/rhip-patient")
    assert profile is not None and BASE not in json.dumps(profile.resource)
