"""Search syntax: query pairs -> raw parameters and result parameters. No registry, no I/O.

Step 1 of search (https://hl7.org/fhir/R4/search.html): only the *shape* of each parameter is read
here. Whether ``subject`` exists on ``Observation`` or ``:exact`` suits a token is decided later,
against the SearchParameter registry, by the type modules.

* ``name[:modifier][.link[:Type]]*=v1,v2`` -> one :class:`RawParameter`; repeated names are ANDed,
  so each occurrence stays a separate parameter, in order.
* ``_has:Type:ref:[_has:Type2:ref2:]*param[:modifier]=v`` -> ``has`` links then the inner parameter.
* Values are the comma-separated OR list, split on unescaped commas and otherwise kept *raw*: the
  escapes ``\\,`` ``\\|`` ``\\$`` ``\\\\`` stay in place so a type module can split on ``|`` or
  ``$`` first (:func:`split_raw`) and :func:`unescape` the pieces afterwards (:func:`split_values`
  does both). A backslash before any other character, or at the end, is kept literally.
* A parameter whose whole value is empty (``name=``) is ignored and listed in
  :attr:`ParsedQuery.ignored`; an empty item inside an OR list (``a,,b``) is an error.
* Result parameters (``_sort``, ``_count``, ``_include`` ...) go to :class:`ResultParameters`.

Every malformed input raises :class:`~fhir_server.errors.InvalidRequest` whose ``expression`` is
the parameter as written in the query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fhir_server.errors import InvalidRequest

#: Modifiers of R4 search parameters plus ``iterate`` (of ``_include``/``_revinclude``); a modifier
#: that looks like a resource type (``subject:Patient``) is a type modifier.
MODIFIERS = frozenset({
    "missing", "exact", "contains", "text", "not", "above", "below", "in", "not-in", "of-type",
    "identifier", "iterate",
})
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMETERS = frozenset({
    "_sort", "_count", "_include", "_revinclude", "_total", "_summary", "_elements", "_contained",
    "_containedType", "_cursor", "_format", "_pretty",
})
SUMMARY_VALUES = ("true", "text", "data", "count", "false")
TOTAL_VALUES = ("none", "estimate", "accurate")
CONTAINED_VALUES = ("false", "true", "both")
CONTAINED_TYPE_VALUES = ("container", "contained")

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")
_TYPE = re.compile(r"[A-Z][A-Za-z0-9]*")
_ELEMENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")
_ESCAPABLE = ",|$\\"
_PREFIXED = re.compile(r"(eq|ne|gt|lt|ge|le|sa|eb|ap)([+-]?[0-9].*)", re.DOTALL)


# -- values ---------------------------------------------------------------------------------------

def split_raw(value: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not escaped; the pieces keep their escapes."""
    pieces: list[str] = []
    start = i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            i += 2
            continue
        if ch == sep:
            pieces.append(value[start:i])
            start = i + 1
        i += 1
    pieces.append(value[start:])
    return pieces


def unescape(value: str) -> str:
    """``\\,`` ``\\|`` ``\\$`` ``\\\\`` -> the character; any other backslash stays as it is."""
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in _ESCAPABLE:
            out.append(value[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def split_values(value: str, sep: str) -> list[str]:
    """Split on unescaped ``sep`` (``|`` or ``$``) and unescape each piece."""
    return [unescape(p) for p in split_raw(value, sep)]


def split_prefix(value: str) -> tuple[str, str]:
    """``ge2020`` -> ``("ge", "2020")``; no prefix -> ``("eq", value)``.

    Two letters are a prefix only when a digit follows (or a sign and then a digit, for numbers
    such as ``lt-5``), so ``lemon`` or ``ne`` alone are values, not prefixes.
    """
    match = _PREFIXED.fullmatch(value)
    return (match.group(1), match.group(2)) if match else ("eq", value)


# -- raw parameters -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ChainLink:
    """One ``.name[:modifier]`` step after the first parameter of a chain.

    On every link but the last the modifier can only be a resource type (``.organization:Organization``);
    on the last link it is the modifier applied to the values (``.name:exact``).
    """

    name: str
    modifier: str | None = None


@dataclass(frozen=True, slots=True)
class HasLink:
    """``_has:Type:param:``: resources of ``type`` whose reference ``param`` points back here."""

    type: str
    param: str


@dataclass(frozen=True, slots=True)
class RawParameter:
    """One ``key=value`` of the query, its shape understood, its meaning not yet.

    ``name``/``modifier`` are the parameter on the resource searched (after any ``_has`` links);
    when ``chain`` is not empty ``modifier`` is ``None`` or a resource type and the values apply to
    the last chain link (see :attr:`leaf`).
    """

    key: str  # as written, for error messages and the self link
    name: str
    modifier: str | None = None
    chain: tuple[ChainLink, ...] = ()
    has: tuple[HasLink, ...] = ()
    values: tuple[str, ...] = ()  # the OR list, each value still escaped

    @property
    def leaf(self) -> ChainLink:
        """The parameter (and modifier) the values are matched against."""
        return self.chain[-1] if self.chain else ChainLink(self.name, self.modifier)


def is_type_name(text: str) -> bool:
    return _TYPE.fullmatch(text) is not None


def _check_modifier(modifier: str, key: str) -> None:
    if modifier not in MODIFIERS and not is_type_name(modifier):
        raise InvalidRequest(f"Unknown search modifier {modifier!r} in {key!r}", expression=key)


def _parse_link(text: str, key: str) -> ChainLink:
    name, colon, modifier = text.partition(":")
    if not _NAME.fullmatch(name):
        raise InvalidRequest(f"Malformed search parameter name {key!r}", expression=key)
    if colon and not modifier:
        raise InvalidRequest(f"Empty modifier in search parameter {key!r}", expression=key)
    if colon:
        _check_modifier(modifier, key)
    return ChainLink(name, modifier or None)


def parse_key(key: str) -> tuple[tuple[HasLink, ...], tuple[ChainLink, ...]]:
    """``_has`` links and the chain of ``key``; the first chain link is the parameter itself."""
    has: list[HasLink] = []
    rest = key
    while rest == "_has" or rest.startswith("_has:"):
        parts = rest.split(":", 3)
        if len(parts) < 4 or not parts[3]:
            raise InvalidRequest(
                f"_has needs _has:Type:reference:parameter, got {key!r}", expression=key)
        _, rtype, ref, rest = parts
        if not is_type_name(rtype):
            raise InvalidRequest(f"_has: {rtype!r} is not a resource type in {key!r}", expression=key)
        if not _NAME.fullmatch(ref):
            raise InvalidRequest(
                f"_has: {ref!r} is not a search parameter name in {key!r}", expression=key)
        has.append(HasLink(rtype, ref))
    links = [_parse_link(part, key) for part in rest.split(".")]
    for link in links[:-1]:
        if link.modifier is not None and not is_type_name(link.modifier):
            raise InvalidRequest(
                f"Only a resource type can qualify a chained parameter, got :{link.modifier}"
                f" in {key!r}", expression=key)
    return tuple(has), tuple(links)


def parse_parameter(key: str, value: str) -> RawParameter:
    """One query pair that is not a result parameter."""
    if not key:
        raise InvalidRequest("Empty search parameter name", expression=key)
    has, links = parse_key(key)
    values = tuple(split_raw(value, ","))
    if any(v == "" for v in values):
        raise InvalidRequest(f"Empty value in the list {value!r} of {key!r}", expression=key)
    head = links[0]
    return RawParameter(key, head.name, head.modifier, links[1:], has, values)


# -- result parameters ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Include:
    """``_include=Source:param[:Target]`` (``reverse`` for ``_revinclude``); ``*`` as a wildcard."""

    source: str
    param: str
    target: str | None = None
    reverse: bool = False
    iterate: bool = False


@dataclass(frozen=True, slots=True)
class SortKey:
    name: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class ResultParameters:
    """Result parameters, validated; ``None`` means not given (defaults and limits such as the
    maximum ``_count`` belong to the search interaction, which knows the settings)."""

    sort: tuple[SortKey, ...] = ()
    count: int | None = None
    includes: tuple[Include, ...] = ()
    total: str | None = None
    summary: str | None = None
    elements: tuple[str, ...] | None = None
    contained: str | None = None
    contained_type: str | None = None
    cursor: str | None = None
    format: str | None = None
    pretty: bool | None = None


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    parameters: tuple[RawParameter, ...] = ()
    result: ResultParameters = field(default_factory=ResultParameters)
    ignored: tuple[str, ...] = ()  # keys given with an empty value


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidRequest(
            f"Invalid {key} value {value!r}: expected one of {', '.join(allowed)}", expression=key)
    return value


def _parse_sort(value: str) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for item in value.split(","):
        descending = item.startswith("-")
        name = item[1:] if descending else item
        if not _NAME.fullmatch(name):
            raise InvalidRequest(f"Invalid _sort item {item!r}", expression="_sort")
        keys.append(SortKey(name, descending))
    return tuple(keys)


def _parse_count(value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise InvalidRequest(f"_count must be a non-negative integer, got {value!r}",
                             expression="_count")
    return int(value)


def _parse_include(key: str, value: str, reverse: bool, iterate: bool) -> Include:
    if value == "*":
        return Include("*", "*", None, reverse, iterate)
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise InvalidRequest(f"{key} must be Type:parameter[:TargetType], got {value!r}",
                             expression=key)
    source, param = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not (source == "*" or is_type_name(source)) or not (param == "*" or _NAME.fullmatch(param)) \
            or (target is not None and not is_type_name(target)):
        raise InvalidRequest(f"{key} must be Type:parameter[:TargetType], got {value!r}",
                             expression=key)
    return Include(source, param, target, reverse, iterate)


def _parse_elements(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(","))
    for name in names:
        if not _ELEMENT.fullmatch(name):
            raise InvalidRequest(f"Invalid element name {name!r} in _elements",
                                 expression="_elements")
    return names


def _parse_pretty(value: str) -> bool:
    return _choice("_pretty", value, ("true", "false")) == "true"


_SINGLE: dict[str, tuple[str, Callable[[str], object]]] = {
    "_sort": ("sort", _parse_sort),
    "_count": ("count", _parse_count),
    "_total": ("total", lambda v: _choice("_total", v, TOTAL_VALUES)),
    "_summary": ("summary", lambda v: _choice("_summary", v, SUMMARY_VALUES)),
    "_elements": ("elements", _parse_elements),
    "_contained": ("contained", lambda v: _choice("_contained", v, CONTAINED_VALUES)),
    "_containedType": ("contained_type",
                       lambda v: _choice("_containedType", v, CONTAINED_TYPE_VALUES)),
    "_cursor": ("cursor", str),
    "_format": ("format", str),
    "_pretty": ("pretty", _parse_pretty),
}


def parse_result_parameters(pairs: Iterable[tuple[str, str]]) -> ResultParameters:
    """Result parameters only (keys whose base name is in :data:`RESULT_PARAMETERS`)."""
    values: dict[str, object] = {}
    includes: list[Include] = []
    for key, value in pairs:
        base, colon, modifier = key.partition(":")
        if base in ("_include", "_revinclude"):
            if colon and modifier not in ("iterate", "recurse"):  # recurse: the STU3 name
                raise InvalidRequest(f"Invalid modifier on {key!r}: only :iterate", expression=key)
            if not value:
                raise InvalidRequest(f"Empty {base}", expression=key)
            includes.append(_parse_include(key, value, base == "_revinclude", bool(colon)))
            continue
        if colon:
            raise InvalidRequest(f"{base} takes no modifier, got {key!r}", expression=key)
        attr, parse = _SINGLE[base]
        if attr in values:
            raise InvalidRequest(f"{base} given more than once", expression=base)
        if not value:
            raise InvalidRequest(f"Empty {base}", expression=base)
        values[attr] = parse(value)
    if "summary" in values and "elements" in values:
        raise InvalidRequest("_summary and _elements cannot be combined", expression="_elements")
    return ResultParameters(includes=tuple(includes), **values)  # type: ignore[arg-type]


def is_result_parameter(key: str) -> bool:
    return key.partition(":")[0] in RESULT_PARAMETERS


def parse_query(pairs: Iterable[tuple[str, str]]) -> ParsedQuery:
    """The query pairs (percent-decoded, in order) -> search parameters + result parameters."""
    parameters: list[RawParameter] = []
    result_pairs: list[tuple[str, str]] = []
    ignored: list[str] = []
    for key, value in pairs:
        if is_result_parameter(key):
            result_pairs.append((key, value))
        elif value == "" and key:
            parse_key(key)  # still reject a malformed name
            ignored.append(key)
        else:
            parameters.append(parse_parameter(key, value))
    return ParsedQuery(tuple(parameters), parse_result_parameters(result_pairs), tuple(ignored))
