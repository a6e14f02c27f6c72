"""Request ids, the JSON access log (one line per request) and the health endpoints."""

from __future__ import annotations

import gc
import itertools
import logging
import os
import re
import threading
import time
import uuid

import orjson
from flask import Blueprint, Flask, Response, g, request

from fhir_server.api.http import services
from fhir_server.auth import audit
from fhir_server.store import StoreUnavailable

access_log = logging.getLogger("fhir_server.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

health = Blueprint("health", __name__)


class _RequestIds:
    """Unique request ids without a system call per request: a random per-process prefix and a
    counter. The prefix is drawn again in a forked child (gunicorn workers), before any thread
    of the child can ask for an id, so all threads of one worker share one prefix."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"


_ids = _RequestIds()


class _Heap:
    """The process's start-up heap (the R4 tables, the search registry, profiles, terminology:
    over 130,000 containers, millions of references) moved out of the garbage collector's sight
    once, when the process has served its first request (which loads what is loaded lazily).

    Without this, every full collection traverses all of it (80-120 ms on the benchmark machine),
    and full collections come every few thousand requests (each request that leaves objects
    alive across a collection, like a queued audit job, brings the next one closer): on average
    tens of microseconds per request. ``gc.freeze`` keeps those objects out of collections; they
    are still freed as usual when no longer referenced (only a reference cycle among them would
    never be collected, and the start-up tables live as long as the process). Garbage already
    there is collected first. Once per process."""

    def __init__(self) -> None:
        self.settled = False
        self._lock = threading.Lock()

    def settle(self) -> None:
        with self._lock:
            if self.settled:
                return
            self.settled = True
            gc.collect()
            gc.freeze()


_heap = _Heap()


def _start() -> None:
    g.start = time.perf_counter()
    given = request.headers.get("X-Request-Id")
    g.request_id = given if given and _REQUEST_ID.fullmatch(given) else _ids.next()


def _finish(response: Response) -> Response:
    if not _heap.settled:
        _heap.settle()
    elapsed_ms = (time.perf_counter() - g.get("start", time.perf_counter())) * 1000
    request_id = g.get("request_id") or _ids.next()
    response.headers["X-Request-Id"] = request_id
    response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.3f}"
    if services().settings.access_log:
        access_log.info(
            orjson.dumps(
                {
                    "ts": round(time.time(), 3),
                    "request_id": request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed_ms, 3),
                }
            ).decode()
        )
    return response


def register(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.after_request(audit.after_request)  # runs before _finish (Flask: reverse order)
    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False


@health.get("/healthz")
def healthz() -> Response:
    """The process is alive."""
    return Response(b'{"status":"ok"}', content_type="application/json")


@health.get("/readyz")
def readyz() -> Response:
    """The store answers."""
    store = services().store
    try:
        store.ping()
    except StoreUnavailable as exc:
        body = orjson.dumps({"status": "unavailable", "store": store.name, "detail": str(exc)})
        return Response(body, status=503, content_type="application/json")
    return Response(orjson.dumps({"status": "ready", "store": store.name}),
                    content_type="application/json")
