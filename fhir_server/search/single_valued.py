"""Merging range conditions on single-valued parameters into one index-entry condition.

``birthdate=ge2020-01-01&birthdate=lt2020-02-01`` is, by the spec, two conditions that each need
*some* value of the parameter to match. For a parameter whose expression yields at most one value
(``Patient.birthDate``, ``Resource.meta.lastUpdated``) "some value is >= a" and "some value is < b"
is the same as "the value is in [a, b)": one index entry satisfying both. That form lets a store scan
one narrow index range instead of intersecting two half-unbounded ones, which is the difference
between a millisecond and half a second at 100k patients. Multi-valued parameters are never merged
(a resource with two dates, one on each side, matches the two conditions but no single entry), and
only date and number parameters are, whose one value is exactly one index entry (a single
CodeableConcept or HumanName gives several entries).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from fhir_server.fhir import structure
from fhir_server.search import ir

#: Parameter types whose single value is indexed as exactly one entry.
MERGEABLE = frozenset({"date", "number"})
_PATH = re.compile(r"[A-Z][A-Za-z]*(\.[a-z][A-Za-z]*)+")


@cache
def single_valued(expression: str | None) -> bool:
    """True if ``expression`` (``Type.a.b``, plain steps only) yields at most one value."""
    if expression is None or not _PATH.fullmatch(expression):
        return False
    rtype, *steps = expression.split(".")
    info = structure.type_info(rtype)
    for i, step in enumerate(steps):
        if info is None:
            return False
        slots = info.elements.get(step) or info.elements.get(f"{step}[x]")
        if not slots or any(slot.array for slot in slots):
            return False
        if i < len(steps) - 1:
            if len(slots) != 1:
                return False  # a choice in the middle of a path: not a plain path
            info = slots[0].info or structure.type_info(slots[0].code)
    return True


def merge(conditions: Sequence[ir.Node], is_single: dict[str, bool]) -> list[ir.Node]:
    """AND-ed ``conditions`` with the plain :class:`ir.Entry` nodes of each single-valued parameter
    (``is_single[param]``) folded into one entry whose condition is the AND of theirs."""
    out: list[ir.Node] = []
    merged: dict[str, int] = {}  # param -> position of its merged entry in ``out``
    for node in conditions:
        if (isinstance(node, ir.Entry) and node.type in MERGEABLE and is_single.get(node.param)
                and node.where != ir.And()):
            at = merged.get(node.param)
            if at is not None:
                first = out[at]
                assert isinstance(first, ir.Entry)
                out[at] = ir.Entry(node.param, node.type, ir.all_of((first.where, node.where)))
                continue
            merged[node.param] = len(out)
        out.append(node)
    return out
