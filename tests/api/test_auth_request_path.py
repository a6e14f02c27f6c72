"""The authenticated request path kept cheap without changing what it decides (issue 6 cost):
per-request services built without re-running their set-up, scope decisions cached per token,
no reference cycles per request, the start-up heap frozen after the first request.

Real tokens from the real token endpoint, a real SQLite store, HTTP through Flask's test client.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server.api import access, observability
from fhir_server.app import create_app
from fhir_server.auth import audit, grants, rate_limit
from fhir_server.auth.audit import RequestAudit
from fhir_server.auth.audit_store import AuditedStore
from fhir_server.auth.audit_writer import AuditWriter
from fhir_server.auth.grants import Grant
from fhir_server.auth.guard import GuardedStore
from fhir_server.auth.policy import Access
from fhir_server.auth.scopes import allows, parse_scopes
from fhir_server.config import Settings
from fhir_server.fhir import jsonio, structure
from fhir_server.interactions.context import Services
from fhir_server.store import SearchQuery
from fhir_server.store.sqlite import SqliteStore
from tests.oauth import ec_key, get_token, register

KEY = ec_key("k-1")
FHIR_JSON = "application/fhir+json"


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return replace(settings, auth=True, enforce_profiles="off")


@pytest.fixture
def app(auth_settings: Settings, store: SqliteStore) -> Flask:
    register(store, "h1", "hospital", KEY, organization="Organization/h1")
    register(store, "narrow", "hospital", KEY, organization="Organization/h1",
             scope="system/Observation.rs")
    return create_app(auth_settings, store)


@pytest.fixture
def token(client: FlaskClient) -> str:
    return get_token(client, KEY, "h1", "system/*.cruds")


def _h(token: str) -> dict[str, str]:
    return {"Content-Type": FHIR_JSON, "Authorization": f"Bearer {token}"}


def _patient(client: FlaskClient, token: str) -> str:
    response = client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "female"},
                           headers=_h(token))
    assert response.status_code == 201, response.get_json()
    rid: str = response.get_json()["id"]
    return rid


def test_the_request_services_share_settings_and_cached_values(app: Flask) -> None:
    svc: Services = app.extensions["fhir"]
    grant = Grant("h1", "hospital", "Organization/h1", tuple(parse_scopes("system/*.rs")), (),
                  "ab" * 32, 2**40)
    view = svc.for_access(Access(grant, svc.settings.canonical_base))
    assert view is not svc and view.settings is svc.settings
    assert isinstance(view.store, GuardedStore) and view.store.store is svc.store
    assert view.raw_store is svc.store and view.access.grant is grant
    assert view.cursor_key == svc.cursor_key and view.terminology is svc.terminology
    view.store = svc.store  # a view's attributes are its own
    assert isinstance(svc.for_access(view.access).store, GuardedStore)
    assert svc.access.grant is None  # the app's services are untouched
    open_view = svc.for_access(Access(None, ""))
    assert open_view.store is svc.store and open_view.access.grant is None


@pytest.mark.parametrize("scope", ["system/*.cruds", "system/Patient.rs system/Observation.c",
                                   "system/AuditEvent.rs", "system/*.read", "system/Observation.s"])
def test_cached_scope_decisions_equal_the_scopes(scope: str) -> None:
    scopes = tuple(parse_scopes(scope))
    access_ = Access(Grant("c", "hospital", "Organization/o", scopes, (), "ab" * 32, 2**40), "")
    for _ in range(2):  # computed, then from the cache
        for rtype in ("Patient", "Observation", "AuditEvent", "Encounter"):
            for letter in "cruds":
                assert access_.allowed(rtype, letter) == bool(allows(scopes, rtype, letter))


def test_scope_refusals_are_unchanged(client: FlaskClient, token: str) -> None:
    rid = _patient(client, token)
    narrow = get_token(client, KEY, "narrow", "system/Observation.rs")
    for _ in range(2):
        response = client.get(f"/fhir/Patient/{rid}", headers=_h(narrow))
        assert response.status_code == 403
        assert "does not allow you to read Patient" in response.get_data(as_text=True)
    assert client.get(f"/fhir/Patient/{rid}", headers=_h(token)).status_code == 200


def test_a_request_leaves_no_reference_cycle_of_its_services(client: FlaskClient,
                                                              token: str) -> None:
    """The request's RequestAudit, Services, AuditedStore and GuardedStore are freed by reference
    counting when the request ends: none is left for the garbage collector."""
    rid = _patient(client, token)
    ours = (RequestAudit, Services, AuditedStore, GuardedStore)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            assert client.get(f"/fhir/Patient/{rid}", headers=_h(token)).status_code == 200
            assert client.get("/fhir/Patient?gender=female", headers=_h(token)).status_code == 200
            assert client.get("/fhir/Patient/nope", headers=_h(token)).status_code == 404
            assert client.get(f"/fhir/Patient/{rid}").status_code == 401
        gc.collect()
        cyclic = [o for o in gc.garbage if isinstance(o, ours)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert cyclic == []
    assert audit.flush()


def test_a_token_s_services_are_made_once_and_shared(app: Flask, client: FlaskClient, token: str,
                                                       store: SqliteStore,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """One audited, guarded view of the services per token (per app), reused by its requests;
    each request brings only its own RequestAudit, through which the shared store audits its
    writes as that request's."""
    rid = _patient(client, token)
    register(store, "h2", "hospital", KEY, organization="Organization/h2")
    other = get_token(client, KEY, "h2", "system/Observation.crs")
    seen: list[tuple[Services, RequestAudit]] = []
    original = audit.begin

    def spy(svc: Services, *args: Any) -> RequestAudit:
        context = original(svc, *args)
        seen.append((svc, context))
        return context

    monkeypatch.setattr(audit, "begin", spy)
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": f"Patient/{rid}"}}
    for _ in range(2):
        assert client.get(f"/fhir/Patient/{rid}", headers=_h(token)).status_code == 200
        assert client.post("/fhir/Observation", json=obs, headers=_h(other)).status_code == 201
    views = [v for v, _ in seen]
    assert views[0] is views[2] and views[1] is views[3] and views[0] is not views[1]
    assert isinstance(views[0].store, AuditedStore) and views[1].access.grant.client_id == "h2"
    assert len({id(c) for _, c in seen}) == 4  # a RequestAudit per request
    assert seen[1][1].written == seen[3][1].written == 1  # each write counted by its own request
    assert audit.flush()
    creators = [e["agent"][0]["who"]["identifier"]["value"] for e in _audit_events(store)
                if e["action"] == "C"
                and any(x["what"].get("reference", "").startswith("Observation/")
                        for x in e["entity"])]
    assert creators == ["h2", "h2"]
    monkeypatch.setattr(access, "_CACHE_SIZE", 1)  # full: the oldest goes, answers are the same
    app.extensions[access._VIEWS].clear()
    for t in (token, other, token):
        assert client.get(f"/fhir/Patient/{rid}", headers=_h(t)).status_code == \
            (200 if t == token else 403)
    assert list(app.extensions[access._VIEWS]) == [grants.token_hash(token)]


def test_the_start_up_heap_is_frozen_after_the_first_request(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert observability._heap.settled
    assert gc.get_freeze_count() > len(structure.RESOURCE_TYPES)


@pytest.fixture
def off_client(settings: Settings, store: SqliteStore) -> Iterator[FlaskClient]:
    yield create_app(replace(settings, auth=False), store).test_client()


def test_auth_off_still_refuses_audit_writes(off_client: FlaskClient) -> None:
    body = {"resourceType": "AuditEvent", "recorded": "2024-01-01T00:00:00Z"}
    response = off_client.post("/fhir/AuditEvent", json=body,
                               headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 405


def test_per_store_caches_stay_per_store(settings: Settings, store: SqliteStore) -> None:
    """The grants' cache and the rate limiter remember the store asked last: alternating stores
    still get each its own, a new window a new limiter."""
    other = SqliteStore.from_url(settings.store_url + "-2")
    try:
        caches = [grants._cache(s) for s in (store, other, store, other, other, store)]
        assert caches[0] is caches[2] is caches[5] and caches[1] is caches[3] is caches[4]
        assert caches[0] is not caches[1]
        limiters = [rate_limit.limiter(s, 60) for s in (store, other, store, other, store)]
        assert limiters[0] is limiters[2] is limiters[4] and limiters[1] is limiters[3]
        assert limiters[0] is not limiters[1] and limiters[0].store is store
        shorter = rate_limit.limiter(store, 1)
        assert shorter.window_s == 1 and shorter is not limiters[0]
        assert rate_limit.limiter(store, 1) is shorter
    finally:
        other.close()


class _Store:
    """Enough of a store for the writer's queue (it wraps ``close``)."""

    def close(self) -> None:
        pass


def test_a_forked_child_starts_with_its_own_audit_queue() -> None:
    """The writer no longer asks for the process id on every submit: a fork resets it."""
    import os

    writer = AuditWriter(interval=5.0)
    store = _Store()
    assert writer.submit(store, list) and writer.flush(5.0)  # the thread then sleeps a round
    assert writer.submit(store, list)
    assert writer.pending() == 1  # queued until the thread wakes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its queue and thread, then a job of its own
        os.close(read)
        state = [writer.pending(), writer._thread is None]
        # (not pending() == 1 right after submit: the child's new thread may take the job at once)
        ok = writer.submit(store, list) and writer.flush(5.0)
        os.write(write, repr([*state, ok, writer.pending()]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        seen = pipe.read().decode()
    os.waitpid(pid, 0)
    assert seen == "[0, True, True, 0]"
    assert writer.pending() == 1  # the parent's job is still the parent's
    assert writer.flush(10.0) and writer.pending() == 0


def test_concurrent_submits_are_each_run_once() -> None:
    """Request threads append to the writer's queue without its lock while the writer drains it:
    every job runs exactly once, none is lost between a drain and an append."""
    import threading

    writer = AuditWriter(interval=0.001)
    store = _Store()
    ran: list[int] = []

    def submitter(base: int) -> None:
        for i in range(2000):
            assert writer.submit(store, lambda n=base + i: ran.append(n) or [])  # type: ignore[misc]

    threads = [threading.Thread(target=submitter, args=(k * 10_000,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.flush(10.0)
    assert sorted(ran) == [k * 10_000 + i for k in range(6) for i in range(2000)]
    assert writer.pending() == 0


def test_a_full_backlog_refuses_on_the_unlocked_path() -> None:
    writer = AuditWriter(interval=5.0, max_backlog=3)
    store = _Store()
    assert writer.submit(store, list) and writer.flush(5.0)  # thread running, store known
    assert all(writer.submit(store, list) for _ in range(3))  # the thread sleeps its round
    assert not writer.submit(store, list)
    assert writer.pending() == 3


def test_a_flush_starts_the_next_round_at_once() -> None:
    """Rounds are spaced ``interval`` apart (one commit per interval), but a flush (a graceful
    stop, a closing store, a test) does not wait for the pace."""
    import threading

    writer = AuditWriter(interval=30.0)
    store = _Store()
    assert writer.submit(store, list) and writer.flush(5.0)  # the first round: at once
    ran = threading.Event()
    assert writer.submit(store, lambda: ran.set() or [])  # type: ignore[func-returns-value]
    assert not ran.wait(0.3)  # the writer keeps its pace: the job waits for the next round
    assert writer.pending() == 1
    assert writer.flush(5.0)  # ...unless a flush asks for it (30 s before otherwise)
    assert ran.is_set() and writer.pending() == 0


def test_a_flush_does_not_cut_a_failing_rounds_back_off_short() -> None:
    """When the store refuses the audits the round is retried after a back-off, which flushes
    waiting do not shorten (they would hammer a failing store)."""
    import contextlib
    import time
    from types import SimpleNamespace

    from fhir_server.auth import audit_writer

    written: list[Any] = []

    class _Failing(_Store):
        attempts = 0
        refuse = True

        def transaction(self) -> Any:
            _Failing.attempts += 1
            if _Failing.refuse:
                raise RuntimeError("the store refuses (expected by this test)")
            return contextlib.nullcontext(SimpleNamespace(append_audit=written.extend))

    writer = AuditWriter(interval=30.0)
    store = _Failing()
    assert writer.submit(store, lambda: ["event"])  # type: ignore[list-item]
    deadline = time.monotonic() + 10
    while _Failing.attempts == 0 and time.monotonic() < deadline:  # the first round: at once
        time.sleep(0.005)
    assert not writer.flush(0.35)  # still retrying
    # after the first attempt, back-offs of 0.1 and 0.2 s: at most 2 more attempts in 0.35 s
    assert audit_writer._FIRST_BACKOFF == 0.1
    assert 1 <= _Failing.attempts <= 3
    assert writer.pending() == 1
    _Failing.refuse = False
    assert writer.flush(10.0)  # the store is back: the round is written at its next attempt
    assert written == ["event"]


def test_the_audit_interval_is_a_setting(tmp_path: Path) -> None:
    from fhir_server.auth.audit_writer import writer

    url = f"sqlite:///{tmp_path / 'fhir.db'}"
    assert Settings.from_env({"FHIR_STORE": url}).audit_interval_ms == 1000
    settings = Settings.from_env({"FHIR_STORE": url, "FHIR_AUDIT_INTERVAL_MS": "250"})
    before = writer().interval
    app = create_app(settings)
    try:
        assert writer().interval == 0.25
    finally:
        writer().interval = before
        app.extensions["fhir"].store.close()
    for bad in ("0", "10001", "-5"):
        with pytest.raises(ValueError, match="FHIR_AUDIT_INTERVAL_MS"):
            Settings.from_env({"FHIR_STORE": url, "FHIR_AUDIT_INTERVAL_MS": bad})


def test_a_queued_read_audit_is_one_object_for_the_garbage_collector(
        client: FlaskClient, token: str, store: SqliteStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A read's audit waits up to a round in the writer's queue: as one flat tuple, the only
    object of its own the collector tracks (what it holds besides is shared by every request of
    the token, or untracked: strings, bytes, numbers). Nested, a waiting job was several, each
    promoted to the older generations while it waited. The events are still built from it."""
    rid = _patient(client, token)
    reads = ((f"/fhir/Patient/{rid}", 200), ("/fhir/Patient/nope", 404),
             (f"/fhir/Patient?_id={rid}", 200))
    paused = AuditWriter(interval=30.0)
    monkeypatch.setattr(audit, "writer", lambda: paused)
    for url, status in reads:
        assert client.get(url, headers=_h(token)).status_code == status
    assert paused.flush(5.0)  # the first round runs at once; the next waits 30 s
    seen_before = {e["id"] for e in _audit_events(store)}
    for url, status in reads:
        assert client.get(url, headers=_h(token)).status_code == status
    gc.collect()
    items = list(paused._jobs)
    assert len(items) == 3
    first = items[0]
    shared = [k for k in range(len(first)) if all(i[k] is first[k] for i in items)]
    assert {0, 1, 5, 6} <= set(shared)  # the store, the builder, the caller and the server
    own = [x for i in items for k, x in enumerate(i) if k not in shared]
    assert own and [x for x in own if gc.is_tracked(x)] == []
    assert all(gc.is_tracked(i) for i in items)  # (it holds the store)
    assert paused.flush(5.0) and paused.pending() == 0
    built = [e for e in _audit_events(store) if e["id"] not in seen_before]
    assert len(built) == 3
    assert sorted((e["subtype"][0]["code"], e["outcome"], _references(e)) for e in built) == [
        ("read", "0", [f"Patient/{rid}"]), ("read", "4", ["Patient/nope"]),
        ("search-type", "0", [f"Patient/{rid}"])]


def _references(event: dict[str, Any]) -> list[str]:
    """The resources an AuditEvent's entities name (the resource read, its Patient)."""
    found = {x["what"].get("reference") for x in event["entity"] if "what" in x}
    return sorted(r for r in found if r)


def _audit_events(store: SqliteStore) -> list[dict[str, Any]]:
    rows = store.search(SearchQuery(("AuditEvent",), limit=1000)).rows
    return [jsonio.loads_trusted(r.body) for r in rows if r.body is not None]
