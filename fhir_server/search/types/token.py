"""token: https://hl7.org/fhir/R4/search.html#token (codes, Codings, identifiers, booleans, ``_id``).

* ``code``: any system; ``system|code``: both; ``|code``: no system (``null system``);
  ``system|``: any code in the system;
* ``:text``: the entry's folded text/display contains the folded value (``co text``);
* ``:not``: resources with no entry matching any of the values (also those without any entry);
* ``:of-type``: ``type_system|type_code|value`` on an Identifier (``type_system`` may be empty:
  no system);
* ``:in=<ValueSet canonical>``: an entry whose (system, code) is in the ValueSet's expansion,
  compiled to ``(or (entry p (and (or (eq system S) (null system)) (in code ...))) ...)``, one
  branch per system; an entry without a system is a ``code`` element (``Patient.gender``) whose
  system its binding implies, so it matches on the code;
  ``:not-in``: ``not`` of that (resources without any entry included, as for ``:not``);
* ``:below=[system]|code`` / ``:above``: the code and its descendants / ancestors (is-a) in the
  code system, compiled like ``:in`` with the one system; without a system, in
  every known system that has the code.

The last four need a terminology service in the :class:`Context`; a ValueSet or code system the
service cannot answer for is a 400 naming the value (never a silently empty result).
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_server.search import ir
from fhir_server.search.index import normalise
from fhir_server.search.params import SearchParam
from fhir_server.search.syntax import split_raw, unescape
from fhir_server.search.types import Context, Terminology, entry, eq_or_null, unknown_modifier

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


def _codes(system: str, codes: frozenset[str] | set[str]) -> ir.Node:
    """The codes of one system; an entry without a system (a ``code`` element such as
    ``Patient.gender``, whose system is implied by its binding) matches on the code alone."""
    ordered = tuple(sorted(codes))
    code = ir.Cmp("code", "eq", ordered[0]) if len(ordered) == 1 else ir.In("code", ordered)
    return ir.And((ir.Or((ir.Cmp("system", "eq", system), ir.Null("system"))), code))


def _in(param: SearchParam, value: str, ctx: Context, term: Terminology) -> ir.Node:
    url = unescape(value)
    pairs = term.codes_in(url)
    if pairs is None:
        raise ctx.bad(f"the ValueSet {url!r} is not known here or cannot be expanded (it may draw"
                      " on code systems this server does not hold)")
    by_system: dict[str, set[str]] = {}
    for system, code in pairs:
        by_system.setdefault(system, set()).add(code)
    return ir.any_of(entry(param, _codes(s, by_system[s])) for s in sorted(by_system))


def _hierarchy(param: SearchParam, value: str, ctx: Context, term: Terminology, below: bool) -> ir.Node:
    parts = split_raw(value, "|")
    if len(parts) > 2:
        raise ctx.bad(f"{value!r} has more than one unescaped '|': expected [system]|code")
    code = unescape(parts[-1])
    if not code:
        raise ctx.bad(f"{value!r}: :{'below' if below else 'above'} needs a code")
    if len(parts) == 2:
        system = unescape(parts[0])
        if not system:
            raise ctx.bad(f"{value!r}: a code without a system has no hierarchy here")
        systems = [system]
    else:
        systems = term.systems_with(code)
        if not systems:
            raise ctx.bad(f"no code system known here has the code {code!r}")
    nodes = []
    for system in systems:
        related = term.descendants(system, code) if below else term.ancestors(system, code)
        if related is None:
            raise ctx.bad(f"the code system {system!r} with the code {code!r} is not known here,"
                          " so its hierarchy cannot be searched")
        nodes.append(entry(param, _codes(system, related)))
    return ir.any_of(nodes)


def _terminology(param: SearchParam, modifier: str, values: Sequence[str], ctx: Context) -> ir.Node:
    term = ctx.terminology
    if term is None:
        raise ctx.bad(f":{modifier} needs a terminology service, which this search has not got")
    if modifier in ("in", "not-in"):
        found = ir.any_of(_in(param, v, ctx, term) for v in values)
        return ir.Not(found) if modifier == "not-in" else found
    return ir.any_of(_hierarchy(param, v, ctx, term, modifier == "below") for v in values)


def build(param: SearchParam, modifier: str | None, values: Sequence[str], ctx: Context) -> ir.Node:
    if modifier in TERMINOLOGY:
        return _terminology(param, modifier, values, ctx)
    if modifier is not None and modifier not in MODIFIERS:
        raise unknown_modifier(param, modifier, ctx)
    if modifier == "not":
        return ir.Not(ir.any_of(entry(param, row(param, v, ctx)) for v in values))
    return ir.any_of(entry(param, row(param, v, ctx, modifier)) for v in values)
