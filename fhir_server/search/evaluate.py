"""A simple in-memory evaluator of the search IR over index entries: the reference semantics that
the store compilers are tested against (property tests compare the SQLite store with it).

Row conditions use SQL's three-valued logic, as the SQLite compiler does: a comparison with an
absent field (``None``) is unknown, ``not unknown`` is unknown, and an entry matches only when its
condition is true. Date fields hold integer microseconds in the index and :class:`~.ir.Timestamp`
in the IR; numbers are ``Decimal`` (or ``int``) on both sides. Composite fields ``c<i>_<field>`` are
field ``<field>`` of the entry's ``i``-th component (0-based).

Resource conditions: ``Chain`` follows each local reference (``type``/``id``) of the parameter to
the target type, if that resource exists (is in ``all_ids``); ``Has`` looks for any resource of
the source type referring to this one through the parameter and matching the sub-query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from fhir_server.search import ir
from fhir_server.search.index import CompositeEntry, IndexEntry, ReferenceEntry

EntriesOf = Callable[[str, str], Sequence[IndexEntry]]
AllIds = Callable[[str], Iterable[str]]
_COMPOSITE = re.compile(r"c([0-9]+)_(.+)")
Scalar = str | int | bool | Decimal | None


def _field(entry: IndexEntry, name: str) -> Scalar:
    if isinstance(entry, CompositeEntry):
        match = _COMPOSITE.fullmatch(name)
        if not match or int(match[1]) >= len(entry.components):
            return None
        return _field(entry.components[int(match[1])], match[2])
    value: object = getattr(entry, name, None)
    if value is None or isinstance(value, str | int | bool | Decimal):
        return value
    raise TypeError(f"unexpected index value {value!r} in {name}")


def _plain(value: ir.Value) -> str | int | bool | Decimal:
    return value.us if isinstance(value, ir.Timestamp) else value


def _compare(have: Scalar, op: ir.Op, want: ir.Value) -> bool | None:
    if have is None:
        return None
    target = _plain(want)
    if op in ("sw", "co"):
        if not isinstance(have, str) or not isinstance(target, str):
            return False
        return have.startswith(target) if op == "sw" else target in have
    if isinstance(have, str) != isinstance(target, str):
        return False  # a string never equals or orders with a number
    if op == "eq":
        return have == target
    # both numbers (int/Decimal/bool) or both strings here
    if op == "lt":
        return have < target  # type: ignore[operator]
    if op == "le":
        return have <= target  # type: ignore[operator]
    if op == "gt":
        return have > target  # type: ignore[operator]
    return have >= target  # type: ignore[operator]


def row_matches(node: ir.Node, entry: IndexEntry) -> bool | None:
    """A row condition on one index entry: True, False or None (unknown)."""
    if isinstance(node, ir.Cmp):
        return _compare(_field(entry, node.field), node.op, node.value)
    if isinstance(node, ir.In):
        have = _field(entry, node.field)
        if have is None:
            return None
        return any(_compare(have, "eq", v) for v in node.values)
    if isinstance(node, ir.Null):
        return _field(entry, node.field) is None
    if isinstance(node, ir.And):
        results = [row_matches(i, entry) for i in node.items]
        return False if False in results else None if None in results else True
    if isinstance(node, ir.Or):
        results = [row_matches(i, entry) for i in node.items]
        return True if True in results else None if None in results else False
    if isinstance(node, ir.Not):
        inner = row_matches(node.item, entry)
        return None if inner is None else not inner
    raise TypeError(f"not a row condition: {node}")


def matches(node: ir.Node, rtype: str, rid: str, entries_of: EntriesOf, all_ids: AllIds) -> bool:
    """Whether the resource ``rtype/rid`` satisfies the resource condition ``node``.

    ``entries_of(type, id)``: the index entries of a resource; ``all_ids(type)``: the ids of the
    (current, not deleted) resources of a type.
    """

    def own(param: str) -> list[IndexEntry]:
        return [e for e in entries_of(rtype, rid) if e.param == param]

    if isinstance(node, ir.Entry):
        return any(row_matches(node.where, e) is True for e in own(node.param))
    if isinstance(node, ir.Missing):
        return not own(node.param) if node.missing else bool(own(node.param))
    if isinstance(node, ir.And):
        return all(matches(i, rtype, rid, entries_of, all_ids) for i in node.items)
    if isinstance(node, ir.Or):
        return any(matches(i, rtype, rid, entries_of, all_ids) for i in node.items)
    if isinstance(node, ir.Not):
        return not matches(node.item, rtype, rid, entries_of, all_ids)
    if isinstance(node, ir.IdIn):
        return rid in node.ids
    if isinstance(node, ir.TypeIs):
        return rtype in node.types
    if isinstance(node, ir.Chain):
        existing = set(all_ids(node.target))
        return any(
            isinstance(e, ReferenceEntry) and e.type == node.target and e.id in existing
            and matches(node.query, node.target, e.id, entries_of, all_ids)
            for e in own(node.param))
    if isinstance(node, ir.Has):
        return any(
            any(isinstance(e, ReferenceEntry) and e.param == node.param and e.type == rtype
                and e.id == rid for e in entries_of(node.type, sid))
            and matches(node.query, node.type, sid, entries_of, all_ids)
            for sid in all_ids(node.type))
    raise TypeError(f"not a resource condition: {node}")


def search(node: ir.Node, rtype: str, entries_of: EntriesOf, all_ids: AllIds) -> list[str]:
    """Ids of the ``rtype`` resources matching ``node``, sorted."""
    return sorted(rid for rid in all_ids(rtype) if matches(node, rtype, rid, entries_of, all_ids))
