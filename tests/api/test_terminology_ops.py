"""Terminology operations over HTTP, and the conformance resources installed in the store.

Expected codes and answers are written out by hand (DOMAIN.md §3.3, §B).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.conformance import install_conformance
from fhir_server.errors import InvalidRequest
from fhir_server.fhir.identifiers import DEFAULT_CANONICAL_BASE
from fhir_server.store.sqlite import SqliteStore
from tests.conftest import FHIR_JSON

B = DEFAULT_CANONICAL_BASE
SEX = "urn:oid:2.16.156.10011.2.3.3.4"
GBT2260 = f"{B}/CodeSystem/gbt-2260"
NIP_VS = f"{B}/ValueSet/cn-nip-vaccines"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    install_conformance(app.extensions["fhir"])
    return app.test_client()


def ok(client: FlaskClient, url: str) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.get_json())
    body: dict[str, Any] = response.get_json()
    return body


def post(client: FlaskClient, url: str, *params: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.post(url, json={"resourceType": "Parameters", "parameter": list(params)},
                           headers={"Content-Type": FHIR_JSON})
    assert response.status_code == status, (url, response.get_json())
    body: dict[str, Any] = response.get_json()
    return body


def fails(client: FlaskClient, url: str, status: int) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == status, (url, response.get_json())
    issue: dict[str, Any] = response.get_json()["issue"][0]
    return issue


def values(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters -> {name: value} (single-valued ones)."""
    out = {}
    for p in params["parameter"]:
        key = next((k for k in p if k.startswith("value")), None)
        if key is not None:
            out[p["name"]] = p[key]
    return out


def q(value: str) -> str:
    return quote(value, safe="")


# -- $expand ----------------------------------------------------------------------------------------

def test_expand_by_url_and_by_id(client: FlaskClient) -> None:
    by_url = ok(client, f"/fhir/ValueSet/$expand?url={q(B + '/ValueSet/gbt-2261-1-sex')}")
    by_id = ok(client, "/fhir/ValueSet/gbt-2261-1-sex/$expand")
    for vs in (by_url, by_id):
        assert vs["resourceType"] == "ValueSet" and vs["url"] == f"{B}/ValueSet/gbt-2261-1-sex"
        contains = vs["expansion"]["contains"]
        assert [(c["system"], c["code"], c["display"]) for c in contains] == [
            (SEX, "0", "未知的性别"), (SEX, "1", "男性"), (SEX, "2", "女性"), (SEX, "9", "未说明的性别")]
        assert vs["expansion"]["total"] == 4 and "timestamp" in vs["expansion"]


def test_expand_nip_vaccines_with_filter_count_offset(client: FlaskClient) -> None:
    vs = ok(client, f"/fhir/ValueSet/$expand?url={q(NIP_VS)}&filter=乙")
    assert [c["code"] for c in vs["expansion"]["contains"]] == ["HepB", "JE-L", "JE-I"]
    assert vs["expansion"]["parameter"] == [{"name": "filter", "valueString": "乙"}]
    english = ok(client, f"/fhir/ValueSet/$expand?url={q(NIP_VS)}&filter=hepatitis")
    assert [c["code"] for c in english["expansion"]["contains"]] == ["HepB", "HepA-L", "HepA-I"]
    assert ok(client, f"/fhir/ValueSet/$expand?url={q(NIP_VS)}")["expansion"]["total"] == 13
    page = ok(client, f"/fhir/ValueSet/$expand?url={q(NIP_VS)}&count=2&offset=1")
    assert page["expansion"]["total"] == 13 and page["expansion"]["offset"] == 1
    assert [c["code"] for c in page["expansion"]["contains"]] == ["BCG", "IPV"]
    posted = post(client, "/fhir/ValueSet/$expand", {"name": "url", "valueUri": NIP_VS},
                  {"name": "filter", "valueString": "脊灰"}, {"name": "includeDesignations",
                                                            "valueBoolean": True})
    assert [(c["code"], c["designation"][0]["value"]) for c in posted["expansion"]["contains"]] == [
        ("IPV", "Inactivated poliovirus vaccine"),
        ("bOPV", "Bivalent oral poliovirus vaccine (types 1 and 3)")]


def test_expand_a_value_set_given_by_value_and_a_stored_one(client: FlaskClient) -> None:
    mine = {"resourceType": "ValueSet", "url": "http://example.org/vs/girls", "status": "active",
            "compose": {"include": [{"system": SEX, "concept": [{"code": "2"}]}]}}
    by_value = post(client, "/fhir/ValueSet/$expand", {"name": "valueSet", "resource": mine})
    assert [c["display"] for c in by_value["expansion"]["contains"]] == ["女性"]
    created = client.post("/fhir/ValueSet", json=mine, headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201
    stored = ok(client, f"/fhir/ValueSet/$expand?url={q('http://example.org/vs/girls')}")
    assert [c["code"] for c in stored["expansion"]["contains"]] == ["2"]
    instance = ok(client, f"/fhir/ValueSet/{created.get_json()['id']}/$expand")
    assert [c["code"] for c in instance["expansion"]["contains"]] == ["2"]


def test_expand_r4_core_value_set(client: FlaskClient) -> None:
    vs = ok(client, "/fhir/ValueSet/$expand?url=http://hl7.org/fhir/ValueSet/administrative-gender")
    assert {c["code"] for c in vs["expansion"]["contains"]} == {"male", "female", "other", "unknown"}


@pytest.mark.parametrize(("url", "status", "expression", "words"), [
    ("/fhir/ValueSet/$expand?url=http%3A%2F%2Fexample.org%2Fnope", 404, ["url"], "not known"),
    ("/fhir/ValueSet/nope/$expand", 404, None, "not known"),
    ("/fhir/ValueSet/$expand", 400, ["url"], "url (or valueSet) is required"),
    ("/fhir/ValueSet/$expand?url=x&count=-1", 400, ["count"], "non-negative integer"),
    ("/fhir/ValueSet/$expand?url=x&offset=a", 400, ["offset"], "non-negative integer"),
    ("/fhir/ValueSet/$expand?url=x&colour=red", 400, ["colour"], "Unknown parameter"),
    ("/fhir/ValueSet/$expand?url=x&url=y", 400, ["url"], "only once"),
    ("/fhir/ValueSet/$expand?url=http%3A%2F%2Fhl7.org%2Ffhir%2FValueSet%2Fobservation-codes", 422,
     None, "http://loinc.org is not known"),
])
def test_expand_errors(client: FlaskClient, url: str, status: int, expression: list[str] | None,
                       words: str) -> None:
    issue = fails(client, url, status)
    assert issue.get("expression") == expression
    assert words in issue["diagnostics"]


def test_post_errors_name_the_parameter(client: FlaskClient) -> None:
    issue = post(client, "/fhir/ValueSet/$expand", {"name": "count", "valueString": "2"},
                 status=400)["issue"][0]
    assert issue["expression"] == ["Parameters.parameter[0]"] and "valueInteger" in issue["diagnostics"]
    issue = post(client, "/fhir/ValueSet/$expand", {"name": "valueSet", "resource": {
        "resourceType": "CodeSystem"}}, status=400)["issue"][0]
    assert issue["expression"] == ["valueSet"]
    response = client.post("/fhir/ValueSet/$expand", json={"resourceType": "Patient"},
                           headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 400 and "Parameters" in response.get_json()["issue"][0]["diagnostics"]


# -- $validate-code ---------------------------------------------------------------------------------

def test_value_set_validate_code(client: FlaskClient) -> None:
    base = f"/fhir/ValueSet/$validate-code?url={q(B + '/ValueSet/gbt-2261-1-sex')}&system={q(SEX)}"
    assert values(ok(client, base + "&code=1")) == {"result": True, "display": "男性"}
    wrong = values(ok(client, base + "&code=3"))
    assert wrong["result"] is False and "'urn:oid:2.16.156.10011.2.3.3.4|3' is not in" in wrong["message"]
    display = values(ok(client, base + "&code=1&display=" + q("女性")))
    assert display["result"] is False and "expected '男性'" in display["message"]
    by_id = values(ok(client, f"/fhir/ValueSet/gbt-2261-1-sex/$validate-code?system={q(SEX)}&code=2"))
    assert by_id["result"] is True
    concept = {"coding": [{"system": "http://example.org", "code": "1"}, {"system": SEX, "code": "9"}]}
    posted = post(client, "/fhir/ValueSet/$validate-code",
                  {"name": "url", "valueUri": f"{B}/ValueSet/gbt-2261-1-sex"},
                  {"name": "codeableConcept", "valueCodeableConcept": concept})
    assert values(posted) == {"result": True, "display": "未说明的性别"}
    coding = post(client, "/fhir/ValueSet/$validate-code", {"name": "url", "valueUri": NIP_VS},
                  {"name": "coding", "valueCoding": {"system": f"{B}/CodeSystem/cn-nip-vaccine",
                                                     "code": "PCV13"}})
    assert values(coding)["result"] is False
    issue = fails(client, f"/fhir/ValueSet/$validate-code?url={q(NIP_VS)}", 400)
    assert issue["expression"] == ["code"]


def test_code_system_validate_code(client: FlaskClient) -> None:
    base = f"/fhir/CodeSystem/$validate-code?url={q(SEX)}"
    assert values(ok(client, base + "&code=1&display=Male"))["result"] is True
    assert values(ok(client, base + "&code=5"))["result"] is False
    assert values(ok(client, "/fhir/CodeSystem/gbt-2261-1-sex/$validate-code?code=0"))["result"] is True
    # GB/T 2260 is held as a fragment: a code it does not list cannot be judged
    issue = fails(client, f"/fhir/CodeSystem/$validate-code?url={q(GBT2260)}&code=440301", 422)
    assert "fragment" in issue["diagnostics"]
    assert values(ok(client, f"/fhir/CodeSystem/$validate-code?url={q(GBT2260)}&code=510104"))[
        "result"] is True
    assert fails(client, "/fhir/CodeSystem/$validate-code?url=http%3A%2F%2Fnope&code=1", 404)[
        "expression"] == ["url"]


# -- $lookup, $subsumes -----------------------------------------------------------------------------

def test_lookup(client: FlaskClient) -> None:
    found = ok(client, f"/fhir/CodeSystem/$lookup?system={q(SEX)}&code=1")
    assert values(found) == {"name": "GB/T 2261.1 人的性别代码", "display": "男性"}
    designation = next(p for p in found["parameter"] if p["name"] == "designation")
    assert designation["part"] == [{"name": "language", "valueCode": "en"},
                                   {"name": "value", "valueString": "Male"}]
    county = ok(client, f"/fhir/CodeSystem/$lookup?system={q(GBT2260)}&code=510122&property=status"
                        "&property=parent")
    props = [(p["part"][0]["valueCode"], p["part"][1]) for p in county["parameter"]
             if p["name"] == "property"]
    assert props == [("status", {"name": "value", "valueCode": "retired"}),
                     ("parent", {"name": "value", "valueCode": "510100"})]
    assert not any(p["name"] == "designation" for p in county["parameter"])
    by_coding = post(client, "/fhir/CodeSystem/$lookup",
                     {"name": "coding", "valueCoding": {"system": SEX, "code": "2"}})
    assert values(by_coding)["display"] == "女性"
    assert values(ok(client, "/fhir/CodeSystem/gb-3304-ethnicity/$lookup?code=03"))["display"] == "回族"


@pytest.mark.parametrize(("url", "status", "expression"), [
    (f"/fhir/CodeSystem/$lookup?system={q(SEX)}&code=7", 400, ["code"]),
    (f"/fhir/CodeSystem/$lookup?system={q(SEX)}", 400, ["code"]),
    ("/fhir/CodeSystem/$lookup?code=1", 400, ["system"]),
    ("/fhir/CodeSystem/$lookup?system=http%3A%2F%2Fnope&code=1", 404, ["system"]),
    (f"/fhir/CodeSystem/$lookup?system={q(GBT2260)}&code=510000&version=1999", 404, ["system"]),
])
def test_lookup_errors(client: FlaskClient, url: str, status: int, expression: list[str]) -> None:
    assert fails(client, url, status)["expression"] == expression


def test_subsumes_on_gbt_2260(client: FlaskClient) -> None:
    def outcome(a: str, b: str) -> str:
        body = ok(client, f"/fhir/CodeSystem/$subsumes?system={q(GBT2260)}&codeA={a}&codeB={b}")
        return str(values(body)["outcome"])

    assert outcome("510000", "510104") == "subsumes"  # 四川省 / 锦江区
    assert outcome("510104", "510000") == "subsumed-by"
    assert outcome("510100", "510100") == "equivalent"
    assert outcome("510104", "500112") == "not-subsumed"
    assert outcome("500000", "500112005") == "subsumes"  # down to a township
    instance = ok(client, "/fhir/CodeSystem/gbt-2260/$subsumes?codeA=110000&codeB=110103")
    assert values(instance)["outcome"] == "subsumes"  # a retired county is still under Beijing
    posted = post(client, "/fhir/CodeSystem/$subsumes",
                  {"name": "codingA", "valueCoding": {"system": GBT2260, "code": "420000"}},
                  {"name": "codingB", "valueCoding": {"system": GBT2260, "code": "420106"}})
    assert values(posted)["outcome"] == "subsumes"
    assert fails(client, f"/fhir/CodeSystem/$subsumes?system={q(GBT2260)}&codeA=510000&codeB=999999",
                 400)["expression"] == ["codeB"]
    assert fails(client, f"/fhir/CodeSystem/$subsumes?system={q(GBT2260)}&codeA=510000",
                 400)["expression"] == ["codeB"]


# -- $translate -------------------------------------------------------------------------------------

def test_translate(client: FlaskClient) -> None:
    body = ok(client, f"/fhir/ConceptMap/$translate?system={q(SEX)}&code=1")
    assert values(body) == {"result": True}
    match = next(p for p in body["parameter"] if p["name"] == "match")
    assert match["part"] == [
        {"name": "equivalence", "valueCode": "equivalent"},
        {"name": "concept", "valueCoding": {"system": "http://hl7.org/fhir/administrative-gender",
                                            "code": "male", "display": "Male"}},
        {"name": "source", "valueUri": f"{B}/ConceptMap/gbt-2261-1-to-administrative-gender"}]
    targeted = ok(client, f"/fhir/ConceptMap/$translate?system={q(B + '/CodeSystem/cn-nip-vaccine')}"
                          "&code=bOPV&targetsystem=http%3A%2F%2Fhl7.org%2Ffhir%2Fsid%2Fcvx")
    concepts = [p["part"][1]["valueCoding"]["code"] for p in targeted["parameter"] if p["name"] == "match"]
    assert concepts == ["178"]
    by_id = ok(client, "/fhir/ConceptMap/visit-credential-to-nhsa-mdtrt-cert-type/$translate?"
                       f"system={q(B + '/CodeSystem/visit-credential')}&code=SSC")
    assert [p["part"][1]["valueCoding"]["code"] for p in by_id["parameter"] if p["name"] == "match"] \
        == ["03"]
    none = values(ok(client, f"/fhir/ConceptMap/$translate?system={q(B + '/CodeSystem/visit-credential')}"
                             "&code=EHC-QR"))
    assert none["result"] is False and "no translation" in none["message"]
    assert fails(client, "/fhir/ConceptMap/$translate?code=1", 400)["expression"] == ["system"]
    assert fails(client, f"/fhir/ConceptMap/$translate?system={q(SEX)}&code=1&url=http%3A%2F%2Fnope",
                 404)["expression"] == ["url"]


# -- conformance resources in the store -------------------------------------------------------------

def test_conformance_resources_are_read_and_searched(client: FlaskClient) -> None:
    cs = ok(client, "/fhir/CodeSystem/gbt-2261-1-sex")
    assert cs["url"] == SEX and cs["meta"]["versionId"] == "1"
    found = ok(client, f"/fhir/CodeSystem?url={q(GBT2260)}")
    assert [e["resource"]["id"] for e in found["entry"]] == ["gbt-2260"]
    maps = ok(client, f"/fhir/ConceptMap?source={q(B + '/ValueSet/gbt-2261-1-sex')}")
    assert [e["resource"]["id"] for e in maps["entry"]] == ["gbt-2261-1-to-administrative-gender"]
    titled = ok(client, "/fhir/ValueSet?title=" + q("国家免疫规划疫苗"))
    assert "cn-nip-vaccines" in {e["resource"]["id"] for e in titled["entry"]}


def test_capability_statement_lists_the_operations(client: FlaskClient) -> None:
    rest = ok(client, "/fhir/metadata")["rest"][0]
    ops = {r["type"]: {o["name"]: o["definition"] for o in r.get("operation", [])}
           for r in rest["resource"]}
    hl7 = "http://hl7.org/fhir/OperationDefinition/"
    assert ops["ValueSet"].items() >= {("expand", hl7 + "ValueSet-expand"),
                                       ("validate-code", hl7 + "ValueSet-validate-code")}
    assert ops["CodeSystem"].items() >= {("lookup", hl7 + "CodeSystem-lookup"),
                                         ("subsumes", hl7 + "CodeSystem-subsumes"),
                                         ("validate-code", hl7 + "CodeSystem-validate-code")}
    assert ops["ConceptMap"].items() >= {("translate", hl7 + "ConceptMap-translate")}
    assert "expand" not in ops["Patient"]


def test_install_is_idempotent_and_updates_changed_files(tmp_path: Path) -> None:
    root = tmp_path / "conformance"
    (root / "terminology").mkdir(parents=True)
    (root / "profiles").mkdir()
    cs = {"resourceType": "CodeSystem", "id": "colour", "url": "http://example.org/colour",
          "status": "active", "content": "complete", "concept": [{"code": "red"}]}
    (root / "terminology" / "CodeSystem-colour.json").write_text(json.dumps(cs))
    naming = {"resourceType": "NamingSystem", "id": "ns", "name": "Ns", "status": "active",
              "kind": "identifier", "date": "2025-01-01",
              "uniqueId": [{"type": "uri", "value": "http://example.org/sid/x"}]}
    (root / "profiles" / "NamingSystem-ns.json").write_text(json.dumps(naming))
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'c.db'}", access_log=False,
                        conformance_dir=str(root), enforce_profiles="off", auth=False)
    store = SqliteStore.from_url(settings.store_url)
    try:
        app = create_app(settings, store)
        svc = app.extensions["fhir"]
        assert install_conformance(svc) == 2
        assert install_conformance(svc) == 0  # unchanged: nothing written
        cs["concept"] = [{"code": "red"}, {"code": "blue"}]
        (root / "terminology" / "CodeSystem-colour.json").write_text(json.dumps(cs))
        assert install_conformance(svc) == 1
        client = app.test_client()
        got = client.get("/fhir/CodeSystem/colour").get_json()
        assert got.get("meta", {}).get("versionId") == "2", got
        assert client.get("/fhir/NamingSystem/ns").status_code == 200
        # the terminology service of this conformance directory knows the colour system
        assert svc.terminology.code_system("http://example.org/colour") is not None
        (root / "profiles" / "bad.json").write_text(json.dumps({"resourceType": "Patient"}))
        with pytest.raises(InvalidRequest, match=r"bad\.json: a conformance resource needs"):
            install_conformance(svc)
    finally:
        store.close()


def test_another_canonical_base_moves_the_platform_urls(tmp_path: Path) -> None:
    other = "https://fhir.other-city.health.cn"
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'b.db'}", access_log=False,
                        canonical_base=other, enforce_profiles="off", auth=False)
    store = SqliteStore.from_url(settings.store_url)
    try:
        app = create_app(settings, store)
        svc = app.extensions["fhir"]
        assert install_conformance(svc) > 60
        client = app.test_client()
        cs = ok(client, "/fhir/CodeSystem/gbt-2260")
        assert cs["url"] == f"{other}/CodeSystem/gbt-2260"
        assert cs["valueSet"] == f"{other}/ValueSet/gbt-2260"
        assert ok(client, "/fhir/CodeSystem/gbt-2261-1-sex")["url"] == SEX  # national: unchanged
        vs = ok(client, f"/fhir/ValueSet/$expand?url={q(other + '/ValueSet/cn-nip-vaccines')}")
        assert {c["system"] for c in vs["expansion"]["contains"]} == {f"{other}/CodeSystem/cn-nip-vaccine"}
        assert fails(client, f"/fhir/ValueSet/$expand?url={q(NIP_VS)}", 404)["expression"] == ["url"]
    finally:
        store.close()
