"""reference: https://hl7.org/fhir/R4/search.html#reference (chains and ``_has`` are resolved by
:mod:`fhir_server.search.query`, which uses :func:`target_types`).

* ``Type/id`` (optionally ``/_history/v``): ``type``/``id`` (and ``version``);
* ``id`` alone: ``id`` with ``type`` among the parameter's targets (the ``:Type`` modifier if given);
* an absolute URL under ``base_url`` is read as the local ``Type/id``; any other absolute URL or
  canonical matches ``url`` (``url|version``: also ``version``);
* ``:Type``: the target type (must be one of the parameter's targets);
* ``:identifier``: ``[system]|value`` on ``identifier_system``/``identifier_value``;
* ``:above``/``:below`` (canonical hierarchies): not supported, an error.

Local references are matched on ``type``/``id`` only: an absolute reference to another server with
the same ``Type/id`` tail (indexed with ``type``/``id`` and ``url``) matches too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fhir_server.search import ir
from fhir_server.search.params import SearchParam
from fhir_server.search.syntax import is_type_name, split_raw, unescape
from fhir_server.search.types import Context, entry, unknown_modifier
from fhir_server.search.types.token import system_code

_LOCAL = re.compile(r"(?:(?P<type>[A-Z][A-Za-z]+)/)?(?P<id>[A-Za-z0-9\-.]{1,64})"
                    r"(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:.+")


def target_types(param: SearchParam, modifier: str | None, ctx: Context) -> tuple[str, ...]:
    """The types ``param`` may point at, narrowed by a ``:Type`` modifier (checked)."""
    targets = param.targets or ctx.registry.resource_types
    if modifier is None:
        return tuple(targets)
    if modifier not in targets:
        raise ctx.unknown(f"{modifier} is not a target type of the reference parameter"
                          f" {param.code!r} (targets: {', '.join(targets)})")
    return (modifier,)


def _type_condition(types: Sequence[str]) -> ir.Node:
    return ir.Cmp("type", "eq", types[0]) if len(types) == 1 else ir.In("type", tuple(types))


def _local(text: str, types: Sequence[str], param: SearchParam, ctx: Context) -> ir.Node:
    match = _LOCAL.fullmatch(text)
    if not match:
        raise ctx.bad(f"{text!r} is not a reference: expected Type/id, id or an absolute URL")
    rtype, rid, version = match["type"], match["id"], match["version"]
    if rtype is None:
        if version is not None:
            raise ctx.bad(f"{text!r}: a version needs Type/id/_history/version")
        return ir.And((_type_condition(types), ir.Cmp("id", "eq", rid)))
    if rtype not in types:
        raise ctx.bad(f"{rtype} is not a possible target of {param.code!r} here"
                      f" (expected {', '.join(types)})")
    items: list[ir.Node] = [ir.Cmp("type", "eq", rtype), ir.Cmp("id", "eq", rid)]
    if version is not None:
        items.append(ir.Cmp("version", "eq", version))
    return ir.And(tuple(items))


def row(param: SearchParam, value: str, ctx: Context, type_modifier: str | None = None) -> ir.Node:
    types = target_types(param, type_modifier, ctx)
    text = unescape(value)
    base = ctx.base_url.rstrip("/") + "/" if ctx.base_url else None
    if base is not None and text.startswith(base):
        return _local(text[len(base):], types, param, ctx)
    if _ABSOLUTE.fullmatch(text) and not _LOCAL.fullmatch(text):
        parts = split_raw(value, "|")
        if len(parts) > 2:
            raise ctx.bad(f"{value!r}: expected url or url|version")
        url = ir.Cmp("url", "eq", unescape(parts[0]))
        if len(parts) == 2 and parts[1]:
            return ir.And((url, ir.Cmp("version", "eq", unescape(parts[1]))))
        return url
    return _local(text, types, param, ctx)


def build(param: SearchParam, modifier: str | None, values: Sequence[str], ctx: Context) -> ir.Node:
    if modifier == "identifier":
        return ir.any_of(entry(param, system_code(v, ctx, "identifier_system", "identifier_value"))
                         for v in values)
    if modifier in ("above", "below"):
        raise ctx.bad(f":{modifier} on references (canonical hierarchies) is not supported")
    if modifier is not None and not is_type_name(modifier):
        raise unknown_modifier(param, modifier, ctx)
    return ir.any_of(entry(param, row(param, v, ctx, modifier)) for v in values)
