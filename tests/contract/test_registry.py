"""The store registry (shared key-value state for OAuth) on every store."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_server.auth.grants import authenticate
from fhir_server.config import Settings
from fhir_server.errors import Unauthorized
from fhir_server.store import Store
from fhir_server.store.sqlite import SqliteStore
from tests.contract.conftest import NamedFactory
from tests.oauth import ASSERTION_TYPE, assertion, ec_key, register, token_form


def test_put_get_list_delete(store: Store) -> None:
    assert store.registry_get("client", "a") is None
    store.registry_put("client", "b", {"role": "insurer", "n": 2, "nested": {"$where": "x.y"}})
    store.registry_put("client", "a", {"role": "hospital"})
    store.registry_put("token", "a", {"other": "kind"})
    assert store.registry_get("client", "a") == {"role": "hospital"}
    assert store.registry_get("client", "b") == {"role": "insurer", "n": 2, "nested": {"$where": "x.y"}}
    assert store.registry_list("client") == [("a", {"role": "hospital"}),
                                             ("b", {"role": "insurer", "n": 2,
                                                    "nested": {"$where": "x.y"}})]
    store.registry_put("client", "a", {"role": "mch"})  # upsert
    assert store.registry_get("client", "a") == {"role": "mch"}
    assert store.registry_delete("client", "a") is True
    assert store.registry_delete("client", "a") is False
    assert store.registry_get("client", "a") is None
    assert store.registry_get("token", "a") == {"other": "kind"}
    assert [k for k, _ in store.registry_list("client")] == ["b"]
    assert store.registry_list("nothing") == []


def test_keys_are_literal(store: Store) -> None:
    store.registry_put("k", "a.b", {"v": 1})
    store.registry_put("k", "$gt", {"v": 2})
    assert store.registry_get("k", "a.b") == {"v": 1}
    assert store.registry_get("k", "$gt") == {"v": 2}
    assert store.registry_get("k", "%") is None
    assert store.registry_get("k", "a_b") is None


def test_add_inserts_only_if_absent(store: Store) -> None:
    assert store.registry_add("jti", "c1 abc", {"n": 1}, expires=int(time.time()) + 60) is True
    assert store.registry_add("jti", "c1 abc", {"n": 2}, expires=int(time.time()) + 60) is False
    assert store.registry_get("jti", "c1 abc") == {"n": 1}
    assert store.registry_add("jti", "c2 abc", {"n": 3}) is True
    assert store.registry_add("jti", "c2 abc", {"n": 4}) is False


def test_expired_entries_are_invisible_and_can_be_added_again(store: Store) -> None:
    past = int(time.time()) - 1
    store.registry_put("token", "old", {"v": 1}, expires=past)
    store.registry_put("token", "new", {"v": 2}, expires=int(time.time()) + 300)
    store.registry_put("token", "forever", {"v": 3})
    assert store.registry_get("token", "old") is None
    assert [k for k, _ in store.registry_list("token")] == ["forever", "new"]
    assert store.registry_delete("token", "old") is False
    assert store.registry_add("token", "old", {"v": 4}, expires=int(time.time()) + 60) is True
    assert store.registry_get("token", "old") == {"v": 4}


def test_another_handle_sees_the_same_registry(store_factory: NamedFactory) -> None:
    first, second = store_factory(), store_factory()
    try:
        first.registry_put("client", "x", {"status": "active"})
        assert second.registry_get("client", "x") == {"status": "active"}
        assert second.registry_add("jti", "x 1", {}, expires=int(time.time()) + 60) is True
        assert first.registry_add("jti", "x 1", {}, expires=int(time.time()) + 60) is False
    finally:
        first.close()
        second.close()


def _race(path: str, key: str, barrier: Any, results: Any) -> None:
    store = SqliteStore(Path(path))
    store.registry_get("jti", key)  # connection open, schema read: only the add is left
    barrier.wait(timeout=60)  # both processes add at the same moment
    results.put(store.registry_add("jti", key, {"pid": 1}, expires=int(time.time()) + 60))
    store.close()


@pytest.mark.parametrize("attempt", range(5))
def test_racing_processes_one_wins(tmp_path: Path, attempt: int) -> None:
    """The jti replay defence: two processes add the same key at once; exactly one succeeds."""
    path = tmp_path / "race.db"
    SqliteStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_race, args=(str(path), f"client jti-{attempt}", barrier, results))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert outcomes == [False, True]


# -- counters (the clients' rate limits: fhir_server/auth/rate_limit.py) ------------------------
def test_incr_adds_and_reads_as_a_count(store: Store) -> None:
    later = int(time.time()) + 60
    assert store.registry_incr("rate", "c1 7", 1, expires=later) == 1
    assert store.registry_incr("rate", "c1 7", 5, expires=later) == 6
    assert store.registry_incr("rate", "c1 7", 0, expires=later) == 6
    assert store.registry_incr("rate", "c2 7", 2, expires=later) == 2  # another key: its own count
    assert store.registry_incr("rate", "$gt", 3) == 3  # keys are literal; no expiry
    assert store.registry_get("rate", "c1 7") == {"count": 6}
    assert store.registry_get("rate", "$gt") == {"count": 3}
    assert store.registry_list("rate") == [("$gt", {"count": 3}), ("c1 7", {"count": 6}),
                                           ("c2 7", {"count": 2})]
    assert store.registry_delete("rate", "c1 7") is True
    assert store.registry_incr("rate", "c1 7", 4, expires=later) == 4  # deleted: starts over


def test_incr_starts_over_once_expired(store: Store) -> None:
    now = int(time.time())
    assert store.registry_incr("rate", "old", 5, expires=now - 1) == 5  # created already expired
    assert store.registry_get("rate", "old") is None
    assert store.registry_incr("rate", "old", 2, expires=now + 60) == 2  # starts over...
    assert store.registry_incr("rate", "old", 1, expires=now - 100) == 3  # ...keeping its expiry
    assert store.registry_get("rate", "old") == {"count": 3}


def _count(url: str, key: str, times: int, barrier: Any, results: Any) -> None:
    from fhir_server.store import open_store

    store = open_store(Settings(store_url=url))
    store.registry_get("rate", key)  # connected: only the increments are left
    barrier.wait(timeout=60)
    last = 0
    for _ in range(times):
        last = store.registry_incr("rate", key, 1, expires=int(time.time()) + 60)
    results.put(last)
    store.close()


def test_processes_incrementing_at_once_lose_no_count(store_factory: NamedFactory) -> None:
    """The rate limit's shared counter: two processes add to one key at the same moment; every
    increment is counted, and the last one seen is the total."""
    store_factory().close()  # the database (and on MongoDB its indexes) exists before they start
    ctx = multiprocessing.get_context("spawn")
    results, barrier = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_count, args=(store_factory.url, "c 1", 40, barrier, results))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    lasts = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert max(lasts) == 80
    check = store_factory()
    try:
        assert check.registry_get("rate", "c 1") == {"count": 80}
    finally:
        check.close()


def test_oauth_flow_on_every_store(client: FlaskClient, store: Store) -> None:
    """Token, replay refused, authenticate, introspect, revoke: the same on every store."""
    key = ec_key("k-1")
    register(store, "hosp-1", "hospital", key)
    signed = assertion(key, "hosp-1")
    issued = client.post("/auth/token", data=token_form(signed, "system/Patient.rs"))
    assert issued.status_code == 200, issued.get_json()
    token = issued.get_json()["access_token"]
    assert client.post("/auth/token", data=token_form(signed)).get_json()["error"] == "invalid_client"
    grant = authenticate(store, Settings(), f"Bearer {token}")
    assert (grant.client_id, grant.scope) == ("hosp-1", "system/Patient.rs")
    form = {"client_assertion_type": ASSERTION_TYPE, "token": token}
    active = client.post("/auth/introspect", data={**form, "client_assertion": assertion(key, "hosp-1")})
    assert active.get_json()["active"] is True
    assert client.post("/auth/revoke", data={**form, "client_assertion": assertion(key, "hosp-1")}
                       ).status_code == 200
    with pytest.raises(Unauthorized):
        authenticate(store, Settings(), f"Bearer {token}")
