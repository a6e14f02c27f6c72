"""The clients' rate limits: at most ``rate_limit`` FHIR requests per minute per client, counted for
the whole server (every worker process), not per process.

Where: :func:`check` runs once per authenticated FHIR request (``api/access.py``, after the token
is known, before anything is done). Over the limit it raises :class:`Throttled`: 429 with
``Retry-After`` and an OperationOutcome (``throttled``), audited like any refused request. A request
refused this way is not counted (a client that keeps knocking is let in again as its earlier
requests age out). The token endpoint is not limited: its caller is not known until the signature
of its assertion has been checked, which is the work a limit would spare (see README).

How (a sliding window over fixed windows, shared through the store's registry):

* Time is cut into windows of ``window_s`` seconds (60: the limit is per minute; tests shorten
  it) aligned on the Unix epoch, so every process agrees on them. The count of window *w* for a
  client is one registry counter (kind ``rate``, key ``"<client_id> <window_s> <w>"``, expiring
  two windows after its own), increased with :meth:`~fhir_server.store.Store.registry_incr`, atomic across
  processes.
* A request is let in when ``previous * (1 - elapsed/window) + current + 1 <= limit``: the
  previous window's count, weighted by how much of it still lies within the last ``window_s``
  seconds, plus the current window's (the usual approximation of a sliding window; it smooths the
  burst of twice the limit a fixed window allows across its boundary).
* Each process counts locally and **syncs** with the store: it adds its unsynced requests to the
  shared counter and reads back the total. It syncs every :data:`SYNC_S` seconds, when the window
  changes, and as soon as it has let in ``max(1, limit // SHARE)`` requests since the last sync;
  a client's limit itself is re-read every :data:`LIMIT_S` seconds (the grants' cache time, so a
  changed limit applies within ~2 s). Between syncs a request costs a dict lookup, a comparison and
  an increment under a lock (~1 µs, ``bench/rate_limit_cost.py``); a sync costs one or two registry
  statements (~45 µs on SQLite), done by the request that finds it due.

**How approximate.** A process does not see what the others let in since their last sync. In the
worst case (a burst spread over all ``P`` processes at once) a window can let in up to about
``(P + 1) * max(1, limit // SHARE)`` requests over the limit: each process up to one sync share
beyond what it last saw, plus the share whose sync crossed the limit (and, with threaded workers,
what a process's other threads let in during the store round trip of a sync in progress). With 4
workers and a limit of 600/min that is at most ~150 (25 %) in a worst-case burst; in steady
traffic a process's unsynced share is what it lets in during 0.5 s, so the overshoot is a few
requests. Limits under ``SHARE`` requests per window sync on every request and overshoot by at
most about ``P + 1``. The previous window's count is read once, when a process enters the next
window, so requests other processes had not synced by then are missed (they weigh less and less as
the window moves on). If the store cannot be reached, a process keeps counting locally (each
process then enforces the limit on its own) and retries at the next sync.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from fhir_server.auth.clients import ClientRegistry
from fhir_server.auth.grants import CACHE_SECONDS
from fhir_server.errors import FhirError
from fhir_server.store import Store, StoreUnavailable

log = logging.getLogger("fhir_server.auth")

KIND = "rate"
SYNC_S = 0.5  # a process adds its counts to the shared counter at least this often
LIMIT_S = CACHE_SECONDS  # a client's limit is re-read this often (a change applies within it)
SHARE = 20  # ... and as soon as it has let in 1/SHARE of the limit since its last sync


class Throttled(FhirError):
    """The client is over its rate limit (429 Too Many Requests, with ``Retry-After``)."""

    status, code = 429, "throttled"


def estimate(previous: int, current: int, elapsed: float, window: float) -> float:
    """The requests of the last ``window`` seconds, estimated from the previous window's count
    and the current one's, ``elapsed`` seconds into the current window."""
    return previous * max(0.0, 1.0 - elapsed / window) + current


def retry_after(limit: int, previous: int, current: int, elapsed: float, window: float) -> float:
    """Seconds until one more request fits (if no other comes): until the estimate is at most
    ``limit - 1``."""
    room = limit - 1
    if current <= room:  # the previous window has to age out enough
        if previous <= 0:
            return 0.0
        return max(0.0, (1.0 - (room - current) / previous) * window - elapsed)
    # the current window alone is over: wait for the next one, where it becomes the previous one
    return (window - elapsed) + (1.0 - room / current) * window


@dataclass(eq=False, slots=True)
class _Counter:
    """One client's count in one process (fields guarded by the limiter's lock)."""

    loaded: bool = False  # its limit was read once
    limit: int | None = None
    limit_due: float = 0.0  # when to read the limit again
    window: int = -1  # the window the counts below belong to
    window_end: float = 0.0
    previous: int = 0  # the previous window's total (all processes), as read when entering this one
    total: int = 0  # this window's total (all processes) as of the last sync
    pending: int = 0  # let in by this process since the last sync
    inflight: int = 0  # being added to the store by a sync in progress
    due: float = 0.0  # when to sync again
    flush_at: float = math.inf  # ... or when ``pending`` reaches this


class RateLimiter:
    """The rate limits of one process over one store (see the module docstring)."""

    def __init__(self, store: Store, window_s: float = 60.0) -> None:
        if not window_s > 0:
            raise ValueError("the rate-limit window must be a positive number of seconds")
        self.store = store
        self.window_s = float(window_s)
        self._counters: dict[str, _Counter] = {}
        self._lock = threading.Lock()  # counter fields
        self._io = threading.Lock()  # one sync at a time

    def check(self, client_id: str) -> None:
        """Count one request of ``client_id``, or raise :class:`Throttled` (nothing counted)."""
        now = time.time()
        counter = self._counters.get(client_id)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(client_id, _Counter())
        if now >= counter.due or counter.pending >= counter.flush_at:
            self._sync(client_id, counter)
        with self._lock:
            limit = counter.limit
            if limit is None:
                return
            elapsed = now - (counter.window_end - self.window_s)
            current = counter.total + counter.inflight + counter.pending
            if estimate(counter.previous, current, elapsed, self.window_s) + 1 <= limit:
                counter.pending += 1
                return
            wait = retry_after(limit, counter.previous, current, elapsed, self.window_s)
        seconds = max(1, math.ceil(wait))
        per = "minute" if self.window_s == 60 else f"{self.window_s:g} s"
        raise Throttled(f"Client {client_id!r} is over its rate limit of {limit} requests per {per};"
                        f" retry after {seconds} s", headers={"Retry-After": str(seconds)})

    # -- the slow path ----------------------------------------------------------------------------
    def _sync(self, client_id: str, counter: _Counter) -> None:
        """Add this process's counts to the store and read back the totals (and, when due, the
        client's limit). A client seen for the first time waits for it; otherwise, while another
        thread syncs, the request goes on with what is known."""
        if not self._io.acquire(blocking=not counter.loaded):
            return
        try:
            now = time.time()
            if counter.loaded and now < counter.due and counter.pending < counter.flush_at:
                return  # another thread synced it meanwhile
            self._sync_locked(client_id, counter, now)
        finally:
            self._io.release()

    def _sync_locked(self, client_id: str, counter: _Counter, now: float) -> None:
        window = int(now // self.window_s)
        with self._lock:
            flush, counter.pending = counter.pending, 0
            counter.inflight = flush
            old, limit, limit_due = counter.window, counter.limit, counter.limit_due
        counting = limit is not None  # counts were kept (and "previous" read) until now
        previous = total = 0
        try:
            if not counter.loaded or now >= limit_due:
                limit, limit_due = self._limit_of(client_id), now + LIMIT_S
            if limit is not None:
                if not counting:
                    old = -1  # nothing known yet: read both windows
                previous, total = self._exchange(client_id, counter, old, window, flush)
        except StoreUnavailable as exc:
            log.warning("rate limit of client %s: the store cannot be reached (%s); counting in"
                        " this process only until it can", client_id, exc)
            with self._lock:
                counter.inflight = 0
                if old == window:
                    counter.pending += flush  # added at the next sync
                else:  # a new window: what this process knows of the old one becomes "previous"
                    counter.previous = counter.total + flush if old == window - 1 else 0
                    counter.total = 0
                    counter.window, counter.window_end = window, (window + 1) * self.window_s
                counter.loaded = True
                counter.limit, counter.limit_due = limit, limit_due
                counter.due = min(now + SYNC_S, counter.window_end, limit_due)
            return
        with self._lock:
            counter.inflight = 0
            counter.previous, counter.total = previous, total
            counter.window, counter.window_end = window, (window + 1) * self.window_s
            counter.loaded = True
            counter.limit, counter.limit_due = limit, limit_due
            if limit is None:  # nothing to count: only the limit is re-read
                counter.flush_at, counter.due = math.inf, limit_due
            else:
                counter.flush_at = max(1, limit // SHARE)
                counter.due = min(now + SYNC_S, counter.window_end, limit_due)

    def _exchange(self, client_id: str, counter: _Counter, old: int, window: int,
                  flush: int) -> tuple[int, int]:
        """Add ``flush`` requests (of window ``old``) to the store; the totals of the window
        before ``window`` and of ``window``."""
        if old == window:
            return counter.previous, self._add(client_id, window, flush)
        if old == window - 1 and flush:  # the counts of the window just ended, and its total
            previous = self._add(client_id, old, flush)
        else:  # (counts of older windows no longer matter)
            previous = self._read(client_id, window - 1)
        return previous, self._read(client_id, window)

    def _key(self, client_id: str, window: int) -> str:
        return f"{client_id} {self.window_s:g} {window}"

    def _add(self, client_id: str, window: int, amount: int) -> int:
        if not amount:
            return self._read(client_id, window)
        expires = math.ceil((window + 3) * self.window_s)  # read as "previous" up to two windows on
        return self.store.registry_incr(KIND, self._key(client_id, window), amount, expires)

    def _read(self, client_id: str, window: int) -> int:
        found = self.store.registry_get(KIND, self._key(client_id, window))
        return int(found.get("count", 0)) if found else 0

    def _limit_of(self, client_id: str) -> int | None:
        client = ClientRegistry(self.store).get(client_id)
        return client.rate_limit if client is not None else None


_limiters: weakref.WeakKeyDictionary[Any, RateLimiter] = weakref.WeakKeyDictionary()
_limiters_lock = threading.Lock()


_last: tuple[weakref.ref[Any], RateLimiter] | None = None  # the store asked last, its limiter


def limiter(store: Store, window_s: float) -> RateLimiter:
    """This process's limiter over ``store`` (one per store handle, like the grants' cache)."""
    global _last
    last = _last
    if last is not None and last[0]() is store and last[1].window_s == window_s:
        return last[1]
    found = _limiters.get(store)
    if found is None or found.window_s != window_s:
        with _limiters_lock:
            found = _limiters.get(store)
            if found is None or found.window_s != window_s:
                found = _limiters[store] = RateLimiter(store, window_s)
    _last = (weakref.ref(store), found)
    return found


def check(store: Store, window_s: float, client_id: str) -> None:
    """Count one request of ``client_id`` against its limit; :class:`Throttled` if over it."""
    limiter(store, window_s).check(client_id)
