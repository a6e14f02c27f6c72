"""Search-parameter FHIRPath, compiled once into Python closures.

Search-parameter expressions use a small FHIRPath subset; this module compiles it natively and
falls back to fhirpathpy (compiled once, with its R4 model) for anything else. The subset:

* paths from the resource type (``Patient.name.family``) or, with ``context_type``, relative ones;
* ``|`` unions and parentheses;
* choice types, selected statically with the R4 structure table: ``Observation.value as Quantity``,
  ``(Observation.value as CodeableConcept)``, ``Condition.onset.as(dateTime)``, ``ofType(T)``
  (``Observation.value`` alone yields every ``value[x]``); ``as`` filters a collection of any size
  (FHIRPath wants a singleton; search indexing, like HAPI, keeps the items of that type);
* ``where(...)`` with ``resolve() is T``, ``path = 'literal'`` and ``path.exists()`` conditions;
* ``extension('url')``, ``first()``.

Traversal flattens lists like FHIRPath, and primitives are their JSON values (decimals stay
``Decimal``). Because the walk is typed statically, :meth:`CompiledPath.typed` also reports each
value's FHIR type (``CodeableConcept``, ``dateTime``, ...), which index extraction uses.

``resolve() is T`` does not resolve anything: it keeps the References whose ``reference`` names
type ``T`` (``T/id``, or ``.../T/id`` in an absolute URL, optionally followed by ``/_history/v``).
fhirpathpy does not implement ``resolve()`` at all, so such expressions are always native.

Expressions compiled through fhirpathpy are listed by :func:`fallbacks`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

log = logging.getLogger(__name__)

Nodes = list[Any]
Step = Callable[[Nodes], Nodes]

#: expression -> why it is evaluated by fhirpathpy (filled as expressions are compiled)
FALLBACKS: dict[str, str] = {}

# FHIR type specialisations the ``as``/``is``/``ofType`` filters honour.
_SUBTYPES: dict[str, frozenset[str]] = {
    "Quantity": frozenset({"Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity",
                           "SimpleQuantity"}),
}


# System types (``as(DateTime)`` in a component expression) name the FHIR primitives they map to.
_SYSTEM_TYPES = {"DateTime": "dateTime", "Date": "date", "Time": "time", "String": "string",
                 "Boolean": "boolean", "Decimal": "decimal", "Integer": "integer"}


class Unsupported(Exception):
    """The expression is outside the natively compiled subset."""


@cache
def _structure() -> dict[str, Any]:
    text = resources.files("fhir_server.fhir").joinpath("data/r4_structure.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# -- tokens ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<num>[0-9]+(?:\.[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)
  | (?P<op>!=|[.()|=,\[\]%<>+\-*/&~])
)""", re.VERBOSE)


def _tokens(expression: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot tokenise at {pos}")
        pos = m.end()
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "name" and value.startswith("`"):
            value = value[1:-1]
        out.append((kind, value))
    return out


# -- compiled branches ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Branch:
    fn: Step
    type: str  # FHIR type code, backbone path ("Patient.contact") or resource type


def _identity(nodes: Nodes) -> Nodes:
    return nodes


def _getter(key: str) -> Step:
    def get(nodes: Nodes) -> Nodes:
        out: Nodes = []
        for node in nodes:
            if type(node) is not dict:
                continue
            value = node.get(key)
            if value is None:
                continue
            if type(value) is list:
                out.extend(v for v in value if v is not None)
            else:
                out.append(value)
        return out
    return get


def _then(first: Step, second: Step) -> Step:
    if first is _identity:
        return second

    def both(nodes: Nodes) -> Nodes:
        return second(first(nodes))
    return both


def _filter(fn: Step, keep: Callable[[Any], bool]) -> Step:
    def filtered(nodes: Nodes) -> Nodes:
        return [n for n in fn(nodes) if keep(n)]
    return filtered


_REF_TYPE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


def reference_type(reference: str) -> str | None:
    """The resource type named by a literal reference (relative or absolute), else None."""
    m = _REF_TYPE.search(reference)
    return m.group(1) if m else None


class _Parser:
    def __init__(self, expression: str, context_type: str | None) -> None:
        self.toks = _tokens(expression)
        self.pos = 0
        self.context_type = context_type
        structure = _structure()
        self.types: dict[str, Any] = structure["types"]
        self.primitives: dict[str, Any] = structure["primitives"]
        self.resource_types = set(structure["resourceTypes"])
        self.union_seen = False

    # token helpers
    def peek(self, offset: int = 0) -> tuple[str, str]:
        i = self.pos + offset
        return self.toks[i] if i < len(self.toks) else ("eof", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, v = self.peek()
        if (value is not None and v != value) or (kind is not None and k != kind):
            raise Unsupported(f"expected {value or kind} at token {self.pos}, got {v!r}")
        self.pos += 1
        return v

    def at(self, value: str) -> bool:
        k, v = self.peek()
        return v == value and k in ("op", "name")

    # grammar
    def parse(self) -> list[_Branch]:
        branches = self.union(None)
        if self.peek()[0] != "eof":
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return branches

    def union(self, ctx: list[_Branch] | None) -> list[_Branch]:
        branches = self.typed_term(ctx)
        while self.at("|"):
            self.take("|")
            self.union_seen = True
            branches = branches + self.typed_term(ctx)
        return branches

    def typed_term(self, ctx: list[_Branch] | None) -> list[_Branch]:
        branches = self.postfix(ctx)
        while self.at("as") or self.at("is"):
            op = self.take()
            if op == "is":
                raise Unsupported("'is' outside where(resolve() is T)")
            branches = self.type_filter(branches, self.take(kind="name"))
        return branches

    def postfix(self, ctx: list[_Branch] | None) -> list[_Branch]:
        if self.at("("):
            self.take("(")
            branches = self.union(ctx)
            self.take(")")
        else:
            name = self.take(kind="name")
            if ctx is None and name in self.resource_types and self.peek()[1] != "(":
                branches = [_Branch(_identity, name)]
            else:
                if ctx is None:
                    if self.context_type is None:
                        raise Unsupported(f"relative path {name!r} without a context type")
                    ctx = [_Branch(_identity, self.context_type)]
                branches = self.invocation(ctx, name)
        while self.at(".") and self.peek(1)[1] != "exists":
            self.take(".")
            branches = self.invocation(branches, self.take(kind="name"))
        return branches

    def invocation(self, branches: list[_Branch], name: str) -> list[_Branch]:
        if not self.at("("):
            return self.child(branches, name)
        self.take("(")
        if name in ("as", "ofType"):
            type_name = self.take(kind="name")
            self.take(")")
            return self.type_filter(branches, type_name)
        if name == "first":
            self.take(")")
            if len(branches) != 1:
                raise Unsupported("first() over several types")
            fn = branches[0].fn

            def first(nodes: Nodes) -> Nodes:
                return fn(nodes)[:1]
            return [_Branch(first, branches[0].type)]
        if name == "extension":
            url = self.string()
            self.take(")")

            def has_url(node: Any) -> bool:
                return type(node) is dict and node.get("url") == url
            return [_Branch(_filter(b.fn, has_url), b.type)
                    for b in self.child(branches, "extension")]
        if name == "where":
            out = [_Branch(_filter(b.fn, self.condition(b.type)), b.type) for b in branches]
            self.take(")")
            return out
        raise Unsupported(f"function {name}()")

    def string(self) -> str:
        raw = self.take(kind="str")
        return re.sub(r"\\(.)", r"\1", raw[1:-1])

    def condition(self, type_name: str) -> Callable[[Any], bool]:
        """A where() condition evaluated on one node of type ``type_name``."""
        if self.at("resolve") and self.peek(1)[1] == "(":
            self.take("resolve")
            self.take("(")
            self.take(")")
            self.take("is")
            target = self.take(kind="name")

            def is_type(node: Any) -> bool:
                ref = node.get("reference") if type(node) is dict else None
                return isinstance(ref, str) and reference_type(ref) == target
            return is_type
        sub = self.union([_Branch(_identity, type_name)])
        fns = [b.fn for b in sub]

        def values(node: Any) -> Nodes:
            out: Nodes = []
            for fn in fns:
                out.extend(fn([node]))
            return out

        if self.at("="):
            self.take("=")
            literal = self.string()

            def equals(node: Any) -> bool:
                got = values(node)
                return len(got) == 1 and got[0] == literal
            return equals
        if self.at(".") and self.peek(1)[1] == "exists":
            self.take(".")
            self.take("exists")
            self.take("(")
            self.take(")")
            def exists(node: Any) -> bool:
                return bool(values(node))
            return exists
        raise Unsupported("where() condition")

    def child(self, branches: list[_Branch], name: str) -> list[_Branch]:
        out: list[_Branch] = []
        for b in branches:
            if b.type in self.primitives:
                continue  # .id / .extension on primitives: not indexed
            info = self.types.get(b.type)
            if info is None or info.get("abstract") or b.type in ("Resource", "DomainResource"):
                raise Unsupported(f"navigation below {b.type}")
            element = info["elements"].get(name) or info["elements"].get(name + "[x]")
            if element is None:
                raise Unsupported(f"{b.type} has no element {name}")
            for key, (child_type, _primitive) in element["types"].items():
                out.append(_Branch(_then(b.fn, _getter(key)), child_type))
        return out

    def type_filter(self, branches: list[_Branch], type_name: str) -> list[_Branch]:
        type_name = _SYSTEM_TYPES.get(type_name, type_name)
        accepted = _SUBTYPES.get(type_name, frozenset({type_name}))
        if type_name not in self.types and type_name not in self.primitives:
            raise Unsupported(f"unknown type {type_name}")
        return [b for b in branches if b.type in accepted]


class CompiledPath:
    """A compiled expression: call it on a resource for its values (FHIRPath order)."""

    __slots__ = ("_branches", "_fallback", "_union", "expression", "native")

    def __init__(self, expression: str, branches: list[_Branch] | None,
                 fallback: Callable[[Any, Any], Nodes] | None, union: bool = False) -> None:
        self.expression = expression
        self._branches = branches
        self._fallback = fallback
        self._union = union  # ``|`` removes duplicates
        self.native = branches is not None

    def __call__(self, resource: Any) -> Nodes:
        if self._branches is None:
            return self._run_fallback(resource)
        if len(self._branches) == 1:
            return self._branches[0].fn([resource])
        out: Nodes = []
        start = [resource]
        for b in self._branches:
            out.extend(b.fn(start))
        return _dedupe(out) if self._union and len(out) > 1 else out

    def typed(self, resource: Any) -> list[tuple[Any, str | None]]:
        """Values with their FHIR type (None for fhirpathpy results)."""
        if self._branches is None:
            return [(v, None) for v in self._run_fallback(resource)]
        start = [resource]
        out: list[tuple[Any, str | None]] = [
            (v, b.type) for b in self._branches for v in b.fn(start)]
        if self._union and len(out) > 1:
            kept: list[tuple[Any, str | None]] = []
            for value, type_ in out:
                if not any(value == k for k, _ in kept):
                    kept.append((value, type_))
            return kept
        return out

    def _run_fallback(self, resource: Any) -> Nodes:
        assert self._fallback is not None
        try:
            return list(self._fallback(resource, {}))
        except Exception as exc:  # fhirpathpy raises plain Exceptions for unsupported features
            log.warning("fhirpathpy failed on %r: %s", self.expression, exc)
            return []

    @property
    def types(self) -> tuple[str, ...]:
        """The FHIR types the expression can yield (empty when run by fhirpathpy)."""
        return tuple(dict.fromkeys(b.type for b in self._branches or ()))

    def __repr__(self) -> str:
        return f"CompiledPath({self.expression!r}, native={self.native})"


def _dedupe(values: Nodes) -> Nodes:
    out: Nodes = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _fhirpathpy(expression: str) -> Callable[[Any, Any], Nodes]:
    import fhirpathpy
    from fhirpathpy.models import models

    fn: Callable[[Any, Any], Nodes] = fhirpathpy.compile(expression, models["r4"])
    return fn


#: ``X.exists() and X != false`` (Patient-deceased: "deceased, by a flag or a date"). FHIRPath: empty
#: ``X`` gives ``false``; otherwise ``X != false`` is true unless ``X`` is exactly one ``false`` (a
#: date, or several values, are not equal to ``false``). One boolean either way.
_EXISTS_NOT_FALSE = re.compile(r"(?P<path>[A-Za-z][\w.]*)\.exists\(\) and (?P=path) != false")


def _exists_not_false(path: CompiledPath) -> Step:
    def flag(nodes: Nodes) -> Nodes:
        values = [v for node in nodes for v in path(node)]
        return [bool(values) and not (len(values) == 1 and values[0] is False)]
    return flag


@cache
def compile_path(expression: str, context_type: str | None = None) -> CompiledPath:
    """Compile ``expression`` once (cached); relative paths need ``context_type``."""
    special = _EXISTS_NOT_FALSE.fullmatch(expression.strip())
    if special:
        inner = compile_path(special["path"], context_type)
        if inner.native:
            return CompiledPath(expression, [_Branch(_exists_not_false(inner), "boolean")], None)
    try:
        parser = _Parser(expression, context_type)
        branches = parser.parse()
        return CompiledPath(expression, branches, None, parser.union_seen)
    except Unsupported as exc:
        FALLBACKS[expression] = str(exc)
        log.info("FHIRPath %r falls back to fhirpathpy: %s", expression, exc)
        return CompiledPath(expression, None, _fhirpathpy(expression))


def fallbacks() -> dict[str, str]:
    """Expressions compiled so far that run on fhirpathpy, with the reason."""
    return dict(FALLBACKS)
