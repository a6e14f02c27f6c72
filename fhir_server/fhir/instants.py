"""Server timestamps: integer microseconds since the epoch, as FHIR instants and HTTP dates."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from fhir_server.errors import InvalidRequest

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INSTANT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})"
)
_PARTIAL = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def now_us() -> int:
    return time.time_ns() // 1000


def to_datetime(ts: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts)


def to_instant(ts: int) -> str:
    """``2026-11-23T04:05:06.123456Z``: always microseconds, always UTC."""
    return to_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def to_http_date(ts: int) -> str:
    """RFC 9110 IMF-fixdate, e.g. ``Mon, 23 Nov 2026 04:05:06 GMT`` (on every response: kept cheap)."""
    t = time.gmtime(ts // 1_000_000)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d}"
            f" {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def parse_http_date(value: str) -> int | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // timedelta(microseconds=1)


def parse_instant(value: str, parameter: str) -> int:
    """A FHIR instant (timezone required) as microseconds; ``InvalidRequest`` names the parameter."""
    match = _INSTANT.fullmatch(value)
    if not match:
        raise InvalidRequest(
            f"{parameter} must be an instant with a time zone, such as 2026-01-31T08:00:00Z;"
            f" got {value!r}",
            expression=parameter,
        )
    text = value.replace("Z", "+00:00")
    fraction = match.group(7)
    if fraction and len(fraction) > 7:  # datetime accepts at most 6 digits
        text = text.replace(fraction, fraction[:7])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{parameter}: {value!r} is not a real date and time",
                             expression=parameter) from None
    return (parsed - _EPOCH) // timedelta(microseconds=1)
