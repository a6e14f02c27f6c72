"""The registry part of the Store protocol on MongoDB: the ``registry`` collection.

One document per (kind, key) (a unique index): ``value`` (the JSON text, so any key names are
safe), ``expires`` (unix seconds or null) and ``expires_at`` (the same as a date, for the TTL index
that deletes expired documents; MongoDB does so lazily, so reads filter on ``expires`` too).
:meth:`registry_add` is one upsert whose filter matches only an expired document: an unexpired one
makes the upsert insert a duplicate, which the unique index refuses, so exactly one of several
racing callers wins. :meth:`registry_incr` is one ``find_one_and_update`` upsert with an update
pipeline: it adds to the document's numeric ``count`` (starting over if the document has expired)
and rewrites ``value`` to match, so a counter reads the same as on SQLite.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from fhir_server.store.base import StoreUnavailable

Doc = dict[str, Any]

#: (collection, keys, options): created with the store's other indexes
INDEXES: tuple[tuple[str, list[tuple[str, int]], dict[str, Any]], ...] = (
    ("registry", [("kind", 1), ("key", 1)], {"unique": True}),
    ("registry", [("expires_at", 1)], {"expireAfterSeconds": 0}),
)


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except ConnectionFailure as exc:
        raise StoreUnavailable(f"MongoDB registry access failed: {exc}") from exc


def _live(now: int) -> Doc:
    return {"$or": [{"expires": {"$eq": None}}, {"expires": {"$gt": now}}]}


def _fields(value: dict[str, Any], expires: int | None) -> Doc:
    return {"value": json.dumps(value, separators=(",", ":")), "expires": expires,
            "expires_at": (datetime.fromtimestamp(expires, UTC).replace(tzinfo=None)
                           if expires is not None else None)}


class MongoRegistry:
    """Mixed into :class:`~fhir_server.store.mongo.store.MongoStore` (uses its ``db``)."""

    db: Database[Doc]

    @property
    def _registry(self) -> Collection[Doc]:
        return self.db["registry"]

    def registry_get(self, kind: str, key: str) -> dict[str, Any] | None:
        with _guard():
            doc = self._registry.find_one(
                {"kind": {"$eq": kind}, "key": {"$eq": key}, **_live(int(time.time()))})
        return None if doc is None else dict(json.loads(doc["value"]))

    def registry_put(self, kind: str, key: str, value: dict[str, Any],
                     expires: int | None = None) -> None:
        with _guard():
            self._registry.update_one({"kind": {"$eq": kind}, "key": {"$eq": key}},
                                      {"$set": _fields(value, expires),
                                       "$setOnInsert": {"kind": kind, "key": key}}, upsert=True)

    def registry_add(self, kind: str, key: str, value: dict[str, Any],
                     expires: int | None = None) -> bool:
        expired = {"kind": {"$eq": kind}, "key": {"$eq": key},
                   "expires": {"$ne": None, "$lte": int(time.time())}}
        try:
            with _guard():
                self._registry.update_one(expired, {"$set": _fields(value, expires),
                                                    "$setOnInsert": {"kind": kind, "key": key}},
                                          upsert=True)
        except DuplicateKeyError:
            return False  # an unexpired entry holds the key
        return True

    def registry_delete(self, kind: str, key: str) -> bool:
        with _guard():
            result = self._registry.delete_one(
                {"kind": {"$eq": kind}, "key": {"$eq": key}, **_live(int(time.time()))})
        return result.deleted_count > 0

    def registry_list(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        with _guard():
            docs = list(self._registry.find({"kind": {"$eq": kind}, **_live(int(time.time()))})
                        .sort("key", 1))
        return [(doc["key"], dict(json.loads(doc["value"]))) for doc in docs]

    def registry_incr(self, kind: str, key: str, amount: int, expires: int | None = None) -> int:
        now = int(time.time())
        expires_at = _fields({}, expires)["expires_at"]
        # a new document has no count; an expired one starts over (with the new expiry)
        fresh: Doc = {"$or": [{"$eq": [{"$ifNull": ["$count", None]}, None]},
                         {"$and": [{"$ne": [{"$ifNull": ["$expires", None]}, None]},
                                   {"$lte": ["$expires", now]}]}]}
        pipeline: list[Doc] = [
            {"$set": {"kind": {"$literal": kind}, "key": {"$literal": key},
                      "count": {"$cond": [fresh, int(amount), {"$add": ["$count", int(amount)]}]},
                      "expires": {"$cond": [fresh, {"$literal": expires}, "$expires"]},
                      "expires_at": {"$cond": [fresh, {"$literal": expires_at}, "$expires_at"]}}},
            {"$set": {"value": {"$concat": ['{"count":', {"$toString": "$count"}, "}"]}}},
        ]
        tries = 3
        while True:
            tries -= 1
            try:
                with _guard():
                    doc = self._registry.find_one_and_update(
                        {"kind": {"$eq": kind}, "key": {"$eq": key}}, pipeline, upsert=True,
                        return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:  # two upserts inserted at once: the loser adds to the winner
                if tries:
                    continue
                raise
            assert doc is not None  # an upsert returning the document after always finds one
            return int(doc["count"])
