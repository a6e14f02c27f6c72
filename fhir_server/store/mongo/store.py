"""MongoDB implementation of the Store protocol (pymongo).

Collections:

* ``resources``: one document per resource, its current version: ``_id`` ``"Type/id"``, ``type``,
  ``id``, ``version``, ``ts``, ``method``, ``alive``, ``body`` (the exact JSON bytes, BSON binary;
  null when deleted), ``idx`` (the index entries, see :mod:`.documents`), ``sk`` (sort keys) and
  ``pc`` (the owner of its patient compartment: the shard key of docs/SCALING.md; kept when the
  resource is deleted; added to the filters that fix it, so that mongos can target one shard);
* ``history``: one document per version, ``_id`` ``"Type/id/version"`` (append-only);
* ``server_meta``: shared secrets, the layout markers (``schema.py``, ``migrate.py``).

A write is a compare-and-set: ``expected_version`` 0 inserts (a duplicate ``_id`` is a conflict),
otherwise ``update_one({"_id": ..., "version": expected, "pc": ...})`` must match one document
(the filter names the shard key: the new ``pc``, else, when the update moves the resource to another
patient, the stored one, read first; the move then happens inside the transaction). The history
document is inserted in the same transaction (a duplicate version is a conflict too).

Transactions: on a replica set or sharded cluster (``hello`` reports ``setName`` or ``msg:
isdbgrid``) or any server that accepts a probe transaction, every :meth:`MongoStore.transaction` is a
multi-document transaction (write concern majority) and the store declares ``"transactions"``. On a
standalone ``mongod`` (no transactions) it falls back to single-document writes: each ``put`` is
atomic on its own, and leaving the block by an exception undoes the block's puts in reverse order
(best effort, not isolated: another reader can see them in between, and a crash in between leaves
them); ``capabilities`` then lacks ``"transactions"``.

The ``MongoClient`` is created on first use in each process (gunicorn forks first), with a short
server-selection timeout; connection failures become :class:`StoreUnavailable` (503).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

from bson.binary import Binary
from pymongo import DESCENDING, MongoClient, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)
from pymongo.write_concern import WriteConcern

from fhir_server.fhir.audit_record import AUDIT_TYPE, AuditRecord
from fhir_server.search import ir
from fhir_server.store.audit_keys import reaches_audit
from fhir_server.store.base import (
    HistoryQuery,
    NewVersion,
    SearchPage,
    SearchQuery,
    StoredResource,
    StoreUnavailable,
    UniqueViolation,
    VersionConflict,
)
from fhir_server.store.mongo import audit_log, schema
from fhir_server.store.mongo import compile as mc
from fhir_server.store.mongo.documents import SORT_INDEXES, compartment_owner, entry_doc, sort_keys
from fhir_server.store.mongo.registry import INDEXES as REGISTRY_INDEXES
from fhir_server.store.mongo.registry import MongoRegistry

Doc = dict[str, Any]
DEFAULT_DATABASE = "ehc_fhir"
_WRITE_CONFLICT = 112

#: (collection, keys, options): created at start-up, once per database and layout (schema.py).
INDEXES: tuple[tuple[str, list[tuple[str, int]], dict[str, Any]], ...] = (
    ("resources", [("type", 1), ("alive", 1), ("id", 1)], {}),
    ("resources", [("type", 1), ("idx.p", 1), ("idx.code", 1), ("idx.system", 1)], {}),
    ("resources", [("type", 1), ("idx.p", 1), ("idx.norm", 1)], {}),
    ("resources", [("type", 1), ("idx.p", 1), ("idx.low", 1)], {}),
    ("resources", [("type", 1), ("idx.p", 1), ("idx.id", 1), ("idx.type", 1)], {}),
    ("resources", [("type", 1), ("idx.p", 1), ("idx.value", 1)], {}),
    ("resources", [("idx.type", 1), ("idx.id", 1)], {}),  # reverse references
    *(("resources", keys, {}) for keys in SORT_INDEXES),  # _sort by _lastUpdated, date, name...
    ("resources", [("pc", 1), ("type", 1), ("alive", 1)], {}),  # one patient's record, by type
    ("history", [("ts", 1), ("type", 1), ("id", 1), ("version", 1)], {}),
    ("history", [("type", 1), ("ts", 1), ("id", 1), ("version", 1)], {}),
    ("history", [("type", 1), ("id", 1), ("version", 1)], {"unique": True}),
    ("claims", [("owner", 1)], {}),  # _id is the claimed key: unique by construction
    *REGISTRY_INDEXES,  # OAuth clients, hashed tokens, assertion jti (TTL on expiry)
    *audit_log.INDEXES,  # the audit log (AuditEvents: audit_log.py)
)


def database_from_url(url: str) -> str:
    """The database named by the URL path (``mongodb://host/name``), else ``ehc_fhir``."""
    if not url.startswith(("mongodb://", "mongodb+srv://")):
        raise ValueError(f"not a MongoDB store URL: {url!r}")
    path = urlsplit(url).path.lstrip("/")
    return path or DEFAULT_DATABASE


def _resource(doc: Doc) -> StoredResource:
    body = doc.get("body")
    return StoredResource(doc["type"], doc["id"], int(doc["version"]), int(doc["ts"]),
                          doc["method"], bytes(body) if body is not None else None)


@contextmanager
def _guard(what: str) -> Iterator[None]:
    try:
        yield
    except ConnectionFailure as exc:  # AutoReconnect, ServerSelectionTimeoutError, NetworkTimeout
        raise StoreUnavailable(f"MongoDB {what} failed: {exc}") from exc


def _conflict(exc: PyMongoError) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, OperationFailure) and (
            exc.code == _WRITE_CONFLICT or "write conflict" in str(exc).lower()):
        return True  # mongoeco reports a conflict at commit by message only
    return exc.has_error_label("TransientTransactionError")


class _Reads:
    """Read queries shared by the store and its transactions (``session`` None: no transaction)."""

    db: Database[Doc]
    session: ClientSession | None = None

    @property
    def _resources(self) -> Collection[Doc]:
        return self.db["resources"]

    @property
    def _history(self) -> Collection[Doc]:
        return self.db["history"]

    def read(self, type: str, id: str) -> StoredResource | None:
        if type == AUDIT_TYPE:  # AuditEvents: in the audit log (audit_log.py)
            return audit_log.read(self, id)
        with _guard("read"):
            doc = self._resources.find_one(_by_key(type, id), {"idx": 0, "sk": 0},
                                           session=self.session)
        return _resource(doc) if doc else None

    def vread(self, type: str, id: str, version: int) -> StoredResource | None:
        if type == AUDIT_TYPE:
            return audit_log.vread(self, id, version)
        with _guard("read"):
            doc = self._history.find_one({"_id": {"$eq": f"{type}/{id}/{version}"},
                                          "type": {"$eq": type}, "id": {"$eq": id}},  # shard key
                                         session=self.session)
        return _resource(doc) if doc else None

    def history(self, query: HistoryQuery) -> list[StoredResource]:
        if query.type == AUDIT_TYPE:  # system history leaves the audit log out
            return audit_log.history(self, query)
        conds: list[Doc] = []
        for field, op, v in (("type", "$eq", query.type), ("id", "$eq", query.id),
                             ("ts", "$gte", query.since), ("ts", "$lt", query.before)):
            if v is not None:
                conds.append({field: {op: v}})
        instance = query.type is not None and query.id is not None
        if instance:
            order = [("version", DESCENDING)]
            if query.after is not None:
                conds.append({"version": {"$lt": query.after[3]}})
        else:
            names = ["ts", "type", "id", "version"]
            order = [(n, DESCENDING) for n in names]
            if query.after is not None:
                conds.append(mc.keyset(names, [True] * 4, list(query.after)))
        with _guard("history"):
            cursor = self._history.find(mc.all_of(conds), session=self.session)
            docs = list(cursor.sort(order).limit(query.limit))
        return [_resource(d) for d in docs]

    def search(self, query: SearchQuery) -> SearchPage:
        if AUDIT_TYPE in query.types or reaches_audit(query.where):
            return audit_log.search(self, query)
        plan = mc.sort_plan([(s.param, s.param_type, s.descending) for s in query.sort],
                            query.types)
        nkeys = len(plan)
        names = [name for name, _ in plan] + ["type", "id"]
        descending = [s.descending for s in query.sort] + [False, False]
        if query.backwards:
            descending = [not d for d in descending]
        where = mc.search_filter(query.types, query.where, self)
        after = mc.keyset(names, descending, list(query.after)) if query.after is not None else None
        computed = {name: expr for name, expr in plan if expr is not None}
        pipeline: list[Doc] = []
        if computed:
            pipeline += [{"$match": where}, {"$addFields": computed}]
            if after is not None:
                pipeline.append({"$match": after})
        else:  # stored keys only: filter, keyset, sort and limit can all run on one index
            pipeline.append({"$match": mc.all_of([where, after]) if after is not None else where})
        pipeline += [
            {"$sort": mc.sort_document(names, descending, len(query.types) == 1)},
            {"$limit": int(query.limit)},
        ]
        stored = {f"_k{n}": f"${name}" for n, (name, expr) in enumerate(plan) if expr is None}
        if stored:  # the page's keys, read after the limit from the fields sorted by
            pipeline.append({"$addFields": stored})
        pipeline.append({"$project": {"idx": 0, "sk": 0}})
        with _guard("search"):
            docs = list(self._resources.aggregate(pipeline, session=self.session))
        if query.backwards:
            docs.reverse()
        return SearchPage([_resource(d) for d in docs],
                          [(*(d[f"_k{n}"] for n in range(nkeys)), d["type"], d["id"]) for d in docs])

    def count(self, types: tuple[str, ...], where: ir.Node) -> int:
        if AUDIT_TYPE in types or reaches_audit(where):
            return audit_log.count(self, types, where)
        with _guard("count"):
            return int(self._resources.count_documents(mc.search_filter(types, where, self),
                                                       session=self.session))

    # -- compile.Resolver ---------------------------------------------------------------------
    def chain_ids(self, target: str, where: Doc) -> list[str]:
        flt = mc.all_of([{"type": {"$eq": target}, "alive": {"$eq": True}}, where])
        with _guard("search"):
            docs = list(self._resources.find(flt, {"id": 1, "_id": 0}, session=self.session)
                        .limit(mc.MAX_IDS + 1))
        if len(docs) > mc.MAX_IDS:
            raise mc.TooBroad(f"chained search on {target} matches too many resources"
                              f" (more than {mc.MAX_IDS}): chain too broad")
        return [d["id"] for d in docs]

    def has_ids(self, source: str, param: str, rtype: str, where: Doc) -> list[str]:
        points: Doc = {"idx": {"$elemMatch": {"p": {"$eq": param}, "type": {"$eq": rtype}}}}
        flt = mc.all_of([{"type": {"$eq": source}, "alive": {"$eq": True}}, where, points])
        with _guard("search"):
            docs = list(self._resources.find(flt, {"idx": 1, "_id": 0}, session=self.session)
                        .limit(mc.MAX_IDS + 1))
        if len(docs) > mc.MAX_IDS:
            raise mc.TooBroad(f"_has on {source}:{param} matches too many resources"
                              f" (more than {mc.MAX_IDS}): chain too broad")
        ids = {e["id"] for d in docs for e in d.get("idx", ())
               if e.get("p") == param and e.get("type") == rtype and isinstance(e.get("id"), str)}
        return sorted(ids)


def _history_doc(new: NewVersion) -> Doc:
    return {"_id": f"{new.type}/{new.id}/{new.version}", "type": new.type, "id": new.id,
            "version": new.version, "ts": new.ts, "method": new.method,
            "body": Binary(new.body) if new.body is not None else None}


def _by_key(type: str, id: str) -> Doc:
    """The filter of one ``resources`` document by its ``Type/id``; a Patient's names its ``pc``
    too (a Patient's own compartment), so that mongos targets one shard."""
    key = f"{type}/{id}"
    if type == "Patient":
        return {"_id": {"$eq": key}, "pc": {"$eq": key}}
    return {"_id": {"$eq": key}}


def _current_doc(new: NewVersion) -> Doc:
    """The ``resources`` document of ``new``; a deletion leaves ``pc`` out (the deleted resource
    stays where it was; a Patient's is fixed anyway)."""
    alive = new.body is not None
    idx = [entry_doc(e) for e in new.index] if alive else []
    doc = {"type": new.type, "id": new.id, "version": new.version, "ts": new.ts,
           "method": new.method, "alive": alive,
           "body": Binary(new.body) if new.body is not None else None,
           "idx": idx, "sk": sort_keys(idx, new.type) if alive else {}}
    if alive or new.type == "Patient":
        doc["pc"] = compartment_owner(new.type, new.id, idx)
    return doc


class _MongoTx(_Reads):
    def __init__(self, db: Database[Doc], session: ClientSession | None) -> None:
        self.db = db
        self.session = session
        #: without a server transaction: how to undo each put (history _id, previous document)
        self.undo: list[tuple[str, str, Doc | None]] = []
        self.claim_undo: list[tuple[str, list[str]]] = []
        self.audit_undo: list[str] = []

    def put(self, new: NewVersion, expected_version: int) -> None:
        if new.type == AUDIT_TYPE:
            return self.append_audit([audit_log.parse_new(new, expected_version)])
        key = f"{new.type}/{new.id}"
        hist = _history_doc(new)
        try:
            with _guard("write"):
                self._history.insert_one(hist, session=self.session)
        except PyMongoError as exc:
            if _conflict(exc):
                raise VersionConflict(f"{key} already has version {new.version}") from None
            raise
        doc = _current_doc(new)
        try:
            with _guard("write"):
                if expected_version == 0:
                    owner = compartment_owner(new.type, new.id, [])
                    self._resources.insert_one({"_id": key, "pc": owner, **doc},
                                               session=self.session)
                    previous: Doc | None = None
                    matched = True
                else:
                    previous = self._update_current(key, expected_version, doc)
                    matched = previous is not None
        except PyMongoError as exc:
            if not _conflict(exc):
                raise
            matched = False
        if not matched:
            if self.session is None:  # no transaction to take the history document back
                self._history.delete_one({"_id": {"$eq": hist["_id"]}})
            raise VersionConflict(f"{key} is no longer at version {expected_version}")
        self.undo.append((key, hist["_id"], previous))
        self._claim(key, new.claims)

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        audit_log.append(self.db, self.session, records)
        if self.session is None:
            self.audit_undo += [r.id for r in records]

    def _update_current(self, key: str, expected_version: int, doc: Doc) -> Doc | None:
        """Set ``doc`` on the current document if it is at ``expected_version``; the document
        before, or None. The filter names the shard key ``pc`` (a sharded cluster needs it, and
        needs it equal to the *stored* value to change it): first the new ``pc`` (the resource
        stays with its patient: one targeted write); if that matches nothing, the stored ``pc``,
        read by ``_id``, so that an update moving the resource to another patient (or a deletion,
        which keeps ``pc``) changes the shard key inside this transaction."""
        def update(pc: Any) -> Doc | None:
            return self._resources.find_one_and_update(
                {"_id": {"$eq": key}, "version": {"$eq": expected_version}, "pc": {"$eq": pc}},
                {"$set": doc}, session=self.session, return_document=ReturnDocument.BEFORE)

        if "pc" in doc:
            previous = update(doc["pc"])
            if previous is not None:
                return previous
        current = self._resources.find_one({"_id": {"$eq": key}}, {"pc": 1, "version": 1},
                                           session=self.session)
        if current is None or current.get("version") != expected_version:
            return None
        if "pc" in doc and current.get("pc") == doc["pc"]:
            return None  # changed in between: it is no longer at expected_version
        return update(current.get("pc"))  # None when missing: matches a document without pc

    def _claim(self, owner: str, keys: tuple[str, ...]) -> None:
        claims = self.db["claims"]
        if self.session is None:  # remember what to give back if the block fails
            held = [d["_id"] for d in claims.find({"owner": {"$eq": owner}})]
            self.claim_undo.append((owner, held))
        with _guard("write"):
            claims.delete_many({"owner": {"$eq": owner}}, session=self.session)
        for key in keys:
            try:
                with _guard("write"):
                    claims.insert_one({"_id": key, "owner": owner}, session=self.session)
            except DuplicateKeyError:
                holder = claims.find_one({"_id": {"$eq": key}}, session=self.session)
                raise UniqueViolation(key, holder["owner"] if holder else "another resource") from None

    def rollback(self) -> None:
        """Undo the puts of a block without a server transaction (standalone fallback)."""
        for key, hid, previous in reversed(self.undo):
            self._history.delete_one({"_id": {"$eq": hid}})
            if previous is None:
                self._resources.delete_one({"_id": {"$eq": key}})
            else:
                self._resources.replace_one({"_id": {"$eq": key}}, previous)
        self.undo.clear()
        claims = self.db["claims"]
        for owner, held in reversed(self.claim_undo):
            claims.delete_many({"owner": {"$eq": owner}})
            for key in held:
                with suppress(DuplicateKeyError):
                    claims.insert_one({"_id": key, "owner": owner})
        self.claim_undo.clear()
        audit_log.undo(self.db, self.audit_undo)
        self.audit_undo.clear()


class MongoStore(MongoRegistry, _Reads):
    name = "mongodb"

    def __init__(self, url: str, *, database: str | None = None,
                 server_selection_timeout_ms: int = 5000, write_concern: str = "majority") -> None:
        self.url = url
        self.database = database or database_from_url(url)
        self.server_selection_timeout_ms = server_selection_timeout_ms
        self.write_concern = write_concern
        self._lock = threading.Lock()
        self._client: MongoClient[Doc] | None = None
        self._pid = 0
        self._transactions: bool | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> MongoStore:
        return cls(url, **kwargs)

    # -- connection ---------------------------------------------------------------------------
    @property
    def client(self) -> MongoClient[Doc]:
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._client is None or self._pid != os.getpid():  # a forked child never reuses it
                self._client = MongoClient(
                    self.url, serverSelectionTimeoutMS=self.server_selection_timeout_ms,
                    connectTimeoutMS=self.server_selection_timeout_ms,
                    w=self.write_concern, tz_aware=False, uuidRepresentation="standard")
                self._pid = os.getpid()
                self._transactions = None
            client = self._client
        self._prepare(client)
        return client

    @property
    def db(self) -> Database[Doc]:  # type: ignore[override]
        return self.client[self.database]

    def _prepare(self, client: MongoClient[Doc]) -> None:
        """Once per process: indexes and migrations unless the database's marker says they are
        done (schema.py), and find out whether transactions work."""
        if self._transactions is not None:
            return
        with self._lock:
            if self._transactions is not None:
                return
            with _guard("start-up"):
                db = client[self.database]
                schema.prepare(db, INDEXES)
                self._transactions = self._probe_transactions(client, db)

    @staticmethod
    def _probe_transactions(client: MongoClient[Doc], db: Database[Doc]) -> bool:
        hello = client.admin.command("hello")
        if hello.get("setName") or hello.get("msg") == "isdbgrid":
            return True
        if not hello.get("logicalSessionTimeoutMinutes"):
            return False
        try:  # a standalone mongod refuses this (IllegalOperation); some servers accept it
            with client.start_session() as session, session.start_transaction():
                db["server_meta"].find_one({"_id": "probe"}, session=session)
        except OperationFailure:
            return False
        return True

    @property
    def capabilities(self) -> frozenset[str]:
        """``{"transactions"}`` when writes use server transactions (connects on first use)."""
        self.client  # noqa: B018 (connects and probes once)
        return frozenset({"transactions"}) if self._transactions else frozenset()

    @capabilities.setter
    def capabilities(self, value: frozenset[str]) -> None:
        """Force a mode (tests of the standalone fallback): without ``"transactions"``, writes use
        the single-document fallback even where the server has transactions."""
        self.client  # noqa: B018
        self._transactions = "transactions" in value

    # -- protocol -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[_MongoTx]:
        client, db = self.client, self.db
        if not self._transactions:
            tx = _MongoTx(db, None)
            try:
                yield tx
            except BaseException:
                with _guard("rollback"):
                    tx.rollback()
                raise
            return
        with _guard("transaction"), client.start_session() as session:
            session.start_transaction(write_concern=WriteConcern(self.write_concern))
            try:
                yield _MongoTx(db, session)
            except BaseException:
                if session.in_transaction:
                    with suppress(PyMongoError):  # the server aborts it anyway
                        session.abort_transaction()
                raise
            try:
                self._commit(session)
            except PyMongoError as exc:
                if isinstance(exc, ConnectionFailure):
                    raise
                if _conflict(exc):
                    raise VersionConflict(f"transaction conflict: {exc}") from None
                raise

    @staticmethod
    def _commit(session: ClientSession) -> None:
        while True:
            try:
                session.commit_transaction()
                return
            except PyMongoError as exc:
                if exc.has_error_label("UnknownTransactionCommitResult"):
                    continue  # commit is idempotent: retry until the result is known
                raise

    def ping(self) -> None:
        try:
            with _guard("ping"):
                self.client.admin.command("ping")
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB is not usable: {exc}") from exc

    def secret(self, name: str, length: int = 32) -> bytes:
        meta = self.db["server_meta"]
        key = f"secret:{name}"
        with _guard("secret"):
            doc = meta.find_one({"_id": {"$eq": key}})
            if doc is None:
                with suppress(DuplicateKeyError):  # another process may create it first
                    meta.insert_one({"_id": key, "value": Binary(secrets.token_bytes(length))})
                doc = meta.find_one({"_id": {"$eq": key}})
        assert doc is not None
        return bytes(doc["value"])

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None
            self._transactions = None

