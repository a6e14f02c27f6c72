"""Per-parameter-type semantics of search values: one module per R4 search parameter type.

Each module has ``row(param, value, ctx)``: the condition on ONE index entry for one value of the
OR list without modifier (used by composites too), and ``build(param, modifier, values, ctx)``:
the resource-level condition for a whole OR list with the modifier, usually ``any_of`` of
:class:`~fhir_server.search.ir.Entry` nodes. ``:missing`` is handled before, by
:mod:`fhir_server.search.query`, for every type.

Errors: a malformed value is :class:`~fhir_server.errors.InvalidRequest`, always; an unknown
modifier (or parameter) is :class:`UnknownParameter`, which lenient handling may ignore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

from fhir_server.errors import InvalidRequest
from fhir_server.search import ir
from fhir_server.search.params import Registry, SearchParam


class UnknownParameter(InvalidRequest):
    """An unknown parameter, an unknown modifier for the parameter's type, a chain through a
    parameter that is not a reference: an error under strict handling, ignored (and reported)
    under lenient handling."""


class Terminology(Protocol):
    """What the token modifiers ``:in``/``:not-in``/``:above``/``:below`` ask of a terminology
    service (:class:`fhir_server.terminology.Terminology`); None answers mean "unknown here"."""

    def codes_in(self, valueset: str) -> frozenset[tuple[str, str]] | None: ...

    def descendants(self, system: str, code: str) -> frozenset[str] | None: ...

    def ancestors(self, system: str, code: str) -> frozenset[str] | None: ...

    def systems_with(self, code: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Context:
    key: str  # the parameter as written in the query: the ``expression`` of every error
    registry: Registry
    now: int  # UTC microseconds, for the ``ap`` prefix
    base_url: str | None = None  # this server's base, to read absolute references as local
    terminology: Terminology | None = None  # for the token modifiers that need code sets

    def bad(self, message: str) -> InvalidRequest:
        return InvalidRequest(f"{self.key}: {message}", expression=self.key)

    def unknown(self, message: str) -> UnknownParameter:
        return UnknownParameter(f"{self.key}: {message}", expression=self.key)


def param_type(param: SearchParam) -> ir.ParamType:
    return cast(ir.ParamType, param.type)


def unknown_modifier(param: SearchParam, modifier: str, ctx: Context) -> UnknownParameter:
    return ctx.unknown(f"modifier :{modifier} is not supported on the {param.type} parameter"
                       f" {param.code!r}")


def entry(param: SearchParam, where: ir.Node) -> ir.Entry:
    return ir.Entry(param.code, param_type(param), where)


def eq_or_null(field: str, value: str) -> ir.Node:
    """``field = value``, or ``field`` absent when ``value`` is empty (``|code``)."""
    return ir.Cmp(field, "eq", value) if value else ir.Null(field)


def prefix_fields(node: ir.Node, prefix: str) -> ir.Node:
    """The row condition ``node`` with every field renamed ``prefix + field`` (composites)."""
    if isinstance(node, ir.Cmp):
        return ir.Cmp(prefix + node.field, node.op, node.value)
    if isinstance(node, ir.In):
        return ir.In(prefix + node.field, node.values)
    if isinstance(node, ir.Null):
        return ir.Null(prefix + node.field)
    if isinstance(node, ir.And):
        return ir.And(tuple(prefix_fields(i, prefix) for i in node.items))
    if isinstance(node, ir.Or):
        return ir.Or(tuple(prefix_fields(i, prefix) for i in node.items))
    if isinstance(node, ir.Not):
        return ir.Not(prefix_fields(node.item, prefix))
    raise TypeError(f"not a row condition: {node}")
