"""Index entries and sort keys as MongoDB documents.

A resource document embeds its index entries as an array ``idx`` of ``{"p": param, "t": param_type,
<fields>}`` (fields named by :data:`fhir_server.search.ir.FIELDS`; a composite entry's components
flattened as ``c<i>_<field>``; absent fields are left out, which ``{field: null}`` matches), and
``sk``: the sort keys of each sortable parameter, ``{"<param>": {"lo": ..., "hi": ...}}``, computed
at write time exactly as the SQLite store's ``MIN``/``MAX`` sub-queries (date: lowest ``low`` and
highest ``high``; string ``norm``, token ``code``, reference ``id``, number/quantity/uri ``value``).

Values: integers (dates, timestamps) as int64; ``Decimal`` as a double, like the SQLite store (which
binds ``Decimal`` as REAL): the same comparisons and sort keys on both backends, and keyset cursors
that round-trip through JSON exactly; strings as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from fhir_server.search.index import CompositeEntry, IndexEntry
from fhir_server.search.ir import FIELDS, Timestamp

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


def sort_keys(entries: Iterable[IndexEntry]) -> dict[str, dict[str, Any]]:
    """``{param: {"lo": lowest, "hi": highest}}`` for every sortable parameter with a value."""
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    for entry in entries:
        ptype = entry.param_type
        if ptype not in SORTABLE or not PARAM_CODE.fullmatch(entry.param):
            continue
        if ptype == "date":
            lo, hi = getattr(entry, "low", None), getattr(entry, "high", None)
        else:
            lo = hi = getattr(entry, SORT_FIELD[ptype], None)
        lo, hi = value(lo), value(hi)
        p = entry.param
        if lo is not None and (p not in lows or lo < lows[p]):
            lows[p] = lo
        if hi is not None and (p not in highs or hi > highs[p]):
            highs[p] = hi
    keys: dict[str, dict[str, Any]] = {}
    for p in lows.keys() | highs.keys():
        keys[p] = {k: v for k, v in (("lo", lows.get(p)), ("hi", highs.get(p))) if v is not None}
    return keys
