"""The simplest Flask + SQLite endpoint serving a stored JSON document: the benchmark's baseline.

It runs under gunicorn with the same worker class, workers, threads and keep-alive as ``fhir-server
serve`` (``bench/load.py`` starts it), so "ours / bare" isolates what our server adds per request:
content negotiation, parameter checks, ETag/Last-Modified, request ids, Server-Timing, the access log.

    BARE_DB=/tmp/bare.db gunicorn --chdir bench -k gthread -w 2 --threads 4 --keep-alive 5 \\
        'bare_app:create_app()'

``GET /fhir/Patient/<id>``: one ``SELECT body FROM resources WHERE id = ?`` on a per-thread WAL
connection, the bytes returned as they are. ``POST /fhir/Patient``: keeps the body's ``id`` (or makes
one), inserts, 201 with a Location header.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid

import orjson
from flask import Flask, Response, request

FHIR_JSON = "application/fhir+json"
_SCHEMA = "CREATE TABLE IF NOT EXISTS resources (id TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID"


def create_app(db_path: str | None = None) -> Flask:
    path = db_path or os.environ.get("BARE_DB", "bare.db")
    local = threading.local()

    def conn() -> sqlite3.Connection:
        c: sqlite3.Connection | None = getattr(local, "conn", None)
        if c is None:
            c = sqlite3.connect(path, isolation_level=None, timeout=15)
            c.execute("PRAGMA journal_mode = WAL")
            c.execute("PRAGMA synchronous = NORMAL")
            local.conn = c
        return c

    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute(_SCHEMA)
    setup.close()

    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', content_type="application/json")

    @app.get("/fhir/Patient/<rid>")
    def read(rid: str) -> Response:
        row = conn().execute("SELECT body FROM resources WHERE id = ?", (rid,)).fetchone()
        if row is None:
            return Response(b'{"resourceType":"OperationOutcome"}', status=404, content_type=FHIR_JSON)
        return Response(row[0], content_type=FHIR_JSON)

    @app.post("/fhir/Patient")
    def create() -> Response:
        doc = orjson.loads(request.get_data())
        rid = doc.get("id") or uuid.uuid4().hex
        doc["id"] = rid
        body = orjson.dumps(doc)
        conn().execute("INSERT OR REPLACE INTO resources (id, body) VALUES (?, ?)", (rid, body))
        return Response(body, status=201, content_type=FHIR_JSON,
                        headers={"Location": f"{request.host_url}fhir/Patient/{rid}"})

    return app
