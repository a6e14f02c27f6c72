"""The start-up work of the MongoDB store, done once per database and layout: the indexes and the
migrations of documents written by earlier versions.

A marker in ``server_meta`` (``_id`` :data:`MARKER`) holds the :func:`fingerprint` of the layout that
was completed: the index specifications, the indexed sort keys and :data:`MIGRATIONS`. A process
starting reads it (one lookup by ``_id``) and, when it matches its own, does nothing more: many
workers (and every test handle on one database) no longer send some 30 ``createIndexes`` and the
migration probes each. Otherwise (a new database, one written by an earlier version, a version whose
indexes or migrations differ) it creates the indexes (one ``createIndexes`` per collection), runs the
migrations (:func:`~fhir_server.store.mongo.migrate.backfill`,
:func:`~fhir_server.store.mongo.audit_log.backfill`) and only then records the marker: a process
that stops halfway leaves none, and the next start does it all again.

Concurrency: every step is idempotent and safe to run twice at once (``createIndexes`` of an
identical existing index does nothing; each migration update names the state it repairs), so
processes starting together on an unmarked database may all do the work, and record the same
marker. Processes of two versions starting in turn each find the other's fingerprint and do their
own work again; nothing is lost, it is only slower.

Operations: as before, stop the processes of an older version before starting a new one (a document
an older process writes after the marker is recorded would not be migrated by later start-ups). To
make the next start-up redo everything (e.g. after dropping indexes by hand, or a restore without
indexes), delete the marker: ``db.server_meta.deleteOne({_id: "layout:schema"})``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from pymongo import IndexModel
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fhir_server.store.mongo import audit_log, migrate
from fhir_server.store.mongo.documents import INDEXED_SORTS

Doc = dict[str, Any]
IndexSpec = tuple[str, list[tuple[str, int]], dict[str, Any]]
MARKER = "layout:schema"
#: The start-up migrations, by name and version: change an entry (or add one) when a migration
#: changes, so that databases marked by the previous version run it.
MIGRATIONS: tuple[str, ...] = ("pc-and-sort-keys:1", "audit-events-to-log:1")


def fingerprint(indexes: Sequence[IndexSpec]) -> str:
    """What a start-up completes: a hash of the indexes, indexed sorts and migrations."""
    layout = {"indexes": [[c, [list(k) for k in keys], opts] for c, keys, opts in indexes],
              "sorts": list(INDEXED_SORTS), "migrations": list(MIGRATIONS)}
    text = json.dumps(layout, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def prepare(db: Database[Doc], indexes: Sequence[IndexSpec]) -> bool:
    """Bring ``db`` to this version's layout unless its marker says it is; True if work was done."""
    wanted = fingerprint(indexes)
    meta = db["server_meta"]
    found = meta.find_one({"_id": {"$eq": MARKER}}, {"fingerprint": 1})
    if found is not None and found.get("fingerprint") == wanted:
        return False
    create_indexes(db, indexes)
    migrate.backfill(db)  # pc and sort keys of documents written by older versions
    audit_log.backfill(db)  # AuditEvents kept as resources by older versions move to the log
    with suppress(DuplicateKeyError):  # another process inserted it at the same moment
        meta.update_one({"_id": MARKER}, {"$set": {"fingerprint": wanted, "at": int(time.time())}},
                        upsert=True)
    return True


def create_indexes(db: Database[Doc], indexes: Sequence[IndexSpec]) -> None:
    """One ``createIndexes`` per collection (idempotent: existing identical indexes stay)."""
    by_collection: dict[str, list[IndexModel]] = {}
    for collection, keys, options in indexes:
        by_collection.setdefault(collection, []).append(IndexModel(keys, **options))
    for collection, models in by_collection.items():
        db[collection].create_indexes(models)
