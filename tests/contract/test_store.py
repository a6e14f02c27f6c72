"""What every Store must do: compare-and-set writes, atomic transactions, versions, history paging."""

from __future__ import annotations

import threading

import pytest

from fhir_server.store import HistoryQuery, NewVersion, Store, VersionConflict
from fhir_server.store.base import iter_history
from tests.contract.conftest import StoreFactory


def _v(rid: str, version: int, ts: int, body: bytes | None = b"{}", rtype: str = "Patient",
       method: str = "PUT") -> NewVersion:
    return NewVersion(rtype, rid, version, ts, method, body)


def test_create_read_vread(store: Store) -> None:
    with store.transaction() as tx:
        tx.put(_v("a", 1, 100, b'{"v":1}', method="POST"), 0)
    current = store.read("Patient", "a")
    assert current is not None
    assert (current.version, current.ts, current.method, current.body) == (1, 100, "POST", b'{"v":1}')
    assert store.read("Patient", "b") is None
    assert store.read("Observation", "a") is None
    vread = store.vread("Patient", "a", 1)
    assert vread is not None and vread.body == b'{"v":1}'
    assert store.vread("Patient", "a", 2) is None


def test_put_is_compare_and_set(store: Store) -> None:
    with store.transaction() as tx:
        tx.put(_v("a", 1, 100), 0)
    with pytest.raises(VersionConflict), store.transaction() as tx:
        tx.put(_v("a", 1, 101), 0)  # "must not exist" but it does
    with pytest.raises(VersionConflict), store.transaction() as tx:
        tx.put(_v("a", 3, 102), 2)  # stale expectation
    with store.transaction() as tx:
        tx.put(_v("a", 2, 103, b'{"v":2}'), 1)
    current = store.read("Patient", "a")
    assert current is not None and current.version == 2 and current.body == b'{"v":2}'


def test_deletion_marker(store: Store) -> None:
    with store.transaction() as tx:
        tx.put(_v("a", 1, 100), 0)
        tx.put(_v("a", 2, 101, None, method="DELETE"), 1)
    current = store.read("Patient", "a")
    assert current is not None and current.deleted and current.version == 2
    old = store.vread("Patient", "a", 1)
    assert old is not None and not old.deleted


def test_a_failed_transaction_writes_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.put(_v("a", 1, 100), 0)
        tx.put(_v("b", 1, 100), 0)
        raise RuntimeError("entry 3 failed")
    assert store.read("Patient", "a") is None and store.read("Patient", "b") is None
    assert store.history(HistoryQuery()) == []


def test_reads_inside_a_transaction_see_its_writes(store: Store) -> None:
    with store.transaction() as tx:
        tx.put(_v("a", 1, 100), 0)
        seen = tx.read("Patient", "a")
        assert seen is not None and seen.version == 1


def test_history_order_filters_and_keyset_paging(store: Store) -> None:
    with store.transaction() as tx:
        tx.put(_v("p1", 1, 100, method="POST"), 0)
        tx.put(_v("o1", 1, 200, rtype="Organization", method="POST"), 0)
        tx.put(_v("p1", 2, 300), 1)
        tx.put(_v("p2", 1, 300, method="POST"), 0)  # same ts as p1 v2: ties broken by id
    keys = [(r.type, r.id, r.version) for r in store.history(HistoryQuery())]
    assert keys == [("Patient", "p2", 1), ("Patient", "p1", 2), ("Organization", "o1", 1),
                    ("Patient", "p1", 1)]
    assert [(r.id, r.version) for r in store.history(HistoryQuery(type="Patient"))] == [
        ("p2", 1), ("p1", 2), ("p1", 1)]
    assert [r.version for r in store.history(HistoryQuery("Patient", "p1"))] == [2, 1]
    assert [r.id for r in store.history(HistoryQuery(since=200))] == ["p2", "p1", "o1"]
    assert [r.id for r in store.history(HistoryQuery(before=300))] == ["o1", "p1"]
    pages = [r.id for r in iter_history(store, HistoryQuery(limit=1))]
    assert pages == ["p2", "p1", "o1", "p1"]


def test_secret_is_shared_and_stable(store_factory: StoreFactory) -> None:
    first, second = store_factory(), store_factory()
    try:
        key = first.secret("cursor")
        assert len(key) == 32
        assert second.secret("cursor") == key
        assert first.secret("other") != key
    finally:
        first.close()
        second.close()


def test_concurrent_compare_and_set_has_one_winner(store_factory: StoreFactory) -> None:
    setup = store_factory()
    with setup.transaction() as tx:
        tx.put(_v("a", 1, 100), 0)
    results: list[str] = []
    barrier = threading.Barrier(6)

    def racer(n: int) -> None:
        handle = store_factory()
        barrier.wait()
        try:
            with handle.transaction() as tx:
                tx.put(_v("a", 2, 200 + n), 1)
            results.append("won")
        except VersionConflict:
            results.append("lost")
        finally:
            handle.close()

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["lost"] * 5 + ["won"]
    assert [r.version for r in setup.history(HistoryQuery("Patient", "a"))] == [2, 1]
    setup.ping()
    setup.close()
