"""The search IR: a small closed set of frozen dataclasses that every store compiles.

Two levels, checked when a node is built:

* **row** conditions talk about the fields of ONE index entry (one row of an index table in
  SQLite, one element of the embedded index array in MongoDB): :class:`Cmp`, :class:`In`,
  :class:`Null`;
* **resource** conditions talk about a resource: :class:`Entry` ("one index entry of this parameter
  satisfies all of this": ``EXISTS`` over one row / ``$elemMatch``), :class:`Missing`,
  :class:`Chain`, :class:`Has`, :class:`IdIn`, :class:`TypeIs`.

:class:`And`, :class:`Or` and :class:`Not` combine nodes of one level (mixing levels is a
``TypeError``). ``And()`` is true and ``Or()`` is false. Parameter names are relative to the
resource type in scope: the type searched, a :class:`Chain` target, or a :class:`Has` source.

Index entry fields per parameter type (:data:`FIELDS`) are the contract between index extraction
and the compilers; every value is a literal (``str``, ``int``, ``bool``, ``Decimal`` or
:class:`Timestamp`) and every operator comes from the closed :data:`OPS`, so a compiler only ever
binds values, never splices them.

``str(node)`` is a stable s-expression used by golden tests, for example
``(and (entry birthdate (ge low 2020-01-01T00:00:00Z)) (entry name (sw norm "wang")))``.
The parameter type is not printed: a parameter name determines it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Literal, TypeAlias

ParamType = Literal[
    "number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"]
Op = Literal["eq", "lt", "le", "gt", "ge", "sw", "co"]
OPS: frozenset[str] = frozenset({"eq", "lt", "le", "gt", "ge", "sw", "co"})  # sw: starts with, co: contains

#: Fields of an index entry, per parameter type. ``date``: half-open [low, high) in UTC
#: microseconds; ``string``: ``norm`` (case- and accent-folded) and ``exact``; ``token``:
#: ``text`` is the folded display/text for ``:text``, ``type_*`` the identifier type for
#: ``:of-type``; ``reference``: ``type``/``id`` for local references, ``url`` for absolute and
#: canonical ones, ``identifier_*`` for ``:identifier``. Composite entries use ``c<i>_<field>``.
FIELDS: dict[str, frozenset[str]] = {
    "number": frozenset({"value"}),
    "date": frozenset({"low", "high"}),
    "string": frozenset({"norm", "exact"}),
    "token": frozenset({"system", "code", "text", "type_system", "type_code"}),
    "reference": frozenset({"type", "id", "url", "version", "identifier_system",
                            "identifier_value"}),
    "quantity": frozenset({"value", "system", "code", "unit"}),
    "uri": frozenset({"value"}),
    "special": frozenset({"value"}),
}
_COMPOSITE_FIELD = re.compile(r"c[0-9]+_[a-z_]+")

Level = Literal["row", "resource", "any"]


# -- values ---------------------------------------------------------------------------------------

def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year, no ``datetime`` limits)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days: int) -> tuple[int, int, int]:
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


_DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """An instant as integer microseconds since 1970-01-01T00:00:00Z; prints as ISO 8601 UTC."""

    us: int

    def __str__(self) -> str:
        days, rest = divmod(self.us, _DAY_US)
        y, m, d = civil_from_days(days)
        secs, micros = divmod(rest, 1_000_000)
        hh, mm, ss = secs // 3600, secs // 60 % 60, secs % 60
        frac = f".{micros:06d}" if micros else ""
        return f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}{frac}Z"


Value: TypeAlias = str | int | bool | Decimal | Timestamp


def show(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


# -- nodes ----------------------------------------------------------------------------------------

def _check_field(name: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"bad index field name {name!r}")


@dataclass(frozen=True, slots=True)
class Cmp:
    """Row: ``field op value``; ``sw``/``co`` only on strings."""

    field: str
    op: Op
    value: Value

    def __post_init__(self) -> None:
        _check_field(self.field)
        if self.op not in OPS:
            raise ValueError(f"unknown operator {self.op!r}")
        if self.op in ("sw", "co") and not isinstance(self.value, str):
            raise TypeError(f"{self.op} needs a string value")

    level: ClassVar[Level] = "row"

    def __str__(self) -> str:
        return f"({self.op} {self.field} {show(self.value)})"


@dataclass(frozen=True, slots=True)
class In:
    """Row: ``field`` equals one of ``values`` (a ValueSet expansion, an OR list of codes)."""

    field: str
    values: tuple[Value, ...]

    def __post_init__(self) -> None:
        _check_field(self.field)
        if not self.values:
            raise ValueError("In needs at least one value; use Or() for false")

    level: ClassVar[Level] = "row"

    def __str__(self) -> str:
        return f"(in {self.field} {' '.join(show(v) for v in self.values)})"


@dataclass(frozen=True, slots=True)
class Null:
    """Row: ``field`` has no value (``|code``: a token without a system)."""

    field: str

    def __post_init__(self) -> None:
        _check_field(self.field)

    level: ClassVar[Level] = "row"

    def __str__(self) -> str:
        return f"(null {self.field})"


def _level_of(items: Iterable[Node]) -> Level:
    levels = {i.level for i in items} - {"any"}
    if len(levels) > 1:
        raise TypeError("cannot combine row conditions with resource conditions")
    return levels.pop() if levels else "any"


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...] = ()

    @property
    def level(self) -> Level:
        return _level_of(self.items)

    def __post_init__(self) -> None:
        _level_of(self.items)

    def __str__(self) -> str:
        return "(and" + "".join(" " + str(i) for i in self.items) + ")"


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...] = ()

    @property
    def level(self) -> Level:
        return _level_of(self.items)

    def __post_init__(self) -> None:
        _level_of(self.items)

    def __str__(self) -> str:
        return "(or" + "".join(" " + str(i) for i in self.items) + ")"


@dataclass(frozen=True, slots=True)
class Not:
    item: Node

    @property
    def level(self) -> Level:
        return self.item.level

    def __str__(self) -> str:
        return f"(not {self.item})"


def _fields(node: Node) -> Iterable[str]:
    if isinstance(node, Cmp | In | Null):
        yield node.field
    elif isinstance(node, And | Or):
        for item in node.items:
            yield from _fields(item)
    elif isinstance(node, Not):
        yield from _fields(node.item)


@dataclass(frozen=True, slots=True)
class Entry:
    """Resource: one index entry of ``param`` satisfies ``where`` (``And()``: any entry at all)."""

    param: str
    type: ParamType
    where: Node = And()

    def __post_init__(self) -> None:
        if self.where.level == "resource":
            raise TypeError("Entry conditions are about one index entry, not a resource")
        allowed = FIELDS.get(self.type)
        for name in _fields(self.where):
            ok = _COMPOSITE_FIELD.fullmatch(name) if allowed is None else name in allowed
            if not ok:
                raise ValueError(f"{self.type} index entries have no field {name!r}")

    level: ClassVar[Level] = "resource"

    def __str__(self) -> str:
        return f"(entry {self.param} {self.where})"


@dataclass(frozen=True, slots=True)
class Missing:
    """Resource: ``param`` has no index entry (``missing=True``) or has one (``False``)."""

    param: str
    type: ParamType
    missing: bool

    level: ClassVar[Level] = "resource"

    def __str__(self) -> str:
        return f"(missing {self.param} {show(self.missing)})"


def _check_query(query: Node) -> None:
    if query.level == "row":
        raise TypeError("a sub-query must be about resources, not index rows")


@dataclass(frozen=True, slots=True)
class Chain:
    """Resource: reference ``param`` points at a ``target`` resource matching ``query``."""

    param: str
    target: str
    query: Node

    def __post_init__(self) -> None:
        _check_query(self.query)

    level: ClassVar[Level] = "resource"

    def __str__(self) -> str:
        return f"(chain {self.param} {self.target} {self.query})"


@dataclass(frozen=True, slots=True)
class Has:
    """Resource: some ``type`` resource matching ``query`` refers to this one through ``param``."""

    type: str
    param: str
    query: Node

    def __post_init__(self) -> None:
        _check_query(self.query)

    level: ClassVar[Level] = "resource"

    def __str__(self) -> str:
        return f"(has {self.type} {self.param} {self.query})"


@dataclass(frozen=True, slots=True)
class IdIn:
    """Resource: the logical id is one of ``ids`` (``_id``, compartments, authorization)."""

    ids: tuple[str, ...]

    level: ClassVar[Level] = "resource"

    def __str__(self) -> str:
        return "(id-in" + "".join(" " + show(i) for i in self.ids) + ")"


@dataclass(frozen=True, slots=True)
class TypeIs:
    """Resource: the resource type is one of ``types`` (system-level search, ``_type``)."""

    types: tuple[str, ...]

    level: ClassVar[Level] = "resource"

    def __str__(self) -> str:
        return "(type-is" + "".join(" " + t for t in self.types) + ")"


Node: TypeAlias = Cmp | In | Null | And | Or | Not | Entry | Missing | Chain | Has | IdIn | TypeIs


def all_of(items: Iterable[Node]) -> Node:
    """``And`` without nesting: nested ``And`` items are flattened, a single item is returned as is."""
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, And) else (item,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def any_of(items: Iterable[Node]) -> Node:
    """``Or`` without nesting, like :func:`all_of`."""
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Or) else (item,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))
