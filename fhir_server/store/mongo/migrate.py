"""Bring ``resources`` documents written by earlier versions of the store up to the current layout.

Run at start-up after the indexes (so also by ``fhir-server serve`` before it takes traffic), by
:func:`~fhir_server.store.mongo.schema.prepare`: once per database and layout (a marker in
``server_meta``); idempotent, and cheap when there is nothing to do (one lookup on the ``pc`` index
and one ``server_meta`` read):

* ``pc`` (the shard key, docs/SCALING.md) on every document lacking it, computed from its stored
  index entries like a write does; the same pass recomputes the sort keys of those documents from
  their index entries, sentinels included (documents without ``pc`` predate both);
* the sentinels of :data:`~fhir_server.store.mongo.documents.INDEXED_SORTS` when that list has
  changed since the last run (recorded in ``server_meta`` as ``layout:sort-keys``).

Each update names the state it repairs (``pc`` absent, the sort key absent), so concurrent runs by
several processes and concurrent writes (which write the full layout) are safe. Documents written by
a process of an older version *after* this ran lack ``pc``: stop the old
version's processes before starting the new one (docs/SCALING.md, order of operations); since
the marker, later starts do not run this either, unless the marker is deleted (schema.py).
"""

from __future__ import annotations

from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database

from fhir_server.search.params import registry as search_registry
from fhir_server.store.mongo.documents import (
    INDEXED_SORTS,
    compartment_owner,
    indexed_sorts,
    missing_key,
    sort_keys,
)

Doc = dict[str, Any]
BATCH = 500
SORT_LAYOUT = "layout:sort-keys"


def backfill(db: Database[Doc]) -> int:
    """Complete the layout of older documents; returns how many documents got ``pc``."""
    done = _fill_owner(db)
    _fill_sort_keys(db)
    return done


def _fill_owner(db: Database[Doc]) -> int:
    resources = db["resources"]
    lacking: Doc = {"pc": {"$exists": False}}
    done = 0
    while True:  # a fresh query per batch: the updated documents leave its result
        docs = list(resources.find(lacking, {"type": 1, "id": 1, "alive": 1, "idx": 1, "sk": 1})
                    .limit(BATCH))
        if not docs:
            return done
        updates = []
        for doc in docs:
            rtype, rid = str(doc.get("type")), str(doc.get("id"))
            idx = doc.get("idx") or []
            fields: Doc = {"pc": compartment_owner(rtype, rid, idx)}
            if doc.get("alive"):
                fields["sk"] = sort_keys(idx, rtype)
            updates.append(UpdateOne({"_id": {"$eq": doc["_id"]}, **lacking}, {"$set": fields}))
        resources.bulk_write(updates, ordered=False)
        done += len(docs)


def _fill_sort_keys(db: Database[Doc]) -> None:
    meta = db["server_meta"]
    recorded = meta.find_one({"_id": {"$eq": SORT_LAYOUT}})
    if recorded is not None and recorded.get("params") == list(INDEXED_SORTS):
        return
    if db["resources"].find_one({}, {"_id": 1}) is not None:
        for rtype in search_registry().types():
            for code, ptype in indexed_sorts(rtype):
                for end, descending in (("lo", False), ("hi", True)):
                    path = f"sk.{code}.{end}"
                    db["resources"].update_many(
                        {"type": {"$eq": rtype}, "alive": {"$eq": True}, path: {"$exists": False}},
                        {"$set": {path: missing_key(ptype, descending)}})
    meta.update_one({"_id": SORT_LAYOUT}, {"$set": {"params": list(INDEXED_SORTS)}},
                    upsert=True)
