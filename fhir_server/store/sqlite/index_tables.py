"""Search index tables: one per parameter type, columns named by the IR's field contract
(:data:`fhir_server.search.ir.FIELDS`), so the compiler maps a field to a column by allow-list.

Owner columns are ``rtype``/``rid``/``param``. Composite entries keep their component fields in a
JSON document (``c<i>_<field>``, read with ``json_extract``).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.search.index import CompositeEntry, IndexEntry
from fhir_server.search.ir import FIELDS, Timestamp

INDEXED_TYPES = tuple(sorted(t for t in FIELDS if t != "special"))
COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(sorted(FIELDS[t])) for t in INDEXED_TYPES}
TABLES = (*INDEXED_TYPES, "composite")

#: Indexes for lookups by value (the fields searched most) besides the owner index.
_VALUE_INDEXES = {
    "token": ("code", "system"),
    "string": ("norm",),
    # the span bucket first (see compile.date_entry): a search bounds both ends of a date range
    "date": ("((high >= low) * length(high - low))", "low", "high"),
    "number": ("value",),
    "quantity": ("value",),
    "reference": ("id", "type"),
    "uri": ("value",),
}


def table(param_type: str) -> str:
    return f"idx_{param_type}"


def value_index(param_type: str) -> str:
    # the date index changed keys in schema 5 (span bucket first), and its name with them
    return f"idx_{param_type}_span" if param_type == "date" else f"{table(param_type)}_value"


def schema() -> list[str]:
    # Each table is clustered by its owner (WITHOUT ROWID, primary key rtype, rid, param, n):
    # replacing a resource's rows and sorting by a parameter read one contiguous range, and a write
    # touches two B-trees per table (the table and its value index) rather than three.
    statements = []
    for name in TABLES:
        cols = ", ".join(COLUMNS[name]) if name != "composite" else "doc TEXT NOT NULL"
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table(name)} (rtype TEXT NOT NULL, rid TEXT NOT NULL,"
            f" param TEXT NOT NULL, n INTEGER NOT NULL, {cols},"
            " PRIMARY KEY (rtype, rid, param, n)) WITHOUT ROWID")
        if name in _VALUE_INDEXES:
            value_cols = ", ".join(_VALUE_INDEXES[name])
            statements.append(f"CREATE INDEX IF NOT EXISTS {value_index(name)} ON {table(name)}"
                              f" (rtype, param, {value_cols})")
    # reverse references (revinclude, _has, compartments): who points at Type/id?
    statements.append("CREATE INDEX IF NOT EXISTS idx_reference_target ON idx_reference"
                      " (type, id, rtype, param)")
    return statements


def bind(value: Any) -> Any:
    """An IR or index value as SQLite stores it."""
    if isinstance(value, Timestamp):
        return value.us
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bool):
        return int(value)
    return value


def composite_doc(entry: CompositeEntry) -> str:
    doc: dict[str, Any] = {}
    for i, component in enumerate(entry.components):
        for field in FIELDS[component.param_type]:
            value = getattr(component, field, None)
            if value is not None:
                doc[f"c{i}_{field}"] = bind(value)
    return orjson.dumps(doc).decode()


def write(conn: sqlite3.Connection, rtype: str, rid: str, entries: Iterable[IndexEntry],
          replace: bool) -> None:
    """Replace the index rows of one resource (``replace`` False: it had none)."""
    if replace:
        for name in TABLES:
            conn.execute(f"DELETE FROM {table(name)} WHERE rtype = ? AND rid = ?", (rtype, rid))
    rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for n, entry in enumerate(entries):
        ptype = entry.param_type
        if isinstance(entry, CompositeEntry):
            rows["composite"].append((rtype, rid, entry.param, n, composite_doc(entry)))
        elif ptype in COLUMNS:
            values = tuple(bind(getattr(entry, c, None)) for c in COLUMNS[ptype])
            rows[ptype].append((rtype, rid, entry.param, n, *values))
    for name, batch in rows.items():
        conn.executemany(_INSERT[name], batch)


_INSERT = {
    name: f"INSERT INTO {table(name)} (rtype, rid, param, n, {', '.join(cols)})"
          f" VALUES ({', '.join('?' * (4 + len(cols)))})"
    for name, cols in ((n, ("doc",) if n == "composite" else COLUMNS[n]) for n in TABLES)
}
