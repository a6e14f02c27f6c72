"""Index entries and sort keys as MongoDB documents.

A resource document embeds its index entries as an array ``idx`` of ``{"p": param, "t": param_type,
<fields>}`` (fields named by :data:`fhir_server.search.ir.FIELDS`; a composite entry's components
flattened as ``c<i>_<field>``; absent fields are left out, which ``{field: null}`` matches), and
``sk``: the sort keys of each sortable parameter, ``{"<param>": {"lo": ..., "hi": ...}}``, computed
from ``idx`` at write time exactly as the SQLite store's ``MIN``/``MAX`` sub-queries (date: lowest ``low`` and
highest ``high``; string ``norm``, token ``code``, reference ``id``, number/quantity/uri ``value``).

Values: integers (dates, timestamps) as int64; ``Decimal`` as a double, like the SQLite store (which
binds ``Decimal`` as REAL): the same comparisons and sort keys on both backends, and keyset cursors
that round-trip through JSON exactly; strings as they are.

The sort keys of the :data:`INDEXED_SORTS` parameters are complete in every live document (a
sentinel where the resource has no value), so those sorts read stored, indexed fields. ``pc`` is the
owner of the resource's patient compartment, the shard key of docs/SCALING.md
(:func:`compartment_owner`); :func:`owner_params` says which searches fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from functools import cache
from types import MappingProxyType
from typing import Any

from fhir_server.fhir.structure import type_info
from fhir_server.search.compartments import compartment_params
from fhir_server.search.index import CompositeEntry, IndexEntry
from fhir_server.search.ir import FIELDS, Timestamp
from fhir_server.search.params import registry as search_registry

#: A parameter code that may appear in a document field name (``sk.<code>.lo``).
PARAM_CODE = re.compile(r"[A-Za-z0-9_-]+")
#: The field a parameter of each type sorts by (date: ``low`` ascending, ``high`` descending).
SORT_FIELD = {"string": "norm", "token": "code", "number": "value", "quantity": "value",
              "reference": "id", "uri": "value"}
SORTABLE = frozenset({*SORT_FIELD, "date"})


def value(v: Any) -> Any:
    """An IR or index value as stored and compared in MongoDB."""
    if isinstance(v, Timestamp):
        return v.us
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, bool):
        return int(v)  # as the SQLite store binds it
    return v


def entry_doc(entry: IndexEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {"p": entry.param, "t": entry.param_type}
    if isinstance(entry, CompositeEntry):
        for i, component in enumerate(entry.components):
            for name in sorted(FIELDS[component.param_type]):
                v = getattr(component, name, None)
                if v is not None:
                    doc[f"c{i}_{name}"] = value(v)
        return doc
    for name in sorted(FIELDS.get(entry.param_type, ())):
        v = getattr(entry, name, None)
        if v is not None:
            doc[name] = value(v)
    return doc


def sort_keys(idx: Iterable[Mapping[str, Any]], rtype: str | None = None) -> dict[str, dict[str, Any]]:
    """``{param: {"lo": lowest, "hi": highest}}`` for every sortable parameter with a value, from
    the index entry documents (:func:`entry_doc`); with ``rtype`` (a live resource's type),
    completed by :func:`complete_sort_keys`. A pure function of ``idx``: the backfill recomputes
    it from stored documents."""
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    for entry in idx:
        ptype, p = entry.get("t"), entry.get("p")
        if ptype not in SORTABLE or not isinstance(p, str) or not PARAM_CODE.fullmatch(p):
            continue
        if ptype == "date":
            lo, hi = entry.get("low"), entry.get("high")
        else:
            lo = hi = entry.get(SORT_FIELD[ptype])
        if lo is not None and (p not in lows or lo < lows[p]):
            lows[p] = lo
        if hi is not None and (p not in highs or hi > highs[p]):
            highs[p] = hi
    keys: dict[str, dict[str, Any]] = {}
    for p in lows.keys() | highs.keys():
        keys[p] = {k: v for k, v in (("lo", lows.get(p)), ("hi", highs.get(p))) if v is not None}
    return complete_sort_keys(rtype, keys) if rtype is not None else keys


# -- sort keys read from the documents (index-backed sorts) -------------------------------------
#: Sort parameters whose keys every live document of a type defining them carries in full: a
#: sentinel where the resource has no value, so that sorting on the stored field ``sk.<code>.lo``
#: (ascending) or ``sk.<code>.hi`` (descending) gives the SQLite store's order, and indexes (see
#: :data:`SORT_INDEXES`) serve the sort and the keyset cursor. Other parameters sort by an
#: aggregation expression (:func:`fhir_server.store.mongo.compile.sort_key`). Adding a code here is
#: a layout change: :mod:`fhir_server.store.mongo.migrate` completes the stored keys at start-up.
INDEXED_SORTS: tuple[str, ...] = ("birthdate", "date", "family", "name")
BIG = 2**62  # the sentinels of the SQLite store (store/sqlite/compile.py), so keys look the same
LAST_TEXT, FIRST_TEXT = "\U0010ffff" * 2, ""


def missing_key(ptype: str, descending: bool) -> int | str:
    """The sort key of a resource without a value: it sorts last in either direction."""
    if ptype in ("date", "number", "quantity"):
        return -BIG if descending else BIG
    return FIRST_TEXT if descending else LAST_TEXT


@cache
def indexed_sorts(rtype: str) -> tuple[tuple[str, str], ...]:
    """``(code, parameter type)`` of the :data:`INDEXED_SORTS` parameters ``rtype`` defines."""
    out = []
    for code in INDEXED_SORTS:
        param = search_registry().get(rtype, code)
        if param is not None and param.type in SORTABLE:
            out.append((code, param.type))
    return tuple(out)


def missing_sort_keys(rtype: str, keys: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"<code>.lo" | "<code>.hi": sentinel}`` for the indexed sort keys ``keys`` lacks."""
    out: dict[str, Any] = {}
    for code, ptype in indexed_sorts(rtype):
        have = keys.get(code, {})
        for end, descending in (("lo", False), ("hi", True)):
            if end not in have:
                out[f"{code}.{end}"] = missing_key(ptype, descending)
    return out


def complete_sort_keys(rtype: str, keys: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``keys`` (of a live ``rtype`` resource) with the sentinels of :func:`missing_sort_keys`."""
    for path, sentinel in missing_sort_keys(rtype, keys).items():
        code, end = path.split(".")
        keys.setdefault(code, {})[end] = sentinel
    return keys


#: Indexes of the ``resources`` collection for the sorts read from stored fields (``_lastUpdated``:
#: ``ts``; ``_id``: ``id``, served by the ``(type, alive, id)`` index): equality on ``type`` and
#: ``alive``, then the key in the direction it is read, then ``id`` (the tie-break; a page going
#: backwards walks the same index in reverse).
SORT_INDEXES: tuple[list[tuple[str, int]], ...] = (
    [("type", 1), ("alive", 1), ("ts", 1), ("id", 1)],
    [("type", 1), ("alive", 1), ("ts", -1), ("id", 1)],
    *([("type", 1), ("alive", 1), (f"sk.{code}.{end}", direction), ("id", 1)]
      for code in INDEXED_SORTS for end, direction in (("lo", 1), ("hi", -1))),
)


# -- the patient compartment: the shard key pc -----------------------------------------------------
#: A reference search parameter's expression that keeps only references to Patients.
_PATIENT_ONLY = ".where(resolve() is Patient)"


def compartment_owner(rtype: str, rid: str, idx: Sequence[Mapping[str, Any]]) -> str:
    """``pc``, the owner of a resource's patient compartment (docs/SCALING.md), from its index
    entry documents: ``Patient/<id>`` for a Patient itself; else the first Patient reference among
    the Patient CompartmentDefinition's parameters for ``rtype``, in the definition's order (a
    dangling reference counts); else the resource's own ``Type/id``, so that resources outside any
    patient's record spread over the shards by their id."""
    if rtype == "Patient":
        return f"Patient/{rid}"
    for param in compartment_params("Patient", rtype):
        for entry in idx:
            if entry.get("p") == param and entry.get("type") == "Patient" \
                    and isinstance(entry.get("id"), str):
                return f"Patient/{entry['id']}"
    return f"{rtype}/{rid}"


def _element(rtype: str, expression: str | None) -> tuple[str, bool] | None:
    """``(element, patient_only)`` of an expression ``<rtype>.<element>`` or
    ``<rtype>.<element>.where(resolve() is Patient)``; None for anything else."""
    if expression is None:
        return None
    patient_only = expression.endswith(_PATIENT_ONLY)
    if patient_only:
        expression = expression[:-len(_PATIENT_ONLY)]
    match = re.fullmatch(re.escape(rtype) + r"\.([a-z][A-Za-z0-9]*)", expression)
    return (match[1], patient_only) if match else None


@cache
def owner_params(rtype: str) -> Mapping[str, bool]:
    """The reference parameters of ``rtype`` that fix ``pc``: a resource referring to
    ``Patient/x`` through one of them has ``pc == "Patient/x"``. ``{code: patient_only}``, where
    ``patient_only`` says the parameter indexes references to Patients only (whatever its declared
    targets: ``Observation.patient`` targets Group too, but its expression keeps Patients).

    They are the first compartment parameter (the one :func:`compartment_owner` reads first) when
    its expression is one element of ``rtype`` holding at most one reference, and the reference
    parameters reading that same element (``Observation.subject`` and ``Observation.patient``).
    Any other parameter (``performer``, a second compartment parameter, a repeating element such
    as ``Account.subject``) can name a patient that is not ``pc``: it fixes nothing, and a search by
    it stays scatter-gather."""
    params = compartment_params("Patient", rtype)
    if rtype == "Patient" or not params:
        return MappingProxyType({})
    first = search_registry().get(rtype, params[0])
    found = _element(rtype, first.expression if first else None)
    info = type_info(rtype)
    if found is None or info is None:
        return MappingProxyType({})
    slots = info.elements.get(found[0], ())
    if not slots or any(slot.max != 1 for slot in slots):
        return MappingProxyType({})
    out: dict[str, bool] = {}
    for code, param in search_registry().for_type(rtype).items():
        if param.type == "reference":
            same = _element(rtype, param.expression)
            if same is not None and same[0] == found[0]:
                out[code] = same[1]
    return MappingProxyType(out)
