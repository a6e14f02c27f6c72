"""The SQLite store's connection settings, from the environment to each connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_server.config import Settings
from fhir_server.store import open_store
from fhir_server.store.sqlite import SqliteStore


def _pragma(store: SqliteStore, name: str) -> int:
    return int(store.conn.execute(f"PRAGMA {name}").fetchone()[0])


def test_connections_read_through_a_memory_map_unless_turned_off(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = open_store(Settings.from_env({"FHIR_STORE": url, "FHIR_SQLITE_MMAP_MB": "64"}))
    assert isinstance(store, SqliteStore)
    try:
        assert _pragma(store, "mmap_size") == 64 * 1024 * 1024
    finally:
        store.close()
    off = open_store(Settings.from_env({"FHIR_STORE": url, "FHIR_SQLITE_MMAP_MB": "0"}))
    assert isinstance(off, SqliteStore)
    try:
        assert _pragma(off, "mmap_size") == 0
    finally:
        off.close()
    default = SqliteStore(tmp_path / "f.db")
    try:
        assert _pragma(default, "mmap_size") > 0  # capped by SQLite's build (2 GB in most)
    finally:
        default.close()


def test_a_negative_map_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FHIR_SQLITE_MMAP_MB"):
        SqliteStore(tmp_path / "f.db", mmap_mb=-1)
