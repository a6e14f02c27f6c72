"""Compile the search IR into MongoDB query filters.

Safety: a search value only ever appears as the operand of an explicit operator (``$eq``, ``$in``,
``$lt``...: a dict or a ``"$..."`` string there is a literal, never an operator) or, escaped, in a
``$regex``; field names come from :data:`fhir_server.search.ir.FIELDS` or the composite pattern
``c<i>_<field>``; parameter codes are compared as values (``p``), and sort fields are built only from
codes matching :data:`~fhir_server.store.mongo.documents.PARAM_CODE`.

An :class:`~fhir_server.search.ir.Entry` becomes ``$elemMatch`` on the embedded ``idx`` array, so ONE
entry satisfies all its conditions. Its row condition is first put in disjunctive normal form (an
``$or`` of ``$elemMatch``, one per conjunction: "some entry satisfies a or b" is "some entry satisfies
a, or some entry satisfies b"), with negations pushed down to the fields; so every ``$elemMatch`` is a
plain ``{field: {operator: value}}`` document, which every server (and emulator) accepts. Rows use
the IR's three-valued logic, like SQL: a comparison with an absent field is unknown, and so is its
negation (``Not(Cmp)`` also requires the field to be present).

:class:`~fhir_server.search.ir.Chain` and :class:`~fhir_server.search.ir.Has` are resolved first by a
sub-query (through a :class:`Resolver`), capped at :data:`MAX_IDS` ids.

Targeting (docs/SCALING.md): :func:`search_filter` adds an equality on ``pc``, the shard key, when
the condition fixes it (:func:`owners`), so that mongos asks one shard; only where that cannot
change the result. Sorting: :func:`sort_plan` reads the stored, indexed sort keys for ``_id``,
``_lastUpdated`` and the :data:`~fhir_server.store.mongo.documents.INDEXED_SORTS` parameters, and
computes the others with an aggregation expression (:func:`sort_key`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from fhir_server.errors import InvalidRequest
from fhir_server.search import ir
from fhir_server.store.mongo.documents import (
    INDEXED_SORTS,
    PARAM_CODE,
    indexed_sorts,
    missing_key,
    owner_params,
    value,
)

Filter = dict[str, Any]
TRUE: Filter = {}
FALSE: Filter = {"_id": {"$in": []}}
MAX_IDS = 10_000  # ids a chained or _has sub-query may produce
MAX_CONJUNCTIONS = 256  # a row condition's disjunctive normal form is capped at this many terms

_OPS = {"eq": "$eq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
_COMPOSITE_FIELD = re.compile(r"c[0-9]+_[a-z_]+")


class Resolver(Protocol):
    def chain_ids(self, target: str, where: Filter) -> list[str]:
        """Ids of the live ``target`` resources matching ``where`` (raise if more than MAX_IDS)."""

    def has_ids(self, source: str, param: str, rtype: str, where: Filter) -> list[str]:
        """Ids of ``rtype`` resources that live ``source`` resources matching ``where`` refer to
        through reference ``param``."""


class TooBroad(InvalidRequest):
    """A chained or reverse-chained sub-query matches too many resources."""


def field_name(ptype: str, name: str) -> str:
    if ptype == "composite":
        if not _COMPOSITE_FIELD.fullmatch(name):
            raise ValueError(f"bad composite field {name!r}")
        return name
    if name not in ir.FIELDS.get(ptype, ()):
        raise ValueError(f"{ptype} index has no field {name!r}")
    return name


# -- rows -------------------------------------------------------------------------------------
# A conjunction: field -> list of operator documents; a row condition: a list of conjunctions.
Conj = dict[str, list[Filter]]


def _leaf(node: ir.Cmp | ir.In | ir.Null, ptype: str, negated: bool) -> list[Conj]:
    name = field_name(ptype, node.field)
    if isinstance(node, ir.Null):
        return [{name: [{"$ne": None} if negated else {"$eq": None}]}]
    if isinstance(node, ir.In):
        values = [value(v) for v in node.values]
        return [{name: [{"$nin": [None, *values]} if negated else {"$in": values}]}]
    if node.op == "sw":
        cond: Filter = {"$regex": "^" + re.escape(str(node.value))}
    elif node.op == "co":
        cond = {"$regex": re.escape(str(node.value))}
    else:
        cond = {_OPS[node.op]: value(node.value)}
    if negated:  # unknown stays unknown: the field must be present
        return [{name: [{"$ne": None}, {"$not": cond}]}]
    return [{name: [cond]}]


def _and(parts: Sequence[list[Conj]]) -> list[Conj]:
    result: list[Conj] = [{}]
    for part in parts:
        combined: list[Conj] = []
        for left in result:
            for right in part:
                merged = {k: list(v) for k, v in left.items()}
                for k, v in right.items():
                    merged.setdefault(k, []).extend(v)
                combined.append(merged)
        if len(combined) > MAX_CONJUNCTIONS:
            raise InvalidRequest("search condition too complex")
        result = combined
    return result


def dnf(node: ir.Node, ptype: str, negated: bool = False) -> list[Conj]:
    """A row condition as a list of conjunctions (``[]``: false, ``[{}]``: true)."""
    if isinstance(node, ir.Cmp | ir.In | ir.Null):
        return _leaf(node, ptype, negated)
    if isinstance(node, ir.Not):
        return dnf(node.item, ptype, not negated)
    if isinstance(node, ir.And | ir.Or):
        conjunctive = isinstance(node, ir.And) != negated  # De Morgan
        parts = [dnf(item, ptype, negated) for item in node.items]
        if conjunctive:
            return _and(parts)
        return [c for part in parts for c in part]
    raise TypeError(f"not a row condition: {node}")


_TIGHTER = {"$gt": max, "$gte": max, "$lt": min, "$lte": min}


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (isinstance(a, str) and isinstance(b, str)) or (
        isinstance(a, numbers) and isinstance(b, numbers)
        and not isinstance(a, bool) and not isinstance(b, bool))


def _field_doc(conds: list[Filter]) -> Filter | None:
    """Operator documents on one field merged into one: an operator repeated with the same value
    once, a bound repeated with comparable values as the tighter one (ANDed date ranges of a
    single-valued parameter repeat ``$gt``...); None if some operator repeats otherwise."""
    merged: Filter = {}
    for cond in conds:
        for op, v in cond.items():
            if op not in merged:
                merged[op] = v
            elif merged[op] == v and type(merged[op]) is type(v):
                continue
            elif op in _TIGHTER and _comparable(merged[op], v):
                merged[op] = _TIGHTER[op](merged[op], v)
            else:
                return None
    return merged


def elem_match(param: str, conj: Conj) -> Filter:
    match: Filter = {"p": {"$eq": param}}
    extra: list[Filter] = []
    for name, conds in conj.items():
        merged = _field_doc(conds)
        if merged is not None:
            match[name] = merged
        else:  # e.g. two negations on one field: a real server takes $and inside $elemMatch
            match[name] = conds[0]
            extra.extend({name: c} for c in conds[1:])
    if extra:
        match = {"$and": [match, *extra]}
    return {"idx": {"$elemMatch": match}}


# -- resources --------------------------------------------------------------------------------
def all_of(items: Sequence[Filter]) -> Filter:
    if any(i == FALSE for i in items):
        return FALSE
    rest = [i for i in items if i != TRUE]
    if not rest:
        return TRUE
    return rest[0] if len(rest) == 1 else {"$and": rest}


def any_of(items: Sequence[Filter]) -> Filter:
    if any(i == TRUE for i in items):
        return TRUE
    rest = [i for i in items if i != FALSE]
    if not rest:
        return FALSE
    return rest[0] if len(rest) == 1 else {"$or": rest}


def negate(item: Filter) -> Filter:
    if item == TRUE:
        return FALSE
    if item == FALSE:
        return TRUE
    return {"$nor": [item]}


def where(node: ir.Node, rtype: str, resolver: Resolver) -> Filter:
    """A filter on the ``resources`` documents of type ``rtype`` (the type itself not included)."""
    if isinstance(node, ir.Entry):
        return any_of([elem_match(node.param, c) for c in dnf(node.where, node.type)])
    if isinstance(node, ir.Missing):
        present: Filter = {"idx": {"$elemMatch": {"p": {"$eq": node.param}}}}
        return negate(present) if node.missing else present
    if isinstance(node, ir.Chain):
        sub = where(node.query, node.target, resolver)
        if sub == FALSE:
            return FALSE
        ids = resolver.chain_ids(node.target, sub)
        if not ids:
            return FALSE
        return {"idx": {"$elemMatch": {"p": {"$eq": node.param}, "type": {"$eq": node.target},
                                       "id": {"$in": ids}}}}
    if isinstance(node, ir.Has):
        sub = where(node.query, node.type, resolver)
        if sub == FALSE:
            return FALSE
        ids = resolver.has_ids(node.type, node.param, rtype, sub)
        return {"id": {"$in": ids}} if ids else FALSE
    if isinstance(node, ir.IdIn):
        return {"id": {"$in": list(node.ids)}} if node.ids else FALSE
    if isinstance(node, ir.TypeIs):
        return TRUE if rtype in node.types else FALSE
    if isinstance(node, ir.And):
        return all_of([where(i, rtype, resolver) for i in node.items])
    if isinstance(node, ir.Or):
        return any_of([where(i, rtype, resolver) for i in node.items])
    if isinstance(node, ir.Not):
        return negate(where(node.item, rtype, resolver))
    raise TypeError(f"not a resource condition: {node}")


def search_filter(types: Sequence[str], node: ir.Node, resolver: Resolver) -> Filter:
    """Live resources of any of ``types`` matching ``node`` (with ``pc`` where :func:`owners`
    fixes it: a targeted query on a sharded cluster)."""
    branches = []
    for rtype in types:
        cond = where(node, rtype, resolver)
        if cond != FALSE:
            base: Filter = {"type": {"$eq": rtype}, "alive": {"$eq": True}}
            pcs = owners(node, rtype)
            if pcs is not None:
                base["pc"] = {"$eq": next(iter(pcs))} if len(pcs) == 1 else {"$in": sorted(pcs)}
            branches.append(all_of([base, cond]))
    return any_of(branches)


# -- targeting: the pc a condition fixes ---------------------------------------------------------
def owners(node: ir.Node, rtype: str) -> frozenset[str] | None:
    """The ``pc`` values an ``rtype`` resource matching ``node`` can have, or None when ``node``
    does not fix them. Sound by construction: every matching resource has its ``pc`` in the set,
    so adding ``pc ∈ set`` to the filter never changes the result. Fixed by: a Patient's own id
    (``_id`` or :class:`~fhir_server.search.ir.IdIn`); a Patient reference through one of
    :func:`~fhir_server.store.mongo.documents.owner_params` (``Observation?subject=Patient/1``,
    ``Patient/1/Encounter``); ``And`` when one item fixes them, ``Or`` when every item does.
    A reference through any other parameter (``Observation?performer=Patient/2``: the resource's
    ``pc`` may be its subject, another patient), a chain, ``_has`` or a negation fixes nothing."""
    if isinstance(node, ir.Entry):
        return _entry_owners(node, rtype)
    if isinstance(node, ir.IdIn):
        return frozenset(f"Patient/{i}" for i in node.ids) if rtype == "Patient" else None
    if isinstance(node, ir.TypeIs):  # false for another type: no resource, no pc
        return None if rtype in node.types else frozenset()
    if isinstance(node, ir.And):
        fixed = [s for s in (owners(i, rtype) for i in node.items) if s is not None]
        return frozenset.intersection(*fixed) if fixed else None
    if isinstance(node, ir.Or):
        parts = [owners(i, rtype) for i in node.items]
        if any(s is None for s in parts):
            return None
        return frozenset().union(*(s for s in parts if s is not None))
    return None


def _equal_values(conds: list[Filter] | None) -> frozenset[Any] | None:
    """The values a field must equal under ANDed operator documents (None: unconstrained)."""
    allowed: frozenset[Any] | None = None
    for cond in conds or ():
        for op, v in cond.items():
            if op == "$eq":
                values = frozenset([v])
            elif op == "$in":
                values = frozenset(v)
            else:  # ranges, regexes, negations: they only narrow further, ignoring them is sound
                continue
            allowed = values if allowed is None else allowed & values
    return allowed


def _entry_owners(node: ir.Entry, rtype: str) -> frozenset[str] | None:
    if rtype == "Patient" and node.param == "_id" and node.type == "token":
        id_field, patient_only = "code", True  # a Patient's own _id entry
    elif node.type == "reference" and node.param in owner_params(rtype):
        id_field, patient_only = "id", owner_params(rtype)[node.param]
    else:
        return None
    found: set[str] = set()
    for conj in dnf(node.where, node.type):
        ids = _equal_values(conj.get(id_field))
        if ids is None:
            return None
        if id_field == "id":  # the entry must be a reference to a Patient
            types = _equal_values(conj.get("type"))
            if types is None:
                return None
            if "Patient" not in types:
                if patient_only:
                    continue  # no entry of this parameter can satisfy this conjunction
                return None
            if types != {"Patient"} and not patient_only:
                return None  # Group/1 would match too, and its pc is not Patient/1
        found.update(f"Patient/{i}" for i in ids if isinstance(i, str))
    return frozenset(found)


# -- sorting ----------------------------------------------------------------------------------
def sort_field(param: str, ptype: str, descending: bool, types: Sequence[str]) -> str | None:
    """The stored field a sort reads directly, served by an index (``id``, ``ts``,
    ``sk.<code>.lo|hi`` of :data:`~fhir_server.store.mongo.documents.INDEXED_SORTS`, when every
    type searched defines that parameter with this type, so that every document has the key), or
    None: the sort needs :func:`sort_key`. Field names come from constants only."""
    if param == "_id":
        return "id"
    if param == "_lastUpdated":
        return "ts"
    if param in INDEXED_SORTS and types and all((param, ptype) in indexed_sorts(t) for t in types):
        return f"sk.{param}.{'hi' if descending else 'lo'}"
    return None


def sort_key(param: str, ptype: str, descending: bool) -> Any:
    """An aggregation expression for a resource's sort value: the lowest (ascending) or highest
    (descending) of its values; resources without one sort last either way (the same sentinels as
    the SQLite store, so keys look the same)."""
    if param == "_id":
        return "$id"
    if param == "_lastUpdated":
        return "$ts"
    if ptype not in ("date", "string", "token", "number", "quantity", "reference", "uri"):
        raise ValueError(f"cannot sort by a {ptype} parameter")
    if not PARAM_CODE.fullmatch(param):
        raise ValueError(f"bad sort parameter {param!r}")
    return {"$ifNull": [f"$sk.{param}.{'hi' if descending else 'lo'}",
                        {"$literal": missing_key(ptype, descending)}]}


def sort_plan(sort: Sequence[tuple[str, str, bool]], types: Sequence[str]
              ) -> list[tuple[str, Any]]:
    """Per sort key ``(param, ptype, descending)``: ``(field, None)`` for a stored field
    (:func:`sort_field`), else ``("_k<n>", expression)`` to compute with ``$addFields``."""
    plan: list[tuple[str, Any]] = []
    for n, (param, ptype, descending) in enumerate(sort):
        field = sort_field(param, ptype, descending, types)
        plan.append((field, None) if field else (f"_k{n}", sort_key(param, ptype, descending)))
    return plan


def _unique(names: Sequence[str]) -> list[int]:
    """Positions of the first occurrence of each name (``_id`` sorts by ``id``, as does the
    tie-break: a later occurrence is decided by the earlier one)."""
    seen: set[str] = set()
    positions = []
    for i, name in enumerate(names):
        if name not in seen:
            seen.add(name)
            positions.append(i)
    return positions


def sort_document(names: Sequence[str], descending: Sequence[bool], one_type: bool) -> Filter:
    """The ``$sort`` of the order (names, descending); ``type`` left out when one type is searched
    (it is constant), so an index on (type, alive, key, id) serves the sort."""
    return {names[i]: -1 if descending[i] else 1 for i in _unique(names)
            if not (one_type and names[i] == "type")}


def keyset(names: Sequence[str], descending: Sequence[bool], after: Sequence[Any]) -> Filter:
    """Rows strictly after ``after`` in the order (names, descending); with a range on the first
    key that every such row satisfies, so that an index on it bounds the scan."""
    if len(after) != len(names):
        raise ValueError("cursor does not fit this query")
    for v in after:
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ValueError("cursor does not fit this query")
    unique = _unique(names)
    alternatives = []
    for k, i in enumerate(unique):
        alt: Filter = {names[j]: {"$eq": after[j]} for j in unique[:k]}
        alt[names[i]] = {"$lt" if descending[i] else "$gt": after[i]}
        alternatives.append(alt)
    bound: Filter = {names[0]: {"$lte" if descending[0] else "$gte": after[0]}}
    return all_of([bound, any_of(alternatives)])
