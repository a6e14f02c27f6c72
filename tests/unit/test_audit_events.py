"""AuditEvent building (pure): BALP shape, the Patients a response concerns, the audit log's
records (rendered back into the same AuditEvents, parsed back into the same records) and their
search keys (the slots of store/audit_keys.py must give what the generic extractor gives for the
JSON served), unindexed-parameter detection."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.auth import audit_events as ae
from fhir_server.fhir import audit_record, jsonio, structure
from fhir_server.search import index, ir
from fhir_server.search.query import build_search
from fhir_server.store import audit_keys

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


def _records() -> list[ae.AuditRecord]:
    out = []
    for event in EVENTS.values():
        out += ae.rest_records(event, ["Patient/p1", "Patient/p2"], TS + 7)
        out += ae.rest_records(event, (), TS + 7)
    for outcome in ("success", "invalid_client"):
        out.append(ae.token_record(TS, CALLER, SERVER, "rid-7", outcome, "unknown kid",
                                   "system/*.rs", TS + 7))
    out.append(ae.token_record(TS, ae.Caller("10.0.0.1"), SERVER, None, "invalid_request", "",
                               ts=TS + 7))
    out.append(ae.token_record(TS, CALLER, SERVER, "rid-8", "invalid_scope", "invalid_scope"))
    return out


def _entry(e: index.IndexEntry) -> dict[str, Any]:
    """An index entry as audit_keys.entries gives them (MongoDB's ``idx`` form)."""
    fields = {f: getattr(e, f) for f in sorted(ir.FIELDS[e.param_type])
              if getattr(e, f, None) is not None}
    return {"p": e.param, "t": e.param_type, **fields}


def _key(entry: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(entry.items()))


@pytest.mark.parametrize("record", _records(),
                         ids=lambda r: f"{r.subtype}-{r.outcome}-{r.patient}")
def test_records_render_valid_r4_and_index_like_the_generic_extractor(
        record: ae.AuditRecord) -> None:
    stored = jsonio.loads_trusted(audit_record.render_json(record))
    assert list(stored)[:3] == ["resourceType", "id", "meta"]
    if record.ts == TS + 7:
        assert stored["meta"] == {"versionId": "1", "lastUpdated": "2026-11-18T11:06:40.123463Z"}
    assert structure.validate(stored, "AuditEvent") == []
    expected = {_key(_entry(e)) for e in index.extract(stored, ae.index_registry())}
    assert {_key(e) for e in audit_keys.entries(record)} == expected
    # read back from the JSON (a migrated event): the same record, not kept verbatim
    assert audit_record.parse(audit_record.render_json(record)) == record


def test_parse_keeps_what_it_cannot_reproduce() -> None:
    record = ae.rest_records(EVENTS["read"], ["Patient/p1"])[0]
    doc = audit_record.render(record)
    doc["agent"][0]["name"] = "an agent name the record has no field for"
    body = jsonio.dumps(doc)
    parsed = audit_record.parse(body)
    assert parsed.body == body and audit_record.render_json(parsed) == body
    assert parsed._replace(body=None) == record  # its search keys are still read
    odd = jsonio.dumps({"resourceType": "AuditEvent", "id": "x", "recorded": "2020-01-02",
                        "type": "not a coding"})
    kept = audit_record.parse(odd)
    assert (kept.id, kept.body, kept.recorded) == ("x", odd, 0)


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
    assert ae.unindexed(("AuditEvent",), ir.And(), ["date", "_lastUpdated", "_id"]) is None
    assert ae.unindexed(("AuditEvent",), ir.And(), ["action"]) == "action"
    assert ae.unindexed(("AuditEvent",), ir.And(), ["patient"]) == "patient"  # the log cannot
    assert ae.unindexed(("Patient",), ir.And(), ["name"]) is None


def test_event_ids_are_uuid7_ordered_and_differ_across_a_fork() -> None:
    import os
    import uuid

    ids = [ae.event_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)  # milliseconds first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids, to the parent
        os.close(read)
        os.write(write, "\n".join(ae.event_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    mine = {ae.event_id() for _ in range(50)}
    with os.fdopen(read, "rb") as pipe:
        theirs = set(pipe.read().decode().split("\n"))
    os.waitpid(pid, 0)
    assert len(theirs) == 50 and {i[14:] for i in mine}.isdisjoint({i[14:] for i in theirs})
