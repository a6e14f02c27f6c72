"""fixed[x] and pattern[x] comparison, JSON navigation for slice discriminators. Pure."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def equals(value: Any, fixed: Any) -> bool:
    """``fixed[x]``: exactly equal (numbers by value, objects key by key, arrays item by item)."""
    if type(fixed) is str:
        return type(value) is str and value == fixed
    if isinstance(fixed, dict):
        return (isinstance(value, dict) and value.keys() == fixed.keys()
                and all(equals(value[k], fixed[k]) for k in fixed))
    if isinstance(fixed, list):
        return (isinstance(value, list) and len(value) == len(fixed)
                and all(equals(a, b) for a, b in zip(value, fixed, strict=True)))
    a, b = _number(value), _number(fixed)
    if a is not None and b is not None:
        return a == b
    return type(value) is type(fixed) and value == fixed


def matches(value: Any, pattern: Any) -> bool:
    """``pattern[x]``: every property of the pattern is present with a matching value; each item
    of a pattern array matches some item of the value's array."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(
            any(matches(item, p) for item in value) for p in pattern)
    return equals(value, pattern)


def navigate(value: Any, path: tuple[str, ...]) -> list[Any]:
    """The values at a dotted ``path`` (arrays flattened); ``()`` is the value itself."""
    current = [value]
    for name in path:
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and name in item:
                child = item[name]
                if isinstance(child, list):
                    nxt.extend(child)
                else:
                    nxt.append(child)
        current = nxt
    return current


def reference_type(ref: Any) -> str | None:
    """The resource type a Reference points to, from ``type`` or the literal ``reference``."""
    if not isinstance(ref, dict):
        return None
    rtype = ref.get("type")
    if isinstance(rtype, str):
        return rtype
    reference = ref.get("reference")
    if not isinstance(reference, str) or reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2]
    return None
