"""WAL checkpoints run in a background thread, not in the request that crosses the threshold."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from fhir_server.store import NewVersion
from fhir_server.store.sqlite import SqliteStore
from fhir_server.store.sqlite.checkpoint import AUTOCHECKPOINT_PAGES


def _write(store: SqliteStore, n: int, prefix: str = "b") -> None:
    for i in range(n):
        with store.transaction() as tx:
            tx.put(NewVersion("Basic", f"{prefix}{i}", 1, 1_700_000_000_000_000 + i, "POST",
                              b'{"resourceType":"Basic","text":"' + b"x" * 2000 + b'"}'), 0)


def test_request_connections_leave_checkpoints_to_the_thread(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    try:
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == AUTOCHECKPOINT_PAGES
        before = (tmp_path / "c.db").stat().st_size
        _write(store, 200)  # ~1000 WAL pages: far below the request-path threshold
        deadline = time.monotonic() + 10
        while (tmp_path / "c.db").stat().st_size <= before + 200 * 2000:
            assert time.monotonic() < deadline, "the background checkpoint never ran"
            time.sleep(0.05)
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("SELECT count(*) FROM history").fetchone()[0] == 200


def test_close_stops_the_thread_and_a_later_write_restarts_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    _write(store, 1)
    thread = store._checkpointer._thread
    assert thread is not None and thread.is_alive()
    store.close()
    assert not thread.is_alive()  # close() waits for it: nothing of SQLite runs at a fork
    with store.transaction() as tx:
        tx.put(NewVersion("Basic", "again", 1, 1_800_000_000_000_000, "POST", b"{}"), 0)
    assert store._checkpointer._thread is not None and store._checkpointer._thread.is_alive()
    store.close()


def test_close_waits_for_a_checkpoint_in_progress(tmp_path: Path) -> None:
    """The master of ``fhir-server serve`` writes, closes the store and forks: by then the
    checkpoint thread must be gone, or a worker inherits SQLite's lock state mid-checkpoint."""
    store = SqliteStore(tmp_path / "c.db")
    store._checkpointer.interval_s = 0.0  # checkpoint as soon as a write is noted
    for i in range(20):
        _write(store, 5, prefix=f"r{i}-")
        thread = store._checkpointer._thread
        assert thread is not None
        time.sleep(0.001 * (i % 5))  # close at different points of the thread's work
        store.close()
        assert not thread.is_alive()
