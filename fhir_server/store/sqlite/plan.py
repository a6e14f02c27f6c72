"""Choosing how SQLite answers a search: which condition drives it, and whether to walk in order.

A search is an AND of conditions. :func:`compile.where` answers a condition from its value index
(``id IN (SELECT rid ...)``): SQLite materialises every matching row, so its cost grows with the
number of matches. :func:`compile.correlated` checks a condition per resource with a few primary
key probes, whatever the number of matches. The planner combines them:

* it **estimates** each condition by counting its index rows, stopping at :attr:`Planner.cap`
  (a bounded probe: at most ``cap`` index rows read);
* the most selective condition (fewest rows) **drives** the query in the index form; every other
  one is checked per candidate in the correlated form, so a selective condition is never slowed
  down by a common one beside it (``patient=X&status=finished`` reads X's encounters, not every
  finished one);
* when even the most selective condition matches ``cap`` rows or more and the page is in id order
  (no ``_sort``, one resource type), nothing drives it: the store **walks the resources in id
  order** checking every condition per resource and stops when the page is full. A condition
  matching a fixed share of the resources then costs ``page size / share`` probes however large
  the database grows (a common family name, ``_has`` on a vaccine every child has).

Sub-queries of chains and ``_has`` are planned the same way (without the ordered walk).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fhir_server.search import ir
from fhir_server.store.sqlite import compile as sqlc
from fhir_server.store.sqlite.index_tables import table

#: index rows counted before a condition is considered not selective
DEFAULT_CAP = 1000

#: runs a ``SELECT count(*)`` and returns the count
Counter = Callable[[str, Sequence[Any]], int]


class Planner:
    def __init__(self, count: Counter, cap: int = DEFAULT_CAP) -> None:
        self.count = count
        self.cap = cap
        self._estimates: dict[tuple[ir.Node, str], int] = {}

    # -- compiling ----------------------------------------------------------------------------
    def condition(self, node: ir.Node, rtype: str, alias: str, sql: sqlc.Sql,
                  walk: bool = False) -> str:
        """``node`` on the resource ``alias`` of type ``rtype``. ``walk``: the caller reads the
        resources in id order and stops after a page, so when no condition is selective they are
        all checked per resource."""
        items = node.items if isinstance(node, ir.And) else (node,)
        if not items:
            return "1"
        estimates = [self.estimate(item, rtype) for item in items]
        best = min(range(len(items)), key=estimates.__getitem__)
        driver = None if walk and estimates[best] >= self.cap else best
        parts = [sqlc.where(item, rtype, alias, sql, self.sub) if i == driver
                 else sqlc.correlated(item, rtype, alias, sql) for i, item in enumerate(items)]
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def sub(self, node: ir.Node, rtype: str, alias: str, sql: sqlc.Sql) -> str:
        return self.condition(node, rtype, alias, sql)

    # -- estimating ---------------------------------------------------------------------------
    def estimate(self, node: ir.Node, rtype: str) -> int:
        """Index rows behind ``node`` (a resource condition on ``rtype``), at most :attr:`cap`;
        :attr:`cap` also stands for "cannot drive a query" (a negation, a missing value)."""
        key = (node, rtype)
        found = self._estimates.get(key)
        if found is None:
            found = self._estimates[key] = min(self._estimate(node, rtype), self.cap)
        return found

    def _estimate(self, node: ir.Node, rtype: str) -> int:
        if isinstance(node, ir.IdIn):
            return len(node.ids)
        if isinstance(node, ir.TypeIs):
            return self.cap if rtype in node.types else 0
        if isinstance(node, ir.And):
            return min((self.estimate(i, rtype) for i in node.items), default=self.cap)
        if isinstance(node, ir.Or):
            return sum(self.estimate(i, rtype) for i in node.items)
        if isinstance(node, ir.Entry):
            sql = sqlc.Sql()
            idx = "i"
            head = (f"SELECT 1 FROM {table(node.type)} {idx} WHERE {idx}.rtype = {sql.bind(rtype)}"
                    f" AND {idx}.param = {sql.bind(node.param)}")
            cond = sqlc.row(node.where, node.type, idx, sql)
            rows = (sqlc.date_entry(head, node.where, idx, cond, sql) if node.type == "date"
                    else f"{head} AND {cond}")
            return self._probe(rows, sql)
        if isinstance(node, ir.Missing) and not node.missing:
            sql = sqlc.Sql()
            return self._probe(f"SELECT 1 FROM {table(node.type)} i WHERE i.rtype ="
                               f" {sql.bind(rtype)} AND i.param = {sql.bind(node.param)}", sql)
        if isinstance(node, ir.Chain):
            if self.estimate(node.query, node.target) >= self.cap:
                return self.cap
            sql = sqlc.Sql()
            cond = sqlc.where(node, rtype, "r", sql, self.sub)
            return self._probe(f"SELECT 1 FROM resources r WHERE r.type = {sql.bind(rtype)}"
                               f" AND {cond}", sql)
        if isinstance(node, ir.Has):
            if self.estimate(node.query, node.type) >= self.cap:
                return self.cap
            sql = sqlc.Sql()
            cond = sqlc.where(node, rtype, "r", sql, self.sub)
            return self._probe(f"SELECT 1 FROM resources r WHERE r.type = {sql.bind(rtype)}"
                               f" AND {cond}", sql)
        return self.cap  # Not, Missing(missing=True): no index range to drive from

    def _probe(self, rows: str, sql: sqlc.Sql) -> int:
        return self.count(f"SELECT count(*) FROM ({rows} LIMIT {sql.bind(self.cap)})", sql.args)
