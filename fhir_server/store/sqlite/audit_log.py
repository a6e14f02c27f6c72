"""The SQLite audit log: AuditEvents appended to a table of their own.

One row per event (``audit_log``, a rowid table: rows are appended in write order), its columns
the fields of :class:`~fhir_server.fhir.audit_record.AuditRecord`: about 300 bytes, where an
AuditEvent kept like other resources took a history row of 2 KB of JSON, a current row and 11
search index rows in three tables (each with its own value index). The JSON is rendered when an
event is read. A round of the background audit writer is a few multi-row INSERTs (:func:`append`).

Indexes, chosen for the questions asked of an audit trail and for cheap appends (ids and times
grow, so their indexes are appended to): ``id`` (read, unique), ``recorded`` (``date``), ``ts``
(``_lastUpdated``, type history), ``(patient, recorded)`` ("who saw this patient's record"),
``(client_id, recorded)`` ("what did this client do"), ``request_id`` (correlation) and
``(what_id, what_type)`` ("who touched this resource"); partial, so that rows without the value
cost nothing. Other conditions (type, subtype, outcome, organisation) filter those rows, or scan.

The two indexes keyed by a reference (``patient`` and ``what``) take their rows in random places
(every other index is appended to): each costs a page written to the WAL and later to the file for
nearly every event, most of what an event costs to append. So an event whose ``what`` is its own
``patient`` (a Patient read, a Patient's history, ``Patient/x/$everything`` for x's own record)
has no ``what`` entry (:data:`WHAT_INDEXED`): ``entity`` and ``patient``, the parameters that
have a ``what`` slot, also have the ``patient`` slot, whose entry for such an event is identical
(``Patient/x``, no version), so every condition on them finds the event through ``patient``. The
``what`` slot's conditions carry the index's condition (:func:`_slot_present`), without which
SQLite does not use a partial index.

Searches compile the IR over the columns through the slots of :mod:`fhir_server.store.audit_keys`
(an ``Entry`` holds when one present slot satisfies it; constants and absent fields are folded
at compile time, so ``entity=Patient/1`` is ``patient = ?`` OR ``what_type = ? AND what_id = ?``,
both indexed). Chains out of AuditEvent and ``_has`` onto it use the generic compiler for the other
side. Sorts: ``date``, ``_lastUpdated``, ``_id``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any, Protocol

from fhir_server.errors import MethodNotAllowed
from fhir_server.fhir.audit_record import (
    AUDIT_TYPE,
    OPERATION_BASE,
    AuditRecord,
    parse,
    render_json,
)
from fhir_server.search import ir
from fhir_server.store import audit_keys
from fhir_server.store.audit_keys import PARAMS, SORTS, Field, Slot
from fhir_server.store.base import (
    HistoryQuery,
    NewVersion,
    SearchPage,
    SearchQuery,
    StoredResource,
    VersionConflict,
)
from fhir_server.store.sqlite import compile as sqlc
from fhir_server.store.sqlite import index_tables

TABLE = "audit_log"
COLUMNS = AuditRecord._fields
#: the rows the ``what`` index holds besides ``what_id IS NOT NULL``: not those whose ``what`` is
#: their own ``patient`` (``IS``: true or false, never NULL, which would leave a row out)
WHAT_INDEXED = ("NOT ({a}what_type IS 'Patient' AND {a}what_id IS {a}patient"
                " AND {a}what_version IS NULL)")
_TYPES = {"ts": "INTEGER NOT NULL", "recorded": "INTEGER NOT NULL", "query": "BLOB",
          "body": "BLOB", "id": "TEXT NOT NULL", "type": "TEXT NOT NULL",
          "subtype": "TEXT NOT NULL", "action": "TEXT NOT NULL", "outcome": "TEXT NOT NULL",
          "server": "TEXT NOT NULL"}
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (seq INTEGER PRIMARY KEY, "
    + ", ".join(f"{c} {_TYPES.get(c, 'TEXT')}" for c in COLUMNS) + ")",
    f"CREATE UNIQUE INDEX IF NOT EXISTS audit_by_id ON {TABLE} (id)",
    f"CREATE INDEX IF NOT EXISTS audit_by_recorded ON {TABLE} (recorded)",
    f"CREATE INDEX IF NOT EXISTS audit_by_ts ON {TABLE} (ts)",
    f"CREATE INDEX IF NOT EXISTS audit_by_patient ON {TABLE} (patient, recorded)"
    " WHERE patient IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS audit_by_client ON {TABLE} (client_id, recorded)"
    " WHERE client_id IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS audit_by_request ON {TABLE} (request_id)"
    " WHERE request_id IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS audit_by_what ON {TABLE} (what_id, what_type)"
    f" WHERE what_id IS NOT NULL AND {WHAT_INDEXED.format(a='')}",
)
_SELECT = f"SELECT {', '.join('a.' + c for c in COLUMNS)} FROM {TABLE} a"
_INSERT = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)})"
           f" VALUES ({', '.join('?' * len(COLUMNS))})")
_MIGRATE_BATCH = 1000
APPEND_ONLY = "the audit log is append-only: an AuditEvent is written once, as version 1"


class Reads(Protocol):
    conn: sqlite3.Connection

    def _query(self, sql: str, args: Sequence[Any]) -> list[Any]: ...

    def search(self, query: SearchQuery) -> SearchPage: ...

    def count(self, types: tuple[str, ...], where: ir.Node) -> int: ...


# -- writing --------------------------------------------------------------------------------------
def prepare(conn: sqlite3.Connection) -> int:
    """Create the log (in the start-up transaction) and move into it the AuditEvents an earlier
    version kept as ordinary resources; returns how many were moved."""
    for statement in SCHEMA:
        conn.execute(statement)
    if conn.execute("SELECT 1 FROM resources WHERE type = ? LIMIT 1", (AUDIT_TYPE,)).fetchone():
        return _migrate(conn)
    return 0


def _migrate(conn: sqlite3.Connection) -> int:
    cursor = conn.execute("SELECT h.body FROM resources r JOIN history h ON h.hid = r.hid"
                          " WHERE r.type = ? AND r.alive = 1", (AUDIT_TYPE,))
    moved = 0
    while rows := cursor.fetchmany(_MIGRATE_BATCH):
        records = [parse(bytes(row[0])) for row in rows]
        conn.executemany(_INSERT.replace("INSERT", "INSERT OR IGNORE", 1), records)
        moved += len(records)
    conn.execute("DELETE FROM history WHERE type = ?", (AUDIT_TYPE,))
    conn.execute("DELETE FROM resources WHERE type = ?", (AUDIT_TYPE,))
    conn.execute("DELETE FROM claims WHERE type = ?", (AUDIT_TYPE,))
    conn.execute("DELETE FROM type_counts WHERE type = ?", (AUDIT_TYPE,))  # the planner's count
    for name in index_tables.TABLES:
        conn.execute(f"DELETE FROM {index_tables.table(name)} WHERE rtype = ?", (AUDIT_TYPE,))
    return moved


def _insert_rows(rows: int) -> str:
    return f"{_INSERT.partition(' VALUES ')[0]} VALUES " + ", ".join([_ROW] * rows)


_ROW = f"({', '.join('?' * len(COLUMNS))})"
#: rows per multi-row INSERT, largest first; what is left (< the smallest) goes row by row
_CHUNKS = (128, 32, 8)
_INSERTS = {rows: _insert_rows(rows) for rows in _CHUNKS}


def append(conn: sqlite3.Connection, records: Sequence[AuditRecord]) -> None:
    """Append ``records`` with multi-row INSERTs of 128, 32 and 8 rows (a handful of cached
    statements), the last few rows one by one. ``executemany`` steps once per row, and the
    sqlite3 module releases the GIL around every step and takes it back to bind the next row: in
    the background writer, with request threads running, each row was a GIL hand-over (two
    thread switches) and a round of 300 events took ~50 ms of wall time. One statement of 128
    rows is bound at once and stepped once."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS)
    done, count = 0, len(records)
    try:
        for rows in _CHUNKS:
            if rows > limit:
                continue
            while count - done >= rows:
                conn.execute(_INSERTS[rows], list(chain.from_iterable(records[done:done + rows])))
                done += rows
        if done < count:  # plain tuples: sqlite3 binds a tuple subclass item by item (slower)
            conn.executemany(_INSERT, map(tuple, records[done:]))
    except sqlite3.IntegrityError:
        raise VersionConflict("an AuditEvent with one of these ids exists already") from None


def put(conn: sqlite3.Connection, new: NewVersion, expected_version: int) -> None:
    """An AuditEvent written as a resource (its JSON): appended, if it is new."""
    if expected_version != 0 or new.body is None:
        raise MethodNotAllowed(f"AuditEvent/{new.id}: {APPEND_ONLY}")
    append(conn, [parse(new.body)])


# -- reading --------------------------------------------------------------------------------------
def _stored(row: Sequence[Any]) -> StoredResource:
    record = AuditRecord._make(row)
    return StoredResource(AUDIT_TYPE, record.id, 1, record.ts, "POST", render_json(record))


def read(reads: Reads, id: str) -> StoredResource | None:
    rows = reads._query(f"{_SELECT} WHERE a.id = ?", (id,))
    return _stored(rows[0]) if rows else None


def vread(reads: Reads, id: str, version: int) -> StoredResource | None:
    return read(reads, id) if version == 1 else None


def history(reads: Reads, query: HistoryQuery) -> list[StoredResource]:
    """Type (or instance) history of AuditEvent: each event is its only version."""
    where: list[str] = []
    args: list[Any] = []
    if query.id is not None:
        where.append("a.id = ?")
        args.append(query.id)
    for sql, value in (("a.ts >= ?", query.since), ("a.ts < ?", query.before)):
        if value is not None:
            where.append(sql)
            args.append(value)
    if query.after is not None:
        ts, rtype, rid, version = query.after
        if rtype != AUDIT_TYPE:  # (ts, "AuditEvent", id, 1) < (ts, rtype, rid, version)
            where.append("a.ts <= ?" if rtype > AUDIT_TYPE else "a.ts < ?")
            args.append(ts)
        else:
            same = "a.id <= ?" if version > 1 else "a.id < ?"
            where.append(f"(a.ts < ? OR (a.ts = ? AND {same}))")
            args += [ts, ts, rid]
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
    rows = reads._query(f"{sql} ORDER BY a.ts DESC, a.id DESC LIMIT ?", [*args, query.limit])
    return [_stored(r) for r in rows]


def search(reads: Reads, query: SearchQuery) -> SearchPage:
    """A search of AuditEvent, or of several types among which AuditEvent, or reaching it by a
    chain or ``_has`` (the store's ``search`` sends those here)."""
    if audit_keys.reaches_audit(query.where):
        query = audit_keys.resolve_query(query, lambda where, limit: _ids(reads, where, limit),
                                         lambda p, where, limit: _targets(reads, p, where, limit))
    if AUDIT_TYPE not in query.types:
        return reads.search(query)
    return audit_keys.split_search(query, lambda q: _search(reads, q), reads.search)


def count(reads: Reads, types: tuple[str, ...], where: ir.Node) -> int:
    if audit_keys.reaches_audit(where):
        resolved = audit_keys.resolve_query(
            SearchQuery(types, where), lambda w, limit: _ids(reads, w, limit),
            lambda p, w, limit: _targets(reads, p, w, limit))
        where = resolved.where
    return audit_keys.split_count(types, where, lambda w: _count(reads, w), reads.count)


def _search(reads: Reads, query: SearchQuery) -> SearchPage:
    audit_keys.check_sort(query)
    sql = sqlc.Sql()
    cond = where(query.where, "a", sql)
    sorts = [(SORTS[s.param], s.descending) for s in query.sort]
    names = [name for (name, _), _ in sorts]
    columns = [f"a.{name}" for name in names] + ["a.id"]
    offsets = [offset if desc else 0 for (_, offset), desc in sorts]
    descending = [desc for _, desc in sorts] + [False, False]  # then type, id
    if query.backwards:
        descending = [not d for d in descending]
    if query.after is not None:
        ops = {"eq": "=", "lt": "<", "gt": ">"}
        alternatives = [" AND ".join(f"{columns[i]} {ops[op]} {sql.bind(v)}" for i, op, v in alt)
                        or "1" for alt in audit_keys.keyset(query.after, offsets, descending)]
        cond = f"{cond} AND ({' OR '.join(f'({a})' for a in alternatives) or '0'})"
    descending = descending[:-2] + descending[-1:]  # the type is constant
    order = ", ".join(f"{c} {'DESC' if d else 'ASC'}" for c, d in zip(columns, descending,
                                                                      strict=True))
    rows = reads._query(f"{_SELECT} WHERE {cond} ORDER BY {order} LIMIT {sql.bind(query.limit)}",
                        sql.args)
    if query.backwards:
        rows.reverse()
    records = [AuditRecord._make(r) for r in rows]
    keys = [(*(audit_keys.shift(getattr(r, n), o) for n, o in zip(names, offsets, strict=True)),
             AUDIT_TYPE, r.id) for r in records]
    return SearchPage([StoredResource(AUDIT_TYPE, r.id, 1, r.ts, "POST", render_json(r))
                       for r in records], keys)


def _count(reads: Reads, node: ir.Node) -> int:
    sql = sqlc.Sql()
    cond = where(node, "a", sql)
    return int(reads._query(f"SELECT COUNT(*) FROM {TABLE} a WHERE {cond}", sql.args)[0][0])


def _ids(reads: Reads, node: ir.Node, limit: int) -> list[str]:
    sql = sqlc.Sql()
    cond = where(node, "a", sql)
    rows = reads._query(f"SELECT a.id FROM {TABLE} a WHERE {cond} LIMIT {sql.bind(limit)}",
                        sql.args)
    return [r[0] for r in rows]


def _targets(reads: Reads, param: str, node: ir.Node, limit: int) -> list[tuple[str, str]]:
    """The (type, id) that ``param`` of the AuditEvents matching ``node`` refer to."""
    sql = sqlc.Sql()
    cond = where(node, "a", sql)
    selects = []
    for slot in PARAMS[param].slots:
        if "type" in slot.fields and "id" in slot.fields:
            present = _present(slot, "a", sql)
            t, i = (_value(slot.fields[f], "a", sql) for f in ("type", "id"))
            selects.append(f"SELECT {t} AS t, {i} AS i FROM {TABLE} a WHERE {present} AND {cond}")
    if not selects:
        return []
    rows = reads._query(f"SELECT DISTINCT t, i FROM ({' UNION ALL '.join(selects)})"
                        f" WHERE t IS NOT NULL LIMIT {sql.bind(limit)}", sql.args)
    return [(r[0], r[1]) for r in rows]


# -- compiling conditions -------------------------------------------------------------------------
#: a compiled row condition: SQL text, or a constant known at compile time (None: unknown)
Row = str | bool | None


def where(node: ir.Node, alias: str, sql: sqlc.Sql, negated: bool = False) -> str:
    """A condition on the log's rows ``alias`` (``negated``: under a NOT, where an unknown entry
    condition must count as false)."""
    if isinstance(node, ir.Entry):
        out = _entry(node, alias, sql)
        return f"COALESCE({out}, 0)" if negated and out not in ("0", "1") else out
    if isinstance(node, ir.Missing):
        slots = PARAMS[node.param].slots if node.param in PARAMS else ()
        present = " OR ".join(f"({_present(s, alias, sql)})" for s in slots) or "0"
        return f"NOT ({present})" if node.missing else f"({present})"
    if isinstance(node, ir.Chain):
        return _chain(node, alias, sql, negated)
    if isinstance(node, ir.Has):
        return sqlc.where(node, AUDIT_TYPE, alias, sql)  # alias.id IN (... idx_reference ...)
    if isinstance(node, ir.IdIn):
        return sqlc.id_in(node.ids, alias, sql)
    if isinstance(node, ir.TypeIs):
        return "1" if AUDIT_TYPE in node.types else "0"
    if isinstance(node, ir.Not):
        return f"NOT ({where(node.item, alias, sql, not negated)})"
    if isinstance(node, ir.And | ir.Or):
        return sqlc.combine(node, lambda item: where(item, alias, sql, negated))
    raise TypeError(f"not a resource condition: {node}")


def _entry(node: ir.Entry, alias: str, sql: sqlc.Sql) -> str:
    audit_keys.check_where(node)
    param = PARAMS[node.param]
    if param.type != node.type:
        return "0"
    terms = []
    for slot in param.slots:
        cond = _row(node.where, slot, alias, sql)
        if cond is True:
            terms.append(_slot_present(slot, alias, sql))
        elif isinstance(cond, str):
            terms.append(f"{_slot_present(slot, alias, sql)} AND {cond}")
    if not terms:
        return "0"
    return "(" + " OR ".join(f"({t})" for t in terms) + ")"


def _chain(node: ir.Chain, alias: str, sql: sqlc.Sql, negated: bool) -> str:
    audit_keys.check_where(node)
    terms = []
    for slot in PARAMS[node.param].slots:
        if "type" not in slot.fields or "id" not in slot.fields:
            continue
        t, i = (_value(slot.fields[f], alias, sql) for f in ("type", "id"))
        target = sql.alias("t")
        if node.target == AUDIT_TYPE:
            sub = (f"SELECT {target}.id FROM {TABLE} {target} WHERE"
                   f" {where(node.query, target, sql)}")
        else:
            sub = (f"SELECT {target}.id FROM resources {target} WHERE {target}.type ="
                   f" {sql.bind(node.target)} AND {target}.alive = 1 AND"
                   f" {sqlc.where(node.query, node.target, target, sql)}")
        terms.append(f"({_slot_present(slot, alias, sql)} AND {t} = {sql.bind(node.target)}"
                     f" AND {i} IN ({sub}))")
    if not terms:
        return "0"
    out = "(" + " OR ".join(terms) + ")"
    return f"COALESCE({out}, 0)" if negated else out


def _slot_present(slot: Slot, alias: str, sql: sqlc.Sql) -> str:
    """The rows whose entry for ``slot`` a condition must look at: those where it is present,
    except, for the ``what`` slot, the rows whose ``what`` is their own ``patient`` (left out of
    the ``what`` index: their ``patient`` slot has the same entry, see the module docstring)."""
    present = _present(slot, alias, sql)
    if slot.present == _WHAT:
        return f"{present} AND {WHAT_INDEXED.format(a=alias + '.')}"
    return present


def _present(slot: Slot, alias: str, sql: sqlc.Sql) -> str:
    terms = [f"{alias}.{name} IS NOT NULL" for name in slot.present]
    terms += [f"{alias}.{name} = {sql.bind(value)}" for name, value in slot.equal]
    return " AND ".join(terms)


def _value(spec: Field, alias: str, sql: sqlc.Sql) -> str:
    """The SQL of a slot field (``col`` offsets are applied by the comparisons)."""
    column = f"{alias}.{spec.name}"
    if spec.kind == "const":
        return sql.bind(spec.value)
    if spec.kind == "col":
        return f"({column} + {spec.offset})" if spec.offset else column
    if spec.kind == "lookup":
        cases = " ".join(f"WHEN {sql.bind(k)} THEN {sql.bind(v)}" for k, v in spec.table.items())
        default = column if spec.keep else ("NULL" if spec.value is None
                                            else sql.bind(spec.value))
        return f"(CASE {column} {cases} ELSE {default} END)"
    if spec.kind == "prefix":
        return f"({sql.bind(spec.value)} || {column})"
    if spec.kind == "operation":
        return f"({sql.bind(OPERATION_BASE)} || replace({column}, '/$', '-'))"
    if spec.kind == "lower":
        return f"lower({column})"
    raise ValueError(f"unknown field kind {spec.kind!r}")


def _compare(spec: Field, op: str, value: ir.Value, alias: str, sql: sqlc.Sql) -> str:
    if spec.kind == "col" and spec.offset and not isinstance(value, str):
        # column + offset OP v  <=>  column OP v - offset: the column's index stays usable
        return f"{alias}.{spec.name} {_OPS[op]} {sql.bind(index_tables.bind(value) - spec.offset)}"
    expr = _value(spec, alias, sql)
    if op == "sw":
        assert isinstance(value, str)
        return f"({expr} >= {sql.bind(value)} AND {expr} < {sql.bind(value + _MAX_CHAR)})"
    if op == "co":
        return f"instr({expr}, {sql.bind(value)}) > 0"
    return f"{expr} {_OPS[op]} {sql.bind(value)}"


_OPS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_MAX_CHAR = "\U0010ffff"
_WHAT = ("what_id",)
_PATIENT = ("patient",)


def _what_beside_patient() -> None:
    """Leaving a row's ``what`` entry out is sound only where its ``patient`` entry stands for it:
    every parameter with a ``what`` slot has an unconditional ``patient`` slot."""
    for code, param in PARAMS.items():
        presents = [(s.present, s.equal) for s in param.slots]
        if any(p == _WHAT for p, _ in presents) and (_PATIENT, ()) not in presents:
            raise AssertionError(f"AuditEvent {code!r}: a what slot without the patient slot")


_what_beside_patient()


def _row(node: ir.Node, slot: Slot, alias: str, sql: sqlc.Sql) -> Row:
    """A row condition on one slot, folded where fields are absent (unknown)."""
    if isinstance(node, ir.Cmp):
        spec = slot.fields.get(node.field)
        return None if spec is None else _compare(spec, node.op, node.value, alias, sql)
    if isinstance(node, ir.In):
        spec = slot.fields.get(node.field)
        if spec is None:
            return None
        return "(" + " OR ".join(_compare(spec, "eq", v, alias, sql) for v in node.values) + ")"
    if isinstance(node, ir.Null):
        spec = slot.fields.get(node.field)
        return True if spec is None else f"{_value(spec, alias, sql)} IS NULL"
    if isinstance(node, ir.Not):
        inner = _row(node.item, slot, alias, sql)
        if isinstance(inner, str):
            return f"NOT ({inner})"
        return None if inner is None else not inner
    if isinstance(node, ir.And | ir.Or):
        conjunction = isinstance(node, ir.And)
        parts = [_row(i, slot, alias, sql) for i in node.items]
        if (not conjunction) in parts:
            return not conjunction
        texts = [p for p in parts if isinstance(p, str)]
        unknown = None in parts
        if not texts:
            return None if unknown else conjunction
        if unknown:
            texts.append("NULL")
        return "(" + (" AND " if conjunction else " OR ").join(texts) + ")"
    raise TypeError(f"not a row condition: {node}")
