"""The store contract: the same tests for every Store implementation (SQLite today; MongoDB will be
added to ``STORES`` by its issue)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fhir_server.store import Store
from fhir_server.store.sqlite import SqliteStore

StoreFactory = Callable[[], Store]


def _sqlite(tmp_path: Path) -> StoreFactory:
    return lambda: SqliteStore(tmp_path / "contract.db")


STORES = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(STORES))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Opens a new handle on the same backing store each call (like another worker process)."""
    return STORES[request.param](tmp_path)


@pytest.fixture
def store(store_factory: StoreFactory) -> Iterator[Store]:
    s = store_factory()
    yield s
    s.close()
