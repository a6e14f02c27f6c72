"""token: https://hl7.org/fhir/R4/search.html#token (codes, Codings, identifiers, booleans, ``_id``).

* ``code``: any system; ``system|code``: both; ``|code``: no system (``null system``);
  ``system|``: any code in the system;
* ``:text``: the entry's folded text/display contains the folded value (``co text``);
* ``:not``: resources with no entry matching any of the values (also those without any entry);
* ``:of-type``: ``type_system|type_code|value`` on an Identifier (``type_system`` may be empty:
  no system);
* ``:in`` ``:not-in`` ``:above`` ``:below`` need terminology support: an error, for now.
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_server.search import ir
from fhir_server.search.index import normalise
from fhir_server.search.params import SearchParam
from fhir_server.search.syntax import split_raw, unescape
from fhir_server.search.types import Context, entry, eq_or_null, unknown_modifier

MODIFIERS = frozenset({"text", "not", "of-type"})
TERMINOLOGY = frozenset({"in", "not-in", "above", "below"})


def system_code(value: str, ctx: Context, system_field: str = "system",
                code_field: str = "code") -> ir.Node:
    """``[system]|[code]`` or ``code`` (also for ``:identifier`` on references)."""
    parts = split_raw(value, "|")
    if len(parts) == 1:
        return ir.Cmp(code_field, "eq", unescape(value))
    if len(parts) != 2:
        raise ctx.bad(f"{value!r} has more than one unescaped '|': expected [system]|[code]")
    system, code = unescape(parts[0]), unescape(parts[1])
    if not system and not code:
        raise ctx.bad("'|' alone is neither a system nor a code")
    if not code:
        return ir.Cmp(system_field, "eq", system)
    return ir.And((eq_or_null(system_field, system), ir.Cmp(code_field, "eq", code)))


def row(param: SearchParam, value: str, ctx: Context, modifier: str | None = None) -> ir.Node:
    if modifier == "text":
        text = normalise(unescape(value))
        if not text:
            raise ctx.bad(f"{unescape(value)!r} is blank")
        return ir.Cmp("text", "co", text)
    if modifier == "of-type":
        parts = split_raw(value, "|")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ctx.bad(f"{value!r}: :of-type needs type_system|type_code|value")
        type_system, type_code, code = (unescape(p) for p in parts)
        return ir.And((eq_or_null("type_system", type_system), ir.Cmp("type_code", "eq", type_code),
                       ir.Cmp("code", "eq", code)))
    return system_code(value, ctx)


def build(param: SearchParam, modifier: str | None, values: Sequence[str], ctx: Context) -> ir.Node:
    if modifier in TERMINOLOGY:
        raise ctx.bad(f":{modifier} needs terminology support (ValueSet expansion, code system"
                      " hierarchies), which this server does not have yet")
    if modifier is not None and modifier not in MODIFIERS:
        raise unknown_modifier(param, modifier, ctx)
    if modifier == "not":
        return ir.Not(ir.any_of(entry(param, row(param, v, ctx)) for v in values))
    return ir.any_of(entry(param, row(param, v, ctx, modifier)) for v in values)
