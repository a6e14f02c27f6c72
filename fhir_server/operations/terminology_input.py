"""Input of the terminology operations: query parameters (GET) or a Parameters resource (POST),
checked against a small declaration per operation, so every departure is a 400 naming the parameter.

Each declared parameter has a FHIR type: ``uri``/``code``/``string`` become ``str``, ``integer``
a non-negative ``int``, ``boolean`` a ``bool``, ``Coding``/``CodeableConcept`` and ``resource`` a
``dict``. A GET can only carry the primitive ones. ``repeats`` parameters give a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir_server.errors import InvalidRequest

#: value[x] keys accepted per declared type (a client may send valueString for a uri, say)
_VALUE_KEYS: dict[str, tuple[str, ...]] = {
    "uri": ("valueUri", "valueCanonical", "valueUrl", "valueString"),
    "code": ("valueCode", "valueString"),
    "string": ("valueString", "valueCode"),
    "integer": ("valueInteger", "valueUnsignedInt", "valuePositiveInt"),
    "boolean": ("valueBoolean",),
    "Coding": ("valueCoding",),
    "CodeableConcept": ("valueCodeableConcept",),
    "dateTime": ("valueDateTime", "valueDate"),
}
PRIMITIVE = frozenset({"uri", "code", "string", "integer", "boolean", "dateTime"})


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str  # a key of _VALUE_KEYS, or "resource"
    repeats: bool = False


def declare(*params: Param) -> dict[str, Param]:
    return {p.name: p for p in params}


def _bad(message: str, expression: str) -> InvalidRequest:
    return InvalidRequest(message, expression=expression)


def _from_text(param: Param, text: str) -> Any:
    if param.type == "integer":
        if not text.isdigit():
            raise _bad(f"{param.name} must be a non-negative integer, got {text!r}", param.name)
        return int(text)
    if param.type == "boolean":
        if text not in ("true", "false"):
            raise _bad(f"{param.name} must be true or false, got {text!r}", param.name)
        return text == "true"
    if not text:
        raise _bad(f"{param.name} is empty", param.name)
    return text


def _put(out: dict[str, Any], param: Param, value: Any, where: str) -> None:
    if param.repeats:
        out.setdefault(param.name, []).append(value)
    elif param.name in out:
        raise _bad(f"{param.name} may be given only once", where)
    else:
        out[param.name] = value


def from_query(op: str, pairs: Iterable[tuple[str, str]], spec: Mapping[str, Param],
               lenient: bool = False) -> dict[str, Any]:
    """GET parameters; unknown ones are a 400 unless ``lenient``."""
    out: dict[str, Any] = {}
    for key, text in pairs:
        param = spec.get(key)
        if param is None:
            if lenient:
                continue
            raise _bad(f"Unknown parameter {key!r} for {op}", key)
        if param.type not in PRIMITIVE:
            raise _bad(f"{key} ({param.type}) cannot be given in the URL: POST a Parameters"
                       " resource", key)
        _put(out, param, _from_text(param, text), key)
    return out


def _value(param: Param, item: Mapping[str, Any], where: str) -> Any:
    keys = [k for k in item if k.startswith("value") or k == "resource"]
    if len(keys) != 1:
        raise _bad(f"parameter {param.name!r} must have exactly one value", where)
    key = keys[0]
    value = item[key]
    if param.type == "resource":
        if key != "resource" or not isinstance(value, dict) or "resourceType" not in value:
            raise _bad(f"{param.name} must be a resource", where)
        return value
    if key not in _VALUE_KEYS[param.type]:
        raise _bad(f"{param.name} must be a {_VALUE_KEYS[param.type][0]}, got {key}", where)
    if param.type in ("Coding", "CodeableConcept"):
        if not isinstance(value, dict):
            raise _bad(f"{param.name} must be a {param.type}", f"{where}.{key}")
        return value
    if param.type == "integer":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _bad(f"{param.name} must be a non-negative integer", f"{where}.{key}")
        return value
    if param.type == "boolean":
        if not isinstance(value, bool):
            raise _bad(f"{param.name} must be true or false", f"{where}.{key}")
        return value
    if not isinstance(value, str) or not value:
        raise _bad(f"{param.name} must be a non-empty string", f"{where}.{key}")
    return value


def from_parameters(op: str, body: Any, spec: Mapping[str, Param],
                    lenient: bool = False) -> dict[str, Any]:
    """A Parameters resource (POST)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise _bad(f"{op} takes a Parameters resource", "Parameters")
    items = body.get("parameter", [])
    if not isinstance(items, list):
        raise _bad("Parameters.parameter must be a list", "Parameters.parameter")
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _bad("every parameter needs a name", where)
        param = spec.get(item["name"])
        if param is None:
            if lenient:
                continue
            raise _bad(f"Unknown parameter {item['name']!r} for {op}", where)
        _put(out, param, _value(param, item, where), where)
    return out


def parameters(*parts: tuple[str, str, Any] | None) -> dict[str, Any]:
    """An output Parameters resource from (name, value[x] key, value) triples (None: skipped)."""
    items = []
    for part in parts:
        if part is None or part[2] is None:
            continue
        name, key, value = part
        items.append({"name": name, key: value})
    return {"resourceType": "Parameters", "parameter": items}
