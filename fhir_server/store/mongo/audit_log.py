"""The MongoDB audit log: AuditEvents appended to a collection of their own, ``audit``.

One document per event: ``_id`` and ``id`` the event id, the fields of
:class:`~fhir_server.fhir.audit_record.AuditRecord` (absent when null; ``query`` and ``body`` as
binary), and ``idx``: the event's index entries in the layout of the ``resources`` collection
(built from the record by :func:`fhir_server.store.audit_keys.entries`, not by the generic
extractor), so that :mod:`fhir_server.store.mongo.compile` compiles AuditEvent searches as any
other. The JSON is rendered when an event is read. No history or current-version documents: an
event has one version. A round of the background audit writer is one ``insert_many``, in the
round's transaction (or, on a standalone server, undone by id if the block fails).

Indexes: ``id``, ``(recorded, id)`` (``date``), ``(ts, id)`` (``_lastUpdated``, type history),
references (``patient``, ``entity``, ``agent``: ``idx.p`` + ``idx.id``) and identifiers (the request
id, client ids). Sharding (docs/SCALING.md): hashed on ``_id``, so appends spread over the shards;
audit searches are then scatter-gather, which suits their rarity.

:func:`backfill` moves AuditEvents that earlier versions kept in ``resources``/``history`` into
the log at start-up (idempotent, in batches).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from bson.binary import Binary
from pymongo import DESCENDING
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError

from fhir_server.errors import MethodNotAllowed
from fhir_server.fhir.audit_record import AUDIT_TYPE, AuditRecord, parse, render_json
from fhir_server.search import ir
from fhir_server.store import audit_keys
from fhir_server.store.audit_keys import PARAMS, SORTS
from fhir_server.store.base import (
    HistoryQuery,
    NewVersion,
    SearchPage,
    SearchQuery,
    StoredResource,
    StoreUnavailable,
    VersionConflict,
)
from fhir_server.store.mongo import compile as mc

Doc = dict[str, Any]
COLLECTION = "audit"
#: (collection, keys, options), created at start-up with the store's other indexes
INDEXES: tuple[tuple[str, list[tuple[str, int]], dict[str, Any]], ...] = (
    (COLLECTION, [("id", 1)], {}),
    (COLLECTION, [("recorded", 1), ("id", 1)], {}),
    (COLLECTION, [("ts", 1), ("id", 1)], {}),
    (COLLECTION, [("idx.p", 1), ("idx.id", 1), ("idx.type", 1)], {}),
    (COLLECTION, [("idx.p", 1), ("idx.identifier_value", 1)], {}),
)
_BINARY = ("query", "body")
_BATCH = 500
APPEND_ONLY = "the audit log is append-only: an AuditEvent is written once, as version 1"


class Reads(mc.Resolver, Protocol):
    db: Database[Doc]
    session: ClientSession | None

    def search(self, query: SearchQuery) -> SearchPage: ...

    def count(self, types: tuple[str, ...], where: ir.Node) -> int: ...


@contextmanager
def _guard(what: str) -> Iterator[None]:
    try:
        yield
    except ConnectionFailure as exc:
        raise StoreUnavailable(f"MongoDB audit log {what} failed: {exc}") from exc


def _log(reads: Reads) -> Collection[Doc]:
    return reads.db[COLLECTION]


def document(record: AuditRecord) -> Doc:
    doc: Doc = {"_id": record.id}
    for name, value in zip(AuditRecord._fields, record, strict=True):
        if value is not None:
            doc[name] = Binary(value) if isinstance(value, bytes) else value
    doc["idx"] = audit_keys.entries(record)
    return doc


def _record(doc: Doc) -> AuditRecord:
    return AuditRecord._make(
        bytes(doc[n]) if n in _BINARY and doc.get(n) is not None else doc.get(n)
        for n in AuditRecord._fields)


def _stored(doc: Doc) -> StoredResource:
    record = _record(doc)
    return StoredResource(AUDIT_TYPE, record.id, 1, record.ts, "POST", render_json(record))


# -- writing --------------------------------------------------------------------------------------
def append(db: Database[Doc], session: ClientSession | None,
           records: Sequence[AuditRecord]) -> None:
    if not records:
        return
    try:
        with _guard("write"):
            db[COLLECTION].insert_many([document(r) for r in records], ordered=True,
                                       session=session)
    except (DuplicateKeyError, BulkWriteError) as exc:
        if isinstance(exc, BulkWriteError) and any(
                e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
        raise VersionConflict("an AuditEvent with one of these ids exists already") from None


def parse_new(new: NewVersion, expected_version: int) -> AuditRecord:
    """The record of an AuditEvent written as a resource (its JSON), if it is new."""
    if expected_version != 0 or new.body is None:
        raise MethodNotAllowed(f"AuditEvent/{new.id}: {APPEND_ONLY}")
    return parse(new.body)


def undo(db: Database[Doc], ids: list[str]) -> None:
    """Take back appended events (a failed block without a server transaction)."""
    if ids:
        db[COLLECTION].delete_many({"_id": {"$in": ids}})


def backfill(db: Database[Doc]) -> int:
    """Move the AuditEvents of ``resources``/``history`` (earlier versions) into the log."""
    resources, moved = db["resources"], 0
    while True:  # a fresh query per batch: the moved documents leave its result
        docs = list(resources.find({"type": {"$eq": AUDIT_TYPE}}, {"body": 1, "id": 1})
                    .limit(_BATCH))
        if not docs:
            return moved
        events = [document(parse(bytes(d["body"]))) for d in docs if d.get("body") is not None]
        if events:
            try:
                db[COLLECTION].insert_many(events, ordered=False)
            except BulkWriteError as exc:  # moved by another process, or an earlier partial run
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise
        ids = [d["id"] for d in docs]
        resources.delete_many({"_id": {"$in": [d["_id"] for d in docs]}})
        db["history"].delete_many({"type": {"$eq": AUDIT_TYPE}, "id": {"$in": ids}})
        moved += len(events)


# -- reading --------------------------------------------------------------------------------------
def read(reads: Reads, id: str) -> StoredResource | None:
    with _guard("read"):
        doc = _log(reads).find_one({"_id": {"$eq": id}}, {"idx": 0}, session=reads.session)
    return _stored(doc) if doc else None


def vread(reads: Reads, id: str, version: int) -> StoredResource | None:
    return read(reads, id) if version == 1 else None


def history(reads: Reads, query: HistoryQuery) -> list[StoredResource]:
    conds: list[Doc] = []
    if query.id is not None:
        conds.append({"id": {"$eq": query.id}})
    if query.since is not None:
        conds.append({"ts": {"$gte": query.since}})
    if query.before is not None:
        conds.append({"ts": {"$lt": query.before}})
    if query.after is not None:
        ts, rtype, rid, version = query.after
        if rtype != AUDIT_TYPE:  # (ts, "AuditEvent", id, 1) < (ts, rtype, rid, version)
            conds.append({"ts": {"$lte" if rtype > AUDIT_TYPE else "$lt": ts}})
        else:
            same = {"$lte" if version > 1 else "$lt": rid}
            conds.append({"$or": [{"ts": {"$lt": ts}}, {"ts": {"$eq": ts}, "id": same}]})
    with _guard("history"):
        cursor = _log(reads).find(mc.all_of(conds), {"idx": 0}, session=reads.session)
        docs = list(cursor.sort([("ts", DESCENDING), ("id", DESCENDING)]).limit(query.limit))
    return [_stored(d) for d in docs]


def search(reads: Reads, query: SearchQuery) -> SearchPage:
    """A search of AuditEvent, or of several types among which AuditEvent, or reaching it by a
    chain or ``_has`` (the store's ``search`` sends those here)."""
    if audit_keys.reaches_audit(query.where):
        query = _resolved(reads, query)
    if AUDIT_TYPE not in query.types:
        return reads.search(query)
    return audit_keys.split_search(query, lambda q: _search(reads, q), reads.search)


def count(reads: Reads, types: tuple[str, ...], where: ir.Node) -> int:
    if audit_keys.reaches_audit(where):
        where = _resolved(reads, SearchQuery(types, where)).where
    def logged(node: ir.Node) -> int:
        with _guard("count"):
            return int(_log(reads).count_documents(_filter(reads, node), session=reads.session))

    return audit_keys.split_count(types, where, logged, reads.count)


def _resolved(reads: Reads, query: SearchQuery) -> SearchQuery:
    return audit_keys.resolve_query(query, lambda w, limit: _ids(reads, w, limit),
                                    lambda p, w, limit: _targets(reads, p, w, limit))


def _filter(reads: Reads, node: ir.Node) -> Doc:
    audit_keys.check_where(node)
    return mc.where(node, AUDIT_TYPE, reads)


def _search(reads: Reads, query: SearchQuery) -> SearchPage:
    audit_keys.check_sort(query)
    sorts = [(SORTS[s.param], s.descending) for s in query.sort]
    names = [name for (name, _), _ in sorts]
    offsets = [offset if desc else 0 for (_, offset), desc in sorts]
    descending = [desc for _, desc in sorts] + [False, False]  # then type, id
    if query.backwards:
        descending = [not d for d in descending]
    flt = _filter(reads, query.where)
    if query.after is not None:
        fields = [*names, "id"]
        ops = {"eq": "$eq", "lt": "$lt", "gt": "$gt"}
        alternatives = [mc.all_of([{fields[i]: {ops[op]: v}} for i, op, v in alt])
                        for alt in audit_keys.keyset(query.after, offsets, descending)]
        flt = mc.all_of([flt, mc.any_of(alternatives)])
    descending = descending[:-2] + descending[-1:]  # the type is constant
    order = list(mc.sort_document([*names, "id"], descending, True).items())
    with _guard("search"):
        docs = list(_log(reads).find(flt, {"idx": 0}, session=reads.session).sort(order)
                    .limit(int(query.limit)))
    if query.backwards:
        docs.reverse()
    records = [_record(d) for d in docs]
    keys = [(*(audit_keys.shift(getattr(r, n), o) for n, o in zip(names, offsets, strict=True)),
             AUDIT_TYPE, r.id) for r in records]
    return SearchPage([StoredResource(AUDIT_TYPE, r.id, 1, r.ts, "POST", render_json(r))
                       for r in records], keys)


def _ids(reads: Reads, node: ir.Node, limit: int) -> list[str]:
    with _guard("search"):
        docs = list(_log(reads).find(_filter(reads, node), {"id": 1}, session=reads.session)
                    .limit(limit))
    return [d["id"] for d in docs]


def _targets(reads: Reads, param: str, node: ir.Node, limit: int) -> list[tuple[str, str]]:
    """The (type, id) that ``param`` of the AuditEvents matching ``node`` refer to."""
    slots = [s for s in PARAMS[param].slots if "type" in s.fields and "id" in s.fields]
    found: dict[tuple[str, str], None] = {}
    with _guard("search"):
        for doc in _log(reads).find(_filter(reads, node), {"idx": 0}, session=reads.session):
            record = _record(doc)
            for slot in slots:
                if slot.exists(record):
                    rtype, rid = slot.fields["type"].of(record), slot.fields["id"].of(record)
                    if rtype is not None and rid is not None:
                        found[(rtype, rid)] = None
            if len(found) >= limit:
                break
    return list(found)[:limit]
