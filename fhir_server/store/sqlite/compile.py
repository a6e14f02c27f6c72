"""Compile the search IR into SQLite SQL. Every value is a bound parameter; every column comes
from the IR's field allow-list; every table name from the parameter-type allow-list.

A condition on one index entry becomes ``alias.id IN (SELECT rid FROM idx_<type> WHERE ...)``:
SQLite drives such a query from the value index rather than probing every resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhir_server.search import ir
from fhir_server.store.sqlite.index_tables import COLUMNS, bind, table

_OPS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_COMPOSITE_FIELD = re.compile(r"c[0-9]+_[a-z_]+")
_MAX_CHAR = "\U0010ffff"


@dataclass
class Sql:
    """Accumulates bound arguments while SQL text is produced."""

    args: list[Any] = field(default_factory=list)
    aliases: int = 0

    def bind(self, value: Any) -> str:
        """A numbered placeholder (``?N``), so SQL text may be assembled in any order."""
        self.args.append(bind(value))
        return f"?{len(self.args)}"

    def alias(self, prefix: str) -> str:
        self.aliases += 1
        return f"{prefix}{self.aliases}"


def _column(ptype: str, name: str, alias: str) -> str:
    if ptype == "composite":
        if not _COMPOSITE_FIELD.fullmatch(name):
            raise ValueError(f"bad composite field {name!r}")
        return f"json_extract({alias}.doc, '$.{name}')"
    if name not in COLUMNS.get(ptype, ()):
        raise ValueError(f"{ptype} index has no field {name!r}")
    return f"{alias}.{name}"


def row(node: ir.Node, ptype: str, alias: str, sql: Sql) -> str:
    """A condition on one index row."""
    if isinstance(node, ir.Cmp):
        col = _column(ptype, node.field, alias)
        if node.op == "sw":
            assert isinstance(node.value, str)
            return f"({col} >= {sql.bind(node.value)} AND {col} < {sql.bind(node.value + _MAX_CHAR)})"
        if node.op == "co":
            return f"instr({col}, {sql.bind(node.value)}) > 0"
        return f"{col} {_OPS[node.op]} {sql.bind(node.value)}"
    if isinstance(node, ir.In):
        col = _column(ptype, node.field, alias)
        return f"{col} IN ({', '.join(sql.bind(v) for v in node.values)})"
    if isinstance(node, ir.Null):
        return f"{_column(ptype, node.field, alias)} IS NULL"
    if isinstance(node, ir.And | ir.Or):
        if not node.items:
            return "1" if isinstance(node, ir.And) else "0"
        joiner = " AND " if isinstance(node, ir.And) else " OR "
        return "(" + joiner.join(row(i, ptype, alias, sql) for i in node.items) + ")"
    if isinstance(node, ir.Not):
        return f"NOT ({row(node.item, ptype, alias, sql)})"
    raise TypeError(f"not a row condition: {node}")


def where(node: ir.Node, rtype: str, alias: str, sql: Sql) -> str:
    """A condition on the resource ``alias`` (a row of ``resources``) of type ``rtype``."""
    if isinstance(node, ir.Entry):
        idx = sql.alias("i")
        cond = row(node.where, node.type, idx, sql)
        return (f"{alias}.id IN (SELECT {idx}.rid FROM {table(node.type)} {idx}"
                f" WHERE {idx}.rtype = {sql.bind(rtype)} AND {idx}.param = {sql.bind(node.param)}"
                f" AND {cond})")
    if isinstance(node, ir.Missing):
        idx = sql.alias("i")
        negate = "NOT " if node.missing else ""
        return (f"{alias}.id {negate}IN (SELECT {idx}.rid FROM {table(node.type)} {idx}"
                f" WHERE {idx}.rtype = {sql.bind(rtype)} AND {idx}.param = {sql.bind(node.param)})")
    if isinstance(node, ir.Chain):
        idx, target = sql.alias("i"), sql.alias("r")
        sub = where(node.query, node.target, target, sql)
        return (f"{alias}.id IN (SELECT {idx}.rid FROM idx_reference {idx}"
                f" WHERE {idx}.rtype = {sql.bind(rtype)} AND {idx}.param = {sql.bind(node.param)}"
                f" AND {idx}.type = {sql.bind(node.target)} AND {idx}.id IN"
                f" (SELECT {target}.id FROM resources {target} WHERE {target}.type ="
                f" {sql.bind(node.target)} AND {target}.alive = 1 AND {sub}))")
    if isinstance(node, ir.Has):
        idx, source = sql.alias("i"), sql.alias("r")
        sub = where(node.query, node.type, source, sql)
        return (f"{alias}.id IN (SELECT {idx}.id FROM idx_reference {idx}"
                f" WHERE {idx}.type = {sql.bind(rtype)} AND {idx}.rtype = {sql.bind(node.type)}"
                f" AND {idx}.param = {sql.bind(node.param)} AND {idx}.rid IN"
                f" (SELECT {source}.id FROM resources {source} WHERE {source}.type ="
                f" {sql.bind(node.type)} AND {source}.alive = 1 AND {sub}))")
    if isinstance(node, ir.IdIn):
        if not node.ids:
            return "0"
        return f"{alias}.id IN ({', '.join(sql.bind(i) for i in node.ids)})"
    if isinstance(node, ir.TypeIs):
        return "1" if rtype in node.types else "0"
    if isinstance(node, ir.And | ir.Or):
        if not node.items:
            return "1" if isinstance(node, ir.And) else "0"
        joiner = " AND " if isinstance(node, ir.And) else " OR "
        return "(" + joiner.join(where(i, rtype, alias, sql) for i in node.items) + ")"
    if isinstance(node, ir.Not):
        return f"NOT ({where(node.item, rtype, alias, sql)})"
    raise TypeError(f"not a resource condition: {node}")


# -- sorting ----------------------------------------------------------------------------------
_SORT_COLUMN = {"string": "norm", "token": "code", "number": "value", "quantity": "value",
                "reference": "id", "uri": "value"}
_LAST_TEXT, _FIRST_TEXT = _MAX_CHAR * 2, ""
_BIG = 2**62


def sort_expression(param: str, ptype: str, descending: bool, rtype: str, alias: str,
                    sql: Sql) -> str:
    """The value a resource sorts by: the lowest (ascending) or highest (descending) of its
    values; resources without one sort last either way."""
    if param == "_id":
        return f"{alias}.id"
    if param == "_lastUpdated":
        return f"{alias}.ts"
    if ptype == "date":
        col = "high" if descending else "low"
    elif ptype in _SORT_COLUMN:
        col = _SORT_COLUMN[ptype]
    else:
        raise ValueError(f"cannot sort by a {ptype} parameter")
    agg = "MAX" if descending else "MIN"
    idx = sql.alias("s")
    numeric = ptype in ("date", "number", "quantity")
    missing = (-_BIG if descending else _BIG) if numeric else (
        _FIRST_TEXT if descending else _LAST_TEXT)
    return (f"COALESCE((SELECT {agg}({idx}.{col}) FROM {table(ptype)} {idx} WHERE {idx}.rtype ="
            f" {sql.bind(rtype)} AND {idx}.rid = {alias}.id AND {idx}.param = {sql.bind(param)}),"
            f" {sql.bind(missing)})")
