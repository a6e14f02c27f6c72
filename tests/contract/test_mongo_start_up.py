"""MongoDB store start-up (fhir_server/store/mongo/schema.py): the indexes and migrations run once per
database and layout, recorded by a marker in ``server_meta``; a start-up that finds the marker of its
own layout does none of that work, one that finds none (a new database, or one an earlier version
wrote) or another layout's does it all. Runs on the server of tests/mongo_server.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson.binary import Binary

from fhir_server.store.mongo import schema
from fhir_server.store.mongo.store import INDEXES
from tests.contract.conftest import STORES, NamedFactory

DROPPED = ("audit", [("recorded", 1), ("id", 1)])  # an index the test drops by hand


@pytest.fixture
def mongo_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NamedFactory]:
    yield from STORES["mongo"](request, tmp_path)


def _started(factory: NamedFactory) -> Any:
    store = factory()
    store.capabilities  # noqa: B018  (connects: the start-up runs here)
    return store


def _indexes(db: Any, collection: str) -> dict[tuple[tuple[str, int], ...], dict[str, Any]]:
    found = {}
    for index in db[collection].list_indexes():
        key = tuple((field, int(direction)) for field, direction in index["key"].items())
        found[key] = index
    return found


def _old_document(db: Any) -> None:
    """A resources document as versions before ``pc`` wrote it."""
    db["resources"].insert_one({"_id": "Observation/old", "type": "Observation", "id": "old",
                                "version": 1, "ts": 1, "method": "POST", "alive": True,
                                "body": Binary(b'{"resourceType":"Observation","id":"old"}'),
                                "idx": [], "sk": {}})


def _marker(db: Any) -> Any:
    return db["server_meta"].find_one({"_id": schema.MARKER})


def test_every_index_exists_after_start_up_and_the_layout_is_marked(
        mongo_factory: NamedFactory) -> None:
    store = _started(mongo_factory)
    try:
        for collection, keys, options in INDEXES:
            index = _indexes(store.db, collection).get(tuple(keys))
            assert index is not None, (collection, keys)
            assert bool(index.get("unique")) == bool(options.get("unique")), (collection, keys)
            assert index.get("expireAfterSeconds") == options.get("expireAfterSeconds")
        assert _marker(store.db)["fingerprint"] == schema.fingerprint(INDEXES)
    finally:
        store.close()


def test_a_second_start_up_does_no_index_or_migration_work(mongo_factory: NamedFactory) -> None:
    first = _started(mongo_factory)
    try:  # after the first start: an index gone and a document of the old layout
        first.db[DROPPED[0]].drop_index(DROPPED[1])
        _old_document(first.db)
    finally:
        first.close()
    second = _started(mongo_factory)
    try:  # the marker says the work is done: neither is repaired
        assert tuple(DROPPED[1]) not in _indexes(second.db, DROPPED[0])
        assert "pc" not in second.db["resources"].find_one({"_id": "Observation/old"})
        assert schema.prepare(second.db, INDEXES) is False
    finally:
        second.close()


@pytest.mark.parametrize("marker", [None, "the fingerprint of another version"])
def test_a_database_without_this_layouts_marker_is_brought_up_to_date(
        mongo_factory: NamedFactory, marker: str | None) -> None:
    first = _started(mongo_factory)
    try:  # as an earlier version left it: an index missing, a document without pc, its marker
        first.db[DROPPED[0]].drop_index(DROPPED[1])
        _old_document(first.db)
        if marker is None:
            first.db["server_meta"].delete_one({"_id": schema.MARKER})
        else:
            first.db["server_meta"].update_one({"_id": schema.MARKER},
                                               {"$set": {"fingerprint": marker}})
    finally:
        first.close()
    second = _started(mongo_factory)
    try:
        assert tuple(DROPPED[1]) in _indexes(second.db, DROPPED[0])
        assert second.db["resources"].find_one({"_id": "Observation/old"})["pc"] == "Observation/old"
        assert second.read("Observation", "old") is not None
        assert _marker(second.db)["fingerprint"] == schema.fingerprint(INDEXES)
    finally:
        second.close()


def test_stores_starting_at_once_on_a_new_database(mongo_factory: NamedFactory) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6, timeout=60)

    def worker() -> None:
        try:
            store = mongo_factory()
            barrier.wait()
            try:
                store.capabilities  # noqa: B018
            finally:
                store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = _started(mongo_factory)
    try:
        for collection, keys, _ in INDEXES:
            assert tuple(keys) in _indexes(store.db, collection), (collection, keys)
        assert store.db["server_meta"].count_documents({"_id": schema.MARKER}) == 1
        assert _marker(store.db)["fingerprint"] == schema.fingerprint(INDEXES)
    finally:
        store.close()


def test_the_fingerprint_changes_with_the_indexes() -> None:
    extra = ("audit", [("client_id", 1)], {})
    assert schema.fingerprint(INDEXES) == schema.fingerprint(tuple(INDEXES))
    assert schema.fingerprint(INDEXES) != schema.fingerprint((*INDEXES, extra))
    unique = tuple((c, k, {"unique": True}) if c == "claims" else (c, k, o) for c, k, o in INDEXES)
    assert schema.fingerprint(INDEXES) != schema.fingerprint(unique)
