"""Search through HTTP over real data: the 199 official R4 examples (loaded with their own ids, the
Bundle examples being resources too) and three Synthea bundles (every ``entry[].resource`` with its
own id; their ``urn:uuid`` references are left as they are, so only tokens, strings, dates and
quantities are searched there).

Every expected id list below was written by hand from reading the JSON files in ``../shared``; none is
computed by the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.fhir import jsonio
from fhir_server.interactions.load import load
from fhir_server.store.sqlite import SqliteStore
from tests.shared_data import examples, shared_dir, synthea_bundles

pytestmark = pytest.mark.skipif(not shared_dir().is_dir(), reason="../shared is not present")

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
SYNTHEA = ("Abdul_Koepp_e925b0f3-8006-43f6-aa31-94bd215e55e7.json",
           "Adolfo_Marquardt_50635536-8051-4085-bfd4-511a05062ac2.json",
           "Andy_Schaden_d630c6ca-046c-470a-8f3a-4dbc3850e7ae.json")


def _app(folder: Path, resources: list[dict[str, Any]]) -> Iterator[Flask]:
    settings = Settings(store_url=f"sqlite:///{folder / 'fhir.db'}", access_log=False, auth=False,
                        enforce_profiles="off")
    store = SqliteStore.from_url(settings.store_url)
    app = create_app(settings, store)
    load(app.extensions["fhir"], resources)
    yield app
    store.close()


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    resources = [resource for _, resource in examples()]
    assert len(resources) == 199
    yield from (app.test_client() for app in _app(tmp_path_factory.mktemp("examples"), resources))


@pytest.fixture(scope="module")
def syn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    bundles = dict(synthea_bundles())
    resources = [entry["resource"] for name in SYNTHEA for entry in bundles[name]["entry"]]
    assert len(resources) == 180 + 246 + 277
    yield from (app.test_client() for app in _app(tmp_path_factory.mktemp("synthea"), resources))


def entries(client: FlaskClient, url: str) -> list[tuple[str, str, str]]:
    """(mode, type, id) of every entry of the searchset answering ``url`` (one page)."""
    response = client.get(url)
    assert response.status_code == 200, response.get_json()
    bundle = jsonio.loads(response.data)
    assert bundle["type"] == "searchset"
    return [(e["search"]["mode"], e["resource"]["resourceType"], e["resource"]["id"])
            for e in bundle.get("entry", [])]


def ids(client: FlaskClient, url: str) -> list[str]:
    sep = "&" if "?" in url else "?"
    return [rid for mode, _, rid in entries(client, f"{url}{sep}_count=1000") if mode == "match"]


# -- the official examples ------------------------------------------------------------------------

EXAMPLE_CASES: list[Any] = [
    # string: default (starts with, case and accent insensitive), :exact, :contains
    ("Patient?family=chalmers", ["example"]),
    ("Patient?name=peter", ["example"]),
    ("Patient?given=leia", ["infant-mom"]),
    ("Patient?family=solo", ["infant-mom", "infant-twin-1", "infant-twin-2"]),
    ("Patient?family:exact=Solo", ["infant-mom", "infant-twin-1", "infant-twin-2"]),
    ("Patient?family:exact=solo", []),
    ("Patient?name:contains=ever", ["genetics-example1", "mom"]),
    ("Patient?name=张", ["ch-example"]),
    ("Organization?name=burgers", ["f001", "f002", "f003"]),
    ("Organization?name:contains=unit", ["f002", "f003"]),
    ("Organization?name=ABC", ["2"]),  # the alias
    ("Organization?address-city=den", ["f001", "f201"]),
    ("Practitioner?family=van", ["f001", "f006"]),
    ("Location?name=south", ["1", "2"]),
    ("Immunization?lot-number=AAJN11K", ["example", "subpotent"]),
    ("Observation?value-string=blue", ["eye-color"]),
    ("Observation?value-string:contains=tracheostomy", ["trachcare"]),
    # token: code, system|code, |code, system|, :not, :missing, :text, booleans
    ("Patient?gender=female", ["animal", "genetics-example1", "infant-mom", "infant-twin-1", "mom",
                               "pat4", "proband"]),
    ("Patient?gender:missing=true", ["ihe-pcd"]),
    ("Patient?gender:not=male", ["animal", "genetics-example1", "ihe-pcd", "infant-mom",
                                 "infant-twin-1", "mom", "pat2", "pat4", "proband"]),
    ("Patient?active:missing=true", ["infant-fetal", "infant-mom", "infant-twin-1", "infant-twin-2",
                                     "newborn"]),
    ("Patient?identifier=urn:oid:0.1.2.3.4.5.6.7|123456", ["pat2"]),
    ("Patient?identifier=123456", ["glossy", "pat2"]),
    ("Patient?identifier=http://hl7.org/fhir/sid/us-ssn|", ["genetics-example1", "mom"]),
    ("Patient?identifier=|AB60001", ["ihe-pcd"]),
    ("Practitioner?identifier=urn:oid:2.16.528.1.1007.3.1|118265112", ["f004", "f005"]),
    ("Practitioner?gender=female", ["f005", "f007", "f204"]),
    (f"Observation?code={LOINC}|29463-7", ["example"]),
    (f"Observation?code={LOINC}|8310-5", ["body-temperature", "f202"]),
    ("Observation?code=8302-2", ["body-height", "body-length"]),
    ("Observation?code=55233-1", ["example-genetics-1", "example-genetics-2", "example-haplotype1",
                                  "example-haplotype2"]),
    ("Observation?component-code=8480-6", ["blood-pressure", "blood-pressure-cancel",
                                           "blood-pressure-dar"]),
    ("Observation?code:text=apgar", ["10minute-apgar-score", "1minute-apgar-score",
                                     "20minute-apgar-score", "2minute-apgar-score",
                                     "5minute-apgar-score"]),
    ("Observation?code:text=blood pressure", ["blood-pressure", "blood-pressure-cancel",
                                              "blood-pressure-dar", "map-sitting", "mbp"]),
    (f"Observation?value-concept={SCT}|10828004", ["example-genetics-1", "example-genetics-2",
                                                   "vp-oyster"]),
    ("Observation?status=cancelled", ["blood-pressure-cancel", "unsat"]),
    ("Observation?status:not=final", ["blood-pressure-cancel", "example-TPMT-haplotype-one",
                                      "example-TPMT-haplotype-two", "example-haplotype1",
                                      "example-haplotype2", "f202", "unsat", "vp-oyster"]),
    ("Encounter?class=AMB", ["f001", "f002", "f003", "f201", "f202", "xcda"]),
    ("Encounter?status=in-progress", ["emerg", "example"]),
    (f"Encounter?type={SCT}|270427003", ["f001", "f002", "f003"]),
    ("Immunization?vaccine-code=urn:oid:1.2.36.1.2001.1005.17|FLUVAX", ["example"]),
    ("Immunization?vaccine-code=http://hl7.org/fhir/sid/cvx|", ["notGiven", "protocol"]),
    ("Immunization?status=not-done", ["notGiven"]),
    (f"ServiceRequest?code={SCT}|73761001", ["colonoscopy"]),
    ("ServiceRequest?status=active&intent=original-order", ["di", "example-pgx", "lipid",
                                                            "og-example1"]),
    ("ServiceRequest?priority=stat", ["do-not-turn"]),
    (f"ServiceRequest?category={SCT}|103693007", ["example"]),
    ("Organization?type=http://terminology.hl7.org/CodeSystem/organization-type|prov",
     ["f001", "f201", "f203"]),
    ("Organization?identifier=http://www.acme.org.au/units|",
     ["1", "1832473e-2fe0-452d-abe9-3cdb9879522f"]),
    ("Condition?clinical-status=resolved", ["f201", "f202"]),
    (f"Condition?severity={SCT}|24484000", ["example", "f002", "f202", "f204"]),
    ("Condition?category=problem-list-item", ["example2", "f201", "f203", "f204",
                                              "family-history"]),
    ("Location?status=suspended", ["2"]),
    ("Bundle?type=transaction", ["bundle-transaction", "hla-1", "ussg-fht", "xds"]),
    ("Bundle?type=message", ["10bb101f-a121-4264-a920-67be9cb82c74",
                             "3a0707d3-549e-4467-b8b8-5a2ab3800efe"]),
    # date: precisions and prefixes, periods (open-ended ones too), :missing
    ("Patient?birthdate=1974-12-25", ["ch-example", "example"]),
    ("Patient?birthdate=lt1940", ["glossy", "xcda"]),
    ("Patient?birthdate=ge2017", ["infant-twin-1", "infant-twin-2", "newborn"]),
    ("Patient?birthdate=1982", ["pat3", "pat4"]),
    ("Patient?birthdate=gt1995-10-11&birthdate=lt2010", ["infant-mom"]),
    ("Patient?birthdate:missing=true", ["dicom", "ihe-pcd", "infant-fetal", "pat1", "pat2"]),
    ("Observation?date=2016-05-18", ["10minute-apgar-score", "1minute-apgar-score",
                                     "20minute-apgar-score", "2minute-apgar-score",
                                     "5minute-apgar-score", "eye-color", "secondsmoke",
                                     "vomiting"]),
    ("Observation?date=gt1999-07-01&date=lt1999-07-03",
     ["bmi", "bmi-using-related", "body-height", "body-length", "body-temperature",
      "head-circumference", "heart-rate", "mbp", "respiratory-rate", "vitals-panel"]),
    ("Observation?date=ge2013-04-03&date=le2013-04-04", ["f001", "f002", "f003", "f004", "unsat"]),
    ("Observation?date=sa2018-01-01", ["abdo-tender", "bgpanel", "bloodgroup", "clinical-gender",
                                       "map-sitting", "rhstatus", "trachcare"]),
    ("Observation?date:missing=true",
     ["bmd", "decimal", "example-TPMT-diplotype", "example-TPMT-haplotype-one",
      "example-TPMT-haplotype-two", "example-diplotype1", "example-genetics-1",
      "example-genetics-2", "example-genetics-3", "example-genetics-4", "example-genetics-5",
      "example-genetics-brcapat", "example-haplotype1", "example-haplotype2", "example-phenotype",
      "f202", "f203", "f204", "f205", "f206"]),
    ("Encounter?date=2015-01-17", ["home"]),
    ("Encounter?date=ge2017", ["emerg"]),
    ("Encounter?date=2013-03", ["f203"]),
    ("Immunization?date=2013-01-10", ["example", "notGiven"]),
    ("ServiceRequest?authored=2017-03-05", ["ambulation", "colon-biopsy", "colonoscopy"]),
    ("ServiceRequest?occurrence=2013-05-08", ["di", "subrequest"]),
    ("Condition?onset-date=2013-03", ["f203", "f204"]),
    ("Bundle?timestamp=2013-05-28", ["father"]),
    # number / quantity
    ("Observation?value-quantity=16.2", ["bmi", "bmi-using-related"]),
    ("Observation?value-quantity=10", ["10minute-apgar-score", "20minute-apgar-score",
                                       "5minute-apgar-score"]),
    ("Observation?value-quantity=gt800", ["656"]),
    ("Observation?value-quantity=lt1", ["1minute-apgar-score", "bmd", "herd1"]),
    (f"Observation?value-quantity=60|{UCUM}|mm[Hg]", ["map-sitting"]),
    ("Observation?value-quantity=ge36.5&value-quantity=le39||Cel", ["body-temperature", "f202"]),
    ("Observation?component-value-quantity=gt1e17", ["decimal"]),
    ("Encounter?length=gt100", ["f001", "f002"]),
    # composite
    (f"Observation?code-value-quantity={LOINC}|8310-5$gt37", ["f202"]),
    ("Observation?component-code-value-quantity=8480-6$107", ["blood-pressure",
                                                              "blood-pressure-dar"]),
    # reference: Type/id, id, :Type, absolute URL, :missing
    ("Observation?subject=Patient/f001", ["ekg", "f001", "f002", "f003", "f004", "f005", "unsat"]),
    ("Observation?subject:Group=herd1", ["herd1"]),
    # the five apgar Observations have a contained subject (#newborn): present, so not missing
    ("Observation?subject:missing=true", ["decimal", "vp-oyster"]),
    ("Observation?subject:missing=false&code=9272-6", ["1minute-apgar-score"]),
    ("Observation?encounter=Encounter/example", ["abdo-tender", "clinical-gender", "example",
                                                 "map-sitting"]),
    ("Patient?organization=Organization/1", ["ch-example", "dicom", "example", "pat1", "pat2",
                                             "pat3", "pat4"]),
    ("Patient?general-practitioner:Practitioner=example", ["glossy"]),
    ("Encounter?service-provider=Organization/f001", ["f001", "f002", "f003"]),
    ("Encounter?patient=f201", ["f201", "f202", "f203"]),
    ("Immunization?manufacturer=Organization/hl7", ["example", "protocol", "subpotent"]),
    ("ServiceRequest?requester=Practitioner/3ad0687e-f477-468c-afd5-fcc2bf897809",
     ["ambulation", "colon-biopsy", "colonoscopy", "example-implant", "vent"]),
    ("ServiceRequest?subject=Patient/dicom", ["di", "subrequest"]),
    ("ServiceRequest?based-on=CarePlan/preg", ["ambulation"]),
    ("ServiceRequest?subject=https://fhir.orionhealth.com/blaze/fhir/Patient/77662",
     ["myringotomy"]),
    ("Organization?partof=Organization/f001", ["f002", "f003"]),
    ("Location?partof=Location/1", ["2"]),
    ("Condition?encounter=Encounter/f203", ["f203", "f204"]),
    # chains, one and two levels
    ("Patient?organization.name=health", ["genetics-example1", "mom"]),
    ("Observation?subject:Patient.name=roel", ["f202", "f203", "f204", "f205", "f206"]),
    ("Observation?patient.birthdate=1944-11-17", ["ekg", "f001", "f002", "f003", "f004", "f005",
                                                  "unsat"]),
    ("Observation?subject:Patient.organization.name=artis", ["f202", "f203", "f204", "f205",
                                                            "f206"]),
    ("Observation?encounter.class=IMP", ["abdo-tender", "clinical-gender", "example",
                                         "map-sitting"]),
    ("Encounter?participant:Practitioner.family=bronsig", ["f201", "f202", "f203"]),
    ("Immunization?location.name=south", ["example", "historical", "protocol", "subpotent"]),
    ("Location?organization.name=burgers", ["1", "2", "amb", "ph"]),
    # _has, nested too
    (f"Patient?_has:Observation:patient:code={LOINC}|8867-4", ["example"]),
    ("Patient?_has:Observation:subject:code=15074-8", ["f001"]),
    ("Patient?_has:Encounter:subject:class=HH", ["example"]),
    (f"Patient?_has:Condition:subject:code={SCT}|368009", ["f001"]),
    ("Patient?_has:Immunization:patient:vaccine-code=104", ["example"]),
    ("Patient?_has:Encounter:subject:_has:Condition:encounter:code=368009", ["f001"]),
    ("Organization?_has:Patient:organization:gender=other", ["1"]),
    # _id and OR lists
    ("Patient?_id=pat1,pat3,nobody", ["pat1", "pat3"]),
    ("Observation?code=8867-4,9279-1", ["heart-rate", "respiratory-rate"]),
]


@pytest.mark.parametrize(("url", "expected"), EXAMPLE_CASES)
def test_examples(ex: FlaskClient, url: str, expected: list[str]) -> None:
    assert sorted(ids(ex, f"/fhir/{url}")) == sorted(expected)


@pytest.mark.parametrize(("url", "expected"), [
    # ties broken by id; resources without a value sort last
    ("Patient?gender=female&_sort=birthdate",
     ["proband", "genetics-example1", "mom", "pat4", "infant-mom", "animal", "infant-twin-1"]),
    ("Patient?gender=female&_sort=-birthdate",
     ["infant-twin-1", "animal", "infant-mom", "pat4", "genetics-example1", "mom", "proband"]),
    ("Condition?subject=Patient/f201&_sort=onset-date", ["f203", "f204", "f201", "f202", "f205"]),
    ("Organization?name=burgers&_sort=-name", ["f001", "f003", "f002"]),
    ("Encounter?class=AMB&_sort=-_id", ["xcda", "f202", "f201", "f003", "f002", "f001"]),
    ("Observation?subject=Patient/f201&_sort=value-quantity", ["f203", "f202", "f204", "f205",
                                                               "f206"]),
])
def test_examples_sorted(ex: FlaskClient, url: str, expected: list[str]) -> None:
    assert ids(ex, f"/fhir/{url}") == expected


def test_examples_include_and_revinclude(ex: FlaskClient) -> None:
    got = entries(ex, "/fhir/Encounter?_id=f001&_include=Encounter:subject"
                      "&_include=Encounter:service-provider")
    assert sorted(got) == [("include", "Organization", "f001"), ("include", "Patient", "f001"),
                           ("match", "Encounter", "f001")]
    got = entries(ex, "/fhir/Patient?_id=f201&_revinclude=Encounter:subject")
    assert sorted(got) == [("include", "Encounter", "f201"), ("include", "Encounter", "f202"),
                           ("include", "Encounter", "f203"), ("match", "Patient", "f201")]
    got = entries(ex, "/fhir/Observation?code=15074-8&_include=Observation:subject"
                      "&_include:iterate=Patient:organization")
    assert sorted(got) == [("include", "Organization", "f001"), ("include", "Patient", "f001"),
                           ("match", "Observation", "f001"), ("match", "Observation", "unsat")]
    got = entries(ex, "/fhir/Organization?_id=f001&_revinclude=Organization:partof"
                      "&_revinclude=Location:organization")
    assert sorted(got) == [("include", "Location", "1"), ("include", "Location", "2"),
                           ("include", "Location", "amb"), ("include", "Location", "ph"),
                           ("include", "Organization", "f002"),
                           ("include", "Organization", "f003"),
                           ("match", "Organization", "f001")]


# -- three Synthea bundles ------------------------------------------------------------------------

KOEPP = "018f428e-34f6-4707-8009-5ad742f901e7"
MARQUARDT = "63731047-b5a9-4b05-a14b-8cf6507efc98"
SCHADEN = "9afe28dc-7ad5-4e90-b6a6-16123eae98c3"

SYNTHEA_CASES: list[Any] = [
    ("Patient", [KOEPP, MARQUARDT, SCHADEN]),
    ("Patient?family=koepp", [KOEPP]),
    ("Patient?birthdate=lt1950", [MARQUARDT, SCHADEN]),
    ("Patient?birthdate=1956-08", [KOEPP]),
    ("Patient?identifier=http://hl7.org/fhir/sid/us-ssn|999-21-8417", [SCHADEN]),
    ("Patient?address-city=wakefield", [MARQUARDT]),
    ("Practitioner?family=orn", ["52919099-6a7a-442c-b0d5-2b02c0dd4b74"]),
    ("Organization?name:contains=hospital", ["f4e7709c-02f6-37ca-aeea-8247d74e88e7"]),
    (f"Observation?code={LOINC}|8331-1", ["0358c7fd-2472-411a-b8f8-9656fcac8841"]),
    ("Observation?code=33756-8,57905-2", ["56113cab-32d6-4965-b604-becf37b516ec",
                                          "fda45834-1978-4c05-8a1f-dc2e1561447e"]),
    ("Observation?code=29463-7&value-quantity=gt78&value-quantity=lt90",
     ["3d879921-a89e-4361-8f41-cd26d97a512b", "a0cc6509-87ff-467f-a895-4f9f0358e134"]),
    ("Observation?code=72166-2&date=ge2021", ["e75d3e06-925b-416b-807e-5dd46f4850ae"]),
    pytest.param("Observation?value-quantity=37.513178311087856||Cel",
                 ["0358c7fd-2472-411a-b8f8-9656fcac8841"], marks=pytest.mark.xfail(
                     strict=True, reason="the SQLite index stores quantities as float (REAL): the"
                     " implicit range of a 17-significant-digit value, [37.5131783110878555,"
                     " 37.5131783110878565), no longer contains the value itself")),
    ("Observation?value-quantity=37.51317831108786||Cel", ["0358c7fd-2472-411a-b8f8-9656fcac8841"]),
    (f"Observation?code-value-quantity={LOINC}|8331-1$gt37",
     ["0358c7fd-2472-411a-b8f8-9656fcac8841"]),
    ("Immunization?vaccine-code=133,33", ["443190c1-02dc-4ff6-a849-d4960c2363a7",
                                          "d3c66423-eef3-4811-bd6d-b59758c992d3"]),
    ("Immunization?vaccine-code=113&date=lt2015", ["2c9b3aaf-e091-4546-b7c7-fe715173547c",
                                                   "40122fef-4a78-4163-864f-5f3eac8e1686"]),
    ("Condition?code=10509002", ["6d1ded2c-76aa-4603-99b9-8bc4330fcce9",
                                 "af71dc0f-6edc-44ab-b52c-3e3c6a5cbbfb"]),
    ("Condition?code:text=prostate", ["05376197-ed02-4c55-9539-91221fb2ce59",
                                      "d64924a1-5665-41d7-a8be-d7d45ba9f7e6"]),
    ("Condition?onset-date=lt1980", ["211edef7-2b28-46a0-9f9d-69562b1c875c",
                                     "9c802b2b-36c6-44da-89ca-6f8b17bd4a44",
                                     "e0a2db02-d097-4d5f-8252-8ce52de1b69c"]),
]


@pytest.mark.parametrize(("url", "expected"), SYNTHEA_CASES)
def test_synthea(syn: FlaskClient, url: str, expected: list[str]) -> None:
    assert sorted(ids(syn, f"/fhir/{url}")) == sorted(expected)


def test_synthea_sorted(syn: FlaskClient) -> None:
    assert ids(syn, "/fhir/Patient?_sort=birthdate") == [SCHADEN, MARQUARDT, KOEPP]
    assert ids(syn, "/fhir/Patient?_sort=-family") == [SCHADEN, MARQUARDT, KOEPP]
