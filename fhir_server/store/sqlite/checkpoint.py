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
                if stopped.wait(self.interval_s):  # let a burst of commits finish first
                    break  # stopping: no checkpoint (the store's last close does one)
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

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread and wait until it has closed its connection.

        Waiting matters before a fork: ``fhir-server serve`` writes the conformance resources in
        the gunicorn master, closes the store, then forks the workers. A fork copies SQLite's
        in-process lock bookkeeping as it is at that instant; if this thread was inside a
        checkpoint then, a worker inherited a lock that no thread of its own would ever release,
        waited the whole busy timeout for it and failed to boot ("database is locked", and
        gunicorn shut the server down). Seen once in about twenty benchmark starts."""
        self._stopped.set()
        self._pending.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() \
                and self._pid == os.getpid():
            thread.join(timeout)
