"""AuditEvent building (pure): BALP shape, the Patients a response concerns, the index entries
built by hand (they must equal what the generic extractor gives), unindexed-parameter detection."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.auth import audit_events as ae
from fhir_server.fhir import jsonio, structure
from fhir_server.search import index, ir
from fhir_server.search.query import build_search

CALLER = ae.Caller("10.1.2.3", "h1", "Organization/h1", "hospital", "ab" * 32)
INSURER = ae.Caller("10.1.2.4", "ins", "Organization/ins", "insurer", "cd" * 32)
SERVER = ae.Server("https://fhir.example.cn/fhir", "https://ehc.example.cn")
TS = 1_795_000_000_123_456

EVENTS = {
    "read": ae.Rest("read", TS, 200, CALLER, SERVER, "rid-1", ("Observation/o1",)),
    "vread": ae.Rest("vread", TS, 200, CALLER, SERVER, "rid-2", ("Observation/o1/_history/3",)),
    "search": ae.Rest("search-type", TS, 200, INSURER, SERVER, "rid-3", (),
                      b"GET /fhir/Encounter?date=ge2020"),
    "unauthenticated": ae.Rest("read", TS, 401, ae.Caller("10.9.9.9"), SERVER, None,
                               ("Patient/p1",), outcome_desc="no token"),
    "operation": ae.Rest("operation", TS, 200, CALLER, SERVER, "rid-4", ("Patient/p1",), b"GET x",
                         operation="Patient/$everything"),
    "update-as-create": ae.Rest("update", TS, 201, CALLER, SERVER, "rid-5",
                                ("Patient/p9/_history/1",), action="C"),
    "server error": ae.Rest("search-system", TS, 503, CALLER, SERVER, "rid-6", (), b"GET /fhir",
                            outcome_desc="store down"),
}


def _docs() -> list[dict[str, Any]]:
    out = []
    for event in EVENTS.values():
        out += ae.rest_events(event, ["Patient/p1", "Patient/p2"])
        out += ae.rest_events(event)
    for outcome in ("success", "invalid_client"):
        out.append(ae.token_event(TS, CALLER, SERVER, "rid-7", outcome, "unknown kid",
                                  "system/*.rs"))
    out.append(ae.token_event(TS, ae.Caller("10.0.0.1"), SERVER, None, "invalid_request", ""))
    return out


@pytest.mark.parametrize("doc", _docs(), ids=lambda d: f"{d['subtype'][0]['code']}-{d['outcome']}")
def test_events_are_valid_r4_and_index_like_the_generic_extractor(doc: dict[str, Any]) -> None:
    version = ae.new_version(dict(doc), TS, TS + 7)
    stored = jsonio.loads_trusted(version.body)
    assert list(stored)[:3] == ["resourceType", "id", "meta"]
    assert stored["meta"] == {"versionId": "1", "lastUpdated": "2026-11-18T11:06:40.123463Z"}
    assert structure.validate(stored, "AuditEvent") == []
    expected = set(index.extract(stored, ae.index_registry()))
    assert set(version.index) == expected
    assert len(version.index) == len(expected)  # no duplicates


def test_one_event_per_patient() -> None:
    event = EVENTS["search"]
    docs = ae.rest_events(event, ["Patient/p1", "Patient/p2", "Patient/p1"])
    assert len(docs) == 2 and len({d["id"] for d in docs}) == 2
    patients = [[e["what"]["reference"] for e in d["entity"] if e.get("role", {}).get("code")
                 == "1"] for d in docs]
    assert patients == [["Patient/p1"], ["Patient/p2"]]
    assert len(ae.rest_events(event)) == 1


def test_shape() -> None:
    doc = ae.rest_events(EVENTS["search"], ["Patient/p1"])[0]
    assert doc["type"]["code"] == "rest" and doc["action"] == "E" and doc["outcome"] == "0"
    client, organization, server = doc["agent"]
    assert client["who"]["identifier"] == {"system": "https://ehc.example.cn/sid/oauth-client",
                                           "value": "ins"}
    assert client["requestor"] is True and client["policy"] == ["cd" * 32]
    assert client["network"] == {"address": "10.1.2.4", "type": "2"}
    assert [c["code"] for c in client["type"]["coding"]] == ["110153", "UserOauthAgent"]
    assert organization["who"] == {"reference": "Organization/ins"}
    assert organization["type"]["coding"][0]["code"] == "PAYOR"
    assert server["requestor"] is False and server["type"]["coding"][0]["code"] == "110152"
    query = next(e for e in doc["entity"] if "query" in e)
    assert query["query"] == "R0VUIC9maGlyL0VuY291bnRlcj9kYXRlPWdlMjAyMA=="
    request = doc["entity"][0]
    assert request["what"] == {"identifier": {"value": "rid-3"}}
    assert request["type"]["code"] == "XrequestId"
    failed = ae.rest_events(EVENTS["server error"])[0]
    assert (failed["outcome"], failed["outcomeDesc"]) == ("12", "store down")


@pytest.mark.parametrize(("status", "code"), [(200, "0"), (304, "0"), (401, "4"), (404, "4"),
                                              (500, "8"), (502, "8"), (503, "12")])
def test_outcome_codes(status: int, code: str) -> None:
    assert ae.outcome_code(status) == code


def test_patients_of() -> None:
    obs = {"resourceType": "Observation", "subject": {"reference": "Patient/p1"},
           "performer": [{"reference": "https://other.example/fhir/Patient/p3/_history/2"},
                         {"reference": "Practitioner/x"}]}
    assert ae.patients_of(obs) == ["Patient/p1", "Patient/p3"]
    assert ae.patients_of({"resourceType": "Patient", "id": "p2"}) == ["Patient/p2"]
    assert ae.patients_of({"resourceType": "Organization", "id": "o"}) == []
    assert ae.patients_of({"resourceType": "Observation", "subject": {"reference": "Group/g"}}) == []
    nested = {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"resource": {"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": obs}, {"resource": {"resourceType": "Patient", "id": "p2"}}]}},
        {"response": {"status": "404"}},
        {"resource": {"resourceType": "Immunization", "patient": {"reference": "Patient/p4"}}}]}
    assert ae.patients_of(nested) == ["Patient/p1", "Patient/p3", "Patient/p2", "Patient/p4"]


def _where(rtype: str, query: str) -> ir.Node:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    return build_search((rtype,), pairs, strict=True).where


@pytest.mark.parametrize(("rtype", "query", "found"), [
    ("AuditEvent", "patient=Patient/p1&outcome=4&date=gt2020&subtype=read", None),
    ("AuditEvent", "agent:identifier=s|v&entity=Observation/o&type=rest&_id=x", None),
    ("AuditEvent", "_lastUpdated=gt2020", None),
    ("AuditEvent", "action=R", "action"),
    ("AuditEvent", "outcome=0&address=10.0.0.1", "address"),
    ("AuditEvent", "policy:missing=true", "policy"),
    ("AuditEvent", "patient.name=wang", None),  # a chain out of AuditEvent: Patient's parameters
    ("Patient", "_has:AuditEvent:patient:outcome=4", None),
    ("Patient", "_has:AuditEvent:patient:action=R", "action"),
    ("Patient", "name=wang", None),
])
def test_unindexed(rtype: str, query: str, found: str | None) -> None:
    assert ae.unindexed((rtype,), _where(rtype, query)) == found


def test_unindexed_sort() -> None:
    assert ae.unindexed(("AuditEvent",), ir.And(), ["date", "_lastUpdated"]) is None
    assert ae.unindexed(("AuditEvent",), ir.And(), ["action"]) == "action"
    assert ae.unindexed(("Patient",), ir.And(), ["name"]) is None
