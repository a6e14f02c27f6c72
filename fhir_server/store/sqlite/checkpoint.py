"""WAL checkpoints off the request path.

In WAL mode every commit appends pages to the ``-wal`` file, and by default the commit that takes the
WAL past 1000 pages copies them all back into the database file and fsyncs it: one write in ~60 pays
~10 ms for the others. Here each process runs a daemon thread that checkpoints (``PASSIVE``: never
blocks readers or writers) shortly after writes, on its own connection, so requests never do. The
automatic checkpoint stays on with a high threshold as a safety valve if the thread falls behind.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: Request connections checkpoint themselves only past this many WAL pages (~40 MB).
AUTOCHECKPOINT_PAGES = 10000


class Checkpointer:
    """One background checkpoint thread per process (started on the first write after a fork)."""

    def __init__(self, path: Path, busy_timeout_ms: int, interval_s: float = 0.2) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.interval_s = interval_s
        self._pending = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        """Note a commit; the thread checkpoints within ``interval_s``."""
        thread = self._thread
        if self._pid != os.getpid() or thread is None or not thread.is_alive():
            self._start()
        self._pending.set()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            # a forked child (or a restart after stop()) must not share the old thread's events
            self._pending, self._stopped = threading.Event(), threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._pending, self._stopped),
                                            name="sqlite-checkpoint", daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def _run(self, pending: threading.Event, stopped: threading.Event) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not stopped.is_set():
                if not pending.wait(timeout=1.0):
                    continue
                stopped.wait(self.interval_s)  # let a burst of commits finish first
                pending.clear()
                if conn is None:
                    conn = sqlite3.connect(self.path, isolation_level=None,
                                           timeout=self.busy_timeout_ms / 1000)
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy, or the file went away: try again later
                    log.debug("WAL checkpoint of %s skipped: %s", self.path, exc)
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        """End the thread (promptly: the pending event is set to wake it)."""
        self._stopped.set()
        self._pending.set()
