"""Choosing how SQLite answers a search: which condition drives it, and whether to walk in order.

A search is an AND of conditions. :func:`compile.where` answers a condition from its value index
(``id IN (SELECT rid ...)``): SQLite materialises every matching row, so its cost grows with the
number of matches. :func:`compile.correlated` checks a condition per resource with a few primary
key probes, whatever the number of matches. The planner combines them:

* it **estimates** each condition by counting its index rows up to a cap (a bounded probe: at
  most ``cap`` index rows read);
* the most selective condition (fewest rows) **drives** the query in the index form; every other
  one is checked per candidate in the correlated form, so a selective condition is never slowed
  down by a common one beside it (``patient=X&status=finished`` reads X's encounters, not every
  finished one);
* when the page is in id order (no ``_sort``, one resource type) and even the most selective
  condition is common, nothing drives: the store **walks the resources in id order** checking
  every condition per resource and stops when the page is full. A condition matching a share
  ``s`` of the resources then costs ``page size / s`` probes however large the database grows (a
  common family name, ``_has`` on a vaccine every child has).

Driving costs about one step per matching index row (``M``); walking about :data:`WALK_COST`
steps per resource examined, ``page size x N / M`` of them for ``N`` current resources of the
type (``type_counts``, kept by the store). Walking is the cheaper once ``M`` reaches
``sqrt(WALK_COST x page size x N)``, so that is where the probe stops counting: about 1,300 rows
for a page of 21 among 10k Patients, 4,100 among 100k. A search then costs at most about that many
steps: it grows with the square root of the database, not with the database.

Sub-queries of chains and ``_has`` are planned the same way (without the ordered walk).

A first page in no particular order may also be read **in value order** (ordered.py): along the
value index of a common string or date condition, a page costs about its own size whatever the
number of matches. :meth:`Planner.value_order` chooses it when that condition matches more than
:data:`ORDER_FACTOR` pages' worth of index rows and no other condition is more selective.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from math import isqrt
from time import monotonic
from typing import Any, TypeVar

from fhir_server.search import ir
from fhir_server.store.sqlite import compile as sqlc
from fhir_server.store.sqlite import ordered
from fhir_server.store.sqlite.index_tables import table

#: index rows counted before a condition is considered not selective (sub-queries, counts)
DEFAULT_CAP = 1000
#: cost of examining one resource in a walk, in driven index rows (measured at 100k Patients: a
#: walk probe ~1.5-3 µs, a driven row ~0.5-1 µs, and a matching Patient has ~2 rows of ``name``)
WALK_COST = 8
#: most index rows one probe counts (the walk threshold for ~15M resources of a type)
MAX_PROBE = 50_000
#: a page is read in value order from this many index rows per page row on (fewer: driving in id
#: order sorts fewer rows than reading the page in value order examines)
ORDER_FACTOR = 2

T = TypeVar("T")

#: runs a ``SELECT count(*)`` and returns the count
Counter = Callable[[str, Sequence[Any]], int]
#: the number of current resources of a type (None: not known)
Sizes = Callable[[str], "int | None"]
#: a recent value for a key, or the one computed now (:meth:`Estimates.remember`)
Memo = Callable[[Hashable, Callable[[], int]], int]


def walk_threshold(limit: int, size: int | None) -> int:
    """Index rows from which walking ``size`` resources for a page of ``limit`` is cheaper than
    driving from the rows."""
    if size is None:
        return DEFAULT_CAP
    return max(1, min(MAX_PROBE, isqrt(WALK_COST * limit * size)))


class Planner:
    """``fixed``: a threshold for walking instead of the cost-based one (tests force each plan:
    0 always walks when it may, a huge one never does)."""

    def __init__(self, count: Counter, sizes: Sizes | None = None,
                 fixed: int | None = None, memo: Memo | None = None) -> None:
        self.count = count
        self.sizes = sizes
        self.fixed = fixed
        self.memo = memo
        self.cap = DEFAULT_CAP if fixed is None else fixed
        self._estimates: dict[tuple[ir.Node, str, int], int] = {}

    # -- compiling ----------------------------------------------------------------------------
    def condition(self, node: ir.Node, rtype: str, alias: str, sql: sqlc.Sql,
                  walk: int | None = None) -> str:
        """``node`` on the resource ``alias`` of type ``rtype``. ``walk``: the caller reads the
        resources in id order and stops after this many rows, so when no condition is selective
        enough they are all checked per resource instead."""
        items = node.items if isinstance(node, ir.And) else (node,)
        if not items:
            return "1"
        cap = self.cap
        if walk is not None and self.fixed is None:
            cap = walk_threshold(walk, self.sizes(rtype) if self.sizes else None)
        estimates = [self.estimate(item, rtype, cap) for item in items]
        best = min(range(len(items)), key=estimates.__getitem__)
        driver = None if walk is not None and estimates[best] >= cap else best
        parts = [sqlc.where(item, rtype, alias, sql, self.sub) if i == driver
                 else sqlc.correlated(item, rtype, alias, sql) for i, item in enumerate(items)]
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def value_order(self, node: ir.Node, rtype: str, limit: int) -> int | None:
        """For a first page of ``limit`` rows in no particular order: the position (in
        ``ordered.items(node)``) of the condition whose value index orders the page, or None for
        id order. The most selective orderable condition is chosen if it matches at least
        :data:`ORDER_FACTOR` x ``limit`` index rows and no other condition is more selective
        (that one then drives, in id order)."""
        conditions = ordered.items(node)
        candidates = [i for i, item in enumerate(conditions) if ordered.orderable(item)]
        if not candidates:
            return None
        if self.fixed is None:
            cap = walk_threshold(limit, self.sizes(rtype) if self.sizes else None)
            least = min(cap, ORDER_FACTOR * limit)
        else:
            cap = least = self.fixed
        estimates = [self.estimate(item, rtype, cap) for item in conditions]
        best = min(candidates, key=estimates.__getitem__)
        if estimates[best] < least:
            return None
        if any(e < estimates[best] and e < cap for e in estimates):
            return None
        return best

    def sub(self, node: ir.Node, rtype: str, alias: str, sql: sqlc.Sql) -> str:
        return self.condition(node, rtype, alias, sql)

    # -- estimating ---------------------------------------------------------------------------
    def estimate(self, node: ir.Node, rtype: str, cap: int | None = None) -> int:
        """Index rows behind ``node`` (a resource condition on ``rtype``), at most ``cap``
        (default :attr:`cap`), which also stands for "cannot drive a query" (a negation, a
        missing value)."""
        cap = self.cap if cap is None else cap
        key = (node, rtype, cap)
        found = self._estimates.get(key)
        if found is None:
            def compute() -> int:
                return min(self._estimate(node, rtype, cap), cap)
            found = self._estimates[key] = (
                self.memo(("estimate", *key), compute) if self.memo else compute())
        return found

    def _estimate(self, node: ir.Node, rtype: str, cap: int) -> int:
        if isinstance(node, ir.IdIn):
            return len(node.ids)
        if isinstance(node, ir.TypeIs):
            return cap if rtype in node.types else 0
        if isinstance(node, ir.And):
            return min((self.estimate(i, rtype, cap) for i in node.items), default=cap)
        if isinstance(node, ir.Or):
            return sum(self.estimate(i, rtype, cap) for i in node.items)
        if isinstance(node, ir.Entry):
            sql = sqlc.Sql()
            idx = "i"
            head = (f"SELECT 1 FROM {table(node.type)} {idx} WHERE {idx}.rtype = {sql.bind(rtype)}"
                    f" AND {idx}.param = {sql.bind(node.param)}")
            cond = sqlc.row(node.where, node.type, idx, sql)
            rows = (sqlc.date_entry(head, node.where, idx, cond, sql) if node.type == "date"
                    else f"{head} AND {cond}")
            return self._probe(rows, sql, cap)
        if isinstance(node, ir.Missing) and not node.missing:
            sql = sqlc.Sql()
            return self._probe(f"SELECT 1 FROM {table(node.type)} i WHERE i.rtype ="
                               f" {sql.bind(rtype)} AND i.param = {sql.bind(node.param)}", sql, cap)
        if isinstance(node, ir.Chain | ir.Has):
            inner, itype = (node.query, node.target) if isinstance(node, ir.Chain) else (
                node.query, node.type)
            if self.estimate(inner, itype) >= self.cap:
                return cap  # a common target: the chain cannot drive
            sql = sqlc.Sql()
            cond = sqlc.where(node, rtype, "r", sql, self.sub)
            return self._probe(f"SELECT 1 FROM resources r WHERE r.type = {sql.bind(rtype)}"
                               f" AND {cond}", sql, cap)
        return cap  # Not, Missing(missing=True): no index range to drive from

    def _probe(self, rows: str, sql: sqlc.Sql, cap: int) -> int:
        return self.count(f"SELECT count(*) FROM ({rows} LIMIT {sql.bind(cap)})", sql.args)


class Estimates:
    """Recent planner statistics of one database, shared by its connections' planners: probe
    counts and type sizes are only cost estimates, so values up to :attr:`ttl` seconds old choose
    as well (a common family name searched again is planned without counting its rows again)."""

    def __init__(self, ttl: float = 30.0, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._found: dict[Hashable, tuple[float, Any]] = {}

    def remember(self, key: Hashable, compute: Callable[[], T]) -> T:
        now = monotonic()
        hit = self._found.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            value: T = hit[1]
            return value
        value = compute()
        if len(self._found) >= self.size:
            self._found.clear()  # rare: a burst of distinct searches
        self._found[key] = (now, value)
        return value

    def sizes(self, sizes: Sizes) -> Sizes:
        return lambda rtype: self.remember(("type size", rtype), lambda: sizes(rtype))
