"""number: https://hl7.org/fhir/R4/search.html#number; implicit precision and prefixes in
:func:`fhir_server.search.dates.number_conditions`. No modifier but ``:missing``."""

from __future__ import annotations

from collections.abc import Sequence

from fhir_server.search import ir
from fhir_server.search.dates import number_conditions
from fhir_server.search.params import SearchParam
from fhir_server.search.syntax import split_prefix, unescape
from fhir_server.search.types import Context, entry, unknown_modifier


def row(param: SearchParam, value: str, ctx: Context) -> ir.Node:
    prefix, text = split_prefix(unescape(value))
    return number_conditions(prefix, text, ctx.key)


def build(param: SearchParam, modifier: str | None, values: Sequence[str], ctx: Context) -> ir.Node:
    if modifier is not None:
        raise unknown_modifier(param, modifier, ctx)
    return ir.any_of(entry(param, row(param, v, ctx)) for v in values)
