"""The store contract: the same tests for every Store implementation, SQLite and MongoDB.

Every test using ``store``, ``store_factory``, ``settings``, ``app`` or ``client`` under
``tests/contract/`` runs once per entry of ``STORES``. The MongoDB cases use the server of
``tests/mongo_server.py`` (``FHIR_TEST_MONGO_URI``, else the mongoeco emulator) with a fresh database
per test, and are skipped, with the reason, when there is no server or ``fhir_server.store.mongo``
cannot be imported.

Differences between stores are declared, never guessed: a store lists what it can do in
``store.capabilities`` and a test that needs a capability says so with
``@pytest.mark.store_requires("transactions")`` (or in ``REQUIRES`` below for tests defined before the
marker), which skips it on stores without that capability.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fhir_server.config import Settings
from fhir_server.store import Store
from fhir_server.store.sqlite import SqliteStore

StoreFactory = Callable[[], Store]


class NamedFactory:
    """Opens a new handle on one backing store per call; knows the store's URL and kind."""

    def __init__(self, kind: str, url: str, open_: StoreFactory) -> None:
        self.kind, self.url, self._open = kind, url, open_

    def __call__(self) -> Store:
        return self._open()


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NamedFactory]:
    path = tmp_path / "contract.db"
    yield NamedFactory("sqlite", f"sqlite:///{path}", lambda: SqliteStore(path))


def _mongo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NamedFactory]:
    try:  # lazily: a missing or broken MongoDB store skips these cases, it does not break the suite
        from fhir_server.store.mongo import MongoStore
    except Exception as exc:
        pytest.skip(f"fhir_server.store.mongo cannot be imported: {type(exc).__name__}: {exc}")
    from tests.mongo_server import fresh_database

    uri: str = request.getfixturevalue("mongo_uri")  # skips with the reason when there is no server
    with fresh_database(uri) as db_uri:
        from_url = getattr(MongoStore, "from_url", None)
        if from_url is not None:
            yield NamedFactory("mongo", db_uri, lambda: from_url(db_uri))
        else:
            from fhir_server.store import open_store

            yield NamedFactory("mongo", db_uri, lambda: open_store(Settings(store_url=db_uri)))


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], Iterator[NamedFactory]]] = {
    "sqlite": _sqlite,
    "mongo": _mongo,
}

# Capabilities needed by tests that predate the ``store_requires`` marker: test name -> capabilities.
REQUIRES: dict[str, tuple[str, ...]] = {
    # several documents in one atomic write (a replica-set transaction on MongoDB)
    "test_a_failed_transaction_writes_nothing": ("transactions",),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "store_requires(*capabilities): skip on stores without these capabilities")


@pytest.fixture(params=sorted(STORES))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NamedFactory]:
    """Opens a new handle on the same backing store each call (like another worker process)."""
    yield from STORES[request.param](request, tmp_path)


@pytest.fixture
def store(store_factory: NamedFactory, request: pytest.FixtureRequest) -> Iterator[Store]:
    s = store_factory()
    try:
        needed = set(REQUIRES.get(request.node.originalname, ()))
        for marker in request.node.iter_markers("store_requires"):
            needed.update(marker.args)
        missing = sorted(needed - set(s.capabilities))
        if missing:
            pytest.skip(f"the {s.name} store does not declare {', '.join(missing)} "
                        f"(capabilities: {', '.join(sorted(s.capabilities)) or 'none'})")
        yield s
    finally:
        s.close()


@pytest.fixture
def settings(store_factory: NamedFactory) -> Settings:
    """The app's settings name the store under test (the ``app`` fixture pairs them)."""
    return Settings(store_url=store_factory.url, access_log=False, auth=False,
                    enforce_profiles="off")  # profiles are tested in tests/api/test_validate.py
