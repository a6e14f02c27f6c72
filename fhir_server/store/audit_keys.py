"""The audit log's search keys, shared by the stores (pure: no I/O).

AuditEvents are not kept like other resources (a history row, a current row and a dozen search
index rows each) but appended to an audit log of their own, one row (SQLite) or document (MongoDB)
of :class:`~fhir_server.fhir.audit_record.AuditRecord` fields per event. This module says how the
AuditEvent search parameters the log answers (:data:`PARAMS`) map onto those fields: each
parameter has one or more *slots*, each slot being what one index entry of the generic extractor
(:mod:`fhir_server.search.index`) would hold, its IR fields (:data:`fhir_server.search.ir.FIELDS`)
given as record fields, constants or simple functions of a field (:class:`Field`). A search
condition on a parameter (``ir.Entry``: "one entry satisfies all of this") holds when it holds for
one of its present slots. The SQLite log compiles that to SQL over its columns; the MongoDB log
materialises the slots as an ``idx`` array like its resources' (:func:`entries`). The tests check
that the slots of every event shape equal what the generic extractor gives for the JSON served.

Also here: what both stores do around the log, :func:`split_search` and :func:`split_count`
(a search of several types, AuditEvent among them, is answered by both parts, merged in sort
order), :func:`reaches_audit` and :func:`resolve_audit` (a chain or ``_has`` into AuditEvent, in
a search of another type, is resolved against the log first, into the ids it finds, at most
:data:`MAX_IDS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cmp_to_key
from typing import Any

from fhir_server.errors import InvalidRequest
from fhir_server.fhir.audit_record import (
    AUDIT_TYPE,
    INTERACTION_SYSTEM,
    OPERATION_SYSTEM,
    REST_TYPE,
    TOKEN,
    TOKEN_EVENT,
    TOKEN_HASH_PREFIX,
    TOKEN_HASH_SYSTEM,
    TOKEN_SUBTYPE,
    TOKEN_TYPE,
    AuditRecord,
    operation_code,
)
from fhir_server.search import ir
from fhir_server.search.index import normalise
from fhir_server.store.base import SearchPage, SearchQuery

MAX_IDS = 10_000  # ids a chain or _has into AuditEvent may resolve to
#: what AuditEvent searches can be sorted by: the record field, and the offset of the key reported
#: when descending (a date sorts by its highest value, ``recorded + 1`` as for other resources)
SORTS: dict[str, tuple[str, int]] = {"_id": ("id", 0), "_lastUpdated": ("ts", 0),
                                     "date": ("recorded", 1)}


@dataclass(frozen=True, slots=True)
class Field:
    """An IR field of a slot, from the record: ``kind`` is

    * ``col``: the record field ``name`` (plus ``offset``, for the ``high`` end of an instant);
    * ``const``: ``value``;
    * ``lookup``: ``table[record.name]``, else ``value`` (or, ``keep``: the field itself);
    * ``prefix``: ``value + record.name``;
    * ``operation``: the OperationDefinition canonical of ``record.name``;
    * ``lower``: ``record.name`` lower-cased (the text of an operation subtype; ASCII).
    """

    kind: str
    name: str = ""
    value: Any = None
    offset: int = 0
    table: Mapping[str, str] = field(default_factory=dict)
    keep: bool = False

    def of(self, record: AuditRecord) -> Any:
        if self.kind == "const":
            return self.value
        v = getattr(record, self.name)
        if v is None:
            return None
        if self.kind == "col":
            return v + self.offset if self.offset else v
        if self.kind == "lookup":
            return self.table.get(v, v if self.keep else self.value)
        if self.kind == "prefix":
            return self.value + v
        if self.kind == "operation":
            return operation_code(v)
        if self.kind == "lower":
            return str(v).lower()
        raise ValueError(f"unknown field kind {self.kind!r}")


def col(name: str, offset: int = 0) -> Field:
    return Field("col", name, offset=offset)


def const(value: Any) -> Field:
    return Field("const", value=value)


@dataclass(frozen=True, slots=True)
class Slot:
    """One index entry a record may have: present when every ``present`` field is not null and
    every ``equal`` field has that value."""

    present: tuple[str, ...]
    fields: Mapping[str, Field]
    equal: tuple[tuple[str, str], ...] = ()

    def exists(self, record: AuditRecord) -> bool:
        return all(getattr(record, n) is not None for n in self.present) and all(
            getattr(record, n) == v for n, v in self.equal)


@dataclass(frozen=True, slots=True)
class Param:
    type: str  # the parameter type (its index table)
    slots: tuple[Slot, ...]


_TYPE_SYSTEM = {c["code"]: c["system"] for c in (REST_TYPE, TOKEN_TYPE)}
_TYPE_TEXT = {c["code"]: normalise(c["display"]) for c in (REST_TYPE, TOKEN_TYPE)}


def _reference(type_: Field, id_: Field, version: Field | None = None) -> dict[str, Field]:
    out = {"type": type_, "id": id_}
    if version is not None:
        out["version"] = version
    return out


#: the AuditEvent search parameters the log answers, and where their entries come from
PARAMS: dict[str, Param] = {
    "_id": Param("token", (Slot(("id",), {"code": col("id")}),)),
    "_lastUpdated": Param("date", (Slot(("ts",), {"low": col("ts"), "high": col("ts", 1)}),)),
    "date": Param("date", (Slot(("recorded",), {"low": col("recorded"),
                                                "high": col("recorded", 1)}),)),
    "type": Param("token", (Slot(("type",), {
        "system": Field("lookup", "type", table=_TYPE_SYSTEM),
        "code": col("type"),
        "text": Field("lookup", "type", table=_TYPE_TEXT)}),)),
    "subtype": Param("token", (
        Slot(("subtype",), {
            "system": Field("lookup", "subtype", table={TOKEN_EVENT: TOKEN_SUBTYPE["system"]},
                            value=INTERACTION_SYSTEM),
            "code": col("subtype"),
            "text": Field("lookup", "subtype",
                          table={TOKEN_EVENT: normalise(TOKEN_SUBTYPE["display"])}, keep=True)}),
        Slot(("operation",), {"system": const(OPERATION_SYSTEM),
                              "code": Field("operation", "operation"),
                              "text": Field("lower", "operation")}))),
    "outcome": Param("token", (Slot(("outcome",), {"code": col("outcome")}),)),
    "agent": Param("reference", (
        Slot(("client_id",), {"identifier_system": col("client_system"),
                              "identifier_value": col("client_id")}),
        Slot(("org_id",), _reference(col("org_type"), col("org_id"))))),
    "entity": Param("reference", (
        Slot(("request_id",), {"identifier_value": col("request_id")}),
        Slot(("what_id",), _reference(col("what_type"), col("what_id"), col("what_version"))),
        Slot(("patient",), _reference(const("Patient"), col("patient"))),
        Slot(("token_hash",), {"identifier_system": const(TOKEN_HASH_SYSTEM),
                               "identifier_value": Field("prefix", "token_hash",
                                                         value=TOKEN_HASH_PREFIX)},
             equal=(("type", TOKEN), ("outcome", "0"))))),
    # AuditEvent.agent.who and AuditEvent.entity.what that are Patients
    "patient": Param("reference", (
        Slot(("patient",), _reference(const("Patient"), col("patient"))),
        Slot(("what_id",), _reference(col("what_type"), col("what_id"), col("what_version")),
             equal=(("what_type", "Patient"),)),
        Slot(("org_id",), _reference(col("org_type"), col("org_id")),
             equal=(("org_type", "Patient"),)))),
}


def entries(record: AuditRecord) -> list[dict[str, Any]]:
    """The record's index entries, in the form of MongoDB's ``idx`` (``{"p", "t", fields...}``,
    absent fields left out)."""
    out = []
    for code, param in PARAMS.items():
        for slot in param.slots:
            if slot.exists(record):
                entry: dict[str, Any] = {"p": code, "t": param.type}
                for name, spec in slot.fields.items():
                    v = spec.of(record)
                    if v is not None:
                        entry[name] = v
                out.append(entry)
    return out


def check_sort(query: SearchQuery) -> None:
    for spec in query.sort:
        if spec.param not in SORTS:
            raise InvalidRequest(f"AuditEvent cannot be sorted by {spec.param!r}: the audit log"
                                 " sorts by date, _lastUpdated or _id", expression="_sort")


def unknown_param(node: ir.Node) -> str | None:
    """The first parameter of an AuditEvent condition the log does not answer, if any."""
    if isinstance(node, ir.Entry | ir.Missing | ir.Chain):
        return None if node.param in PARAMS else node.param
    if isinstance(node, ir.And | ir.Or):
        for item in node.items:
            found = unknown_param(item)
            if found is not None:
                return found
    if isinstance(node, ir.Not):
        return unknown_param(node.item)
    return None


def check_where(node: ir.Node) -> None:
    name = unknown_param(node)
    if name is not None:
        raise InvalidRequest(f"AuditEvent cannot be searched by {name!r}: the audit log answers"
                             f" {', '.join(sorted(PARAMS))}", expression=name)


# -- keyset paging --------------------------------------------------------------------------------
#: one way of lying beyond a cursor: (position, "eq" | "lt" | "gt", value) terms, all true; the
#: positions are those of the sort keys, then the id (the type is constant in the log)
Alternative = list[tuple[int, str, Any]]


def keyset(after: Sequence[Any], offsets: Sequence[int], descending: Sequence[bool]
           ) -> list[Alternative]:
    """The rows of the log beyond ``after`` (a cursor: sort keys, type, id; of this type or,
    in a search of several types, of another) in the order ``descending`` (per sort key, then
    type and id), as alternatives (none: nothing lies beyond; an empty one: everything does).
    ``offsets``: what was added to each sort key reported (:data:`SORTS`)."""
    n = len(offsets)
    if len(after) != n + 2 or len(descending) != n + 2:
        raise ValueError("cursor does not fit this query")
    values = [_unshift(v, o) for v, o in zip(after[:n], offsets, strict=True)]
    rtype, rid = after[n], after[n + 1]
    if not isinstance(rtype, str) or not isinstance(rid, str):
        raise ValueError("cursor does not fit this query")
    out: list[Alternative] = []
    for i in range(n):
        out.append([(j, "eq", values[j]) for j in range(i)]
                   + [(i, "lt" if descending[i] else "gt", values[i])])
    equal = [(j, "eq", values[j]) for j in range(n)]
    if (rtype > AUDIT_TYPE) if descending[n] else (rtype < AUDIT_TYPE):
        out.append(equal)  # the log's type comes after the cursor's: any id
    elif rtype == AUDIT_TYPE:
        out.append([*equal, (n, "lt" if descending[n + 1] else "gt", rid)])
    return out


def _unshift(value: Any, offset: int) -> Any:
    if not offset:
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("cursor does not fit this query")
    return value - offset


def shift(value: Any, offset: int) -> Any:
    return value + offset if offset else value


# -- searches of several types --------------------------------------------------------------------
def _compare(descending: list[bool]) -> Callable[[tuple[Any, ...], tuple[Any, ...]], int]:
    def compare(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
        for x, y, desc in zip(a, b, descending, strict=False):
            if x != y:
                less = x < y
                return (1 if less else -1) if desc else (-1 if less else 1)
        return 0
    return compare


def split_search(query: SearchQuery, audit: Callable[[SearchQuery], SearchPage],
                 others: Callable[[SearchQuery], SearchPage]) -> SearchPage:
    """``query`` over AuditEvent (``audit``) and its other types (``others``): each part gives its
    page from the same keyset position; the merged page is their first ``limit`` rows in the
    query's order (the last ones, paging backwards)."""
    rest = tuple(t for t in query.types if t != AUDIT_TYPE)
    logged = audit(replace(query, types=(AUDIT_TYPE,)))
    if not rest:
        return logged
    page = others(replace(query, types=rest))
    keys = [*page.keys, *logged.keys]
    rows = [*page.rows, *logged.rows]
    compare = _compare([s.descending for s in query.sort] + [False, False])

    def by_key(a: int, b: int) -> int:
        return compare(keys[a], keys[b])

    order = sorted(range(len(keys)), key=cmp_to_key(by_key))
    order = order[-query.limit:] if query.backwards else order[:query.limit]
    return SearchPage([rows[i] for i in order], [keys[i] for i in order])


def split_count(types: tuple[str, ...], where: ir.Node, audit: Callable[[ir.Node], int],
                others: Callable[[tuple[str, ...], ir.Node], int]) -> int:
    rest = tuple(t for t in types if t != AUDIT_TYPE)
    total = audit(where) if AUDIT_TYPE in types else 0
    return total + (others(rest, where) if rest else 0)


# -- chains and _has into AuditEvent --------------------------------------------------------------
def reaches_audit(node: ir.Node) -> bool:
    """Whether a condition has a chain or ``_has`` into AuditEvent (cheap: most have neither)."""
    if isinstance(node, ir.Chain):
        return node.target == AUDIT_TYPE or reaches_audit(node.query)
    if isinstance(node, ir.Has):
        return node.type == AUDIT_TYPE or reaches_audit(node.query)
    if isinstance(node, ir.And | ir.Or):
        return any(reaches_audit(item) for item in node.items)
    if isinstance(node, ir.Not):
        return reaches_audit(node.item)
    return False


#: finds (at most ``limit``) AuditEvent ids matching a condition
FindIds = Callable[[ir.Node, int], list[str]]
#: finds (at most ``limit``) the targets (type, id) of reference parameter ``param`` of the
#: AuditEvents matching a condition
FindTargets = Callable[[str, ir.Node, int], list[tuple[str, str]]]


def resolve_audit(node: ir.Node, rtype: str, ids: FindIds, targets: FindTargets) -> ir.Node:
    """``node`` (a condition on ``rtype``) with every chain and ``_has`` into AuditEvent replaced
    by what the audit log finds for it: a chain ``param:AuditEvent.x=...`` by a reference to the
    AuditEvents found, ``_has:AuditEvent:param:x=...`` by the ids they point to through ``param``.
    More than :data:`MAX_IDS`: 400, as for chains on MongoDB."""
    if isinstance(node, ir.Chain):
        if node.target != AUDIT_TYPE:
            return replace(node, query=resolve_audit(node.query, node.target, ids, targets))
        found = ids(node.query, MAX_IDS + 1)
        _cap(len(found), f"chained search on AuditEvent through {node.param}")
        if not found:
            return ir.Or()
        return ir.Entry(node.param, "reference", ir.And((ir.Cmp("type", "eq", AUDIT_TYPE),
                                                         ir.In("id", tuple(found)))))
    if isinstance(node, ir.Has):
        if node.type != AUDIT_TYPE:
            return replace(node, query=resolve_audit(node.query, node.type, ids, targets))
        if node.param not in PARAMS or PARAMS[node.param].type != "reference":
            raise InvalidRequest(f"_has:AuditEvent:{node.param} is not a reference the audit"
                                 " log answers", expression=f"_has:AuditEvent:{node.param}")
        pointed = targets(node.param, node.query, MAX_IDS + 1)
        _cap(len(pointed), f"_has on AuditEvent:{node.param}")
        mine = tuple(sorted({i for t, i in pointed if t == rtype}))
        return ir.IdIn(mine)
    if isinstance(node, ir.And | ir.Or):
        return type(node)(tuple(resolve_audit(i, rtype, ids, targets) for i in node.items))
    if isinstance(node, ir.Not):
        return ir.Not(resolve_audit(node.item, rtype, ids, targets))
    return node


def _cap(count: int, what: str) -> None:
    if count > MAX_IDS:
        raise InvalidRequest(f"{what} matches too many AuditEvents (more than {MAX_IDS}):"
                             " narrow it, e.g. by date")


def resolve_query(query: SearchQuery, ids: FindIds, targets: FindTargets) -> SearchQuery:
    """``query`` with its chains and ``_has`` into AuditEvent resolved (one type at a time: the
    ids found depend on the type searched)."""
    if len(query.types) == 1:
        return replace(query, where=resolve_audit(query.where, query.types[0], ids, targets))
    per_type = ir.any_of(ir.all_of((ir.TypeIs((t,)), resolve_audit(query.where, t, ids,
                                                                     targets)))
                         for t in query.types)
    return replace(query, where=per_type)
