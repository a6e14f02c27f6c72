"""Table-driven validation of resources against the exact FHIR R4 (4.0.1) structure.

The tables come from ``data/r4_structure.json`` (written by ``scripts/extract_spec.py`` from the
official StructureDefinitions). At first use they are compiled into one :class:`TypeInfo` per
complex type, resource and backbone element, each holding a dict from JSON property name to a
:class:`Slot`, and one checker function per primitive type (regexes compiled once). Validation is
then a walk over the JSON with dict look-ups, ``type(v) is ...`` tests and precompiled regexes.

Expressions (``Issue.expression``) are FHIRPath: ``Patient.name[0].given[1]``; choice elements use
their JSON name (``Observation.valueQuantity.value``); a primitive's extension is addressed through
the primitive (``Patient.birthDate.extension[0].url``, and the ``_birthDate`` object itself as
``Patient.birthDate``); a nested resource (``contained``, ``Bundle.entry.resource``,
``Parameters.parameter.resource``) is the element itself for problems with the element
(``Bundle.entry[2].resource``) and ``<element>.ofType(<Type>)`` as the prefix inside it
(``Bundle.entry[2].resource.ofType(Patient).birthDate``).
"""

from __future__ import annotations

import contextlib
import difflib
import html.entities
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any
from xml.parsers import expat

from fhir_server.errors import Issue

MAX_ISSUES = 100
XHTML_NS = "http://www.w3.org/1999/xhtml"
MAX_STRING = 1024 * 1024
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

Checker = Callable[[object], "str | None"]


@cache
def _raw() -> dict[str, Any]:
    text = resources.files("fhir_server.fhir").joinpath("data/r4_structure.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class Slot:
    """One JSON property of a type: ``valueQuantity`` of ``Observation``, ``given`` of HumanName."""

    __slots__ = (
        "array",
        "attribute",
        "check",
        "choice",
        "code",
        "element",
        "info",
        "max",
        "min",
        "modifier",
        "name",
        "primitive",
        "resource",
        "summary",
    )

    def __init__(self, name: str, element: str, code: str, spec: dict[str, Any]) -> None:
        self.name = name  # JSON property name
        self.element = element  # element name, ``value[x]`` for choices
        self.code = code  # type code (or backbone path such as ``Patient.contact``)
        self.choice: str | None = element if element.endswith("[x]") else None
        self.min: int = spec["min"]
        self.max: int | None = None if spec["max"] == "*" else int(spec["max"])
        self.array = spec["max"] != "1"
        self.summary: bool = spec["summary"]
        self.modifier: bool = spec.get("modifier", False)
        self.attribute: bool = spec.get("attribute", False)
        self.primitive = False
        self.resource = code == "Resource"
        self.check: Checker | None = None
        self.info: TypeInfo | None = None


class TypeInfo:
    """A complex type, resource or backbone element: its properties and required elements."""

    __slots__ = ("elements", "is_extension", "is_resource", "name", "props", "required")

    def __init__(self, name: str, is_resource: bool) -> None:
        self.name = name
        self.is_resource = is_resource
        self.is_extension = name == "Extension"
        self.props: dict[str, Slot] = {}
        self.elements: dict[str, tuple[Slot, ...]] = {}  # element name -> its JSON slots
        self.required: tuple[tuple[str, tuple[str, ...]], ...] = ()


# ---------------------------------------------------------------------------------------------
# primitive checkers


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _calendar_error(value: str) -> str | None:
    if len(value) >= 10:
        month, day = int(value[5:7]), int(value[8:10])
        if day > _DAYS[month] or (month == 2 and day == 29 and not _is_leap(int(value[:4]))):
            return f"{value[:10]!r} is not a real calendar date"
    return None


_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})


def _html_entity(m: re.Match[str]) -> str:
    name = m.group(1)
    if name in _XML_ENTITIES:
        return m.group(0)
    cp = html.entities.name2codepoint.get(name)
    return f"&#{cp};" if cp is not None else m.group(0)


class _XmlDeclaration(Exception):
    pass


def _no_declarations(*_args: object) -> None:
    raise _XmlDeclaration


def _check_xhtml(value: object) -> str | None:
    if type(value) is not str:
        return f"must be a JSON string, not {_json_kind(value)}"
    if "<div" not in value:
        return "narrative must be a <div> element"
    if "<!" in value and re.search(r"<!\s*(DOCTYPE|ENTITY)", value, re.IGNORECASE):
        return "DOCTYPE and ENTITY declarations are not allowed in narrative"
    root: list[str] = []

    def start(name: str, _attrs: object) -> None:
        if not root:
            root.append(name)

    # expat directly (what ElementTree uses, without building a tree); declarations are refused
    # both above and by the handlers, so no entity can ever be expanded
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _no_declarations
    parser.EntityDeclHandler = _no_declarations
    parser.StartElementHandler = start
    try:
        parser.Parse(_ENTITY.sub(_html_entity, value) if "&" in value else value, True)
    except _XmlDeclaration:
        return "DOCTYPE and ENTITY declarations are not allowed in narrative"
    except expat.ExpatError as exc:
        return f"narrative is not well-formed XHTML: {exc}"
    if root[0] != XHTML_NS + " div":
        return f'narrative root must be a <div> in the namespace "{XHTML_NS}"'
    return None


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _make_checker(name: str, spec: dict[str, Any]) -> Checker:
    kind: str = spec["json"]
    regex = spec.get("regex")
    fullmatch = re.compile(regex, re.ASCII).fullmatch if regex else None
    if name == "xhtml":
        return _check_xhtml
    if kind == "boolean":

        def check_bool(value: object) -> str | None:
            if type(value) is bool:
                return None
            return f"must be a JSON boolean (true or false), not {_json_kind(value)}"

        return check_bool
    if kind == "integer":
        low = 1 if name == "positiveInt" else 0 if name == "unsignedInt" else INT32_MIN

        def check_int(value: object) -> str | None:
            if type(value) is not int:
                if type(value) is Decimal and value == value.to_integral_value():
                    return f"must be a JSON integer without a fraction or exponent, not {value}"
                return f"must be a JSON integer, not {_json_kind(value)}"
            if value < low or value > INT32_MAX:
                return f"{value} is out of range for {name} ({low}..{INT32_MAX})"
            return None

        return check_int
    if kind == "number":

        def check_number(value: object) -> str | None:
            if isinstance(value, Decimal):
                return None if value.is_finite() else "must be a finite number"
            if type(value) is int:
                return None
            if isinstance(value, float) and math.isfinite(value):
                return None
            return f"must be a JSON number, not {_json_kind(value)}"

        return check_number
    dates = name in ("date", "dateTime", "instant")

    def check_string(value: object) -> str | None:
        if type(value) is not str:
            return f"must be a JSON string, not {_json_kind(value)}"
        if fullmatch is not None and fullmatch(value) is None:
            if not value:
                return "must not be an empty string"
            if not value.strip():
                return "must not be only whitespace"
            if name == "dateTime" and "T" in value and fullmatch(value + "Z") is not None:
                return f"{_short(value)} has a time but no timezone"
            return f"{_short(value)} is not a valid {name}"
        if not value.strip():
            return "must not be empty or only whitespace"
        if len(value) > MAX_STRING:
            return f"is longer than {MAX_STRING} characters"
        if dates:
            err = _calendar_error(value)
            if err:
                return err
        return None

    return check_string


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


# ---------------------------------------------------------------------------------------------
# tables


class _Tables:
    __slots__ = ("checkers", "resource_types", "types")

    def __init__(self) -> None:
        raw = _raw()
        self.resource_types: frozenset[str] = frozenset(raw["resourceTypes"])
        self.checkers: dict[str, Checker] = {
            name: _make_checker(name, spec) for name, spec in raw["primitives"].items()
        }
        self.types: dict[str, TypeInfo] = {}
        for tname, tspec in raw["types"].items():
            info = TypeInfo(tname, tspec["kind"] == "resource")
            required: list[tuple[str, tuple[str, ...]]] = []
            for ename, espec in tspec["elements"].items():
                slots = []
                for jname, (code, _primitive) in espec["types"].items():
                    slot = Slot(jname, ename, code, espec)
                    info.props[jname] = slot
                    slots.append(slot)
                info.elements[ename] = tuple(slots)
                if espec["min"] > 0:
                    required.append((ename, tuple(s.name for s in slots)))
            info.required = tuple(required)
            self.types[tname] = info
        for info in self.types.values():
            for slot in info.props.values():
                check = self.checkers.get(slot.code)
                if check is not None:
                    slot.primitive = True
                    slot.check = check
                elif not slot.resource:
                    slot.info = self.types[slot.code]


@cache
def _tables() -> _Tables:
    return _Tables()


def type_info(name: str) -> TypeInfo | None:
    """The compiled table of a complex type, resource or backbone path (``Patient.contact``)."""
    return _tables().types.get(name)


def __getattr__(name: str) -> Any:
    if name == "RESOURCE_TYPES":
        return _tables().resource_types
    raise AttributeError(name)


RESOURCE_TYPES: frozenset[str]  # resolved lazily by __getattr__


# ---------------------------------------------------------------------------------------------
# validation


class _Full(Exception):
    pass


class _Walker:
    __slots__ = ("issues", "resource_types", "types")

    def __init__(self, tables: _Tables) -> None:
        self.issues: list[Issue] = []
        self.types = tables.types
        self.resource_types = tables.resource_types

    def add(self, code: str, message: str, path: str) -> None:
        self.issues.append(Issue("error", code, message, (path,)))
        if len(self.issues) >= MAX_ISSUES:
            raise _Full

    def resource(self, value: object, path: str, expected: str | None, nested: bool) -> None:
        if type(value) is not dict:
            kind = _json_kind(value)
            self.add("structure", f"a resource must be a JSON object, not {kind}", path)
            return
        rtype = value.get("resourceType")
        if rtype is None:
            self.add("required", "resourceType is missing", path)
            return
        if type(rtype) is not str or rtype not in self.resource_types:
            hint = ""
            if type(rtype) is str:
                close = difflib.get_close_matches(rtype, self.resource_types, 1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.add("structure", f"unknown resourceType {rtype!r}{hint}", path)
            return
        if expected is not None and rtype != expected:
            msg = f"resourceType {rtype!r} does not match expected {expected!r}"
            self.add("invalid", msg, path)
            return
        self.walk(value, self.types[rtype], f"{path}.ofType({rtype})" if nested else rtype)

    def walk(self, obj: dict[str, Any], info: TypeInfo, path: str) -> None:
        props = info.props
        seen: dict[str, str] | None = None
        for key, value in obj.items():
            slot = props.get(key)
            if slot is None:
                if key[:1] == "_":
                    base = props.get(key[1:])
                    if base is not None and base.primitive and not base.attribute:
                        if base.choice is not None:
                            seen = self._choice(seen, base, path)
                        self.companion(obj, base, value, path)
                        continue
                self.unknown(key, info, path)
                continue
            if slot.choice is not None:
                seen = self._choice(seen, slot, path)
            if type(value) is list:
                if not slot.array:
                    self.add("structure", f"{key} must not be an array (max 1)", f"{path}.{key}")
                    continue
                if not value:
                    self.add("structure", "empty arrays are not allowed", f"{path}.{key}")
                    continue
                if slot.max is not None and len(value) > slot.max:
                    self.add("structure", f"at most {slot.max} {key} allowed", f"{path}.{key}")
                check = slot.check
                if check is not None:
                    companion = None
                    for i, item in enumerate(value):
                        if item is None:
                            if companion is None:
                                companion = obj.get("_" + key)
                                if type(companion) is not list:
                                    companion = []
                            if i >= len(companion) or companion[i] is None:
                                self.add(
                                    "structure",
                                    "null is only allowed where the _ array has extensions",
                                    f"{path}.{key}[{i}]",
                                )
                            continue
                        err = check(item)
                        if err is not None:
                            self.add("value", err, f"{path}.{key}[{i}]")
                else:
                    for i, item in enumerate(value):
                        self.item(item, slot, f"{path}.{key}[{i}]")
            elif slot.array:
                self.add("structure", f"{key} must be a JSON array", f"{path}.{key}")
            elif slot.check is not None:
                if value is None:
                    self.add("structure", "null is not allowed", f"{path}.{key}")
                else:
                    err = slot.check(value)
                    if err is not None:
                        self.add("value", err, f"{path}.{key}")
            else:
                self.item(value, slot, f"{path}.{key}")
        for element, names in info.required:
            for name in names:
                if name in obj or "_" + name in obj:
                    break
            else:
                self.add("required", f"{element} is required", f"{path}.{names[0]}")
        if info.is_extension:
            self.extension(obj, seen, path)

    def _choice(self, seen: dict[str, str] | None, slot: Slot, path: str) -> dict[str, str]:
        if seen is None:
            seen = {}
        assert slot.choice is not None
        other = seen.get(slot.choice)
        if other is None:
            seen[slot.choice] = slot.name
        elif other != slot.name:
            self.add(
                "structure",
                f"only one of {other} and {slot.name} is allowed ({slot.choice})",
                f"{path}.{slot.name}",
            )
        return seen

    def extension(self, obj: dict[str, Any], seen: dict[str, str] | None, path: str) -> None:
        if seen and "value[x]" in seen and "extension" in obj:
            msg = "an extension must have either a value or extensions, not both"
            self.add("invalid", msg, path)

    def item(self, value: object, slot: Slot, path: str) -> None:
        if slot.resource:
            if value is None:
                self.add("structure", "null is not allowed", path)
            else:
                self.resource(value, path, None, True)
            return
        if type(value) is not dict:
            self.add("structure", f"must be a JSON object, not {_json_kind(value)}", path)
            return
        if not value:
            self.add("structure", "empty objects are not allowed", path)
            return
        info = slot.info
        assert info is not None
        self.walk(value, info, path)

    def companion(self, obj: dict[str, Any], slot: Slot, value: object, path: str) -> None:
        key = slot.name
        if slot.array:
            if type(value) is not list:
                self.add("structure", f"_{key} must be an array", f"{path}.{key}")
                return
            primitive = obj.get(key)
            if type(primitive) is list and len(primitive) != len(value):
                self.add(
                    "structure",
                    f"_{key} has {len(value)} items but {key} has {len(primitive)}",
                    f"{path}.{key}",
                )
                return
            if not value or all(v is None for v in value):
                msg = f"_{key} must have at least one non-null item"
                self.add("structure", msg, f"{path}.{key}")
                return
            for i, item in enumerate(value):
                if item is not None:
                    self.element(item, key, f"{path}.{key}[{i}]")
                elif type(primitive) is not list:
                    self.add("structure", "null is not allowed", f"{path}.{key}[{i}]")
        else:
            self.element(value, key, f"{path}.{key}")

    def element(self, value: object, key: str, path: str) -> None:
        if type(value) is not dict:
            msg = f"_{key} must be an object with id/extension, not {_json_kind(value)}"
            self.add("structure", msg, path)
            return
        if not value:
            self.add("structure", "empty objects are not allowed", path)
            return
        self.walk(value, self.types["Element"], path)

    def unknown(self, key: str, info: TypeInfo, path: str) -> None:
        if key == "resourceType":
            if info.is_resource:
                return
            self.add(
                "structure", f"resourceType is not allowed inside {info.name}", f"{path}.{key}"
            )
            return
        close = difflib.get_close_matches(key, list(info.props), 1, 0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.add("structure", f"unknown element {key!r} in {info.name}{hint}", f"{path}.{key}")


def validate(resource: object, expected_type: str | None = None) -> list[Issue]:
    """Check ``resource`` (parsed JSON) against the R4 structure; returns error issues, [] if valid.

    ``expected_type``: the resource type the request URL names, if any. At most
    :data:`MAX_ISSUES` issues are returned.
    """
    walker = _Walker(_tables())
    with contextlib.suppress(_Full):
        walker.resource(resource, expected_type or "Resource", expected_type, False)
    return walker.issues
