"""Implicit precision and prefixes of ordered search values (dates, and numbers): pure functions.

https://hl7.org/fhir/R4/search.html#date and #prefix. A search date is the half-open range of
instants its precision covers: ``2020`` is [2020-01-01T00:00:00Z, 2021-01-01T00:00:00Z), in UTC
microseconds since the epoch. **A date or time without a time zone is taken as UTC** (the spec
lets a server pick its own zone; UTC keeps results independent of where the server runs).

Index entries of date parameters hold the same kind of range (``low``/``high``, see
:data:`fhir_server.search.ir.FIELDS`); with the search range [pl, ph) and an entry [low, high):

===== ====================================================================================
eq    the entry lies within the search range: ``low >= pl and high <= ph``
ne    not eq: ``low < pl or high > ph``
gt    the entry reaches beyond the search range: ``high > ph``
lt    the entry starts before the search range: ``low < pl``
ge    gt or eq
le    lt or eq
sa    the entry starts after the search range: ``low >= ph``
eb    the entry ends before the search range: ``high <= pl``
ap    the entry overlaps the search range widened on both sides by 10% of the distance between
      now and the search range, at least :data:`AP_FLOOR_US` (one day)
===== ====================================================================================

Numbers (https://hl7.org/fhir/R4/search.html#number): ``100`` means [99.5, 100.5), half a unit of
the last significant digit; ``100.00`` means [99.995, 100.005); ``1e2`` has one significant
figure, so [50, 150), and ``1.0e2`` [95, 105). (The spec's table gives [95, 105) for ``1e2`` while
calling it one significant figure; we follow the significant-figure rule.) ``eq``/``ne`` use that
range; ``gt lt ge le`` compare with the exact value, as the spec says the implicit precision is
then ignored; ``sa``/``eb`` are ``gt``/``lt``; ``ap`` widens the range to ±10% of the value.
Number index entries hold the exact ``value``.
"""

from __future__ import annotations

import calendar
import re
from decimal import Context, Decimal

from fhir_server.errors import InvalidRequest
from fhir_server.search.ir import And, Cmp, Node, Op, Or, Timestamp, days_from_civil

_SECOND = 1_000_000
_DAY = 86_400 * _SECOND
AP_FLOOR_US = _DAY
DATE_MIN_US = days_from_civil(1, 1, 1) * _DAY  # 0001-01-01T00:00:00Z: an open Period start
DATE_MAX_US = days_from_civil(10000, 1, 1) * _DAY  # after 9999-12-31: an open Period end

_DATE = re.compile(
    r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})"
    r"(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _bad_date(text: str, parameter: str) -> InvalidRequest:
    return InvalidRequest(
        f"{parameter}: {text!r} is not a valid date, such as 2020, 2020-03, 2020-03-04 or"
        " 2020-03-04T10:00:00+08:00", expression=parameter)


_UNENCODED_PLUS = re.compile(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:\d\d)$")


def date_range(text: str, parameter: str) -> tuple[int, int]:
    """A search date/dateTime/instant -> its half-open [low, high) in UTC microseconds.

    A space before a trailing ``hh:mm`` offset is read as ``+``: it is what an unencoded ``+`` in
    a query string decodes to (``2024-01-01T10:00:00+08:00`` typed into a URL).
    """
    match = _DATE.fullmatch(_UNENCODED_PLUS.sub(r"\1+\2", text))
    if not match:
        raise _bad_date(text, parameter)
    ys, ms, ds, hs, mins, ss, frac, tz = match.groups()
    year, month, day = int(ys), int(ms or 1), int(ds or 1)
    hour, minute, second = int(hs or 0), int(mins or 0), int(ss or 0)
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
            and hour <= 23 and minute <= 59 and second <= 59):
        raise _bad_date(text, parameter)
    offset = 0
    if tz and tz != "Z":
        tz_hours, tz_minutes = int(tz[1:3]), int(tz[4:6])
        if tz_hours > 14 or tz_minutes > 59:
            raise _bad_date(text, parameter)
        offset = (tz_hours * 3600 + tz_minutes * 60) * _SECOND * (-1 if tz[0] == "-" else 1)
    days = days_from_civil(year, month, day)
    low = days * _DAY + (hour * 3600 + minute * 60 + second) * _SECOND - offset
    if ms is None:
        return low, days_from_civil(year + 1, 1, 1) * _DAY
    if ds is None:
        following = (year + 1, 1) if month == 12 else (year, month + 1)
        return low, days_from_civil(*following, 1) * _DAY
    if hs is None:
        return low, low + _DAY
    if ss is None:
        return low, low + 60 * _SECOND
    if frac is None:
        return low, low + _SECOND
    digits = frac[:6]
    low += int(digits.ljust(6, "0"))
    return low, low + 10 ** (6 - len(digits))


def date_conditions(prefix: str, low: int, high: int, now: int | None = None) -> Node:
    """Conditions on one date index entry (``low``/``high``) for ``prefix`` and the search range
    [low, high); ``now`` (UTC microseconds) is needed by ``ap`` only."""

    def at(field: str, op: Op, us: int) -> Cmp:
        return Cmp(field, op, Timestamp(us))

    within = And((at("low", "ge", low), at("high", "le", high)))
    if prefix == "eq":
        return within
    if prefix == "ne":
        return Or((at("low", "lt", low), at("high", "gt", high)))
    if prefix == "gt":
        return at("high", "gt", high)
    if prefix == "lt":
        return at("low", "lt", low)
    if prefix == "ge":
        return Or((at("high", "gt", high), within))
    if prefix == "le":
        return Or((at("low", "lt", low), within))
    if prefix == "sa":
        return at("low", "ge", high)
    if prefix == "eb":
        return at("high", "le", low)
    if prefix == "ap":
        if now is None:
            raise ValueError("ap needs the current time")
        distance = low - now if now < low else now - high if now >= high else 0
        margin = max(distance // 10, AP_FLOOR_US)
        wide_low, wide_high = max(low - margin, DATE_MIN_US), min(high + margin, DATE_MAX_US)
        return And((at("low", "lt", wide_high), at("high", "gt", wide_low)))
    raise ValueError(f"unknown prefix {prefix!r}")


# -- numbers --------------------------------------------------------------------------------------

def parse_number(text: str, parameter: str) -> Decimal:
    if not _NUMBER.fullmatch(text):
        raise InvalidRequest(f"{parameter}: {text!r} is not a number", expression=parameter)
    return Decimal(text)


def _context(*values: Decimal) -> Context:
    """Enough precision for exact sums of these values."""
    span = max(v.adjusted() for v in values) - min(int(v.as_tuple().exponent) for v in values)
    return Context(prec=max(28, span + 4))


def number_range(text: str, parameter: str) -> tuple[Decimal, Decimal]:
    """A search number -> [low, high) from its implicit precision: ``100`` -> [99.5, 100.5)."""
    value = parse_number(text, parameter)
    half = Decimal(5).scaleb(int(value.as_tuple().exponent) - 1)
    ctx = _context(value, half)
    return ctx.subtract(value, half), ctx.add(value, half)


def number_conditions(prefix: str, text: str, parameter: str, field: str = "value") -> Node:
    """Conditions on one number (or quantity) index entry's exact ``field`` for ``prefix``+``text``."""
    value = parse_number(text, parameter)
    low, high = number_range(text, parameter)
    if prefix == "eq":
        return And((Cmp(field, "ge", low), Cmp(field, "lt", high)))
    if prefix == "ne":
        return Or((Cmp(field, "lt", low), Cmp(field, "ge", high)))
    if prefix in ("gt", "sa"):
        return Cmp(field, "gt", value)
    if prefix in ("lt", "eb"):
        return Cmp(field, "lt", value)
    if prefix in ("ge", "le"):
        return Cmp(field, "ge" if prefix == "ge" else "le", value)
    if prefix == "ap":
        tenth = abs(value) / 10 if value else Decimal(0)
        ctx = _context(value, low, high, tenth) if tenth else _context(value, low, high)
        wide_low = min(low, ctx.subtract(value, tenth))
        wide_high = max(high, ctx.add(value, tenth))
        return And((Cmp(field, "ge", wide_low), Cmp(field, "lt", wide_high)))
    raise ValueError(f"unknown prefix {prefix!r}")
