"""uri: https://hl7.org/fhir/R4/search.html#uri.

Default: ``eq value``; ``:below``: the entry starts with the value (``sw``); ``:above``: the entry
is the value or one of its prefixes cut at ``/`` after the authority
(``http://a.org/fhir/ValueSet/1`` -> itself, ``.../ValueSet``, ``http://a.org/fhir``,
``http://a.org``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_server.search import ir
from fhir_server.search.params import SearchParam
from fhir_server.search.syntax import unescape
from fhir_server.search.types import Context, entry, unknown_modifier

MODIFIERS = frozenset({"above", "below"})


def prefixes(uri: str) -> tuple[str, ...]:
    """``uri`` and each of its prefixes ending before a ``/`` of the path, longest first."""
    scheme = uri.find("://")
    start = scheme + 3 if scheme >= 0 else 0
    out = [uri]
    cut = uri.rfind("/", start)
    while cut > start:
        head = uri[:cut]
        if head not in out:
            out.append(head)
        cut = uri.rfind("/", start, cut)
    return tuple(out)


def row(param: SearchParam, value: str, ctx: Context, modifier: str | None = None) -> ir.Node:
    uri = unescape(value)
    if modifier == "below":
        return ir.Cmp("value", "sw", uri)
    if modifier == "above":
        return ir.In("value", tuple(prefixes(uri)))
    return ir.Cmp("value", "eq", uri)


def build(param: SearchParam, modifier: str | None, values: Sequence[str], ctx: Context) -> ir.Node:
    if modifier is not None and modifier not in MODIFIERS:
        raise unknown_modifier(param, modifier, ctx)
    return ir.any_of(entry(param, row(param, v, ctx, modifier)) for v in values)
