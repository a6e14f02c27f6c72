"""The sharding follow-ups of docs/SCALING.md on a MongoDB server (mongoeco or FHIR_TEST_MONGO_URI):
``pc`` on every document, updates that move a resource to another patient, targeted filters that
change no result (a resource referring to two patients), index-backed sorts that give the same pages
and keys as SQLite, and the start-up backfill of documents written before ``pc`` existed.

The server here is one node, so "targeted" cannot be observed as routing; what is checked is that
the filters name ``pc`` exactly where docs/SCALING.md says, and that with ``pc`` the results equal
those of the same filter without it, and those of the SQLite store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_server.config import Settings
from fhir_server.fhir import jsonio
from fhir_server.interactions import crud
from fhir_server.interactions.context import Services
from fhir_server.interactions.load import load
from fhir_server.search import ir
from fhir_server.search.compartments import compartment_filter
from fhir_server.search.query import build_search
from fhir_server.store import SearchQuery, SortSpec, Store, VersionConflict
from fhir_server.store.base import NewVersion
from tests.contract.conftest import STORES, NamedFactory
from tests.contract.test_search_equivalence import BASE, NOW, dataset

SETTINGS = Settings(store_url="unused:", access_log=False, auth=False,
                    enforce_profiles="off")  # profiles are tested in tests/api/test_validate.py


def _factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NamedFactory]:
    (tmp_path / kind).mkdir()
    yield from STORES[kind](request, tmp_path / kind)


@pytest.fixture
def mongo_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NamedFactory]:
    yield from _factory("mongo", request, tmp_path)


@pytest.fixture
def mongo(mongo_factory: NamedFactory) -> Iterator[Any]:
    store = mongo_factory()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    for factory in _factory("sqlite", request, tmp_path):
        store = factory()
        try:
            yield store
        finally:
            store.close()


def _docs(store: Any) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in store.db["resources"].find({})}


def _ref(target: str) -> dict[str, str]:
    return {"reference": target}


PATIENTS = [{"resourceType": "Patient", "id": p, "birthDate": b}
            for p, b in (("p1", "1980-01-01"), ("p2", "1990-06-15"), ("p3", "2001"))]
ORGANIZATION = {"resourceType": "Organization", "id": "o1", "name": "成都市第一人民医院"}


def _obs(oid: str, **refs: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final", "code": {"text": "t"},
            **refs}


RECORD = [
    *PATIENTS, ORGANIZATION,
    _obs("o-p1", subject=_ref("Patient/p1"), effectiveDateTime="2024-01-10"),
    # two patients: subject p1 (its pc), performer p2; in both patients' compartments
    _obs("o-two", subject=_ref("Patient/p1"), performer=[_ref("Patient/p2")],
         effectiveDateTime="2024-02-01"),
    _obs("o-perf", performer=[_ref("Patient/p2")]),  # only a performer: pc from the performer
    _obs("o-group", subject=_ref("Group/g1"), performer=[_ref("Patient/p3")]),
    _obs("o-none", subject=_ref("Device/d1")),
    _obs("o-ghost", subject=_ref("Patient/ghost")),  # a dangling reference counts
    _obs("o-abs", subject=_ref("http://other.example/fhir/Patient/p3")),
    {"resourceType": "Encounter", "id": "e1", "status": "finished",
     "class": {"code": "AMB"}, "subject": _ref("Patient/p2")},
]


def _load(store: Store, resources: list[dict[str, Any]]) -> None:
    assert load(Services(SETTINGS, store), jsonio.loads(jsonio.dumps(resources))) == len(resources)


# -- pc on every document ----------------------------------------------------------------------
def test_every_document_carries_its_compartment_owner(mongo: Any) -> None:
    _load(mongo, RECORD)
    pcs = {key: doc["pc"] for key, doc in _docs(mongo).items()}
    assert pcs == {
        "Patient/p1": "Patient/p1", "Patient/p2": "Patient/p2", "Patient/p3": "Patient/p3",
        "Organization/o1": "Organization/o1",  # in no patient compartment: its own Type/id
        "Observation/o-p1": "Patient/p1",
        "Observation/o-two": "Patient/p1",  # subject comes first in the compartment definition
        "Observation/o-perf": "Patient/p2",
        "Observation/o-group": "Patient/p3",
        "Observation/o-none": "Observation/o-none",
        "Observation/o-ghost": "Patient/ghost",
        "Observation/o-abs": "Patient/p3",  # compartments match Type/id, whatever the base
        "Encounter/e1": "Patient/p2",
    }


def test_an_update_that_moves_a_resource_to_another_patient(mongo: Any) -> None:
    _load(mongo, RECORD)
    svc = Services(SETTINGS, mongo)
    moved = _obs("o-p1", subject=_ref("Patient/p2"))
    assert crud.update(svc, "Observation", "o-p1", moved).stored.version == 2
    doc = _docs(mongo)["Observation/o-p1"]
    assert (doc["pc"], doc["version"]) == ("Patient/p2", 2)
    found = mongo.search(SearchQuery(("Observation",), _where("Observation", "subject",
                                                               "Patient/p2"))).rows
    assert "o-p1" in [r.id for r in found]
    assert "o-p1" not in [r.id for r in mongo.search(SearchQuery(
        ("Observation",), _where("Observation", "subject", "Patient/p1"))).rows]
    # a deletion keeps pc (the document stays where it is); re-creating under a third patient
    # moves it again
    crud.delete(svc, "Observation", "o-p1")
    assert _docs(mongo)["Observation/o-p1"]["pc"] == "Patient/p2"
    crud.update(svc, "Observation", "o-p1", _obs("o-p1", subject=_ref("Patient/p3")))
    doc = _docs(mongo)["Observation/o-p1"]
    assert (doc["pc"], doc["version"], doc["alive"]) == ("Patient/p3", 4, True)
    assert [v.version for v in mongo.history(_instance("Observation", "o-p1"))] == [4, 3, 2, 1]


def test_a_moving_update_is_still_compare_and_set(mongo: Any) -> None:
    _load(mongo, RECORD)
    body = jsonio.dumps(_obs("o-p1", subject=_ref("Patient/p2")))
    entries = tuple(_extract(_obs("o-p1", subject=_ref("Patient/p2"))))
    stale = NewVersion("Observation", "o-p1", 2, NOW, "PUT", body, entries)
    with pytest.raises(VersionConflict), mongo.transaction() as tx:
        tx.put(stale, 5)  # neither the new pc nor the stored one helps a wrong version
    with mongo.transaction() as tx:
        tx.put(stale, 1)
    with pytest.raises(VersionConflict), mongo.transaction() as tx:
        tx.put(NewVersion("Observation", "o-p1", 2, NOW, "PUT", body, entries), 1)
    assert _docs(mongo)["Observation/o-p1"]["pc"] == "Patient/p2"


def test_moves_without_server_transactions(mongo: Any) -> None:
    mongo.capabilities = frozenset()  # the standalone fallback: single-document writes
    _load(mongo, RECORD)
    svc = Services(SETTINGS, mongo)
    crud.update(svc, "Observation", "o-two", _obs("o-two", subject=_ref("Patient/p3")))
    assert _docs(mongo)["Observation/o-two"]["pc"] == "Patient/p3"
    # a block that fails after a moving put is undone, pc included
    with pytest.raises(RuntimeError), mongo.transaction() as tx:
        body = _obs("o-two", subject=_ref("Patient/p1"))
        tx.put(NewVersion("Observation", "o-two", 3, NOW, "PUT", jsonio.dumps(body),
                          tuple(_extract(body))), 2)
        raise RuntimeError("a later entry failed")
    doc = _docs(mongo)["Observation/o-two"]
    assert (doc["pc"], doc["version"]) == ("Patient/p3", 2)


def test_patients_are_read_updated_and_deleted_by_their_own_pc(mongo: Any) -> None:
    _load(mongo, RECORD)
    svc = Services(SETTINGS, mongo)
    crud.update(svc, "Patient", "p1", {"resourceType": "Patient", "id": "p1", "gender": "male"})
    crud.delete(svc, "Patient", "p2")
    current = mongo.read("Patient", "p1")
    assert current is not None and current.version == 2
    gone = mongo.read("Patient", "p2")
    assert gone is not None and gone.deleted
    assert mongo.vread("Patient", "p2", 1) is not None
    docs = _docs(mongo)
    assert (docs["Patient/p1"]["pc"], docs["Patient/p2"]["pc"]) == ("Patient/p1", "Patient/p2")


# -- targeted filters change no result ------------------------------------------------------------
def _where(rtype: str, param: str, value: str) -> ir.Node:
    return build_search([rtype], [(param, value)], base_url=BASE, now=NOW).where


def _instance(rtype: str, rid: str) -> Any:
    from fhir_server.store import HistoryQuery

    return HistoryQuery(rtype, rid)


def _extract(resource: dict[str, Any]) -> list[Any]:
    from fhir_server.search.index import extract

    return extract(resource)


def _keys(flt: Any) -> set[str]:
    if isinstance(flt, dict):
        return set(flt) | {k for v in flt.values() for k in _keys(v)}
    if isinstance(flt, list):
        return {k for v in flt for k in _keys(v)}
    return set()


def _without_pc(flt: Any) -> Any:
    if isinstance(flt, dict):
        return {k: _without_pc(v) for k, v in flt.items() if k != "pc"}
    if isinstance(flt, list):
        return [_without_pc(v) for v in flt]
    return flt


QUERIES: list[tuple[str, ir.Node, list[str], bool]] = [
    # (type, condition, the ids expected, whether the filter names pc)
    ("Observation", _where("Observation", "subject", "Patient/p1"), ["o-p1", "o-two"], True),
    ("Observation", _where("Observation", "patient", "p1"), ["o-p1", "o-two"], True),
    ("Observation", _where("Observation", "subject", f"{BASE}/Patient/p1"), ["o-p1", "o-two"],
     True),
    ("Observation", _where("Observation", "subject", "Patient/p3"), ["o-abs"], True),
    ("Observation", _where("Observation", "performer", "Patient/p2"), ["o-perf", "o-two"], False),
    ("Observation", _where("Observation", "performer", "Patient/p3"), ["o-group"], False),
    ("Observation", _where("Observation", "subject", "p1"), ["o-p1", "o-two"], False),
    ("Observation", compartment_filter("Patient", "p2", "Observation") or ir.Or(),
     ["o-perf", "o-two"], False),
    ("Observation", compartment_filter("Patient", "p1", "Observation") or ir.Or(),
     ["o-p1", "o-two"], False),
    ("Encounter", compartment_filter("Patient", "p2", "Encounter") or ir.Or(), ["e1"], True),
    ("Encounter", _where("Encounter", "patient", "p2"), ["e1"], True),
    ("Patient", _where("Patient", "_id", "p1,p3"), ["p1", "p3"], True),
    ("Patient", compartment_filter("Patient", "p1", "Patient") or ir.Or(), ["p1"], False),
]


@pytest.mark.parametrize(("rtype", "where", "expected", "targeted"), QUERIES,
                         ids=[f"{q[0]}-{n}" for n, q in enumerate(QUERIES)])
def test_targeted_filters_find_exactly_what_untargeted_ones_do(
        mongo: Any, sqlite: Store, rtype: str, where: ir.Node, expected: list[str],
        targeted: bool) -> None:
    from fhir_server.store.mongo import compile as mc

    for store in (mongo, sqlite):
        _load(store, RECORD)
    flt = mc.search_filter((rtype,), where, mongo)
    assert ("pc" in _keys(flt)) == targeted, flt
    untargeted = sorted(d["id"] for d in mongo.db["resources"].find(_without_pc(flt)))
    got = sorted(r.id for r in mongo.search(SearchQuery((rtype,), where, limit=100)).rows)
    in_sqlite = sorted(r.id for r in sqlite.search(SearchQuery((rtype,), where, limit=100)).rows)
    assert got == untargeted == in_sqlite == expected
    assert mongo.count((rtype,), where) == len(expected)


# -- index-backed sorts: the same pages and keys as SQLite ---------------------------------------
SORTS = {
    "Patient": [("birthdate", "date"), ("family", "string"), ("name", "string"), ("_id", "token"),
                ("gender", "token")],
    "Observation": [("date", "date"), ("_id", "token"), ("status", "token")],
    "Encounter": [("date", "date"), ("_id", "token")],
}


def _pages(store: Store, query: SearchQuery, size: int) -> tuple[list[str], list[tuple[Any, ...]]]:
    ids: list[str] = []
    keys: list[tuple[Any, ...]] = []
    after = None
    for _ in range(200):
        page = store.search(SearchQuery(query.types, query.where, query.sort, after=after,
                                        limit=size))
        ids += [r.id for r in page.rows]
        keys += page.keys
        if len(page.rows) < size:
            return ids, keys
        after = page.keys[-1]
    raise AssertionError("paging does not end")


def test_sorted_pages_and_cursor_keys_equal_sqlites(mongo: Any, sqlite: Store) -> None:
    from fhir_server.store.mongo import compile as mc

    resources = dataset(22)
    for store in (mongo, sqlite):
        _load(store, resources)
    compared = 0
    for rtype, sorts in SORTS.items():
        for first in sorts:
            for second in [None, *[s for s in sorts if s != first][:2]]:
                for desc in (False, True):
                    spec = [SortSpec(first[0], first[1], desc)]
                    if second:
                        spec.append(SortSpec(second[0], second[1], not desc))
                    query = SearchQuery((rtype,), ir.And(), tuple(spec))
                    plan = mc.sort_plan([(s.param, s.param_type, s.descending) for s in spec],
                                        (rtype,))
                    if first[0] != "gender" and first[0] != "status":
                        assert plan[0][1] is None, plan  # read from a stored, indexed field
                    in_mongo, in_sqlite = _pages(mongo, query, 3), _pages(sqlite, query, 3)
                    assert in_mongo == in_sqlite, (rtype, spec)
                    compared += 1
    assert compared >= 40


def test_last_updated_sorts_by_the_stored_timestamp(mongo: Any) -> None:
    _load(mongo, dataset(11))
    for desc in (False, True):
        query = SearchQuery(("Observation",), ir.And(), (SortSpec("_lastUpdated", "date", desc),))
        ids, keys = _pages(mongo, query, 4)
        rows = {r.id: r for r in mongo.search(SearchQuery(("Observation",), limit=1000)).rows}
        want = sorted(rows.values(), key=lambda r: (-r.ts if desc else r.ts, r.id))
        assert ids == [r.id for r in want]
        assert keys == [(r.ts, "Observation", r.id) for r in want]


# -- backfill -------------------------------------------------------------------------------------
def test_start_up_backfills_documents_written_before_pc(mongo_factory: NamedFactory,
                                                        sqlite: Store) -> None:
    from fhir_server.store.mongo import migrate, schema

    first = mongo_factory()
    try:
        _load(first, RECORD)
        _load(sqlite, RECORD)
        crud.delete(Services(SETTINGS, first), "Observation", "o-ghost")
        crud.delete(Services(SETTINGS, sqlite), "Observation", "o-ghost")
        expected = {k: d["pc"] for k, d in _docs(first).items()}
        resources = first.db["resources"]
        # as an older version wrote them: no pc, sort keys only where a value exists
        resources.update_many({}, {"$unset": {"pc": "", "sk.birthdate": ""}})
        # ... in a database of an older version (no start-up marker: schema.py)
        first.db["server_meta"].delete_many({"_id": {"$in": [migrate.SORT_LAYOUT, schema.MARKER]}})
        assert resources.count_documents({"pc": {"$exists": True}}) == 0
    finally:
        first.close()
    second = mongo_factory()  # a process starting: backfills before its first query
    try:
        docs = _docs(second)
        assert {k: d["pc"] for k, d in docs.items()} == {
            # a deleted document has no index entries left: its own Type/id (a later update
            # that brings a subject back moves it, as any move does)
            **expected, "Observation/o-ghost": "Observation/o-ghost"}
        assert docs["Patient/p3"]["sk"]["birthdate"] == {"lo": 978307200000000,
                                                         "hi": 1009843200000000}
        query = SearchQuery(("Patient",), ir.And(), (SortSpec("birthdate", "date", True),))
        assert _pages(second, query, 2) == _pages(sqlite, query, 2)
        assert second.read("Patient", "p1") is not None
        assert migrate.backfill(second.db) == 0  # idempotent: nothing left to do
    finally:
        second.close()


def test_backfill_completes_sort_keys_when_the_indexed_sorts_change(mongo: Any) -> None:
    from fhir_server.store.mongo import migrate
    from fhir_server.store.mongo.documents import BIG

    _load(mongo, [{"resourceType": "Patient", "id": "nobody"}, ORGANIZATION])
    resources = mongo.db["resources"]
    assert _docs(mongo)["Patient/nobody"]["sk"]["birthdate"] == {"lo": BIG, "hi": -BIG}
    # as if birthdate and name had just joined INDEXED_SORTS: their sentinels are missing
    resources.update_many({"_id": "Patient/nobody"},
                          {"$unset": {"sk.birthdate.hi": "", "sk.name": ""}})
    assert migrate.backfill(mongo.db) == 0  # every document has pc; the layout is recorded
    assert "hi" not in _docs(mongo)["Patient/nobody"]["sk"]["birthdate"]
    mongo.db["server_meta"].update_one({"_id": migrate.SORT_LAYOUT}, {"$set": {"params": []}})
    migrate.backfill(mongo.db)
    docs = _docs(mongo)
    assert docs["Patient/nobody"]["sk"]["birthdate"] == {"lo": BIG, "hi": -BIG}
    assert docs["Patient/nobody"]["sk"]["name"] == {"lo": "\U0010ffff" * 2, "hi": ""}
    assert docs["Organization/o1"]["sk"]["name"] == {"lo": "成都市第一人民医院",
                                                     "hi": "成都市第一人民医院"}
