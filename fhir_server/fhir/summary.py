"""``_summary`` and ``_elements``: subsets of a resource, per https://hl7.org/fhir/R4/search.html#summary.

The element flags (``isSummary``, ``min``) come from the same R4 extract as the structure validator.
Both functions return a new dict and never mutate their input; when anything was left out the
result carries the ``SUBSETTED`` tag in ``meta.tag``.

* ``true``: elements marked ``isSummary`` in the base definition, recursively inside backbone
  elements and datatypes (an element kept for being mandatory keeps its mandatory children too);
  extensions and nested resources are kept whole; top-level mandatory elements are always kept.
* ``text``: ``text``, ``id``, ``meta`` and the top-level mandatory elements.
* ``data``: everything but ``text``.
* ``false``: everything.

``_summary=count`` is a search-level mode (no resources at all) and is not handled here.
"""

from __future__ import annotations

from typing import Any

from fhir_server.errors import InvalidRequest
from fhir_server.fhir.structure import Slot, TypeInfo, type_info

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
SUMMARY_MODES = ("true", "text", "data", "false")
_ALWAYS = ("resourceType", "id", "meta")


def _resource_info(resource: dict[str, Any]) -> TypeInfo:
    rtype = resource.get("resourceType")
    info = type_info(rtype) if isinstance(rtype, str) else None
    if info is None or not info.is_resource:
        raise ValueError(f"not a known resource type: {rtype!r}")
    return info


def _slot(info: TypeInfo, key: str) -> Slot | None:
    slot = info.props.get(key)
    if slot is None and key[:1] == "_":
        slot = info.props.get(key[1:])
    return slot


def _tagged(out: dict[str, Any]) -> dict[str, Any]:
    meta = dict(out.get("meta") or {})
    tags = list(meta.get("tag") or [])
    system = SUBSETTED["system"]
    if not any(
        isinstance(t, dict) and t.get("system") == system and t.get("code") == "SUBSETTED"
        for t in tags
    ):
        tags.append(dict(SUBSETTED))
    meta["tag"] = tags
    out["meta"] = meta
    # keep ``meta`` where a resource normally has it: right after id
    if list(out).index("meta") != (2 if "id" in out else 1):
        ordered: dict[str, Any] = {k: out[k] for k in _ALWAYS if k in out}
        ordered.update((k, v) for k, v in out.items() if k not in ordered)
        return ordered
    return out


def _summary_object(obj: dict[str, Any], info: TypeInfo, top: bool, removed: list[bool]) -> Any:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if top and key == "resourceType":
            out[key] = value
            continue
        slot = _slot(info, key)
        if slot is None or not (slot.summary or slot.min > 0):
            removed[0] = True
            continue
        child = slot.info
        if key[:1] == "_" or slot.primitive or child is None or child.is_extension:
            out[key] = value
        elif isinstance(value, list):
            items = [
                _summary_object(v, child, False, removed) if isinstance(v, dict) else v
                for v in value
            ]
            items = [v for v in items if v != {}]
            if items:
                out[key] = items
            else:
                removed[0] = True
        elif isinstance(value, dict):
            sub = _summary_object(value, child, False, removed)
            if sub:
                out[key] = sub
            else:
                removed[0] = True
        else:
            out[key] = value
    return out


def summarize(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    """The ``_summary=<mode>`` form of ``resource`` (a new dict); bad modes: ``InvalidRequest``."""
    if mode not in SUMMARY_MODES:
        raise InvalidRequest(
            f"Invalid _summary value {mode!r}: expected one of {', '.join(SUMMARY_MODES)}",
            expression="_summary",
        )
    if mode == "false":
        return dict(resource)
    removed = [False]
    if mode == "data":
        out = {k: v for k, v in resource.items() if k != "text"}
        removed[0] = "text" in resource
    elif mode == "text":
        info = _resource_info(resource)
        out = {}
        for key, value in resource.items():
            slot = _slot(info, key)
            if key in _ALWAYS or key == "text" or (slot is not None and slot.min > 0):
                out[key] = value
            else:
                removed[0] = True
    else:
        out = _summary_object(resource, _resource_info(resource), True, removed)
    return _tagged(out) if removed[0] else out


def _selected_names(info: TypeInfo, elements: list[str]) -> set[str]:
    names: set[str] = set()
    for raw in elements:
        name = raw.strip()
        if not name:
            continue
        if name in _ALWAYS:
            continue
        slots = info.elements.get(name) or info.elements.get(name + "[x]")
        if slots is None:
            slot = info.props.get(name)  # a concrete choice name such as valueQuantity
            if slot is None:
                raise InvalidRequest(
                    f"Unknown element {name!r} in _elements for {info.name}",
                    expression="_elements",
                )
            slots = (slot,)
        for slot in slots:
            names.add(slot.name)
            names.add("_" + slot.name)
    for slots in info.elements.values():
        if slots[0].min > 0:
            for slot in slots:
                names.add(slot.name)
                names.add("_" + slot.name)
    names.update(_ALWAYS)
    return names


def select_elements(resource: dict[str, Any], elements: list[str]) -> dict[str, Any]:
    """The ``_elements=a,b`` form of ``resource``: the named top-level elements plus ``id``,
    ``meta``, ``resourceType`` and the mandatory elements (a new dict). ``value`` or ``value[x]``
    select whichever ``value<Type>`` is present; an unknown name raises ``InvalidRequest``."""
    info = _resource_info(resource)
    keep = _selected_names(info, elements)
    out = {k: v for k, v in resource.items() if k in keep}
    return _tagged(out) if len(out) != len(resource) else out
