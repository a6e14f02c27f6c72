"""Storage: the :class:`Store` protocol and its implementations (SQLite now, MongoDB next)."""

from fhir_server.store.base import (
    HistoryQuery,
    NewVersion,
    SearchPage,
    SearchQuery,
    SortSpec,
    Store,
    StoredResource,
    StoreError,
    StoreUnavailable,
    Tx,
    UniqueViolation,
    VersionConflict,
)
from fhir_server.store.factory import open_store

__all__ = [
    "HistoryQuery",
    "NewVersion",
    "SearchPage",
    "SearchQuery",
    "SortSpec",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredResource",
    "Tx",
    "UniqueViolation",
    "VersionConflict",
    "open_store",
]
