"""Choose a store from its URL (``FHIR_STORE``)."""

from __future__ import annotations

from fhir_server.config import Settings
from fhir_server.store.base import Store


def open_store(settings: Settings) -> Store:
    url = settings.store_url
    if url.startswith("sqlite:"):
        from fhir_server.store.sqlite import SqliteStore

        return SqliteStore.from_url(
            url,
            synchronous=settings.sqlite_synchronous,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            mmap_mb=settings.sqlite_mmap_mb,
        )
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from fhir_server.store.mongo import MongoStore

        return MongoStore.from_url(url)  # the database: the URL's path, default ehc_fhir
    raise ValueError(
        f"unsupported store URL {url!r}: use sqlite:///path/to/file.db or mongodb://host/database")
