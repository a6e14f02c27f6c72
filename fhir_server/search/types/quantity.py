"""quantity: https://hl7.org/fhir/R4/search.html#quantity, ``[prefix][number]|[system]|[code]``.

The number as for :mod:`.number` on ``value``; ``system|code`` both given: both must match; only a
code (``5.4||mg``): it matches ``code`` or ``unit``, as the spec says; only a system: the system.
Units are not converted (no UCUM canonicalisation yet). No modifier but ``:missing``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_server.search import ir
from fhir_server.search.dates import number_conditions
from fhir_server.search.params import SearchParam
from fhir_server.search.syntax import split_prefix, split_raw, unescape
from fhir_server.search.types import Context, entry, unknown_modifier


def row(param: SearchParam, value: str, ctx: Context) -> ir.Node:
    parts = split_raw(value, "|")
    if len(parts) not in (1, 3):
        raise ctx.bad(f"{value!r} is not a quantity: expected [prefix]number[|system|code]")
    prefix, text = split_prefix(unescape(parts[0]))
    conditions = [number_conditions(prefix, text, ctx.key)]
    if len(parts) == 3:
        system, code = unescape(parts[1]), unescape(parts[2])
        if system:
            conditions.append(ir.Cmp("system", "eq", system))
        if code:
            conditions.append(ir.Cmp("code", "eq", code) if system
                              else ir.Or((ir.Cmp("code", "eq", code), ir.Cmp("unit", "eq", code))))
    return ir.all_of(conditions)


def build(param: SearchParam, modifier: str | None, values: Sequence[str], ctx: Context) -> ir.Node:
    if modifier is not None:
        raise unknown_modifier(param, modifier, ctx)
    return ir.any_of(entry(param, row(param, v, ctx)) for v in values)
