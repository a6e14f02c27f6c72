"""string: https://hl7.org/fhir/R4/search.html#string.

Default: the normalised entry starts with the normalised value (``sw norm``, normalised exactly as
:func:`~fhir_server.search.index.normalise` does at write time); ``:exact``: ``eq exact`` (case,
accents and spaces as given); ``:contains``: ``co norm``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_server.search import ir
from fhir_server.search.index import normalise
from fhir_server.search.params import SearchParam
from fhir_server.search.syntax import unescape
from fhir_server.search.types import Context, entry, unknown_modifier

MODIFIERS = frozenset({"exact", "contains"})


def _norm(value: str, ctx: Context) -> str:
    norm = normalise(unescape(value))
    if not norm:
        raise ctx.bad(f"{unescape(value)!r} is blank")  # would match every string
    return norm


def row(param: SearchParam, value: str, ctx: Context, modifier: str | None = None) -> ir.Node:
    if modifier == "exact":
        return ir.Cmp("exact", "eq", unescape(value))
    return ir.Cmp("norm", "co" if modifier == "contains" else "sw", _norm(value, ctx))


def build(param: SearchParam, modifier: str | None, values: Sequence[str], ctx: Context) -> ir.Node:
    if modifier is not None and modifier not in MODIFIERS:
        raise unknown_modifier(param, modifier, ctx)
    return ir.any_of(entry(param, row(param, v, ctx, modifier)) for v in values)
