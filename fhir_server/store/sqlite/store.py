"""SQLite implementation of the Store protocol.

One connection per thread (gunicorn workers fork first, so every process opens its own), WAL so readers
never wait for the writer, ``BEGIN IMMEDIATE`` for writes so writers queue instead of deadlocking, and a
busy timeout so several worker processes can write at once. With ``synchronous=NORMAL`` in WAL mode an
acknowledged commit survives the process being killed (it is in the OS's page cache); ``FULL`` also
survives power loss, at the price of an fsync per commit.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fhir_server.errors import InvalidRequest
from fhir_server.fhir.audit_record import AUDIT_TYPE, AuditRecord
from fhir_server.search import ir
from fhir_server.store.audit_keys import reaches_audit
from fhir_server.store.base import (
    HistoryQuery,
    NewVersion,
    SearchPage,
    SearchQuery,
    StoredResource,
    StoreUnavailable,
    UniqueViolation,
    VersionConflict,
)
from fhir_server.store.sqlite import audit_log, index_tables, ordered
from fhir_server.store.sqlite import compile as sqlc
from fhir_server.store.sqlite.checkpoint import AUTOCHECKPOINT_PAGES, Checkpointer
from fhir_server.store.sqlite.plan import Estimates, Planner
from fhir_server.store.sqlite.registry import SqliteRegistry
from fhir_server.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, STATEMENTS

_COLUMNS = "type, id, version, ts, method, body"
#: The current version: resources -> its history row.
_CURRENT = ("SELECT h.type, h.id, h.version, h.ts, h.method, h.body FROM resources r"
            " JOIN history h ON h.hid = r.hid")
_SYNCHRONOUS = {"OFF", "NORMAL", "FULL", "EXTRA"}
_TRANSIENT = re.compile(r"locked|busy|unable to open|disk|I/O|readonly|no such table|not a database")


def _row(row: tuple[Any, ...]) -> StoredResource:
    return StoredResource(row[0], row[1], row[2], row[3], row[4], row[5])


def path_from_url(url: str) -> Path:
    """``sqlite:///relative/file.db`` or ``sqlite:////absolute/file.db`` (SQLAlchemy's form)."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite store URL: {url!r} (expected sqlite:///path/to/file.db)")
    rest = url[len("sqlite:///") :]
    if not rest or rest.startswith(":memory:"):
        raise ValueError("the SQLite store needs a file path (in-memory databases cannot be shared)")
    return Path(rest)


class _Reads:
    """Read queries shared by the store (autocommit reads) and its transactions."""

    conn: sqlite3.Connection
    #: plan.py: a fixed threshold (index rows) for walking instead of the cost-based one (tests)
    plan_cap: int | None = None

    def _query(self, sql: str, args: Sequence[Any]) -> list[Any]:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "parser stack overflow" in str(exc) or "too many" in str(exc):
                raise InvalidRequest("This search is nested too deeply or has too many terms for"
                                     " the store; simplify the chains, _has or OR lists") from None
            if not _TRANSIENT.search(str(exc)):
                raise  # a bug (bad SQL), not the database's state: a logged 500
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    def read(self, type: str, id: str) -> StoredResource | None:
        if type == AUDIT_TYPE:  # AuditEvents: in the audit log (audit_log.py)
            return audit_log.read(self, id)
        rows = self._query(f"{_CURRENT} WHERE r.type = ? AND r.id = ?", (type, id))
        return _row(rows[0]) if rows else None

    def vread(self, type: str, id: str, version: int) -> StoredResource | None:
        if type == AUDIT_TYPE:
            return audit_log.vread(self, id, version)
        rows = self._query(
            f"SELECT {_COLUMNS} FROM history WHERE type = ? AND id = ? AND version = ?",
            (type, id, version),
        )
        return _row(rows[0]) if rows else None

    def history(self, query: HistoryQuery) -> list[StoredResource]:
        if query.type == AUDIT_TYPE:  # system history leaves the audit log out
            return audit_log.history(self, query)
        filters = (("type = ?", query.type), ("id = ?", query.id), ("ts >= ?", query.since),
                   ("ts < ?", query.before))
        where = [sql for sql, value in filters if value is not None]
        args: list[Any] = [value for _, value in filters if value is not None]
        instance = query.type is not None and query.id is not None
        if query.after is not None:
            # One resource's versions are in ts order already: walk its primary key instead.
            where.append("version < ?" if instance else "(ts, type, id, version) < (?, ?, ?, ?)")
            args.extend(query.after[3:] if instance else query.after)
        sql = f"SELECT {_COLUMNS} FROM history"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = "version DESC" if instance else "ts DESC, type DESC, id DESC, version DESC"
        sql += f" ORDER BY {order} LIMIT ?"
        args.append(query.limit)
        return [_row(r) for r in self._query(sql, args)]

    estimates: Estimates  # recent probe counts of this database (plan.py)

    def _planner(self) -> Planner:
        def count(text: str, args: Sequence[Any]) -> int:
            return int(self._query(text, args)[0][0])

        return Planner(count, self.estimates.sizes(self._size), self.plan_cap,
                       self.estimates.remember)

    def _size(self, rtype: str) -> int | None:
        """The number of current resources of ``rtype`` (kept by :meth:`_SqliteTx.put`)."""
        rows = self._query("SELECT n FROM type_counts WHERE type = ?", (rtype,))
        return int(rows[0][0]) if rows else None

    def search(self, query: SearchQuery) -> SearchPage:
        if AUDIT_TYPE in query.types or reaches_audit(query.where):
            return audit_log.search(self, query)
        planner = self._planner()
        if not query.sort and len(query.types) == 1:  # any order will do: maybe a value's
            position = (planner.value_order(query.where, query.types[0], query.limit)
                        if query.after is None else ordered.key_fits(query.after, query.where))
            if position is not None:
                return self._in_value_order(query, position)
        sql = sqlc.Sql()
        nkeys = len(query.sort)
        names = [f"k{n}" for n in range(nkeys)] + ["type", "id"]
        descending = [s.descending for s in query.sort] + [False, False]
        if query.backwards:
            descending = [not d for d in descending]
        keyset = ""
        if query.after is not None:
            if len(query.after) != len(names):
                raise ValueError("cursor does not fit this query")
            # one type: its key part is a constant, left out so that SQLite can seek to the
            # cursor (``id > ?``) rather than walk from the first resource (plan.py)
            used = [i for i in range(len(names))
                    if not (i == nkeys and len(query.types) == 1
                            and query.after[i] == query.types[0])]
            alternatives = []
            for at, i in enumerate(used):
                equal = [f"{names[j]} = {sql.bind(query.after[j])}" for j in used[:at]]
                op = "<" if descending[i] else ">"
                alternatives.append(" AND ".join([*equal, f"{names[i]} {op} {sql.bind(query.after[i])}"]))
            keyset = " OR ".join(f"({a})" for a in alternatives)
        order = ", ".join(f"{n} {'DESC' if d else 'ASC'}" for n, d in zip(names, descending, strict=True))
        selects = []
        # in id order, one type: a page can be cut while walking the resources (plan.py)
        walk = query.limit if not query.sort and len(query.types) == 1 else None
        for rtype in query.types:
            keys = [sqlc.sort_expression(s.param, s.param_type, s.descending, rtype, "r", sql)
                    for s in query.sort]
            cond = planner.condition(query.where, rtype, "r", sql, walk)
            key_cols = "".join(f", {k} AS k{n}" for n, k in enumerate(keys))
            # The page is chosen from the small resources rows (in their key order when sorting
            # by id); only its rows' bodies are then read from history.
            selects.append(f"SELECT r.type AS type, r.id AS id, r.hid AS hid{key_cols}"
                           f" FROM resources r"
                           f" WHERE r.type = {sql.bind(rtype)} AND r.alive = 1 AND {cond}")
        if len(selects) == 1:  # no extra nesting: deep chains use much of SQLite's parser stack
            page = selects[0] + (f" AND ({keyset})" if keyset else "")
        else:
            page = f"SELECT * FROM ({' UNION ALL '.join(selects)})"
            page += f" WHERE {keyset}" if keyset else ""
        page += f" ORDER BY {order} LIMIT {sql.bind(query.limit)}"
        key_select = "".join(f", p.k{n}" for n in range(nkeys))
        page_order = ", ".join(f"p.{n} {'DESC' if d else 'ASC'}"
                               for n, d in zip(names, descending, strict=True))
        text = (f"WITH p AS ({page}) SELECT h.type, h.id, h.version, h.ts, h.method, h.body"
                f"{key_select} FROM p JOIN history h ON h.hid = p.hid ORDER BY {page_order}")
        rows = self._query(text, sql.args)
        if query.backwards:
            rows.reverse()
        return SearchPage([_row(r[:6]) for r in rows],
                          [(*r[6:6 + nkeys], r[0], r[1]) for r in rows])

    def _in_value_order(self, query: SearchQuery, position: int) -> SearchPage:
        """A page read along the value index of condition ``position`` (ordered.py)."""
        sql = sqlc.Sql()
        page = ordered.page(query.where, position, query.types[0], sql, query.after,
                            query.backwards, query.limit)
        ncols = len(ordered.columns(ordered.items(query.where)[position]))
        direction = "DESC" if query.backwards else "ASC"
        keys = "".join(f", p.k{i}" for i in range(ncols))
        order = ", ".join(f"p.k{i} {direction}" for i in range(ncols))
        text = (f"WITH p AS ({page}) SELECT h.type, h.id, h.version, h.ts, h.method, h.body{keys}"
                f" FROM p JOIN history h ON h.hid = p.hid ORDER BY {order}, p.id {direction}")
        rows = self._query(text, sql.args)
        if query.backwards:
            rows.reverse()
        tag = ordered.tag(ordered.items(query.where)[position])
        return SearchPage([_row(r[:6]) for r in rows],
                          [(ordered.MARK, tag, *r[6:], r[0], r[1]) for r in rows])

    def count(self, types: tuple[str, ...], where: ir.Node) -> int:
        if AUDIT_TYPE in types or reaches_audit(where):
            return audit_log.count(self, types, where)
        total = 0
        planner = self._planner()
        for rtype in types:
            sql = sqlc.Sql()
            cond = planner.condition(where, rtype, "r", sql)
            text = (f"SELECT COUNT(*) FROM resources r WHERE r.type = {sql.bind(rtype)}"
                    f" AND r.alive = 1 AND {cond}")
            total += int(self._query(text, sql.args)[0][0])
        return total


class _SqliteTx(_Reads):
    def __init__(self, conn: sqlite3.Connection, estimates: Estimates,
                 plan_cap: int | None = None) -> None:
        self.conn = conn
        self.estimates = estimates
        self.plan_cap = plan_cap

    def put(self, new: NewVersion, expected_version: int) -> None:
        if new.type == AUDIT_TYPE:
            return audit_log.put(self.conn, new, expected_version)
        try:
            hid = self.conn.execute(
                f"INSERT INTO history ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (new.type, new.id, new.version, new.ts, new.method, new.body)).lastrowid
        except sqlite3.IntegrityError:  # that version exists already: someone else wrote it
            raise VersionConflict(f"{new.type}/{new.id} already has version {new.version}") from None
        alive = int(new.body is not None)
        if expected_version == 0:
            was = 0
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO resources (type, id, version, ts, hid, alive)"
                " VALUES (?, ?, ?, ?, ?, ?)", (new.type, new.id, new.version, new.ts, hid, alive))
        else:
            found = self.conn.execute("SELECT alive FROM resources WHERE type = ? AND id = ?",
                                      (new.type, new.id)).fetchone()
            was = found[0] if found else alive
            cur = self.conn.execute(
                "UPDATE resources SET version = ?, ts = ?, hid = ?, alive = ?"
                " WHERE type = ? AND id = ? AND version = ?",
                (new.version, new.ts, hid, alive, new.type, new.id, expected_version))
        if cur.rowcount != 1:  # the history row goes with the rolled-back transaction
            raise VersionConflict(f"{new.type}/{new.id} is no longer at version {expected_version}")
        if alive != was:  # the planner's statistics (plan.py): current resources per type
            self.conn.execute("INSERT INTO type_counts (type, n) VALUES (?, ?) ON CONFLICT (type)"
                              " DO UPDATE SET n = n + excluded.n", (new.type, alive - was))
        index_tables.write(self.conn, new.type, new.id, new.index, replace=expected_version != 0)
        self._claim(new, replace=expected_version != 0)

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        audit_log.append(self.conn, records)

    def _claim(self, new: NewVersion, replace: bool) -> None:
        if replace:
            self.conn.execute("DELETE FROM claims WHERE type = ? AND id = ?", (new.type, new.id))
        for key in new.claims:
            try:
                self.conn.execute("INSERT INTO claims (key, type, id) VALUES (?, ?, ?)",
                                  (key, new.type, new.id))
            except sqlite3.IntegrityError:
                owner = self.conn.execute("SELECT type, id FROM claims WHERE key = ?",
                                          (key,)).fetchone()
                raise UniqueViolation(key, f"{owner[0]}/{owner[1]}") from None


class SqliteStore(SqliteRegistry, _Reads):
    name = "sqlite"
    capabilities: frozenset[str] = frozenset({"transactions"})

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL",
        busy_timeout_ms: int = 15000, mmap_mb: int = 2048,
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"FHIR_SQLITE_SYNCHRONOUS must be one of {sorted(_SYNCHRONOUS)}")
        if mmap_mb < 0:
            raise ValueError("FHIR_SQLITE_MMAP_MB must be 0 or more")
        self.mmap_bytes = mmap_mb * 1024 * 1024
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self.estimates = Estimates()
        self._pid = os.getpid()
        self._checkpointer = Checkpointer(self.path, busy_timeout_ms)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()  # create the schema eagerly: a bad path fails at start-up
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")  # one process at a time creates or checks the schema
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            while tables and version in MIGRATIONS:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
            if tables and version != SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise StoreUnavailable(
                    f"{self.path} was written by an older ehc-fhir (schema {version}, this one"
                    f" needs {SCHEMA_VERSION}); move it aside and seed or load the data again")
            for statement in (*STATEMENTS, *index_tables.schema()):
                conn.execute(statement)
            audit_log.prepare(conn)  # AuditEvents kept as resources by older versions move in
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot initialise SQLite database {self.path}: {exc}") from exc
        finally:
            conn.close()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SqliteStore:
        return cls(path_from_url(url), **kwargs)

    # -- connections --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache per connection
        conn.execute("PRAGMA temp_store = MEMORY")
        # reads of the mapped part of the file are memory reads, not a read() call per page (a
        # search at 100k patients reads its rows at random places of a multi-GB file)
        conn.execute(f"PRAGMA mmap_size = {int(self.mmap_bytes)}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")  # see checkpoint.py
        return conn

    @property
    def conn(self) -> sqlite3.Connection:  # type: ignore[override]
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():  # a forked child never reuses a parent's
            conn = self._connect()
            local.conn, local.pid = conn, os.getpid()
        return conn

    # -- protocol -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[_SqliteTx]:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the database is busy: {exc}") from exc
        try:
            yield _SqliteTx(conn, self.estimates, self.plan_cap)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreUnavailable(f"commit failed: {exc}") from exc
        self._checkpointer.wrote()

    def ping(self) -> None:
        try:
            self.conn.execute("SELECT 1 FROM resources LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite database {self.path} is not usable: {exc}") from exc

    def secret(self, name: str, length: int = 32) -> bytes:
        key = f"secret:{name}"
        row = self.conn.execute("SELECT value FROM server_meta WHERE key = ?", (key,)).fetchone()
        if row:
            return bytes(row[0])
        with self.transaction() as tx:
            tx.conn.execute(
                "INSERT OR IGNORE INTO server_meta (key, value) VALUES (?, ?)",
                (key, secrets.token_bytes(length)),
            )
            row = tx.conn.execute("SELECT value FROM server_meta WHERE key = ?", (key,)).fetchone()
        return bytes(row[0])

    def close(self) -> None:
        self._checkpointer.stop()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
