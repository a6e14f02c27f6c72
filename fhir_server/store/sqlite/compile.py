"""Compile the search IR into SQLite SQL. Every value is a bound parameter; every column comes
from the IR's field allow-list; every table name from the parameter-type allow-list.

A condition on one index entry becomes ``alias.id IN (SELECT rid FROM idx_<type> WHERE ...)``:
SQLite drives such a query from the value index rather than probing every resource.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_server.search import ir
from fhir_server.store.sqlite.index_tables import COLUMNS, bind, table

_OPS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_COMPOSITE_FIELD = re.compile(r"c[0-9]+_[a-z_]+")
MAX_CHAR = "\U0010ffff"


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


def _column(ptype: str, name: str, alias: str, probe: bool = False) -> str:
    if ptype == "composite":
        if not _COMPOSITE_FIELD.fullmatch(name):
            raise ValueError(f"bad composite field {name!r}")
        return f"json_extract({alias}.doc, '$.{name}')"
    if name not in COLUMNS.get(ptype, ()):
        raise ValueError(f"{ptype} index has no field {name!r}")
    return f"+{alias}.{name}" if probe else f"{alias}.{name}"


def row(node: ir.Node, ptype: str, alias: str, sql: Sql, probe: bool = False) -> str:
    """A condition on one index row. ``probe``: the row is found by its owner (primary key), and
    the value columns are written ``+col`` so that SQLite does not look them up in the value index
    instead (a unary plus keeps a term from driving an index)."""
    if isinstance(node, ir.Cmp):
        col = _column(ptype, node.field, alias, probe)
        if node.op == "sw":
            assert isinstance(node.value, str)
            return f"({col} >= {sql.bind(node.value)} AND {col} < {sql.bind(node.value + MAX_CHAR)})"
        if node.op == "co":
            return f"instr({col}, {sql.bind(node.value)}) > 0"
        return f"{col} {_OPS[node.op]} {sql.bind(node.value)}"
    if isinstance(node, ir.In):
        col = _column(ptype, node.field, alias, probe)
        return f"{col} IN ({', '.join(sql.bind(v) for v in node.values)})"
    if isinstance(node, ir.Null):
        return f"{_column(ptype, node.field, alias, probe)} IS NULL"
    if isinstance(node, ir.And | ir.Or | ir.Not):
        return combine(node, lambda item: row(item, ptype, alias, sql, probe))
    raise TypeError(f"not a row condition: {node}")


#: compiles the sub-query of a chain or ``_has`` (``where`` itself, or a planner's choice)
SubQuery = Callable[[ir.Node, str, str, Sql], str]


def where(node: ir.Node, rtype: str, alias: str, sql: Sql, sub: SubQuery | None = None) -> str:
    """A condition on the resource ``alias`` (a row of ``resources``) of type ``rtype``, driven by
    the index: each index condition is ``alias.id IN (SELECT rid ...)``, which SQLite answers from
    the value index and materialises whole (its cost grows with the number of matching rows).
    ``sub`` compiles the sub-queries of chains and ``_has`` (default: this function)."""
    inner: SubQuery = sub or where
    if isinstance(node, ir.Entry):
        idx = sql.alias("i")
        head = (f"SELECT {idx}.rid FROM {table(node.type)} {idx} WHERE {idx}.rtype ="
                f" {sql.bind(rtype)} AND {idx}.param = {sql.bind(node.param)}")
        cond = row(node.where, node.type, idx, sql)
        if node.type == "date":
            return f"{alias}.id IN ({date_entry(head, node.where, idx, cond, sql)})"
        return f"{alias}.id IN ({head} AND {cond})"
    if isinstance(node, ir.Missing):
        idx = sql.alias("i")
        negate = "NOT " if node.missing else ""
        return (f"{alias}.id {negate}IN (SELECT {idx}.rid FROM {table(node.type)} {idx}"
                f" WHERE {idx}.rtype = {sql.bind(rtype)} AND {idx}.param = {sql.bind(node.param)})")
    if isinstance(node, ir.Chain):
        idx, target = sql.alias("i"), sql.alias("r")
        cond = inner(node.query, node.target, target, sql)
        return (f"{alias}.id IN (SELECT {idx}.rid FROM idx_reference {idx}"
                f" WHERE {idx}.rtype = {sql.bind(rtype)} AND {idx}.param = {sql.bind(node.param)}"
                f" AND {idx}.type = {sql.bind(node.target)} AND {idx}.id IN"
                f" (SELECT {target}.id FROM resources {target} WHERE {target}.type ="
                f" {sql.bind(node.target)} AND {target}.alive = 1 AND {cond}))")
    if isinstance(node, ir.Has):
        idx, source = sql.alias("i"), sql.alias("r")
        cond = inner(node.query, node.type, source, sql)
        return (f"{alias}.id IN (SELECT {idx}.id FROM idx_reference {idx}"
                f" WHERE {idx}.type = {sql.bind(rtype)} AND {idx}.rtype = {sql.bind(node.type)}"
                f" AND {idx}.param = {sql.bind(node.param)} AND {idx}.rid IN"
                f" (SELECT {source}.id FROM resources {source} WHERE {source}.type ="
                f" {sql.bind(node.type)} AND {source}.alive = 1 AND {cond}))")
    if isinstance(node, ir.IdIn):
        return id_in(node.ids, alias, sql)
    if isinstance(node, ir.TypeIs):
        return "1" if rtype in node.types else "0"
    if isinstance(node, ir.And | ir.Or | ir.Not):
        return combine(node, lambda item: where(item, rtype, alias, sql, sub))
    raise TypeError(f"not a resource condition: {node}")


def combine(node: ir.And | ir.Or | ir.Not, each: Callable[[ir.Node], str]) -> str:
    """``node``'s items compiled by ``each``, joined as SQL (``And()`` is true, ``Or()`` false)."""
    if isinstance(node, ir.Not):
        return f"NOT ({each(node.item)})"
    if not node.items:
        return "1" if isinstance(node, ir.And) else "0"
    joiner = " AND " if isinstance(node, ir.And) else " OR "
    return "(" + joiner.join(each(item) for item in node.items) + ")"


def id_in(ids: tuple[str, ...], alias: str, sql: Sql) -> str:
    return f"{alias}.id IN ({', '.join(sql.bind(i) for i in ids)})" if ids else "0"


def correlated(node: ir.Node, rtype: str, alias: str, sql: Sql) -> str:
    """The same condition as :func:`where`, checked per resource: ``EXISTS`` over the resource's
    own index rows (their primary key starts with ``rtype, rid, param``), and for chains and
    ``_has`` over its references. Its cost is a few index probes per resource examined, whatever
    the number of matches: the form for conditions that are not the one driving the query."""
    if isinstance(node, ir.Entry):
        idx, rows = _owned(node, rtype, alias, sql)
        return f"EXISTS ({rows} AND {row(node.where, node.type, idx, sql, probe=True)})"
    if isinstance(node, ir.Missing):
        _, rows = _owned(node, rtype, alias, sql)
        return f"{'NOT ' if node.missing else ''}EXISTS ({rows})"
    if isinstance(node, ir.Chain):
        idx, target = sql.alias("i"), sql.alias("r")
        return (f"EXISTS (SELECT 1 FROM idx_reference {idx} JOIN resources {target}"
                f" ON {target}.type = {idx}.type AND {target}.id = {idx}.id"
                f" WHERE {idx}.rtype = {sql.bind(rtype)} AND {idx}.rid = {alias}.id"
                f" AND {idx}.param = {sql.bind(node.param)} AND {idx}.type = {sql.bind(node.target)}"
                f" AND {target}.alive = 1 AND {correlated(node.query, node.target, target, sql)})")
    if isinstance(node, ir.Has):
        idx, source = sql.alias("i"), sql.alias("r")
        return (f"EXISTS (SELECT 1 FROM idx_reference {idx} JOIN resources {source}"
                f" ON {source}.type = {idx}.rtype AND {source}.id = {idx}.rid"
                f" WHERE {idx}.type = {sql.bind(rtype)} AND {idx}.id = {alias}.id"
                f" AND {idx}.rtype = {sql.bind(node.type)} AND {idx}.param = {sql.bind(node.param)}"
                f" AND {source}.alive = 1 AND {correlated(node.query, node.type, source, sql)})")
    if isinstance(node, ir.And | ir.Or | ir.Not):
        return combine(node, lambda item: correlated(item, rtype, alias, sql))
    return where(node, rtype, alias, sql)  # IdIn, TypeIs: no index involved


def _owned(node: ir.Entry | ir.Missing, rtype: str, alias: str, sql: Sql) -> tuple[str, str]:
    """The index rows of ``node``'s parameter that belong to the resource ``alias``: their alias
    and a ``SELECT 1`` of them (found by the owner key ``rtype, rid, param``)."""
    idx = sql.alias("i")
    return idx, (f"SELECT 1 FROM {table(node.type)} {idx} WHERE {idx}.rtype = {sql.bind(rtype)}"
                 f" AND {idx}.rid = {alias}.id AND {idx}.param = {sql.bind(node.param)}")


# -- date ranges ------------------------------------------------------------------------------
#: the span bucket of a date entry: the number of decimal digits of ``high - low`` in microseconds
#: (an instant: 1, a second: 7, a day: 11, a year: 14, an open period: 18), and 0 for an inverted
#: range (a Period whose end is before its start: real data has them); the middle key of the date
#: value index (``index_tables``), written the same way in queries so that SQLite uses it
SPAN = "(({a}.high >= {a}.low) * length({a}.high - {a}.low))"
SPAN_BUCKETS = range(1, 19)


def date_entry(head: str, cond: ir.Node, idx: str, compiled: str, sql: Sql) -> str:
    """The rows of a date parameter matching ``cond``, as one index range per span bucket.

    A date entry is a range [low, high), and a search on it bounds both ends (``ge`` looks at
    ``high``, ``lt`` at ``low``): one index on ``(low, high)`` can only seek on ``low`` and would
    scan everything on one side of the searched range. Within a span bucket ``b`` every entry has
    ``0 <= high - low < 10**b``, so a bound on ``high`` is also one on ``low`` (``low > high_bound -
    10**b``): each bucket is a narrow seek on ``(rtype, param, span, low)``. Inverted ranges
    (bucket 0) are few and checked as they are.
    """
    span = SPAN.format(a=idx)
    buckets = [f"{head} AND {span} = 0 AND {compiled}"]
    for b, (lower, upper) in zip(SPAN_BUCKETS, bucket_bounds(cond), strict=True):
        if lower is None and upper is None:
            return f"{head} AND {compiled}"
        limits = "".join((f" AND {idx}.low >= {sql.bind(lower)}" if lower is not None else "",
                          f" AND {idx}.low <= {sql.bind(upper)}" if upper is not None else ""))
        buckets.append(f"{head} AND {span} = {sql.bind(b)}{limits} AND {compiled}")
    return " UNION ALL ".join(buckets)


Bounds = tuple[int | None, int | None]


def low_bounds(node: ir.Node, span: int) -> Bounds:
    """Bounds (inclusive) on ``low`` implied by the row condition ``node`` for entries with
    ``0 <= high - low < span``; None: unbounded."""
    return _bounds(node, (span,))[0]


def bucket_bounds(node: ir.Node) -> list[Bounds]:
    """:func:`low_bounds` for each bucket of :data:`SPAN_BUCKETS` (one walk of ``node``)."""
    return _bounds(node, _SPANS)


_SPANS = tuple(10**b for b in SPAN_BUCKETS)


def _bounds(node: ir.Node, spans: tuple[int, ...]) -> list[Bounds]:
    if isinstance(node, ir.Cmp) and isinstance(node.value, ir.Timestamp):
        us, op = node.value.us, node.op
        upper = us if op in ("le", "lt", "eq") else None
        if node.field == "low":
            return [(us if op in ("ge", "gt", "eq") else None, upper)] * len(spans)
        if node.field == "high":  # low <= high < low + span
            if op in ("ge", "gt", "eq"):
                return [(us - span, upper) for span in spans]
            return [(None, upper)] * len(spans)
    elif isinstance(node, ir.And | ir.Or) and node.items:
        found = [_bounds(i, spans) for i in node.items]
        out: list[Bounds] = []
        for per_item in zip(*found, strict=True):
            lows = [lo for lo, _ in per_item if lo is not None]
            highs = [hi for _, hi in per_item if hi is not None]
            if isinstance(node, ir.And):
                out.append(((max(lows) if lows else None), (min(highs) if highs else None)))
            else:
                out.append((min(lows) if len(lows) == len(per_item) else None,
                            max(highs) if len(highs) == len(per_item) else None))
        return out
    return [(None, None)] * len(spans)


# -- sorting ----------------------------------------------------------------------------------
_SORT_COLUMN = {"string": "norm", "token": "code", "number": "value", "quantity": "value",
                "reference": "id", "uri": "value"}
_LAST_TEXT, _FIRST_TEXT = MAX_CHAR * 2, ""
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
