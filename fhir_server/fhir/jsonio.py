"""FHIR JSON in and out.

Parsing keeps decimals exact (``1.10`` stays ``1.10``: FHIR decimals carry their precision), rejects
duplicate keys, NaN/Infinity and nesting deeper than a limit (checked on the bytes, before parsing, so a
hostile body cannot exhaust the parser's recursion). Serialisation uses orjson.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.errors import InvalidRequest

DEFAULT_MAX_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate property {key!r}")
            seen.add(key)
    return out


_decoder = json.JSONDecoder(
    parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_pairs
)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {0x5B: 1, 0x7B: 1, 0x5D: -1, 0x7D: -1}


def nesting_depth(data: bytes) -> int:
    """Maximum bracket nesting of a JSON text, ignoring brackets inside strings.

    Strings are cut out by a regular expression and every other byte dropped with
    ``bytes.translate`` (both in C), so only the brackets are walked in Python.
    """
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = best = 0
    for byte in brackets:
        depth += _STEP[byte]
        if depth > best:
            best = depth
    return best


def _fast_depth_bound(data: bytes) -> int:
    # Cheap upper bound: the number of opening brackets. Most bodies are far below the limit.
    return data.count(b"{") + data.count(b"[")


def loads(data: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse a request body; raises :class:`InvalidRequest` with a readable message."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if _fast_depth_bound(raw) > max_depth and nesting_depth(raw) > max_depth:
        raise InvalidRequest(f"JSON is nested deeper than the limit of {max_depth} levels")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"Body is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"Malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"Malformed JSON: {exc}") from None


def loads_trusted(data: bytes | str) -> Any:
    """Parse JSON this server wrote itself (stored resources): exact decimals, no checks."""
    return _decoder.decode(data.decode("utf-8") if isinstance(data, bytes) else data)


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise TypeError("non-finite decimal")
        return orjson.Fragment(str(obj).encode())
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dumps(obj: Any, *, pretty: bool = False) -> bytes:
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(obj, default=_default, option=option)
