"""A store seen through something: the base of the request's store wrappers (the access guard,
the audit). Everything passes through to ``store``; a subclass overrides what it changes."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from fhir_server.search import ir
from fhir_server.store.base import HistoryQuery, SearchPage, SearchQuery, Store, StoredResource, Tx


class StoreView:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.name = store.name
        self.capabilities = store.capabilities

    def read(self, type: str, id: str) -> StoredResource | None:
        return self.store.read(type, id)

    def vread(self, type: str, id: str, version: int) -> StoredResource | None:
        return self.store.vread(type, id, version)

    def history(self, query: HistoryQuery) -> list[StoredResource]:
        return self.store.history(query)

    def search(self, query: SearchQuery) -> SearchPage:
        return self.store.search(query)

    def count(self, types: tuple[str, ...], where: ir.Node) -> int:
        return self.store.count(types, where)

    def transaction(self) -> AbstractContextManager[Tx]:
        return self.store.transaction()

    def ping(self) -> None:
        self.store.ping()

    def secret(self, name: str, length: int = 32) -> bytes:
        return self.store.secret(name, length)

    def close(self) -> None:
        self.store.close()

    # auth state belongs to the server, not to the caller: passed through
    def registry_get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.store.registry_get(kind, key)

    def registry_put(self, kind: str, key: str, value: dict[str, Any],
                     expires: int | None = None) -> None:
        self.store.registry_put(kind, key, value, expires)

    def registry_add(self, kind: str, key: str, value: dict[str, Any],
                     expires: int | None = None) -> bool:
        return self.store.registry_add(kind, key, value, expires)

    def registry_delete(self, kind: str, key: str) -> bool:
        return self.store.registry_delete(kind, key)

    def registry_list(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return self.store.registry_list(kind)

    def registry_incr(self, kind: str, key: str, amount: int, expires: int | None = None) -> int:
        return self.store.registry_incr(kind, key, amount, expires)
