"""Search semantics, once and backend-neutral: query pairs -> :class:`SearchRequest` (IR + result
parameters), resolved against the SearchParameter registry.

Step 2 of search (https://hl7.org/fhir/R4/search.html). :mod:`.syntax` gives the shape of each
parameter; here each one is resolved on the resource type(s) searched and turned into IR by the
module of its type (:mod:`fhir_server.search.types`). An OR list (``a,b``) becomes ``Or``, repeated
parameters ``And``.

* ``:missing=true|false`` on any parameter -> :class:`~.ir.Missing`;
* chains (``subject:Patient.name=x``, any depth) -> :class:`~.ir.Chain`; without a ``:Type`` on a
  reference with several targets, an ``Or`` of chains over the targets that have the next
  parameter;
* ``_has:Type:ref:param=x`` (nested) -> :class:`~.ir.Has`;
* with several types (``_type``), a parameter must exist on every type; when its IR differs between
  types (different targets, say), ``where`` is an ``Or`` over ``(and (type-is T) <IR for T>)``.

Errors (:class:`~fhir_server.errors.InvalidRequest`, ``expression`` = the parameter as written):
an unknown parameter, an unknown modifier for the type, a chain through a parameter that is not a
reference, an unknown ``_sort``/``_include`` name are :class:`UnknownParameter`: raised under
strict handling, ignored and listed in :attr:`SearchRequest.ignored` under lenient handling. A
known parameter with a bad value is always an error.

:attr:`SearchRequest.applied` lists the pairs applied, for the self link: search parameters and
result parameters (``_sort``, ``_count``, ``_include`` ..., lenient handling keeping only the valid
``_sort`` keys and includes) but never ``_format``/``_pretty`` (the HTTP layer owns them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from fhir_server.errors import InvalidRequest
from fhir_server.search import ir
from fhir_server.search.index import NOT_INDEXED
from fhir_server.search.params import Registry, SearchParam
from fhir_server.search.params import registry as default_registry
from fhir_server.search.single_valued import MERGEABLE, merge, single_valued
from fhir_server.search.syntax import (
    ChainLink,
    HasLink,
    Include,
    RawParameter,
    ResultParameters,
    SortKey,
    is_result_parameter,
    parse_key,
    parse_parameter,
    parse_result_parameters,
    unescape,
)
from fhir_server.search.types import (
    Context,
    Terminology,
    UnknownParameter,
    composite,
    date,
    number,
    param_type,
    quantity,
    reference,
    string,
    token,
    uri,
)

__all__ = ["SearchRequest", "UnknownParameter", "build_parameter", "build_search"]

Builder = Callable[[SearchParam, "str | None", Sequence[str], Context], ir.Node]
BUILDERS: dict[str, Builder] = {
    "token": token.build, "string": string.build, "date": date.build, "number": number.build,
    "quantity": quantity.build, "reference": reference.build, "uri": uri.build,
    "composite": composite.build,
}
SORT_ALWAYS = frozenset({"_id", "_lastUpdated"})
_SKIPPED = frozenset({"_format", "_pretty"})


@dataclass(frozen=True, slots=True)
class SearchRequest:
    types: tuple[str, ...]  # resource types searched (one for type search; several for _type)
    where: ir.Node  # resource-level condition; ir.And() when there is none
    result: ResultParameters  # sort, count, includes, total, summary, elements, cursor...
    applied: tuple[tuple[str, str], ...]  # (key, value) pairs actually applied, in order
    ignored: tuple[str, ...]  # keys ignored under lenient handling (unknown params, empty values)


# -- one parameter --------------------------------------------------------------------------------

def _resolve(rtype: str, name: str, ctx: Context) -> SearchParam:
    param = ctx.registry.get(rtype, name)
    if param is None:
        raise ctx.unknown(f"unknown search parameter {name!r} for {rtype}")
    if param.type == "special" or param.expression is None or name in NOT_INDEXED:
        raise ctx.unknown(f"the search parameter {name!r} is not supported")
    return param


def _missing(param: SearchParam, values: Sequence[str], ctx: Context) -> ir.Node:
    def one(value: str) -> ir.Node:
        text = unescape(value)
        if text not in ("true", "false"):
            raise ctx.bad(f":missing takes true or false, got {text!r}")
        return ir.Missing(param.code, param_type(param), text == "true")

    return ir.any_of(one(v) for v in values)


def _chain(rtype: str, param: SearchParam, modifier: str | None, links: Sequence[ChainLink],
           values: Sequence[str], ctx: Context) -> ir.Node:
    if param.type != "reference":
        raise ctx.unknown(f"cannot chain through {param.code!r}: it is a {param.type} parameter,"
                          " not a reference")
    nxt = links[0]
    targets = reference.target_types(param, modifier, ctx)
    with_param = [t for t in targets if ctx.registry.get(t, nxt.name) is not None]
    if not with_param:
        raise ctx.unknown(f"no target of {rtype}.{param.code} ({', '.join(targets)}) has a search"
                          f" parameter {nxt.name!r}")
    return ir.any_of(
        ir.Chain(param.code, target, _condition(target, nxt.name, nxt.modifier, links[1:], values, ctx))
        for target in with_param)


def _condition(rtype: str, name: str, modifier: str | None, links: Sequence[ChainLink],
               values: Sequence[str], ctx: Context) -> ir.Node:
    param = _resolve(rtype, name, ctx)
    if links:
        return _chain(rtype, param, modifier, links, values, ctx)
    if modifier == "missing":
        return _missing(param, values, ctx)
    if len(values) > 1 and not param.multiple_or:
        raise ctx.bad(f"{param.code!r} does not allow a list of values (multipleOr is false)")
    return BUILDERS[param.type](param, modifier, values, ctx)


def _has(rtype: str, links: Sequence[HasLink], raw: RawParameter, ctx: Context) -> ir.Node:
    if not links:
        return _condition(rtype, raw.name, raw.modifier, raw.chain, raw.values, ctx)
    link = links[0]
    if link.type not in ctx.registry.resource_types:
        raise ctx.unknown(f"_has: unknown resource type {link.type!r}")
    ref = ctx.registry.get(link.type, link.param)
    if ref is None or ref.type != "reference":
        raise ctx.unknown(f"_has: {link.type} has no reference search parameter {link.param!r}")
    if ref.targets and rtype not in ref.targets:
        raise ctx.unknown(f"_has: {link.type}.{link.param} cannot refer to a {rtype}")
    return ir.Has(link.type, link.param, _has(link.type, links[1:], raw, ctx))


def build_parameter(rtype: str, raw: RawParameter, ctx: Context) -> ir.Node:
    """The resource-level IR of one raw parameter on ``rtype``."""
    return _has(rtype, raw.has, raw, ctx)


# -- result parameters ----------------------------------------------------------------------------

def _check_sort(key: SortKey, types: Sequence[str], reg: Registry) -> str | None:
    if key.name in SORT_ALWAYS:
        return None
    missing = [t for t in types if reg.get(t, key.name) is None]
    return f"cannot sort by {key.name!r}: not a search parameter of {', '.join(missing)}" \
        if missing else None


def _check_include(inc: Include, reg: Registry) -> str | None:
    name = "_revinclude" if inc.reverse else "_include"
    if inc.source != "*" and inc.source not in reg.resource_types:
        return f"{name}: unknown resource type {inc.source!r}"
    if inc.target is not None and inc.target not in reg.resource_types:
        return f"{name}: unknown resource type {inc.target!r}"
    if inc.param == "*" or inc.source == "*":
        return None
    param = reg.get(inc.source, inc.param)
    if param is None or param.type != "reference":
        return f"{name}: {inc.source} has no reference search parameter {inc.param!r}"
    if inc.target is not None and param.targets and inc.target not in param.targets:
        return f"{name}: {inc.target} is not a target of {inc.source}.{inc.param}"
    return None


def _include_value(inc: Include) -> str:
    if inc.source == "*" and inc.param == "*" and inc.target is None:
        return "*"
    return ":".join(p for p in (inc.source, inc.param, inc.target) if p is not None)


def _result(pairs: Sequence[tuple[str, str]], types: Sequence[str], strict: bool, reg: Registry,
            applied: list[tuple[str, str]], ignored: list[str]) -> ResultParameters:
    result = parse_result_parameters(pairs)
    sort: list[SortKey] = []
    for sort_key in result.sort:
        problem = _check_sort(sort_key, types, reg)
        if problem is None:
            sort.append(sort_key)
        elif strict:
            raise UnknownParameter(problem, expression="_sort")
        elif "_sort" not in ignored:
            ignored.append("_sort")
    includes: list[Include] = []
    for inc in result.includes:
        problem = _check_include(inc, reg)
        key = ("_revinclude" if inc.reverse else "_include") + (":iterate" if inc.iterate else "")
        if problem is None:
            includes.append(inc)
        elif strict:
            raise UnknownParameter(problem, expression=key)
        else:
            ignored.append(key)
    # the self link: every result parameter as given, with only the valid sort keys and includes
    for key, value in pairs:
        base = key.partition(":")[0]
        if base == "_sort" and sort:
            applied.append((key, ",".join(("-" if s.descending else "") + s.name for s in sort)))
        elif base not in _SKIPPED and base not in ("_sort", "_include", "_revinclude"):
            applied.append((key, value))
    for inc in includes:
        applied.append((("_revinclude" if inc.reverse else "_include")
                        + (":iterate" if inc.iterate else ""), _include_value(inc)))
    return replace(result, sort=tuple(sort), includes=tuple(includes))


# -- the whole query ------------------------------------------------------------------------------

def build_search(types: Sequence[str], pairs: Iterable[tuple[str, str]], *, strict: bool = True,
                 base_url: str | None = None, now: int | None = None,
                 registry: Registry | None = None,
                 terminology: Terminology | None = None) -> SearchRequest:
    """The decoded query ``pairs`` of a search on ``types`` -> a :class:`SearchRequest`.

    ``strict``: ``Prefer: handling=strict`` (the default) rather than lenient; ``now``: UTC
    microseconds (for ``ap``; the current time when None); ``base_url``: this server's base, so an
    absolute reference to it is matched as a local one; ``terminology``: the code sets behind the
    token modifiers ``:in``, ``:not-in``, ``:above``, ``:below`` (without it they are a 400).
    """
    reg = registry or default_registry()
    types = tuple(types)
    if not types:
        raise ValueError("build_search needs at least one resource type")
    for rtype in types:
        if rtype not in reg.resource_types:
            raise InvalidRequest(f"Unknown resource type {rtype!r}", expression=rtype)
    now_us = now if now is not None else time.time_ns() // 1000
    applied: list[tuple[str, str]] = []
    ignored: list[str] = []
    result_pairs: list[tuple[str, str]] = []
    conditions: list[ir.Node] = []
    for key, value in pairs:
        if is_result_parameter(key):
            result_pairs.append((key, value))
            continue
        if value == "":
            if key:
                parse_key(key)  # still reject a malformed name
            ignored.append(key)
            continue
        raw = parse_parameter(key, value)
        ctx = Context(key, reg, now_us, base_url, terminology)
        try:
            per_type = [build_parameter(rtype, raw, ctx) for rtype in types]
        except UnknownParameter:
            if strict:
                raise
            ignored.append(key)
            continue
        if all(node == per_type[0] for node in per_type[1:]):
            conditions.append(per_type[0])
        else:
            conditions.append(ir.any_of(ir.all_of((ir.TypeIs((t,)), node))
                                        for t, node in zip(types, per_type, strict=True)))
        applied.append((key, value))
    applied_search = list(applied)
    applied.clear()
    result = _result(result_pairs, types, strict, reg, applied, ignored)
    if len(types) == 1 and len(conditions) > 1:
        params = reg.for_type(types[0])
        is_single = {n.param: single_valued(params[n.param].expression) for n in conditions
                     if isinstance(n, ir.Entry) and n.type in MERGEABLE and n.param in params}
        conditions = merge(conditions, is_single)
    where = ir.all_of(conditions) if conditions else ir.And()
    return SearchRequest(types, where, result, tuple(applied_search + applied), tuple(ignored))
