"""The audit log on every store: AuditEvents appended to a log of their own (not the resource and
index tables), read back as the same AuditEvent JSON, searched exactly as the in-memory evaluator
searches the index entries the generic extractor gives for that JSON, sorted and paged by keyset
cursors (alone and merged with other types), append-only, rolled back with their transaction,
and moved in from the generic tables where an earlier version kept them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest

from fhir_server.auth import audit_events as ae
from fhir_server.errors import FhirError, InvalidRequest
from fhir_server.fhir import audit_record, jsonio
from fhir_server.search import index, ir
from fhir_server.search.evaluate import search as evaluate
from fhir_server.search.query import build_search
from fhir_server.store import HistoryQuery, NewVersion, SearchQuery, SortSpec, Store, VersionConflict
from tests.contract.conftest import NamedFactory

SERVER = ae.Server("http://localhost/fhir", "https://ehc.example.cn")
H1 = ae.Caller("10.1.2.3", "h1", "Organization/h1", "hospital", "ab" * 32)
INS = ae.Caller("10.1.2.4", "ins", "Organization/ins", "insurer", "cd" * 32)
NOBODY = ae.Caller("10.9.9.9")
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SECOND = 1_000_000
CLIENTS = "https://ehc.example.cn/sid/oauth-client"


def _records() -> list[ae.AuditRecord]:
    """Every shape the audit writes, one second apart (written 50 ms after each was recorded)."""
    events: list[tuple[ae.Rest, list[str]]] = [
        (ae.Rest("read", 0, 200, H1, SERVER, "r-1", ("Patient/p1",)), ["Patient/p1"]),
        (ae.Rest("read", 0, 200, INS, SERVER, "r-2", ("Observation/o1",)), ["Patient/p2"]),
        (ae.Rest("search-type", 0, 200, H1, SERVER, "r-3", (), b"GET /fhir/Observation?x=1"),
         ["Patient/p1", "Patient/p2"]),
        (ae.Rest("read", 0, 401, NOBODY, SERVER, "r-4", ("Observation/o1",),
                 outcome_desc="no bearer token"), []),
        (ae.Rest("operation", 0, 200, H1, SERVER, "r-5", ("Patient/p1",), b"GET x",
                 operation="Patient/$everything"), ["Patient/p1", "Patient/p3"]),
        (ae.Rest("create", 0, 201, H1, SERVER, "r-6", ("Patient/p3/_history/1",), action="C"),
         ["Patient/p3"]),
        (ae.Rest("vread", 0, 200, INS, SERVER, None, ("Observation/o1/_history/3",)),
         ["Patient/p2"]),
        (ae.Rest("search-system", 0, 503, H1, SERVER, "r-8", (), b"GET /fhir",
                 outcome_desc="store down"), []),
        (ae.Rest("delete", 0, 200, INS, SERVER, "r-9", ("Observation/o2/_history/2",)),
         ["Patient/p1"]),
    ]
    out: list[ae.AuditRecord] = []
    for event, patients in events:
        recorded = T0 + len(out) * SECOND
        out += ae.rest_records(_at(event, recorded), patients, recorded + 50_000)
    for caller, outcome in ((H1, "success"), (INS, "invalid_client"), (NOBODY, "invalid_request")):
        recorded = T0 + len(out) * SECOND
        out.append(ae.token_record(recorded, caller, SERVER, f"r-t{len(out)}", outcome,
                                   "unknown kid", "system/*.rs", recorded + 50_000))
    return out


def _at(event: ae.Rest, recorded: int) -> ae.Rest:
    return event._replace(recorded=recorded)


PATIENTS = [
    {"resourceType": "Patient", "id": "p1", "gender": "female", "name": [{"family": "Wang"}]},
    {"resourceType": "Patient", "id": "p2", "gender": "male", "name": [{"family": "Li"}]},
    {"resourceType": "Patient", "id": "p3", "gender": "female", "name": [{"family": "Zhang"}]},
]


def _patient_ts(i: int) -> int:
    return T0 + (2 * i + 1) * SECOND + 500_000  # between the events' write times


@pytest.fixture
def logged(store: Store) -> list[ae.AuditRecord]:
    records = _records()
    with store.transaction() as tx:
        tx.append_audit(records[:5])
    with store.transaction() as tx:
        tx.append_audit(records[5:])
        for i, doc in enumerate(PATIENTS):
            tx.put(NewVersion("Patient", doc["id"], 1, _patient_ts(i), "POST", jsonio.dumps(doc),
                              tuple(index.extract(doc))), 0)
    return records


def _entries(records: Sequence[ae.AuditRecord]) -> Any:
    docs = {r.id: audit_record.render(r) for r in records}
    patients = {d["id"]: d for d in PATIENTS}

    def entries_of(rtype: str, rid: str) -> list[index.IndexEntry]:
        if rtype == "AuditEvent":
            return list(index.extract(docs[rid]))
        return list(index.extract(patients[rid])) if rtype == "Patient" and rid in patients else []

    def all_ids(rtype: str) -> list[str]:
        return list(docs) if rtype == "AuditEvent" else list(patients) if rtype == "Patient" \
            else []
    return entries_of, all_ids


def _where(rtype: str, query: str) -> ir.Node:
    pairs = [(k, v) for k, _, v in (p.partition("=") for p in query.split("&"))]
    return build_search((rtype,), pairs, strict=True).where


def test_events_read_back_as_the_json_the_audit_built(store: Store,
                                                      logged: list[ae.AuditRecord]) -> None:
    for record in logged:
        stored = store.read("AuditEvent", record.id)
        assert stored is not None
        assert (stored.type, stored.id, stored.version, stored.ts, stored.deleted) == (
            "AuditEvent", record.id, 1, record.ts, False)
        assert stored.body == audit_record.render_json(record)
        vread = store.vread("AuditEvent", record.id, 1)
        assert vread is not None and vread.body == stored.body
        assert store.vread("AuditEvent", record.id, 2) is None
    assert store.read("AuditEvent", "nope") is None
    assert store.read("Patient", logged[0].id) is None  # the log holds AuditEvents only


def test_history(store: Store, logged: list[ae.AuditRecord]) -> None:
    newest_first = sorted(logged, key=lambda r: (r.ts, r.id), reverse=True)
    seen = []
    query = HistoryQuery("AuditEvent", limit=4)
    while True:
        page = store.history(query)
        seen += page
        if len(page) < query.limit:
            break
        last = page[-1]
        query = HistoryQuery("AuditEvent", after=(last.ts, last.type, last.id, last.version),
                             limit=4)
    assert [r.id for r in seen] == [r.id for r in newest_first]
    since = [r.id for r in store.history(HistoryQuery("AuditEvent", since=logged[-3].ts))]
    assert since == [r.id for r in newest_first[:3]]
    one = store.history(HistoryQuery("AuditEvent", logged[2].id))
    assert [(r.id, r.version) for r in one] == [(logged[2].id, 1)]
    # system history is the data's: the audit log is not in it
    assert {r.type for r in store.history(HistoryQuery(limit=100))} == {"Patient"}


QUERIES = [
    "patient=Patient/p1", "patient=p2", "patient=Patient/p1,Patient/p3", "patient:missing=true",
    "patient:missing=false", "entity=Patient/p1", "entity=Observation/o1",
    "entity=Observation/o1/_history/3", "entity:identifier=r-3", "entity:identifier=r-1,r-9",
    f"entity:identifier=urn:ietf:rfc:6920|sha-256;{'ab' * 32}", "entity:missing=true",
    "entity:Observation=o2", f"agent:identifier={CLIENTS}|h1", "agent:identifier=h1",
    f"agent:identifier={CLIENTS}|", "agent=Organization/ins", "agent:missing=true",
    "type=rest", "type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest",
    "type=http://dicom.nema.org/resources/ontology/DCM|110114", "type:not=rest",
    "type:text=restful", "subtype=read", "subtype=read,vread", "subtype:not=read",
    "subtype=http://hl7.org/fhir/restful-interaction|create", "subtype=ITI-71",
    "subtype=urn:ietf:rfc:3986|http://hl7.org/fhir/OperationDefinition/Patient-everything",
    "subtype:text=patient/$everything", "subtype:text=get access", "outcome=4", "outcome=0,12",
    "outcome:not=0", "date=ge2026-01-01T00:00:05Z", "date=lt2026-01-01T00:00:03Z",
    "date=2026-01-01", "date=gt2026-01-01T00:00:04.5Z&date=le2026-01-01T00:00:09Z",
    "_lastUpdated=gt2026-01-01T00:00:04Z", "_lastUpdated=le2026-01-01T00:00:04.05Z",
    "patient=Patient/p1&subtype=read&outcome=0", "patient:Patient.gender=female",
    "patient.name=li", "entity:Patient.gender=male&outcome=0",
    # events whose what is their own patient (no what index entry in SQLite: found through patient)
    "entity:Patient=p1", "entity:Patient.name=wang", "entity:missing=false",
    "entity=Patient/p1&outcome=0", "entity=Patient/p3", "entity=Patient/p3/_history/1",
    "entity=Patient/p1&patient=Patient/p1", "patient:Patient=p1&subtype=operation",
]


@pytest.mark.parametrize("query", QUERIES)
def test_search_agrees_with_the_evaluator(store: Store, logged: list[ae.AuditRecord],
                                          query: str) -> None:
    where = _where("AuditEvent", query)
    entries_of, all_ids = _entries(logged)
    expected = evaluate(where, "AuditEvent", entries_of, all_ids)
    page = store.search(SearchQuery(("AuditEvent",), where, limit=100))
    assert sorted(r.id for r in page.rows) == expected, query
    assert store.count(("AuditEvent",), where) == len(expected)


def test_sqlite_indexes_what_only_where_it_is_not_the_patient(store: Store,
                                                              logged: list[ae.AuditRecord]) -> None:
    """The ``what`` index (random inserts: a WAL page per event) leaves out the events whose what is
    their own patient, and searches on ``what`` still use it."""
    if store.name != "sqlite":
        pytest.skip("the MongoDB log's indexes are its own")
    from fhir_server.store.sqlite import audit_log

    conn = store.conn  # type: ignore[attr-defined]
    indexed = {r[0] for r in conn.execute(
        "SELECT id FROM audit_log INDEXED BY audit_by_what WHERE what_id IS NOT NULL AND "
        + audit_log.WHAT_INDEXED.format(a="") + " AND what_id > ''")}
    expected = {r.id for r in logged if r.what_id is not None
                and (r.what_type, r.what_id, r.what_version) != ("Patient", r.patient, None)}
    assert indexed == expected
    self_reads = {r.id for r in logged if r.what_type == "Patient" and r.what_id == r.patient
                  and r.what_version is None}
    assert len(self_reads) == 2 and not self_reads & indexed  # read p1, $everything of p1 for p1
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        store.search(SearchQuery(("AuditEvent",), _where("AuditEvent", "entity=Observation/o1")))
    finally:
        conn.set_trace_callback(None)
    select = next(s for s in statements if s.lstrip().startswith("SELECT"))
    plan = " ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + select))
    assert "audit_by_what" in plan and "SCAN" not in plan, plan


def test_search_by_id_and_not(store: Store, logged: list[ae.AuditRecord]) -> None:
    wanted = [logged[1].id, logged[4].id]
    where = _where("AuditEvent", f"_id={','.join(wanted)}")
    assert sorted(r.id for r in store.search(SearchQuery(("AuditEvent",), where)).rows) == \
        sorted(wanted)
    # a negated entry whose condition is unknown for a row (no version) counts as false
    where = ir.Not(ir.Entry("entity", "reference", ir.Cmp("version", "eq", "3")))
    entries_of, all_ids = _entries(logged)
    found = sorted(r.id for r in store.search(SearchQuery(("AuditEvent",), where,
                                                          limit=100)).rows)
    assert found == evaluate(where, "AuditEvent", entries_of, all_ids)


@pytest.mark.parametrize("query", ["_has:AuditEvent:patient:outcome=4",
                                   "_has:AuditEvent:patient:subtype=operation",
                                   "_has:AuditEvent:entity:subtype=read&gender=female",
                                   "_has:AuditEvent:agent:outcome=0"])
def test_has_into_audit_event(store: Store, logged: list[ae.AuditRecord], query: str) -> None:
    where = _where("Patient", query)
    entries_of, all_ids = _entries(logged)
    expected = evaluate(where, "Patient", entries_of, all_ids)
    page = store.search(SearchQuery(("Patient",), where, limit=100))
    assert sorted(r.id for r in page.rows) == expected
    assert store.count(("Patient",), where) == len(expected)


def test_unknown_parameters_and_sorts_are_refused(store: Store,
                                                  logged: list[ae.AuditRecord]) -> None:
    with pytest.raises(InvalidRequest, match="action"):
        store.search(SearchQuery(("AuditEvent",), _where("AuditEvent", "action=R")))
    with pytest.raises(InvalidRequest, match="sorted by 'patient'"):
        store.search(SearchQuery(("AuditEvent",), sort=(SortSpec("patient", "reference"),)))


def _page_through(store: Store, query: SearchQuery) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        page = store.search(SearchQuery(query.types, query.where, query.sort, after,
                                        limit=query.limit))
        seen += [(r.type, r.id) for r in page.rows]
        if len(page.rows) < query.limit:
            return seen
        after = page.keys[-1]


@pytest.mark.parametrize("sort", [(), (SortSpec("date", "date"),),
                                  (SortSpec("date", "date", True),),
                                  (SortSpec("_lastUpdated", "date", True),),
                                  (SortSpec("_id", "token", True),)])
def test_sorted_keyset_pages(store: Store, logged: list[ae.AuditRecord],
                             sort: tuple[SortSpec, ...]) -> None:
    def key(r: ae.AuditRecord) -> tuple[Any, ...]:
        if not sort or sort[0].param == "_id":
            return (r.id,)
        value = r.recorded if sort[0].param == "date" else r.ts
        return (-value if sort[0].descending else value, r.id)  # ties: id ascending

    expected = sorted(logged, key=key, reverse=bool(sort) and sort[0].param == "_id"
                      and sort[0].descending)
    where = _where("AuditEvent", "outcome=0,4,8,12")
    seen = _page_through(store, SearchQuery(("AuditEvent",), where, sort, limit=3))
    assert [i for _, i in seen] == [r.id for r in expected]
    # backwards from the end of the third page gives the first three pages again
    page = store.search(SearchQuery(("AuditEvent",), where, sort, limit=9))
    back = store.search(SearchQuery(("AuditEvent",), where, sort, page.keys[-1], True, 4))
    assert [r.id for r in back.rows] == [r.id for r in page.rows[-5:-1]]


def test_audit_events_mixed_with_other_types(store: Store, logged: list[ae.AuditRecord]) -> None:
    rows = [("AuditEvent", r.id, r.ts) for r in logged] + [
        ("Patient", d["id"], _patient_ts(i)) for i, d in enumerate(PATIENTS)]
    types = ("Patient", "AuditEvent")
    sort = (SortSpec("_lastUpdated", "date"),)
    seen = _page_through(store, SearchQuery(types, sort=sort, limit=4))
    assert seen == [(t, i) for t, i, _ in sorted(rows, key=lambda r: (r[2], r[0], r[1]))]
    assert store.count(types, ir.And()) == len(rows)
    by_id = _page_through(store, SearchQuery(types, limit=5))
    assert by_id == sorted((t, i) for t, i, _ in rows)
    # backwards from the middle
    page = store.search(SearchQuery(types, sort=sort, limit=8))
    back = store.search(SearchQuery(types, sort=sort, after=page.keys[-1], backwards=True,
                                    limit=3))
    assert [(r.type, r.id) for r in back.rows] == [(r.type, r.id) for r in page.rows[-4:-1]]
    # a per-type condition, as the access guard writes it
    where = ir.any_of([ir.TypeIs(("Patient",)),
                       ir.all_of([ir.TypeIs(("AuditEvent",)), _where("AuditEvent", "outcome=4")])])
    found = store.search(SearchQuery(types, where, limit=100)).rows
    assert sorted((r.type, r.id) for r in found) == sorted(
        [("Patient", d["id"]) for d in PATIENTS]
        + [("AuditEvent", r.id) for r in logged if r.outcome == "4"])


def test_append_only(store: Store, logged: list[ae.AuditRecord]) -> None:
    with pytest.raises(VersionConflict), store.transaction() as tx:
        tx.append_audit([logged[0]])  # an id that exists
    body = audit_record.render_json(logged[0])
    with pytest.raises(FhirError), store.transaction() as tx:
        tx.put(NewVersion("AuditEvent", logged[0].id, 2, T0, "PUT", body), 1)
    with pytest.raises(FhirError), store.transaction() as tx:
        tx.put(NewVersion("AuditEvent", logged[0].id, 2, T0, "DELETE", None), 1)
    stored = store.read("AuditEvent", logged[0].id)
    assert stored is not None and stored.body == body


def test_an_audit_event_put_as_json_is_appended(store: Store) -> None:
    record = ae.rest_records(ae.Rest("read", T0, 200, H1, SERVER, "r-x", ("Patient/p9",)),
                             ["Patient/p9"], T0 + 1)[0]
    body = audit_record.render_json(record)
    with store.transaction() as tx:
        tx.put(NewVersion("AuditEvent", record.id, 1, record.ts, "POST", body), 0)
    stored = store.read("AuditEvent", record.id)
    assert stored is not None and stored.body == body
    found = store.search(SearchQuery(("AuditEvent",), _where("AuditEvent", "patient=p9"))).rows
    assert [r.id for r in found] == [record.id]
    with pytest.raises(VersionConflict), store.transaction() as tx:
        tx.put(NewVersion("AuditEvent", record.id, 1, record.ts, "POST", body), 0)


def test_a_failed_transaction_appends_nothing(store: Store) -> None:
    records = _records()[:3]
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append_audit(records)
        raise RuntimeError("the data write failed")
    assert all(store.read("AuditEvent", r.id) is None for r in records)
    assert store.count(("AuditEvent",), ir.And()) == 0


def test_a_failed_block_without_server_transactions_appends_nothing(store: Store) -> None:
    """MongoDB's standalone fallback (no server transactions) takes the appended events back."""
    if store.name != "mongodb":
        pytest.skip("SQLite transactions are always atomic (tested above)")
    store.capabilities = frozenset()  # type: ignore[misc]  (the fallback's test hook)
    records = _records()[:3]
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append_audit(records)
        raise RuntimeError("the data write failed")
    assert store.count(("AuditEvent",), ir.And()) == 0
    with store.transaction() as tx:
        tx.append_audit(records)
    assert store.count(("AuditEvent",), ir.And()) == 3


def _old_style(factory: NamedFactory, store: Store, records: Sequence[ae.AuditRecord]) -> None:
    """Store AuditEvents as an earlier version did: ordinary resources with index rows."""
    for record in records:
        body = audit_record.render_json(record)
        doc = jsonio.loads_trusted(body)
        entries = tuple(index.extract(doc))
        if factory.kind == "sqlite":
            from fhir_server.store.sqlite import index_tables

            conn: sqlite3.Connection = store.conn  # type: ignore[attr-defined]
            with conn:
                hid = conn.execute("INSERT INTO history (type, id, version, ts, method, body)"
                                   " VALUES ('AuditEvent', ?, 1, ?, 'POST', ?)",
                                   (record.id, record.ts, body)).lastrowid
                conn.execute("INSERT INTO resources (type, id, version, ts, hid, alive)"
                             " VALUES ('AuditEvent', ?, 1, ?, ?, 1)", (record.id, record.ts, hid))
                index_tables.write(conn, "AuditEvent", record.id, entries, replace=False)
                conn.execute("INSERT INTO type_counts (type, n) VALUES ('AuditEvent', 1)"
                             " ON CONFLICT (type) DO UPDATE SET n = n + 1")
        else:
            from bson.binary import Binary

            from fhir_server.store.mongo.documents import entry_doc
            from fhir_server.store.mongo.schema import MARKER

            db = store.db  # type: ignore[attr-defined]
            db["server_meta"].delete_one({"_id": MARKER})  # an earlier version's: no marker
            db["resources"].insert_one({
                "_id": f"AuditEvent/{record.id}", "type": "AuditEvent", "id": record.id,
                "version": 1, "ts": record.ts, "method": "POST", "alive": True,
                "body": Binary(body), "idx": [entry_doc(e) for e in entries], "sk": {},
                "pc": None})
            db["history"].insert_one({
                "_id": f"AuditEvent/{record.id}/1", "type": "AuditEvent", "id": record.id,
                "version": 1, "ts": record.ts, "method": "POST", "body": Binary(body)})


def test_audit_events_of_an_earlier_version_move_into_the_log(store_factory: NamedFactory
                                                              ) -> None:
    records = _records()
    first = store_factory()
    try:
        _old_style(store_factory, first, records)
        assert first.read("AuditEvent", records[0].id) is None  # not in the log yet
    finally:
        first.close()
    second = store_factory()  # start-up moves them
    try:
        for record in records:
            stored = second.read("AuditEvent", record.id)
            assert stored is not None and stored.body == audit_record.render_json(record)
        where = _where("AuditEvent", "patient=Patient/p1")
        entries_of, all_ids = _entries(records)
        found = second.search(SearchQuery(("AuditEvent",), where, limit=100)).rows
        assert sorted(r.id for r in found) == evaluate(where, "AuditEvent", entries_of, all_ids)
        assert second.history(HistoryQuery(limit=100)) == []  # gone from the generic tables
        if store_factory.kind == "sqlite":
            conn: sqlite3.Connection = second.conn  # type: ignore[attr-defined]
            for table in ("history", "resources", "idx_reference", "idx_token", "idx_date",
                          "type_counts"):
                column = "rtype" if table.startswith("idx_") else "type"
                assert conn.execute(f"SELECT count(*) FROM {table} WHERE {column} ="
                                    " 'AuditEvent'").fetchone()[0] == 0
        else:
            db = second.db  # type: ignore[attr-defined]
            assert db["resources"].count_documents({"type": "AuditEvent"}) == 0
            assert db["history"].count_documents({"type": "AuditEvent"}) == 0
    finally:
        second.close()
