"""composite: https://hl7.org/fhir/R4/search.html#composite, ``a$b`` values.

All components must match the SAME composite index entry, so one value becomes ONE
:class:`~fhir_server.search.ir.Entry` whose row condition ANDs the component conditions. Component
``i`` (0-based, in the order of the SearchParameter's ``component`` list, which is also the order
of :attr:`~fhir_server.search.index.CompositeEntry.components`) is matched by its own type's
``row`` condition with every field renamed ``c<i>_<field>``: ``code-value-quantity=
http://loinc.org|8480-6$gt100`` -> ``(and (eq c0_system ...) (eq c0_code "8480-6") (gt c1_value 100))``.
Component values take prefixes but no modifiers; no modifier but ``:missing``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fhir_server.search import ir
from fhir_server.search.params import SearchParam
from fhir_server.search.syntax import split_raw
from fhir_server.search.types import (
    Context,
    date,
    entry,
    number,
    prefix_fields,
    quantity,
    reference,
    string,
    token,
    unknown_modifier,
    uri,
)

Row = Callable[[SearchParam, str, Context], ir.Node]
ROWS: dict[str, Row] = {
    "token": token.row, "string": string.row, "date": date.row, "number": number.row,
    "quantity": quantity.row, "reference": reference.row, "uri": uri.row,
}


def row(param: SearchParam, value: str, ctx: Context) -> ir.Node:
    parts = split_raw(value, "$")
    if len(parts) != len(param.components):
        names = "$".join(code for code, _ in param.components)
        raise ctx.bad(f"{value!r}: {param.code!r} takes {len(param.components)} values, {names}")
    conditions: list[ir.Node] = []
    for i, ((code, _), part) in enumerate(zip(param.components, parts, strict=True)):
        sub = ctx.registry.get(param.base, code)
        build_row = ROWS.get(sub.type) if sub is not None else None
        if sub is None or build_row is None:
            raise ctx.unknown(f"component {code!r} of {param.code!r} is not searchable")
        if not part:
            raise ctx.bad(f"{value!r}: empty value for the component {code!r}")
        conditions.append(prefix_fields(build_row(sub, part, ctx), f"c{i}_"))
    return ir.all_of(conditions)


def build(param: SearchParam, modifier: str | None, values: Sequence[str], ctx: Context) -> ir.Node:
    if modifier is not None:
        raise unknown_modifier(param, modifier, ctx)
    return ir.any_of(entry(param, row(param, v, ctx)) for v in values)
