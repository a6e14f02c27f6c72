"""The per-process background writer of read audits.

Reads and searches write nothing, so their AuditEvents are not in a data transaction: the request
thread queues a small job after the response is built (before it is sent), and one thread per
process builds the events and writes every job of a round (every :attr:`AuditWriter.interval`
seconds: ``FHIR_AUDIT_INTERVAL_MS``, default 1 s) in ONE store transaction per store. A read then
costs the request a few microseconds, and the store one transaction per round rather than one per
read. Rounds are spaced rather than back to back because every commit to the SQLite file makes
every other connection of every process drop its page cache and memory map, and each round writes
about one page per event to the patient index (docs/PERFORMANCE.md, sixth session: with 0.1 s
rounds the server spent ~20 % more CPU per read with auth on than with 1 s rounds).

What this trades: a read audit sits in memory for up to about one interval. If the process is
killed in that window (SIGKILL, a crash, the OOM killer, power loss) those audits are lost; a
graceful stop (SIGTERM to a gunicorn worker, interpreter exit) flushes them, and so does
:meth:`AuditWriter.flush` (it starts the next round at once). Write audits never wait here: they
are written in the data's own transaction (:mod:`fhir_server.auth.audit_store`).

Fail closed: if the store refuses the audits, the round is retried (with back-off) and jobs pile
up; past :data:`MAX_BACKLOG` queued jobs :meth:`AuditWriter.submit` returns False and the request
is answered 503 instead of with unaudited data. A round failing :data:`MAX_ATTEMPTS` times in a row
(about a minute) is dropped with an error log.

In one process the writer's transaction never overlaps a request's write transaction
(:func:`writing`, a shared/exclusive lock per store: requests share it, the writer takes it alone,
waiting at most :data:`EXCLUSIVE_WAIT` seconds), so a round of read audits cannot make a request's
write lose a race and retry (the MongoDB emulator of the test suite even fails every later commit
of other sessions after one conflicting commit).

Closing a store writes its queued audits first: the first job for a store wraps that store
object's ``close`` so that it flushes the queue, and afterwards the writer never touches it again
(a closed MongoDB store would otherwise reconnect to write them).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any

from fhir_server.config import Settings
from fhir_server.fhir.audit_record import AuditRecord
from fhir_server.store import Store, VersionConflict

log = logging.getLogger("fhir_server.audit")

INTERVAL = Settings.audit_interval_ms / 1000  # seconds between rounds: the setting's default
MAX_BACKLOG = 20_000  # queued jobs before requests are refused
MAX_ATTEMPTS = 40  # failed writes of one round before it is dropped (back-off 0.1 s doubling to 2 s)
EXCLUSIVE_WAIT = 1.0  # seconds the writer waits for requests' write transactions to end
_FIRST_BACKOFF = 0.1
_MAX_BACKOFF = 2.0
_CONFLICT_RETRIES = 12

#: builds the audit records of one request (called in the writer thread, with the arguments
#: queued with it)
Job = Callable[..., list[AuditRecord]]


class AuditWriter:
    def __init__(self, interval: float = INTERVAL, max_backlog: int = MAX_BACKLOG) -> None:
        self.interval = interval
        self.max_backlog = max_backlog
        self._pid = -1
        self._reset()
        # a forked child starts with an empty queue and no thread (checked here rather than with a
        # getpid() system call on every submit)
        os.register_at_fork(after_in_child=partial(_reset_in_child, weakref.ref(self)))

    def _reset(self) -> None:
        self._cond = threading.Condition()
        # appended by request threads without the lock (deque.append is atomic), drained by the
        # writer thread under it
        self._jobs: collections.deque[tuple[Any, ...]] = collections.deque()  # (store, job, *args)
        self._retry: list[tuple[Store, list[AuditRecord], int]] = []
        self._busy = False
        self._flushing = 0  # flush() calls waiting
        self._watched: set[int] = set()  # id() of the stores whose close flushes first
        self._closed: set[int] = set()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def submit(self, store: Store, job: Job, *args: Any) -> bool:
        """Queue ``job(*args)``; False (nothing queued) when the backlog is full.

        Called for every audited request, so the usual case takes no lock: the writer thread is
        running, the store is known and open, the backlog is short; then one ``deque.append`` of
        one flat tuple (a waiting request is one object for the garbage collector to track)."""
        thread, key = self._thread, id(store)
        if thread is None or not thread.is_alive() or len(self._jobs) >= self.max_backlog \
                or key not in self._watched or key in self._closed:
            return self._submit_checked(store, (store, job, *args))
        self._jobs.append((store, job, *args))
        return True

    def _submit_checked(self, store: Store, item: tuple[Any, ...]) -> bool:
        with self._cond:
            self._ensure_thread()
            if len(self._jobs) >= self.max_backlog:
                return False
            if id(store) not in self._watched:
                self._watch(store)
            self._closed.discard(id(store))
            self._jobs.append(item)
            return True

    def _watch(self, store: Store) -> None:
        """Make ``store.close()`` write this store's queued audits first."""
        original = store.close

        def close() -> None:
            self.flush(timeout=5.0)
            with self._cond:
                self._closed.add(id(store))
            original()

        try:
            setattr(store, "close", close)  # noqa: B010  (an instance attribute, on purpose)
        except AttributeError:  # a store class without instance attributes: no flush at close
            return
        self._watched.add(id(store))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._pid != os.getpid():
                return True
            self._flushing += 1  # the writer starts its next round now rather than at its pace
            try:
                self._cond.notify_all()
                while self._jobs or self._retry or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(min(left, self.interval))
            finally:
                self._flushing -= 1
        return True

    def pending(self) -> int:
        with self._cond:
            return len(self._jobs) + sum(len(v) for _, v, _ in self._retry)

    # -- the writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = _FIRST_BACKOFF
        due = 0.0  # time.monotonic() before which no round starts (the pace, or a failure's back-off)
        while True:
            with self._cond:
                while True:
                    pending = bool(self._jobs or self._retry)
                    wait = due - time.monotonic()
                    # a flush() waiting cuts the pace short, never a failure's back-off (only a
                    # failed round leaves records to retry)
                    if pending and (wait <= 0 or (self._flushing and not self._retry)):
                        break
                    # request threads queue without notifying: an idle writer looks every interval
                    self._cond.wait(wait if pending else self.interval)
                jobs = self._take()
                retry, self._retry = self._retry, []
                self._busy = True
            failed = self._round(jobs, retry)
            with self._cond:
                self._retry = failed + self._retry
                self._busy = False
                self._cond.notify_all()
            if failed:
                due = time.monotonic() + backoff
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                backoff = _FIRST_BACKOFF
                due = time.monotonic() + self.interval

    def _take(self) -> list[tuple[Any, ...]]:
        """Everything queued so far (request threads may append meanwhile: those wait for the
        next round)."""
        queue, jobs = self._jobs, []
        for _ in range(len(queue)):
            jobs.append(queue.popleft())
        return jobs

    def _round(self, jobs: list[tuple[Any, ...]],
               retry: list[tuple[Store, list[AuditRecord], int]]
               ) -> list[tuple[Store, list[AuditRecord], int]]:
        """Build the jobs' events and write them, one transaction per store; returns what failed
        (with its number of failed attempts)."""
        by_store: dict[int, tuple[Store, list[AuditRecord], int]] = {}
        for store, records, attempts in retry:
            by_store[id(store)] = (store, records, attempts)
        for item in jobs:
            store = item[0]
            try:
                records = item[1](*item[2:])
            except Exception:  # a bug building one event must not lose the others
                log.exception("building an audit event failed; that request's audit is lost")
                continue
            by_store.setdefault(id(store), (store, [], 0))[1].extend(records)
        failed = []
        for store, records, attempts in by_store.values():
            with self._cond:
                closed = id(store) in self._closed
            if closed:
                log.error("%d audit events queued for a closed store are lost", len(records))
                continue
            if not records:
                continue
            try:
                write(store, records)
            except Exception:
                if attempts + 1 >= MAX_ATTEMPTS:
                    log.exception("writing %d audit events failed %d times; they are lost",
                                  len(records), attempts + 1)
                    continue
                log.exception("writing %d audit events failed; retrying", len(records))
                failed.append((store, records, attempts + 1))
        return failed


def _reset_in_child(ref: weakref.ref[AuditWriter]) -> None:
    found = ref()
    if found is not None:
        found._reset()  # the parent's thread and queue are not the child's


def write(store: Store, records: list[AuditRecord], *, exclusive: bool = True) -> None:
    """Append audit records in one transaction (one ``append_audit``); ``exclusive`` False: from
    a request thread (shares the lock with other requests).

    New ids never collide, so a :class:`VersionConflict` can only be a transient conflict of the
    transaction (MongoDB's WriteConflict, which the driver documentation says to retry): retried
    at once a few times."""
    for attempt in range(_CONFLICT_RETRIES):
        try:
            with writing(store, exclusive=exclusive), store.transaction() as tx:
                tx.append_audit(records)
            return
        except VersionConflict:
            if attempt == _CONFLICT_RETRIES - 1:
                raise
            time.sleep(min(0.001 * 2**attempt, 0.05))


class _SharedExclusive:
    """Many holders of the shared side, or one of the exclusive side (which waits at most
    ``wait`` seconds for the shared holders to leave, then goes ahead). Shared acquisitions never
    wait for a waiting exclusive one, so nested shared ones cannot deadlock."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextmanager
    def hold(self, exclusive: bool, wait: float = EXCLUSIVE_WAIT) -> Iterator[None]:
        with self._cond:
            if exclusive:
                deadline = time.monotonic() + wait
                while (self._shared or self._exclusive) and time.monotonic() < deadline:
                    self._cond.wait(max(0.0, deadline - time.monotonic()))
                self._exclusive = True
            else:
                while self._exclusive:
                    self._cond.wait()
                self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                if exclusive:
                    self._exclusive = False
                else:
                    self._shared -= 1
                self._cond.notify_all()


_locks: weakref.WeakKeyDictionary[Any, _SharedExclusive] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def writing(store: Store, *, exclusive: bool = False) -> AbstractContextManager[None]:
    """Hold ``store``'s write lock of this process (see the module docstring)."""
    with _locks_guard:
        lock = _locks.get(store)
        if lock is None:
            lock = _locks[store] = _SharedExclusive()
    return lock.hold(exclusive)


_writer = AuditWriter()


def writer() -> AuditWriter:
    return _writer


@atexit.register
def _flush_at_exit() -> None:
    if _writer.pending():
        _writer.flush(timeout=5.0)
