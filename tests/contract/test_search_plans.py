"""The SQLite search planner (store/sqlite/plan.py): every plan finds what the IR means.

The planner picks, per search, which condition drives the query from its value index, which are
checked per resource (correlated ``EXISTS``), and whether to walk the resources in id order. The
property test of test_search_equivalence.py runs here again with the planner's threshold forced to
its extremes, so that each form (driven, correlated, ordered walk) answers the same random queries
over the same random data as the in-memory evaluator, searched in one page and page by page.
The query-plan tests check the forms the benchmark scenarios rely on (EXPLAIN QUERY PLAN).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from fhir_server.config import Settings
from fhir_server.errors import InvalidRequest
from fhir_server.fhir import jsonio
from fhir_server.interactions.load import load
from fhir_server.search import ir
from fhir_server.search.evaluate import search as evaluate
from fhir_server.search.query import build_search
from fhir_server.store import SearchQuery
from fhir_server.store.sqlite import SqliteStore
from fhir_server.store.sqlite import compile as sqlc
from fhir_server.store.sqlite.plan import Planner
from fhir_server.store.sqlite.schema import SCHEMA_VERSION
from tests.contract.test_search_equivalence import BASE, NOW, _memory, dataset, random_query

QUERIES = 150


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store_url=f"sqlite:///{tmp_path / 'plans.db'}", access_log=False, auth=False,
                    enforce_profiles="off", allow_update_create=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "plans.db")
    try:
        yield s
    finally:
        s.close()


# cap 0: no condition is ever selective (ordered walks; sub-queries driven by their first
# condition, the others correlated); cap 3: a mix; a huge cap: every query index-driven
@pytest.mark.parametrize("cap", [0, 3, 10**9])
@pytest.mark.parametrize("seed", [11, 44])
def test_every_plan_equals_in_memory_evaluation(app: Flask, store: SqliteStore, cap: int,
                                                seed: int) -> None:
    store.plan_cap = cap
    resources = dataset(seed)
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(resources)))
    entries_of, all_ids = _memory(store, resources)
    rng = random.Random(seed * 1000 + 9)
    for _ in range(QUERIES):
        rtype, pairs = random_query(rng)
        url = f"{rtype}?" + "&".join(f"{k}={v}" for k, v in pairs)
        try:
            request = build_search([rtype], pairs, base_url=BASE, now=NOW)
        except InvalidRequest as exc:  # pragma: no cover - the generator makes valid queries
            raise AssertionError(url) from exc
        expected = evaluate(request.where, rtype, entries_of, all_ids)
        one_page = store.search(SearchQuery((rtype,), request.where, limit=10_000))
        assert sorted(r.id for r in one_page.rows) == expected, url
        assert store.count((rtype,), request.where) == len(expected), url
        paged: list[str] = []
        after: tuple[Any, ...] | None = None
        while True:
            page = store.search(SearchQuery((rtype,), request.where, after=after, limit=4))
            paged += [r.id for r in page.rows]
            if len(page.rows) < 4:
                break
            after = page.keys[-1]
        assert paged == expected, url  # in id order, each match once


# -- the plans the benchmark scenarios rely on ------------------------------------------------
def _patients(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append({"resourceType": "Patient", "id": f"p{i:04d}",
                    "name": [{"family": "Wang" if i % 3 else "Li"}],
                    "birthDate": f"{1950 + i % 60}-{1 + i % 12:02d}-{1 + i % 28:02d}"})
        out.append({"resourceType": "Immunization", "id": f"i{i:04d}", "status": "completed",
                    "vaccineCode": {"coding": [{"system": "urn:v", "code": "BCG"}]},
                    "patient": {"reference": f"Patient/p{i:04d}"},
                    "occurrenceDateTime": "2020-01-01"})
    return out


def _plan(store: SqliteStore, url: str, cap: int) -> tuple[str, list[str]]:
    """The SQL text and EXPLAIN QUERY PLAN lines of the page query of ``url``."""
    rtype, _, query = url.partition("?")
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    request = build_search([rtype], pairs, base_url=BASE, now=NOW)  # type: ignore[arg-type]
    conn = sqlite3.connect(store.path)
    try:
        planner = Planner(lambda text, args: int(conn.execute(text, args).fetchone()[0]), None, cap)
        sql = sqlc.Sql()
        cond = planner.condition(request.where, rtype, "r", sql, walk=10)
        text = (f"SELECT r.id FROM resources r WHERE r.type = {sql.bind(rtype)} AND r.alive = 1"
                f" AND {cond} ORDER BY r.type, r.id LIMIT 10")
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + text, sql.args)]
    finally:
        conn.close()
    return text, plan


@pytest.mark.parametrize("url", ["Patient?name=wang", "Patient?_has:Immunization:patient:"
                                 "vaccine-code=BCG", "Patient?name=wang&birthdate=ge1950"])
def test_common_conditions_walk_the_resources_in_id_order(app: Flask, store: SqliteStore,
                                                          url: str) -> None:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(_patients(60))))
    text, plan = _plan(store, url, cap=10)
    assert " IN (SELECT" not in text and "EXISTS (SELECT" in text
    assert any("SEARCH r USING PRIMARY KEY (type=?)" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan  # no sort: stops after the page
    # each probe finds the resource's own rows by their owner, not by scanning a value range
    assert not any("_value (" in line or "_span (" in line for line in plan), plan
    assert any("PRIMARY KEY (rtype=? AND rid=? AND param=?)" in line for line in plan), plan


def test_a_selective_condition_drives_and_the_others_are_probed(app: Flask,
                                                                store: SqliteStore) -> None:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(_patients(60))))
    text, plan = _plan(store, "Patient?name=li&_has:Immunization:patient:vaccine-code=BCG",
                       cap=30)  # 20 Li, 60 BCG
    assert text.count(" IN (SELECT") == 1 and "EXISTS (SELECT 1 FROM idx_reference" in text
    assert any("idx_string_value" in line for line in plan), plan


def test_a_date_range_is_one_seek_per_span_bucket(app: Flask, store: SqliteStore) -> None:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(_patients(60))))
    _, plan = _plan(store, "Patient?birthdate=ge1960-01-01&birthdate=lt1960-02-01", cap=10**6)
    seeks = [line for line in plan if "idx_date_span (rtype=? AND param=? AND <expr>=?" in line]
    assert len(seeks) == 1 + len(sqlc.SPAN_BUCKETS), plan  # + inverted ranges (bucket 0)
    assert all("low>? AND low<?" in line for line in seeks[1:]), plan  # bounded on both sides


@pytest.mark.parametrize(("cond", "span", "bounds"), [
    # ge [100, 200): high > 200 (so low > 200 - span) or within (low >= 100): the looser, 100
    ("ge", 10, (100, None)),
    ("lt", 10, (None, 100)),
    ("gt", 10, (200 - 10, None)),
    ("le", 10, (None, 200)),
    ("sa", 10, (200, None)),
    ("eb", 10, (None, 100)),
    ("eq", 10, (100, 200)),
    ("ne", 10, (None, None)),
])
def test_date_bounds_on_low(cond: str, span: int, bounds: tuple[int | None, int | None]) -> None:
    from fhir_server.search.dates import date_conditions
    node = date_conditions(cond, 100, 200)
    assert sqlc.low_bounds(node, span) == bounds
    # and a bound is never tighter than the entries that match: every (low, high) with
    # high - low < span that the condition accepts lies within the bounds
    for low in range(0, 320, 3):
        for width in range(0, span):
            if _matches(node, low, low + width):
                lo, hi = bounds
                assert (lo is None or low >= lo) and (hi is None or low <= hi), (low, width)


def _matches(node: ir.Node, low: int, high: int) -> bool:
    if isinstance(node, ir.Cmp):
        value = {"low": low, "high": high}[node.field]
        bound = node.value.us if isinstance(node.value, ir.Timestamp) else node.value
        assert isinstance(bound, int)
        return {"eq": value == bound, "lt": value < bound, "le": value <= bound,
                "gt": value > bound, "ge": value >= bound}[node.op]
    if isinstance(node, ir.And):
        return all(_matches(i, low, high) for i in node.items)
    if isinstance(node, ir.Or):
        return any(_matches(i, low, high) for i in node.items)
    raise TypeError(node)


def test_a_schema_4_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)  # make it look like schema 4: the old date index, version 4
    conn.execute("DROP INDEX idx_date_span")
    conn.execute("CREATE INDEX idx_date_value ON idx_date (rtype, param, low, high)")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    assert "idx_date_span" in names and "idx_date_value" not in names


def test_type_counts_follow_creates_deletes_and_recreates(app: Flask, store: SqliteStore) -> None:
    client = app.test_client()
    headers = {"Content-Type": "application/fhir+json"}
    for i in range(5):
        assert client.put(f"/fhir/Patient/c{i}", json={"resourceType": "Patient", "id": f"c{i}"},
                          headers=headers).status_code == 201
    assert client.put("/fhir/Patient/c1", json={"resourceType": "Patient", "id": "c1",
                                                "active": True}, headers=headers).status_code == 200
    assert client.delete("/fhir/Patient/c2").status_code in (200, 204)
    assert client.delete("/fhir/Patient/c2").status_code in (200, 204)  # already gone
    assert client.delete("/fhir/Patient/c3").status_code in (200, 204)
    assert client.put("/fhir/Patient/c3", json={"resourceType": "Patient", "id": "c3"},
                      headers=headers).status_code in (200, 201)  # alive again
    assert store._size("Patient") == 4 == store.count(("Patient",), ir.And())
    assert store._size("Observation") is None


def test_a_schema_5_database_gets_its_type_counts(app: Flask, store: SqliteStore,
                                                  tmp_path: Path) -> None:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(_patients(7))))
    conn = sqlite3.connect(store.path)
    conn.execute("DROP TABLE type_counts")
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()
    again = SqliteStore(store.path)
    try:
        assert again._size("Patient") == 7 and again._size("Immunization") == 7
    finally:
        again.close()


def test_the_walk_threshold_grows_with_the_square_root_of_the_type() -> None:
    from fhir_server.store.sqlite.plan import DEFAULT_CAP, walk_threshold
    assert walk_threshold(21, None) == DEFAULT_CAP
    assert 1200 < walk_threshold(21, 10_000) < 1400
    assert 4000 < walk_threshold(21, 100_000) < 4200
    assert walk_threshold(21, 0) == 1


def test_the_next_page_of_a_walk_seeks_to_the_cursor(app: Flask, store: SqliteStore) -> None:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(_patients(60))))
    store.plan_cap = 10  # 40 Wang: not selective, walked
    where = build_search(["Patient"], [("name", "wang")], base_url=BASE, now=NOW).where
    first = store.search(SearchQuery(("Patient",), where, limit=5))
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        second = store.search(SearchQuery(("Patient",), where, after=first.keys[-1], limit=5))
    finally:
        store.conn.set_trace_callback(None)
    assert [r.id for r in second.rows] == ["p0008", "p0010", "p0011", "p0013", "p0014"]
    page_sql = statements[-1]
    plan = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + page_sql)]
    assert any("USING PRIMARY KEY (type=? AND id>?)" in line for line in plan), plan


def test_probe_counts_are_reused_for_a_while() -> None:
    from fhir_server.store.sqlite.plan import Estimates
    calls: list[str] = []

    def count(text: str, args: Any) -> int:
        calls.append(text)
        return len(calls)

    estimates = Estimates(ttl=0.2)
    cached = estimates.counter(count)
    assert cached("q", (1,)) == 1 and cached("q", (1,)) == 1  # reused
    assert cached("q", (2,)) == 2  # other values: counted
    import time
    time.sleep(0.25)
    assert cached("q", (1,)) == 3  # expired: counted again
