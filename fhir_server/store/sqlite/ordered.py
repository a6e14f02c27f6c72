"""Pages in the order of a condition's matched value, read along its value index.

A search without ``_sort`` may come back in any order (FHIR R4, search §3.1.1.4.8 "Sorting").
In id order, a page of a condition that matches many resources costs either every match (collect,
sort by id, cut: driving) or ``page / share`` resources examined (walking in id order), about
``sqrt(page x N)`` steps at best: it grows with the database. Read along the condition's value
index instead, the matches come already ordered by ``(value, id)`` and a page costs about its own
size, whatever the number of matches.

The order is that of the **matched** value: a resource sorts at the lowest of its index entries
that satisfy the condition (``name=li`` puts a patient named "Li Lin" at "li"), and the entries of
one resource past that one are skipped (``NOT EXISTS`` a lower matching entry of the same owner).
A page's key is ``(MARK, tag, *value, type, id)``: ``tag`` names the condition among the
search's top-level AND-ed ones (:func:`tag`), so the next page, from the cursor, reads the same
index in the same order; the planner (plan.py) chooses this order only on a first page, when the condition is
common enough for id order to cost more than a page.

Orderable conditions: a string entry searched by prefix or equality on ``norm`` (``name``,
``family``, ``address-city``: the value index ``(rtype, param, norm, rid, n)``), and a date entry
bounded on at least one side (the index ``(rtype, param, span, low, high, rid, n)``, one ordered
range per span bucket, merged: see compile.date_entry).
"""

from __future__ import annotations

import hashlib
from typing import Any

from fhir_server.errors import InvalidRequest
from fhir_server.search import ir
from fhir_server.search.params import registry
from fhir_server.search.single_valued import MERGEABLE, single_valued
from fhir_server.store.sqlite import compile as sqlc

#: the first element of a key in value order (a key in id order is ``(type, id)``)
MARK = "by"
#: the index columns a value orders by, per parameter type
_COLUMNS = {"string": ("norm",), "date": ("low", "high")}


def items(node: ir.Node) -> tuple[ir.Node, ...]:
    """The top-level AND-ed conditions of a search (the planner's positions refer to these)."""
    return node.items if isinstance(node, ir.And) else (node,)


def orderable(node: ir.Node) -> bool:
    """Can the matches of ``node`` be read in value order from its value index?"""
    if not isinstance(node, ir.Entry):
        return False
    if node.type == "string":
        where = node.where
        return isinstance(where, ir.Cmp) and where.field == "norm" and where.op in ("sw", "eq")
    if node.type == "date":
        lower, upper = sqlc.low_bounds(node.where, 10**18)
        return lower is not None or upper is not None
    return False


def columns(node: ir.Node) -> tuple[str, ...]:
    assert isinstance(node, ir.Entry)
    return _COLUMNS[node.type]


def _one_entry(rtype: str, entry: ir.Entry) -> bool:
    """Does every resource have at most one index entry of ``entry``'s parameter? (a date or
    number on a single-valued element: search/single_valued.py)"""
    if entry.type not in MERGEABLE:
        return False
    param = registry().for_type(rtype).get(entry.param)
    return param is not None and single_valued(param.expression)


def tag(node: ir.Node) -> str:
    """Names the ordering condition in a key: what it means, not where it stands (an access
    policy added in front of a client's search may change between two of its pages)."""
    return hashlib.blake2b(str(node).encode(), digest_size=6).hexdigest()


def key_fits(after: tuple[Any, ...], where: ir.Node) -> int | None:
    """The position of the ordering condition if ``after`` is a value-order key of ``where``;
    None if it is an id-order key. A key that fits neither is a 400 (``_cursor``)."""
    if len(after) == 2:
        return None
    conditions = items(where)
    if len(after) >= 5 and after[0] == MARK:
        for position, node in enumerate(conditions):
            if orderable(node) and tag(node) == after[1] \
                    and len(after) == 4 + len(columns(node)):
                return position
    raise InvalidRequest("The _cursor no longer fits this search; start again from its first"
                         " page", expression="_cursor")


def page(where: ir.Node, position: int, rtype: str, sql: sqlc.Sql,
         after: tuple[Any, ...] | None, backwards: bool, limit: int) -> str:
    """SQL for one page in the order of condition ``position``'s matched value: rows
    ``(type, id, hid, k0[, k1])`` in that order (reversed when ``backwards``), after the key
    ``after``. The other conditions are checked per resource (correlated form)."""
    conditions = items(where)
    entry = conditions[position]
    assert isinstance(entry, ir.Entry) and orderable(entry)
    cols = columns(entry)
    others = "".join(f" AND {sqlc.correlated(item, rtype, 'r', sql)}"
                     for i, item in enumerate(conditions) if i != position)
    op, direction = ("<", "DESC") if backwards else (">", "ASC")
    keyset = ""
    if after is not None:
        # a row value: SQLite seeks the index to the cursor (the condition's own bound on that
        # side is then written +col, or SQLite would seek to it instead)
        keyset = (f" AND ({', '.join(f'o.{c}' for c in (*cols, 'rid'))}) {op}"
                  f" ({', '.join(sql.bind(v) for v in (*after[2:-2], after[-1]))})")
    table = f"idx_{entry.type}"
    rt, param = sql.bind(rtype), sql.bind(entry.param)
    own = sqlc.row(entry.where, entry.type, "o", sql, probe=True)
    # a lower matching entry of the same resource: this one is not where the resource sorts
    # (none to look for when the parameter has one entry per resource, e.g. Patient.birthDate)
    mine = ", ".join(f"o.{c}" for c in cols)
    theirs = ", ".join(f"+d.{c}" for c in cols)
    lower = "" if _one_entry(rtype, entry) else (
        f" AND NOT EXISTS (SELECT 1 FROM {table} d WHERE d.rtype = o.rtype AND d.rid = o.rid"
        f" AND d.param = o.param AND {sqlc.row(entry.where, entry.type, 'd', sql, probe=True)}"
        f" AND ({theirs}, d.n) < ({mine}, o.n))")
    keys = ", ".join(f"o.{c} AS k{i}" for i, c in enumerate(cols))
    order = ", ".join(f"o.{c} {direction}" for c in (*cols, "rid"))

    def bounds(column: str, low: Any, high: Any) -> str:
        """The index range of one arm: the bound the cursor replaces is not a seek (+col)."""
        first = "+" if after is not None and not backwards else ""
        last = "+" if after is not None and backwards else ""
        return "".join((f" AND {first}o.{column} >= {sql.bind(low)}" if low is not None else "",
                        f" AND {last}o.{column} {high[0]} {sql.bind(high[1])}"
                        if high is not None else ""))

    def arm(extra: str) -> str:
        return (f"SELECT r.type AS type, o.rid AS id, r.hid AS hid, {keys} FROM {table} o"
                f" JOIN resources r ON r.type = o.rtype AND r.id = o.rid"
                f" WHERE o.rtype = {rt} AND o.param = {param}{extra}{keyset} AND {own}"
                f"{lower} AND r.alive = 1{others}")

    if entry.type == "string":
        cmp = entry.where
        assert isinstance(cmp, ir.Cmp) and isinstance(cmp.value, str)
        upper = ("<", cmp.value + sqlc.MAX_CHAR) if cmp.op == "sw" else ("<=", cmp.value)
        return f"{arm(bounds('norm', cmp.value, upper))} ORDER BY {order} LIMIT {sql.bind(limit)}"
    # one ordered range per span bucket, merged (each arm is read lazily, as far as the page)
    span = sqlc.SPAN.format(a="o")
    arms = [arm(f" AND {span} = 0")]
    for bucket, (first, last) in zip(sqlc.SPAN_BUCKETS, sqlc.bucket_bounds(entry.where),
                                     strict=True):
        arms.append(arm(f" AND {span} = {sql.bind(bucket)}"
                        + bounds("low", first, None if last is None else ("<=", last))))
    merged = ", ".join(f"k{i} {direction}" for i in range(len(cols)))
    return f"{' UNION ALL '.join(arms)} ORDER BY {merged}, id {direction} LIMIT {sql.bind(limit)}"
