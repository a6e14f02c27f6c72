"""The embedded SQLite store (the default: nothing to install)."""

from fhir_server.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
