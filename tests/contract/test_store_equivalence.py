"""Property test: SQLite and MongoDB give the same answers to the same searches.

Both stores are loaded with the same random data set through :func:`fhir_server.interactions.load.load`
(so both index exactly as over HTTP), then the random queries of ``test_search_equivalence`` (same
generator, same vocabulary: accents, Chinese, dates at every precision, chains, ``_has``, composites,
modifiers) must give the same ids and counts on both; a share of them also get a random ``_sort``,
which must give the same order (ties are broken by type and id on every store), and are walked page by
page with each store's own keyset cursor. ``test_search_equivalence`` checks each store against the
in-memory evaluator; this one checks the two backends against each other directly, including order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_server.config import Settings
from fhir_server.errors import InvalidRequest
from fhir_server.fhir import jsonio
from fhir_server.interactions.context import Services
from fhir_server.interactions.load import load
from fhir_server.search import ir
from fhir_server.search.query import build_search
from fhir_server.store import SearchQuery, SortSpec, Store
from tests.contract.conftest import STORES
from tests.contract.test_search_equivalence import BASE, NOW, dataset, random_query

SEEDS = (11, 22, 33)
QUERIES_PER_SEED = 200
PAGE = 4

# Sortable parameters per type, with their types (as ``interactions.search._sort_specs`` finds them).
SORTS: dict[str, list[tuple[str, str]]] = {
    "Patient": [("birthdate", "date"), ("family", "string"), ("name", "string"),
                ("gender", "token"), ("identifier", "token"), ("organization", "reference"),
                ("_id", "token")],
    "Observation": [("date", "date"), ("status", "token"), ("code", "token"),
                    ("value-quantity", "quantity"), ("subject", "reference"), ("_id", "token")],
    "Encounter": [("date", "date"), ("status", "token"), ("class", "token"),
                  ("subject", "reference"), ("_id", "token")],
}


def _open(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    for factory in STORES[kind](request, tmp_path / kind):
        store = factory()
        try:
            yield store
        finally:
            store.close()


@pytest.fixture
def sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    (tmp_path / "sqlite").mkdir()
    yield from _open("sqlite", request, tmp_path)


@pytest.fixture
def mongo_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield from _open("mongo", request, tmp_path)


def _random_sort(rng: random.Random, rtype: str) -> tuple[SortSpec, ...]:
    chosen = rng.sample(SORTS[rtype], rng.choice([1, 1, 2]))
    return tuple(SortSpec(name, ptype, rng.random() < 0.5) for name, ptype in chosen)


def _all_ids(store: Store, query: SearchQuery) -> list[str]:
    return [row.id for row in store.search(query).rows]


def _paged_ids(store: Store, rtype: str, where: ir.Node, sort: tuple[SortSpec, ...]) -> list[str]:
    ids: list[str] = []
    after = None
    for _ in range(1000):
        page = store.search(SearchQuery((rtype,), where, sort, after=after, limit=PAGE))
        ids += [row.id for row in page.rows]
        if len(page.rows) < PAGE:
            return ids
        after = page.keys[-1]
    raise AssertionError("paging does not end")


@pytest.mark.parametrize("seed", SEEDS)
def test_sqlite_and_mongodb_find_the_same(sqlite_store: Store, mongo_store: Store,
                                          seed: int) -> None:
    resources = dataset(seed)
    settings = Settings(store_url="unused:", access_log=False, auth=False, enforce_profiles="off")
    for store in (sqlite_store, mongo_store):
        assert load(Services(settings, store), jsonio.loads(jsonio.dumps(resources))) == len(resources)
    rng = random.Random(seed * 1000 + 9)
    differences: list[str] = []
    nonempty = 0
    for n in range(QUERIES_PER_SEED):
        rtype, pairs = random_query(rng)
        url = f"{rtype}?" + "&".join(f"{k}={v}" for k, v in pairs)
        try:
            request = build_search([rtype], pairs, base_url=BASE, now=NOW)
        except InvalidRequest as exc:
            raise AssertionError(f"the generator made an invalid query {url}: {exc}") from exc
        unsorted = SearchQuery((rtype,), request.where, limit=10_000)
        expected = sorted(_all_ids(sqlite_store, unsorted))
        got = sorted(_all_ids(mongo_store, unsorted))
        if got != expected:
            differences.append(f"{url}: sqlite {expected} mongo {got}")
            continue
        count = mongo_store.count((rtype,), request.where)
        if count != len(expected):
            differences.append(f"{url}: count {count} on mongo, {len(expected)} on sqlite")
        nonempty += bool(expected)
        if n % 3 == 0 and expected:
            sort = _random_sort(rng, rtype)
            order = ",".join(("-" if s.descending else "") + s.param for s in sort)
            sorted_query = SearchQuery((rtype,), request.where, sort, limit=10_000)
            in_sqlite, in_mongo = _all_ids(sqlite_store, sorted_query), _all_ids(mongo_store,
                                                                                  sorted_query)
            if in_mongo != in_sqlite:
                differences.append(f"{url}&_sort={order}: sqlite {in_sqlite} mongo {in_mongo}")
                continue
            paged = _paged_ids(mongo_store, rtype, request.where, sort)
            if paged != in_sqlite:
                differences.append(f"{url}&_sort={order} paged by {PAGE}: {paged} != {in_sqlite}")
            backwards = _paged_backwards(mongo_store, rtype, request.where, sort, paged)
            if backwards is not None:
                differences.append(f"{url}&_sort={order} paged backwards: {backwards}")
    assert not differences, f"{len(differences)} differences:\n" + "\n".join(differences[:25])
    assert nonempty >= QUERIES_PER_SEED // 4


def _paged_backwards(store: Store, rtype: str, where: ir.Node, sort: tuple[SortSpec, ...],
                     forward: list[str]) -> str | None:
    """From the last page, ``backwards`` paging must give the pages before it (None if it does)."""
    if len(forward) <= PAGE:
        return None
    page = store.search(SearchQuery((rtype,), where, sort, limit=len(forward)))
    start = (len(forward) - 1) // PAGE * PAGE  # first row of the last page
    before = store.search(SearchQuery((rtype,), where, sort, after=page.keys[start], backwards=True,
                                      limit=PAGE))
    got = [row.id for row in before.rows]
    want = forward[start - PAGE:start]
    return None if got == want else f"before row {start}: {got} != {want}"
