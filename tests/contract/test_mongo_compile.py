"""The MongoDB IR compiler, without a server: golden filters, and no search value ever becoming an
operator, a field name or an unescaped regex."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from fhir_server.search import ir
from fhir_server.search.index import (
    CompositeEntry,
    DateEntry,
    NumberEntry,
    StringEntry,
    TokenEntry,
)
from fhir_server.store.mongo import compile as mc
from fhir_server.store.mongo.documents import entry_doc, sort_keys
from fhir_server.store.mongo.store import database_from_url


class FakeResolver:
    def __init__(self, ids: list[str] | None = None) -> None:
        self.ids = ids if ids is not None else ["o1", "o2"]
        self.calls: list[tuple[Any, ...]] = []

    def chain_ids(self, target: str, where: mc.Filter) -> list[str]:
        self.calls.append(("chain", target, where))
        return self.ids

    def has_ids(self, source: str, param: str, rtype: str, where: mc.Filter) -> list[str]:
        self.calls.append(("has", source, param, rtype, where))
        return self.ids


def compile_(node: ir.Node, rtype: str = "Patient") -> mc.Filter:
    return mc.where(node, rtype, FakeResolver())


def em(**fields: Any) -> mc.Filter:
    return {"idx": {"$elemMatch": fields}}


# -- golden filters ---------------------------------------------------------------------------
def test_token_entry_is_one_elem_match_with_explicit_eq() -> None:
    node = ir.Entry("identifier", "token", ir.And((ir.Cmp("system", "eq", "urn:x"),
                                                   ir.Cmp("code", "eq", "A1"))))
    assert compile_(node) == em(p={"$eq": "identifier"}, system={"$eq": "urn:x"},
                                code={"$eq": "A1"})


def test_entry_without_conditions_means_any_entry() -> None:
    assert compile_(ir.Entry("name", "string")) == em(p={"$eq": "name"})


def test_range_on_one_field_merges_operators() -> None:
    node = ir.Entry("birthdate", "date", ir.And((ir.Cmp("low", "ge", ir.Timestamp(10)),
                                                 ir.Cmp("high", "le", ir.Timestamp(20)),
                                                 ir.Cmp("low", "lt", ir.Timestamp(15)))))
    assert compile_(node) == em(p={"$eq": "birthdate"}, low={"$gte": 10, "$lt": 15},
                                high={"$lte": 20})


def test_same_bound_twice_on_a_field_keeps_the_tighter() -> None:
    # birthdate=gt1990&birthdate=gt2000 is one entry condition (a single-valued parameter): the
    # repeated bound becomes the tighter one, a plain field document every server accepts
    node = ir.Entry("birthdate", "date", ir.And((ir.Cmp("low", "ge", ir.Timestamp(10)),
                                                 ir.Cmp("low", "ge", ir.Timestamp(12)),
                                                 ir.Cmp("high", "lt", ir.Timestamp(30)),
                                                 ir.Cmp("high", "lt", ir.Timestamp(20)),
                                                 ir.Cmp("high", "gt", ir.Timestamp(15)),
                                                 ir.Cmp("high", "gt", ir.Timestamp(15)))))
    assert compile_(node) == em(p={"$eq": "birthdate"}, low={"$gte": 12},
                                high={"$lt": 20, "$gt": 15})


def test_same_operator_twice_otherwise_keeps_both() -> None:
    node = ir.Entry("code", "token", ir.And((ir.Not(ir.Cmp("code", "eq", "a")),
                                             ir.Not(ir.Cmp("code", "eq", "b")))))
    assert compile_(node) == {"idx": {"$elemMatch": {"$and": [
        {"p": {"$eq": "code"}, "code": {"$ne": None}}, {"code": {"$not": {"$eq": "a"}}},
        {"code": {"$ne": None}}, {"code": {"$not": {"$eq": "b"}}}]}}}


def test_row_or_becomes_an_or_of_elem_matches() -> None:
    # "some entry satisfies a or b" == "some entry satisfies a, or some entry satisfies b"
    node = ir.Entry("birthdate", "date", ir.Or((ir.Cmp("low", "lt", ir.Timestamp(5)),
                                                ir.Cmp("high", "gt", ir.Timestamp(9)))))
    assert compile_(node) == {"$or": [em(p={"$eq": "birthdate"}, low={"$lt": 5}),
                                      em(p={"$eq": "birthdate"}, high={"$gt": 9})]}


def test_row_and_of_or_is_distributed() -> None:
    node = ir.Entry("value-quantity", "quantity", ir.And((
        ir.Cmp("value", "eq", Decimal("70.5")),
        ir.Or((ir.Cmp("code", "eq", "kg"), ir.Cmp("unit", "eq", "kg"))))))
    assert compile_(node) == {"$or": [
        em(p={"$eq": "value-quantity"}, value={"$eq": 70.5}, code={"$eq": "kg"}),
        em(p={"$eq": "value-quantity"}, value={"$eq": 70.5}, unit={"$eq": "kg"})]}


def test_row_not_keeps_unknown_unknown() -> None:
    node = ir.Entry("code", "token", ir.Not(ir.Cmp("code", "eq", "x")))
    assert compile_(node) == em(p={"$eq": "code"}, code={"$ne": None, "$not": {"$eq": "x"}})
    node = ir.Entry("code", "token", ir.Not(ir.In("code", ("x", "y"))))
    assert compile_(node) == em(p={"$eq": "code"}, code={"$nin": [None, "x", "y"]})
    node = ir.Entry("code", "token", ir.Not(ir.Or((ir.Null("system"), ir.Cmp("code", "eq", "x")))))
    assert compile_(node) == em(p={"$eq": "code"}, system={"$ne": None},
                                code={"$ne": None, "$not": {"$eq": "x"}})


def test_null_matches_absent_fields() -> None:
    node = ir.Entry("identifier", "token", ir.And((ir.Null("system"), ir.Cmp("code", "eq", "A"))))
    assert compile_(node) == em(p={"$eq": "identifier"}, system={"$eq": None}, code={"$eq": "A"})


def test_in_and_constants() -> None:
    assert compile_(ir.Entry("gender", "token", ir.In("code", ("male", "female")))) == em(
        p={"$eq": "gender"}, code={"$in": ["male", "female"]})
    assert compile_(ir.Entry("gender", "token", ir.Or())) == mc.FALSE
    assert compile_(ir.And()) == mc.TRUE
    assert compile_(ir.Or()) == mc.FALSE
    assert compile_(ir.Not(ir.And())) == mc.FALSE
    assert compile_(ir.TypeIs(("Patient",))) == mc.TRUE
    assert compile_(ir.TypeIs(("Observation",))) == mc.FALSE
    assert compile_(ir.IdIn(())) == mc.FALSE
    assert compile_(ir.IdIn(("a", "b"))) == {"id": {"$in": ["a", "b"]}}


def test_missing() -> None:
    present = em(p={"$eq": "birthdate"})
    assert compile_(ir.Missing("birthdate", "date", False)) == present
    assert compile_(ir.Missing("birthdate", "date", True)) == {"$nor": [present]}


def test_resource_and_or_not() -> None:
    a = ir.Entry("gender", "token", ir.Cmp("code", "eq", "male"))
    b = ir.IdIn(("x",))
    assert compile_(ir.And((a, b))) == {"$and": [compile_(a), compile_(b)]}
    assert compile_(ir.Or((a, b))) == {"$or": [compile_(a), compile_(b)]}
    assert compile_(ir.Not(a)) == {"$nor": [compile_(a)]}
    assert compile_(ir.And((a, ir.Or()))) == mc.FALSE
    assert compile_(ir.Or((a, ir.And()))) == mc.TRUE


def test_chain_resolves_ids_first() -> None:
    resolver = FakeResolver(["o1"])
    node = ir.Chain("organization", "Organization",
                    ir.Entry("name", "string", ir.Cmp("norm", "sw", "acme")))
    assert mc.where(node, "Patient", resolver) == em(
        p={"$eq": "organization"}, type={"$eq": "Organization"}, id={"$in": ["o1"]})
    assert resolver.calls == [("chain", "Organization",
                               em(p={"$eq": "name"}, norm={"$regex": "^acme"}))]
    assert mc.where(node, "Patient", FakeResolver([])) == mc.FALSE


def test_has_resolves_ids_first() -> None:
    resolver = FakeResolver(["p1", "p2"])
    node = ir.Has("Observation", "subject", ir.Entry("code", "token", ir.Cmp("code", "eq", "1")))
    assert mc.where(node, "Patient", resolver) == {"id": {"$in": ["p1", "p2"]}}
    assert resolver.calls[0][:4] == ("has", "Observation", "subject", "Patient")


def test_composite_fields() -> None:
    node = ir.Entry("code-value-quantity", "composite", ir.And((
        ir.Cmp("c0_code", "eq", "8480-6"), ir.Cmp("c1_value", "gt", Decimal(100)))))
    assert compile_(node) == em(p={"$eq": "code-value-quantity"}, c0_code={"$eq": "8480-6"},
                                c1_value={"$gt": 100.0})


def test_search_filter_per_type() -> None:
    node = ir.TypeIs(("Patient",))
    assert mc.search_filter(("Patient", "Observation"), node, FakeResolver()) == {
        "type": {"$eq": "Patient"}, "alive": {"$eq": True}}
    both = mc.search_filter(("Patient", "Observation"), ir.And(), FakeResolver())
    assert both == {"$or": [{"type": {"$eq": "Patient"}, "alive": {"$eq": True}},
                            {"type": {"$eq": "Observation"}, "alive": {"$eq": True}}]}


def test_sort_key_and_keyset() -> None:
    assert mc.sort_key("_id", "token", False) == "$id"
    assert mc.sort_key("_lastUpdated", "date", True) == "$ts"
    assert mc.sort_key("birthdate", "date", False) == {
        "$ifNull": ["$sk.birthdate.lo", {"$literal": 2**62}]}
    assert mc.sort_key("family", "string", True) == {"$ifNull": ["$sk.family.hi", {"$literal": ""}]}
    assert mc.keyset(["_k0", "type", "id"], [True, False, False], [5, "Patient", "a"]) == {"$and": [
        {"_k0": {"$lte": 5}},  # a range on the first key, for an index to bound the scan
        {"$or": [{"_k0": {"$lt": 5}},
                 {"_k0": {"$eq": 5}, "type": {"$gt": "Patient"}},
                 {"_k0": {"$eq": 5}, "type": {"$eq": "Patient"}, "id": {"$gt": "a"}}]}]}


def test_keyset_on_id_names_id_once() -> None:
    # _sort=_id reads the stored id, which is also the tie-break: a repeated name is decided by
    # its first occurrence (a dict cannot hold it twice, and {"id": {"$eq"}, "id": {"$gt"}} would
    # silently keep the last)
    assert mc.keyset(["id", "type", "id"], [True, False, False], ["b", "Patient", "b"]) == {"$and": [
        {"id": {"$lte": "b"}},
        {"$or": [{"id": {"$lt": "b"}}, {"id": {"$eq": "b"}, "type": {"$gt": "Patient"}}]}]}
    assert mc.sort_document(["id", "type", "id"], [True, False, False], True) == {"id": -1}
    assert mc.sort_document(["id", "type", "id"], [True, False, False], False) == {
        "id": -1, "type": 1}


# -- injection --------------------------------------------------------------------------------
HOSTILE = ['{"$ne": 1}', "$where", "$ne", "a.b", "$gt", "this.x == 1", ".*", "^a|b$", "a\\", "(?i)A",
           "[a-z]+", "x{2,}", "a\x00b", "$regex"]


def _walk(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, leaf) pairs; keys of every dict are part of the path."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _walk(v, (*path, k))]
    if isinstance(value, list):
        return [pair for v in value for pair in _walk(v, path)]
    return [(path, value)]


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


ALLOWED_KEYS = {"idx", "$elemMatch", "p", "$eq", "$in", "$nin", "$ne", "$not", "$regex", "$lt",
                "$lte", "$gt", "$gte", "$and", "$or", "$nor", "id", "type", "alive", "_id",
                "system", "code", "norm", "exact", "low", "high", "value", "c0_code"}


@pytest.mark.parametrize("hostile", HOSTILE)
def test_values_never_become_operators_or_fields(hostile: str) -> None:
    nodes: list[ir.Node] = [
        ir.Entry("identifier", "token", ir.And((ir.Cmp("system", "eq", hostile),
                                                ir.Cmp("code", "eq", hostile)))),
        ir.Entry("identifier", "token", ir.In("code", (hostile, "x"))),
        ir.Entry("identifier", "token", ir.Not(ir.Cmp("code", "eq", hostile))),
        ir.Entry("name", "string", ir.Cmp("exact", "eq", hostile)),
        ir.Entry("birthdate", "date", ir.Cmp("low", "ge", hostile)),
        ir.Entry("combo", "composite", ir.Cmp("c0_code", "eq", hostile)),
        ir.Entry(hostile, "token", ir.Cmp("code", "eq", "x")),  # a hostile parameter code
        ir.IdIn((hostile,)),
        ir.Missing(hostile, "token", True),
    ]
    for node in nodes:
        compiled = compile_(node)
        assert _keys(compiled) <= ALLOWED_KEYS, node
        for path, leaf in _walk(compiled):
            if leaf == hostile:  # a literal: the operand of an explicit operator, never a key
                assert path[-1] in {"$eq", "$in", "$nin", "$gte"}, (node, path)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_regexes_are_escaped(hostile: str) -> None:
    sw = compile_(ir.Entry("name", "string", ir.Cmp("norm", "sw", hostile)))
    co = compile_(ir.Entry("name", "string", ir.Cmp("norm", "co", hostile)))
    sw_rx = sw["idx"]["$elemMatch"]["norm"]["$regex"]
    co_rx = co["idx"]["$elemMatch"]["norm"]["$regex"]
    assert sw_rx == "^" + re.escape(hostile)
    assert co_rx == re.escape(hostile)
    # the regex matches the value literally, and only where a literal match would
    assert re.match(sw_rx, hostile + "tail") and not re.match(sw_rx, "x" + hostile)
    assert re.search(co_rx, "head" + hostile + "tail")
    assert not re.search(co_rx, hostile[:-1])


def test_field_names_come_from_the_allow_list() -> None:
    with pytest.raises(ValueError):
        mc.field_name("token", "$where")
    with pytest.raises(ValueError):
        mc.field_name("token", "a.b")
    with pytest.raises(ValueError):
        mc.field_name("composite", "c0_code.$x")
    with pytest.raises(ValueError):  # the IR refuses such a field before the compiler sees it
        ir.Cmp("$where", "eq", "1")
    with pytest.raises(ValueError):
        ir.Entry("identifier", "token", ir.Cmp("norm", "eq", "1"))


@pytest.mark.parametrize("param", ["$where", "a.b", "x y", "", "name.$ne"])
def test_sort_fields_are_allow_listed(param: str) -> None:
    with pytest.raises(ValueError):
        mc.sort_key(param, "string", False)


@pytest.mark.parametrize("bad", [{"$ne": 1}, ["a"], None, True, 1.5j])
def test_cursor_values_must_be_scalars(bad: Any) -> None:
    with pytest.raises(ValueError):
        mc.keyset(["_k0", "type", "id"], [False, False, False], [bad, "Patient", "a"])
    with pytest.raises(ValueError):
        mc.keyset(["type", "id"], [False, False], ["Patient"])


# -- documents ----------------------------------------------------------------------------------
def test_entry_documents() -> None:
    assert entry_doc(TokenEntry("identifier", None, "A1", "Card")) == {
        "p": "identifier", "t": "token", "code": "A1", "text": "Card"}
    assert entry_doc(NumberEntry("probability", Decimal("0.5"), Decimal("0.45"),
                                 Decimal("0.55"))) == {
        "p": "probability", "t": "number", "value": 0.5}
    combo = CompositeEntry("code-value", (TokenEntry("code", "s", "c"),
                                          DateEntry("date", 1, 2)))
    assert entry_doc(combo) == {"p": "code-value", "t": "composite", "c0_code": "c",
                                "c0_system": "s", "c1_high": 2, "c1_low": 1}


def test_sort_keys() -> None:
    entries = [DateEntry("birthdate", 10, 20), DateEntry("birthdate", 5, 8),
               StringEntry("name", "wang", "Wáng"), StringEntry("name", "li", "Li"),
               TokenEntry("gender", None, None), TokenEntry("identifier", "s", "b"),
               TokenEntry("identifier", "s", "a"), TokenEntry("$where", None, "x")]
    keys = sort_keys([entry_doc(e) for e in entries])
    assert keys == {"birthdate": {"lo": 5, "hi": 20}, "name": {"lo": "li", "hi": "wang"},
                    "identifier": {"lo": "a", "hi": "b"}}


def test_database_from_url() -> None:
    assert database_from_url("mongodb://h:27017") == "ehc_fhir"
    assert database_from_url("mongodb://h:27017/") == "ehc_fhir"
    assert database_from_url("mongodb://u:p@h1,h2/fhir?replicaSet=rs0") == "fhir"
    assert database_from_url("mongodb+srv://cluster.example.org/prod") == "prod"
    with pytest.raises(ValueError):
        database_from_url("postgres://h/db")
