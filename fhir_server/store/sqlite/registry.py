"""The registry part of the Store protocol on SQLite: a small key-value table for shared state.

One row per (kind, key): the value as JSON, an optional expiry (unix seconds). Each operation is a
single autocommit statement, so it is atomic across processes: :meth:`registry_add` is an insert
that overwrites only an expired row (``ON CONFLICT ... DO UPDATE ... WHERE expired``), and the
number of rows it changed says whether this caller won. :meth:`registry_incr` is one upsert that
adds to the row's JSON ``count`` (or starts it over if the row has expired) and returns the sum.
Expired rows are invisible to reads and are purged now and then by writers.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from typing import Any

import orjson

from fhir_server.store.base import StoreUnavailable

_PURGE_EVERY = 256  # writes between two purges of expired rows (per process)


def _now() -> int:
    return int(time.time())


class SqliteRegistry:
    """Mixed into :class:`~fhir_server.store.sqlite.store.SqliteStore` (uses its ``conn``)."""

    conn: sqlite3.Connection
    _registry_writes = itertools.count()

    def _registry(self, sql: str, args: tuple[Any, ...] | dict[str, Any]) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, args)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite registry access failed: {exc}") from exc

    def _written(self) -> None:
        if next(self._registry_writes) % _PURGE_EVERY == 0:
            self._registry("DELETE FROM registry WHERE expires IS NOT NULL AND expires <= ?",
                           (_now(),))

    def registry_get(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self._registry(
            "SELECT value FROM registry WHERE kind = ? AND key = ?"
            " AND (expires IS NULL OR expires > ?)", (kind, key, _now())).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def registry_put(self, kind: str, key: str, value: dict[str, Any],
                     expires: int | None = None) -> None:
        self._registry(
            "INSERT INTO registry (kind, key, value, expires) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value,"
            " expires = excluded.expires", (kind, key, orjson.dumps(value), expires))
        self._written()

    def registry_add(self, kind: str, key: str, value: dict[str, Any],
                     expires: int | None = None) -> bool:
        cur = self._registry(
            "INSERT INTO registry (kind, key, value, expires) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value,"
            " expires = excluded.expires"
            " WHERE registry.expires IS NOT NULL AND registry.expires <= ?",
            (kind, key, orjson.dumps(value), expires, _now()))
        added = cur.rowcount == 1
        self._written()
        return added

    def registry_delete(self, kind: str, key: str) -> bool:
        cur = self._registry(
            "DELETE FROM registry WHERE kind = ? AND key = ? AND (expires IS NULL OR expires > ?)",
            (kind, key, _now()))
        return cur.rowcount > 0

    def registry_list(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self._registry(
            "SELECT key, value FROM registry WHERE kind = ? AND (expires IS NULL OR expires > ?)"
            " ORDER BY key", (kind, _now())).fetchall()
        return [(row[0], dict(orjson.loads(row[1]))) for row in rows]

    def registry_incr(self, kind: str, key: str, amount: int, expires: int | None = None) -> int:
        cur = self._registry(
            "INSERT INTO registry (kind, key, value, expires)"
            " VALUES (:kind, :key, json_object('count', :amount), :expires)"
            " ON CONFLICT (kind, key) DO UPDATE SET"
            " value = CASE WHEN registry.expires IS NOT NULL AND registry.expires <= :now"
            "  THEN excluded.value ELSE json_object('count', :amount + coalesce(json_extract("
            "  CAST(registry.value AS TEXT), '$.count'), 0)) END,"
            " expires = CASE WHEN registry.expires IS NOT NULL AND registry.expires <= :now"
            "  THEN excluded.expires ELSE registry.expires END"
            " RETURNING json_extract(value, '$.count')",
            {"kind": kind, "key": key, "amount": int(amount), "expires": expires, "now": _now()})
        try:
            rows = cur.fetchall()  # read to the end: the statement (and its write) completes
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite registry access failed: {exc}") from exc
        self._written()
        return int(rows[0][0])
