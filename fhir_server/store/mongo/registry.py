"""The registry part of the Store protocol on MongoDB: the ``registry`` collection.

One document per (kind, key) (a unique index): ``value`` (the JSON text, so any key names are
safe), ``expires`` (unix seconds or null) and ``expires_at`` (the same as a date, for the TTL index
that deletes expired documents; MongoDB does so lazily, so reads filter on ``expires`` too).
:meth:`registry_add` is one upsert whose filter matches only an expired document: an unexpired one
makes the upsert insert a duplicate, which the unique index refuses, so exactly one of several
racing callers wins.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

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
