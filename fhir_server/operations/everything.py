"""``Patient/$everything`` (https://hl7.org/fhir/R4/patient-operation-everything.html).

The result is the Patient, every resource of its compartment (all the types of the official Patient
CompartmentDefinition, :func:`~fhir_server.search.compartments.compartment_filter` per type), and the
Organizations, Practitioners, PractitionerRoles and Locations those resources reference (entries
with ``search.mode`` ``include``).

Order and paging: the Patient(s) first, then the compartment types in alphabetical order, each by
``id`` (the store's keyset order for an unsorted query). A page is filled type after type; the
``next`` link carries a signed cursor (:mod:`fhir_server.fhir.cursors`) holding the index of the type
being read, the keyset key of the last row returned, a fingerprint of the request (patient,
``_since``, ``_type``, ``_count``) so it cannot be replayed on another request, and short hashes of
the referenced resources already included on earlier pages, so that each Organization/Practitioner/
Location is sent once over the walk (up to :data:`MAX_SEEN` of them; beyond that one may repeat).

Parameters: ``_since`` (instant; only resources whose ``meta.lastUpdated`` is at or after it — the
focal Patient is always included), ``_type`` (comma list: limits the compartment types; the
referenced Organization/Practitioner/PractitionerRole/Location are sent only when their type is
listed; the Patient is always sent), ``_count`` (page size). ``start``/``end`` (care dates) are not
supported: a request with them gets a 400 rather than a silently wider answer.

Type level ``Patient/$everything``: every Patient, and every resource of a compartment type that
refers to some current Patient through one of the compartment's parameters, paged the same way;
there ``_since`` applies to the Patients too (an incremental feed would otherwise resend them all).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from fhir_server.errors import Gone, InvalidRequest, NotFound
from fhir_server.fhir import cursors, jsonio
from fhir_server.fhir.bundles import bundle, page_url
from fhir_server.fhir.instants import parse_instant
from fhir_server.interactions.context import Services
from fhir_server.interactions.history import parse_count
from fhir_server.search import ir
from fhir_server.search.compartments import (
    compartment_filter,
    compartment_params,
    compartment_types,
)
from fhir_server.store import SearchQuery, StoredResource

PARAMETERS = frozenset({"_since", "_type", "_count", "_cursor", "start", "end"})
REFERENCED_TYPES = ("Organization", "Practitioner", "PractitionerRole", "Location")
MAX_SEEN = 256  # referenced resources remembered across pages (in the cursor)
REFERENCE_ROUNDS = 2  # a PractitionerRole's Practitioner, a Location's Organization


def compartment_order() -> tuple[str, ...]:
    """The Patient first, then the other compartment types alphabetically."""
    return ("Patient", *sorted(compartment_types("Patient") - {"Patient"}))


def _since_filter(since: int | None) -> ir.Node | None:
    if since is None:
        return None
    return ir.Entry("_lastUpdated", "date", ir.Cmp("low", "ge", ir.Timestamp(since)))


def _any_patient(rtype: str) -> ir.Node | None:
    """Type level: "this resource refers to some current Patient through a compartment
    parameter"."""
    params = compartment_params("Patient", rtype)
    if rtype == "Patient":
        return ir.And()
    if not params:
        return None
    # a chain, not a bare reference test: resources of deleted Patients stay out
    return ir.any_of(ir.Chain(p, "Patient", ir.And()) for p in params)


def _where(rtype: str, patient_id: str | None, since: int | None) -> ir.Node | None:
    scope = (_any_patient(rtype) if patient_id is None
             else compartment_filter("Patient", patient_id, rtype))
    if scope is None:
        return None
    recent = _since_filter(since)
    if recent is None:
        return scope
    if rtype == "Patient" and patient_id is not None:  # the focal Patient always
        itself = ir.Entry("_id", "token", ir.Cmp("code", "eq", patient_id))
        return ir.any_of([itself, ir.all_of([scope, recent])])
    return ir.all_of([scope, recent])


def _parse_types(value: str | None) -> tuple[tuple[str, ...], frozenset[str]]:
    """(compartment types to read, referenced types to include)."""
    order = compartment_order()
    if value is None:
        return order, frozenset(REFERENCED_TYPES)
    wanted = {t.strip() for t in value.split(",") if t.strip()}
    if not wanted:
        raise InvalidRequest("_type is empty", expression="_type")
    unknown = sorted(wanted - set(order) - set(REFERENCED_TYPES))
    if unknown:
        raise InvalidRequest(
            f"_type: {', '.join(unknown)} cannot be part of Patient/$everything (neither in the"
            " Patient compartment nor a referenced Organization, Practitioner, PractitionerRole"
            " or Location)", expression="_type")
    types = tuple(t for t in order if t == "Patient" or t in wanted)
    return types, frozenset(wanted & set(REFERENCED_TYPES))


def _fingerprint(patient_id: str | None, kept: list[tuple[str, str]]) -> str:
    data = orjson.dumps([patient_id, [list(p) for p in kept]])
    return hashlib.sha256(data).hexdigest()[:16]


def _short(rtype: str, rid: str) -> str:
    return hashlib.sha256(f"{rtype}/{rid}".encode()).hexdigest()[:10]


def _references(node: Any) -> Iterator[str]:
    """Every ``reference`` string anywhere in a resource (extensions and contained included)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _local_target(reference: str, base: str, allowed: frozenset[str]) -> tuple[str, str] | None:
    if reference.startswith(base + "/"):
        reference = reference[len(base) + 1:]
    parts = reference.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) != 2 or parts[0] not in allowed or not parts[1]:
        return None
    return parts[0], parts[1]


def _referenced(svc: Services, base: str, rows: list[StoredResource], allowed: frozenset[str],
                seen: set[str]) -> list[StoredResource]:
    """The Organizations, Practitioners, PractitionerRoles and Locations ``rows`` refer to (and
    those the included ones refer to, :data:`REFERENCE_ROUNDS` rounds), minus ``seen``."""
    out: list[StoredResource] = []
    frontier = rows
    for _ in range(REFERENCE_ROUNDS):
        targets: dict[tuple[str, str], None] = {}
        for row in frontier:
            if row.body is None:
                continue
            for ref in _references(jsonio.loads_trusted(row.body)):
                target = _local_target(ref, base, frozenset(REFERENCED_TYPES))
                if target is not None and _short(*target) not in seen:
                    targets[target] = None
        found = []
        for rtype, rid in targets:
            seen.add(_short(rtype, rid))
            stored = svc.store.read(rtype, rid)
            if stored is not None and not stored.deleted:
                found.append(stored)
        out += found
        if not found:
            break
        frontier = found
    return [row for row in out if row.type in allowed]


def _entry(base: str, row: StoredResource, mode: str) -> dict[str, Any]:
    assert row.body is not None
    return {"fullUrl": f"{base}/{row.type}/{row.id}", "resource": orjson.Fragment(row.body),
            "search": {"mode": mode}}


def everything(svc: Services, base: str, path: str, patient_id: str | None,
               params: Mapping[str, str]) -> dict[str, Any]:
    """A ``searchset`` Bundle, one page of the Patient's record (see the module docstring)."""
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise InvalidRequest(f"Unknown parameter {unknown[0]!r} for Patient/$everything",
                             expression=unknown[0])
    for name in ("start", "end"):
        if name in params:
            raise InvalidRequest(
                f"{name} (care-date range) is not supported by this server's Patient/$everything;"
                " use _since for record changes", expression=name)
    svc.access.require("Patient", "r" if patient_id is not None else "s")
    if patient_id is not None:
        stored = svc.store.read("Patient", patient_id)
        if stored is None:
            raise NotFound(f"Patient/{patient_id} is not known")
        if stored.deleted:
            raise Gone(f"Patient/{patient_id} has been deleted")
    count = parse_count(params.get("_count"), svc.settings.default_count, svc.settings.max_count)
    since = parse_instant(params["_since"], "_since") if "_since" in params else None
    types, referenced_types = _parse_types(params.get("_type"))
    kept = [(k, params[k]) for k in ("_since", "_type", "_count") if k in params]
    fingerprint = _fingerprint(patient_id, [*kept, ("client", svc.access.client_id or "")])

    start_index: int = 0
    after: list[Any] | None = None
    seen_list: list[str] = []
    if "_cursor" in params:
        token = cursors.decode(svc.cursor_key, params["_cursor"])
        if not isinstance(token, dict) or token.get("q") != fingerprint:
            raise InvalidRequest("_cursor belongs to a different request", expression="_cursor")
        start_index, after, seen_list = int(token["t"]), token["k"], list(token["s"])

    wheres: list[tuple[str, ir.Node]] = []
    for rtype in types:
        where = _where(rtype, patient_id, since)
        if where is not None:
            wheres.append((rtype, where))

    rows: list[StoredResource] = []
    last: tuple[int, list[Any]] | None = None  # (type index, key) of the last row on this page
    more = False
    index = start_index
    while count and index < len(wheres):
        rtype, where = wheres[index]
        key = tuple(after) if after is not None and index == start_index else None
        page = svc.store.search(SearchQuery((rtype,), where, (), key, False,
                                            count - len(rows) + 1))
        take = count - len(rows)
        rows += page.rows[:take]
        if page.rows[:take]:
            last = (index, list(page.keys[: take][-1]))
        if len(page.rows) > take:
            more = True
            break
        index += 1
        if len(rows) == count:  # full page at a type boundary: is anything left?
            more = any(svc.store.search(SearchQuery((t,), w, (), None, False, 1)).rows
                       for t, w in wheres[index:])
            if more:
                last = (index, [])
            break

    total: int | None = None
    if "_cursor" not in params:
        total = sum(svc.store.count((t,), w) for t, w in wheres)

    seen = set(seen_list)
    included = _referenced(svc, base, rows, referenced_types, seen)

    links = [("self", page_url(base, path, [*kept, *(
        [("_cursor", params["_cursor"])] if "_cursor" in params else [])])),
        ("first", page_url(base, path, kept))]
    if more and last is not None:
        last_index, last_key = last
        token = {"q": fingerprint, "t": last_index, "k": last_key or None,
                 "s": sorted(seen)[:MAX_SEEN]}
        links.append(("next", page_url(base, path, [
            *kept, ("_cursor", cursors.encode(svc.cursor_key, token))])))

    entries = [_entry(base, row, "match") for row in rows]
    entries += [_entry(base, row, "include") for row in included]
    return bundle("searchset", entries, links, total)
