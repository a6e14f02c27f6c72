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
from fhir_server.store.sqlite import SqliteStore, ordered
from fhir_server.store.sqlite import compile as sqlc
from fhir_server.store.sqlite.plan import Planner
from fhir_server.store.sqlite.schema import SCHEMA_VERSION
from tests.contract.test_search_equivalence import BASE, NOW, _memory, dataset, random_query

QUERIES = 150
#: and queries with a condition a page can be ordered by (ordered.py)
ORDERABLE = 100


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
    values: set[str] = set()  # queries read in value order
    for n in range(QUERIES + ORDERABLE):
        rtype, pairs, request = _query(rng, orderable_only=n >= QUERIES)
        url = f"{rtype}?" + "&".join(f"{k}={v}" for k, v in pairs)
        expected = evaluate(request.where, rtype, entries_of, all_ids)
        one_page = store.search(SearchQuery((rtype,), request.where, limit=10_000))
        assert sorted(r.id for r in one_page.rows) == expected, url
        assert store.count((rtype,), request.where) == len(expected), url
        paged, keys = _walk(store, rtype, request.where, backwards=False)
        assert sorted(paged) == expected and len(set(paged)) == len(paged), url  # each match once
        orderable = any(ordered.orderable(item) for item in ordered.items(request.where))
        if cap == 0 and expected:  # value order whenever a condition allows it
            assert (keys[0][0] == ordered.MARK) == orderable, url
        if keys and keys[0][0] == ordered.MARK:  # in value order (ordered.py): keys increasing
            assert all(k[0] == ordered.MARK and k[1] == keys[0][1] for k in keys), url
            assert [k[2:] for k in keys] == sorted({k[2:] for k in keys}), url
            values.add(url)
        else:
            assert paged == expected, url  # in id order
        if keys:  # and back from the last one: the same matches in reverse
            back, _ = _walk(store, rtype, request.where, backwards=True, after=keys[-1])
            assert back == paged[-2::-1], url
    assert len(values) >= (ORDERABLE // 5 if cap == 0 else 1) or cap == 10**9


def _query(rng: random.Random, orderable_only: bool) -> tuple[str, list[tuple[str, str]], Any]:
    """A random query (``orderable_only``: one with a condition a page can be ordered by)."""
    while True:
        rtype, pairs = random_query(rng)
        try:
            request = build_search([rtype], pairs, base_url=BASE, now=NOW)
        except InvalidRequest as exc:  # pragma: no cover - the generator makes valid queries
            raise AssertionError(pairs) from exc
        if not orderable_only or any(ordered.orderable(i) for i in ordered.items(request.where)):
            return rtype, pairs, request


def _walk(store: SqliteStore, rtype: str, where: ir.Node, backwards: bool,
          after: tuple[Any, ...] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Every page of 4 from ``after``: the ids and keys in the order of travel."""
    ids: list[str] = []
    keys: list[tuple[Any, ...]] = []
    while True:
        page = store.search(SearchQuery((rtype,), where, after=after, backwards=backwards,
                                        limit=4))
        rows, found = (page.rows[::-1], page.keys[::-1]) if backwards else (page.rows, page.keys)
        ids += [r.id for r in rows]
        keys += found
        if len(page.rows) < 4:
            return ids, keys
        after = found[-1]


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


def _migrated(path: Path, version: int, statements: tuple[str, ...]) -> dict[str, str]:
    """Make a new database look like schema ``version`` (``statements``), open it with this
    version (which migrates it), and return its indexes' SQL by name."""
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        return {r[0]: r[1] or "" for r in conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'index'")}
    finally:
        conn.close()


def test_a_schema_4_database_is_migrated(tmp_path: Path) -> None:
    indexes = _migrated(tmp_path / "old.db", 4, (  # schema 4: the old date index
        "DROP INDEX idx_date_span",
        "CREATE INDEX idx_date_value ON idx_date (rtype, param, low, high)"))
    assert "idx_date_span" in indexes and "idx_date_value" not in indexes


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


def test_a_schema_6_database_gets_the_narrower_audit_what_index(tmp_path: Path) -> None:
    indexes = _migrated(tmp_path / "old.db", 6, (  # schema 6: every event with a what in it
        "DROP INDEX audit_by_what",
        "CREATE INDEX audit_by_what ON audit_log (what_id, what_type) WHERE what_id IS NOT NULL"))
    assert "what_id IS patient" in indexes["audit_by_what"]


def test_the_walk_threshold_grows_with_the_square_root_of_the_type() -> None:
    from fhir_server.store.sqlite.plan import DEFAULT_CAP, walk_threshold
    assert walk_threshold(21, None) == DEFAULT_CAP
    assert 1200 < walk_threshold(21, 10_000) < 1400
    assert 4000 < walk_threshold(21, 100_000) < 4200
    assert walk_threshold(21, 0) == 1


def test_the_next_page_of_a_walk_seeks_to_the_cursor(app: Flask, store: SqliteStore) -> None:
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(_patients(60))))
    store.plan_cap = 10  # 60 with a BCG dose: not selective, walked (no value to order by)
    where = build_search(["Patient"], [("_has:Immunization:patient:vaccine-code", "BCG")],
                         base_url=BASE, now=NOW).where
    first = store.search(SearchQuery(("Patient",), where, limit=5))
    assert [r.id for r in first.rows] == ["p0000", "p0001", "p0002", "p0003", "p0004"]
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        second = store.search(SearchQuery(("Patient",), where, after=first.keys[-1], limit=5))
    finally:
        store.conn.set_trace_callback(None)
    assert [r.id for r in second.rows] == ["p0005", "p0006", "p0007", "p0008", "p0009"]
    page_sql = statements[-1]
    plan = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + page_sql)]
    assert any("USING PRIMARY KEY (type=? AND id>?)" in line for line in plan), plan


# -- pages in value order (ordered.py) ---------------------------------------------------------
def _page_plan(store: SqliteStore, query: SearchQuery) -> tuple[list[Any], list[str]]:
    """The page's keys and the EXPLAIN QUERY PLAN lines of its page query (the CTE only)."""
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        page = store.search(query)
    finally:
        store.conn.set_trace_callback(None)
    text = statements[-1]
    plan = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + text)]
    return page.keys, plan[:plan.index("SCAN p")]


def test_a_common_name_pages_in_name_order_from_its_index(app: Flask,
                                                          store: SqliteStore) -> None:
    people = _patients(60)  # 40 Wang, 20 Li
    people.append({"resourceType": "Patient", "id": "p9999",
                   "name": [{"family": "Wangzhe", "given": ["Wang"]}, {"family": "Wang"}]})
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(people)))
    where = build_search(["Patient"], [("name", "wang")], base_url=BASE, now=NOW).where
    # 41 matches, pages of 5: walking 41 index rows beats sorting them, and the default planner
    # chooses it (nothing is forced here)
    keys, plan = _page_plan(store, SearchQuery(("Patient",), where, limit=5))
    assert [k[:3] for k in keys] == [(ordered.MARK, ordered.tag(where), "wang")] * 5
    assert [k[-1] for k in keys] == ["p0001", "p0002", "p0004", "p0005", "p0007"]
    assert any("SEARCH o USING COVERING INDEX idx_string_value (rtype=? AND param=? AND norm>?"
               " AND norm<?)" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan  # read in order, no sort
    assert any("SEARCH d USING PRIMARY KEY (rtype=? AND rid=? AND param=?)" in line
               for line in plan), plan  # a lower matching name of the same patient: one probe
    keys2, plan2 = _page_plan(store, SearchQuery(("Patient",), where, after=keys[-1], limit=5))
    assert [k[-1] for k in keys2] == ["p0008", "p0010", "p0011", "p0013", "p0014"]
    assert any("(rtype=? AND param=? AND (norm,rid)>(?,?) AND norm<?)" in line
               for line in plan2), plan2  # the next page seeks to the cursor
    paged, found = _walk(store, "Patient", where, backwards=False)
    assert len(paged) == len(set(paged)) == 41  # p9999 once, at "wang" (its lowest match)
    assert found[-1][2:] == ("wang", "Patient", "p9999") and found[-2][-1] == "p0059"
    back, _ = _walk(store, "Patient", where, backwards=True, after=keys2[0])
    assert back == ["p0007", "p0005", "p0004", "p0002", "p0001"]
    # few matches for the page size (20 Li, pages of 11, under ORDER_FACTOR x 11): id order, the
    # index driving
    few = build_search(["Patient"], [("name", "li")], base_url=BASE, now=NOW).where
    assert store.search(SearchQuery(("Patient",), few, limit=11)).keys[0] == ("Patient", "p0000")
    # a more selective condition beside the name drives, in id order
    both = build_search(["Patient"], [("name", "wang"), ("birthdate", "1951-02-02")],
                        base_url=BASE, now=NOW).where
    assert [k for k in store.search(SearchQuery(("Patient",), both, limit=5)).keys] == [
        ("Patient", "p0001")]


def test_a_date_range_pages_in_date_order_merging_its_span_buckets(app: Flask,
                                                                   store: SqliteStore) -> None:
    people = _patients(60)
    people += [{"resourceType": "Patient", "id": "y1960", "birthDate": "1960"},  # a year
               {"resourceType": "Patient", "id": "m1960", "birthDate": "1960-01"}]  # a month
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(people)))
    store.plan_cap = 0  # value order whenever possible
    where = build_search(["Patient"], [("birthdate", "ge1955"), ("birthdate", "lt1965")],
                         base_url=BASE, now=NOW).where
    keys, plan = _page_plan(store, SearchQuery(("Patient",), where, limit=4))
    assert [k[-1] for k in keys] == ["p0005", "p0006", "p0007", "p0008"]
    assert any("MERGE (UNION ALL)" in line for line in plan), plan
    keys2, plan2 = _page_plan(store, SearchQuery(("Patient",), where, after=keys[-1], limit=4))
    assert [k[-1] for k in keys2] == ["p0009", "m1960", "y1960", "p0010"]  # (low, high, id)
    assert any("<expr>=? AND (low,high,rid)>(?,?,?) AND low<?)" in line for line in plan2), plan2
    paged, found = _walk(store, "Patient", where, backwards=False)
    assert sorted(paged) == sorted(["y1960", "m1960", *(f"p{i:04d}" for i in range(60)
                                                        if 1955 <= 1950 + i % 60 < 1965)])
    assert [k[2:4] for k in found] == sorted(k[2:4] for k in found)


def test_a_resource_with_several_matching_dates_is_paged_once_at_its_lowest(
        app: Flask, store: SqliteStore) -> None:
    def stay(start: str) -> dict[str, Any]:
        return {"location": {"display": "ward"}, "period": {"start": start, "end": start}}

    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps([
        {"resourceType": "Encounter", "id": f"e{i}", "status": "finished",
         "class": {"code": "IMP"}, "location": [stay(f"2020-0{m}-01") for m in months]}
        for i, months in enumerate([(5, 2), (3,), (4, 1, 6), (7,), (2, 2)])])))
    store.plan_cap = 0
    where = build_search(["Encounter"], [("location-period", "ge2020-02"),
                                         ("location-period", "lt2020-07")],
                         base_url=BASE, now=NOW).where  # two conditions: the first orders
    paged, keys = _walk(store, "Encounter", where, backwards=False)
    # e0 at Feb, e4 at Feb (twice: once), e1 at Mar, e2 at Apr (Jan is outside), e3 never
    first = ordered.items(where)[0]
    assert paged == ["e0", "e4", "e1", "e2"] and keys[0][:2] == (ordered.MARK, ordered.tag(first))


def test_a_key_that_no_longer_fits_is_a_400(app: Flask, store: SqliteStore) -> None:
    """A value-order key names its condition by what it means (a policy added in front of a
    client's search can move it); a key naming none of the search's conditions is refused."""
    load(app.extensions["fhir"], jsonio.loads(jsonio.dumps(_patients(30))))
    store.plan_cap = 0
    where = build_search(["Patient"], [("name", "wang")], base_url=BASE, now=NOW).where
    key = store.search(SearchQuery(("Patient",), where, limit=4)).keys[-1]
    policy = build_search(["Patient"], [("gender:missing", "true")], base_url=BASE,
                          now=NOW).where
    moved = ir.all_of((policy, where))  # the name condition now second
    assert [r.id for r in store.search(SearchQuery(("Patient",), moved, after=key,
                                                   limit=2)).rows] == ["p0007", "p0008"]
    other = build_search(["Patient"], [("name", "li")], base_url=BASE, now=NOW).where
    for bad in [key, (*key[:2], "x", "y", *key[-2:]), (ordered.MARK, "0", "x", *key[-2:]),
                ("Patient",)]:
        with pytest.raises(InvalidRequest, match="_cursor") as caught:
            store.search(SearchQuery(("Patient",), other if bad is key else where, after=bad,
                                     limit=4))
        assert caught.value.status == 400


def test_probe_counts_are_reused_for_a_while() -> None:
    """Planners of one store share their estimates for ``ttl`` seconds (one probe per search
    tree), and a new value or an expired estimate is counted again."""
    from fhir_server.store.sqlite.plan import Estimates
    calls: list[str] = []

    def count(text: str, args: Any) -> int:
        calls.append(text)
        return 40 + len(calls)

    estimates = Estimates(ttl=0.2)

    def estimate(family: str) -> int:
        node = build_search(["Patient"], [("family", family)], base_url=BASE, now=NOW).where
        return Planner(count, None, None, estimates.remember).estimate(node, "Patient")

    assert estimate("wang") == 41 and estimate("wang") == 41 and len(calls) == 1  # reused
    assert estimate("li") == 42  # another value: counted
    import time
    time.sleep(0.25)
    assert estimate("wang") == 43 and len(calls) == 3  # expired: counted again
