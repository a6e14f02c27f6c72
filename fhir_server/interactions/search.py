"""search (https://hl7.org/fhir/R4/search.html): type, system and compartment level.

The query becomes IR once (:mod:`fhir_server.search.query`), the store compiles it, and this module
does what is backend-neutral: keyset paging with signed cursors, totals, ``_include`` and
``_revinclude`` (bounded), ``_summary``/``_elements`` and the searchset Bundle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_server.errors import InvalidRequest, NotFound
from fhir_server.fhir import cursors, jsonio, summary
from fhir_server.fhir.bundles import bundle, page_url
from fhir_server.interactions.context import Services
from fhir_server.interactions.resources import check_type
from fhir_server.search import ir
from fhir_server.search.compartments import compartment_filter
from fhir_server.search.index import ReferenceEntry, extract
from fhir_server.search.params import registry
from fhir_server.search.query import SearchRequest, build_search
from fhir_server.search.syntax import Include
from fhir_server.store import SearchQuery, SortSpec, StoredResource

MAX_INCLUDED = 1000  # bound on _include/_revinclude fan-out per page
MAX_ITERATIONS = 4  # rounds of :iterate


@dataclass(frozen=True, slots=True)
class Compartment:
    type: str
    id: str


def criteria(svc: Services, rtype: str, pairs: Sequence[tuple[str, str]], base: str) -> ir.Node:
    """The IR of conditional-interaction criteria: always strict (an ignored parameter would
    widen the match), never empty."""
    check_type(rtype)
    if not pairs:
        raise InvalidRequest("Conditional interactions need search criteria")
    request = build_search((rtype,), pairs, strict=True, base_url=base,
                           terminology=svc.terminology)
    return request.where


def _sort_specs(request: SearchRequest) -> tuple[SortSpec, ...]:
    specs = []
    for key in request.result.sort:
        if key.name in ("_id", "_lastUpdated"):
            ptype = "token" if key.name == "_id" else "date"
        else:
            param = registry().get(request.types[0], key.name)
            if param is None:
                raise InvalidRequest(f"Cannot sort by {key.name!r}", expression="_sort")
            ptype = param.type
        if ptype not in ("string", "token", "date", "number", "quantity", "reference", "uri"):
            raise InvalidRequest(f"Cannot sort by the {ptype} parameter {key.name!r}",
                                 expression="_sort")
        specs.append(SortSpec(key.name, ptype, key.descending))
    return tuple(specs)


def _applied(request: SearchRequest) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.applied if k != "_cursor"]


def _fingerprint(request: SearchRequest, compartment: Compartment | None, client: str | None) -> str:
    """What a paging cursor is bound to: the query, and the client that ran it."""
    data = orjson.dumps([request.types, [list(p) for p in _applied(request)],
                         [compartment.type, compartment.id] if compartment else None, client])
    return hashlib.sha256(data).hexdigest()[:16]


def search(
    svc: Services,
    base: str,
    path: str,
    types: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    *,
    strict: bool = True,
    compartment: Compartment | None = None,
    explicit_types: bool = True,
) -> dict[str, Any]:
    """``explicit_types`` False: a system search over every type (only those the client may
    search are searched); otherwise each type needs search permission (403)."""
    for rtype in types:
        check_type(rtype)
        if len(types) == 1 or explicit_types:
            svc.access.require(rtype, "s")
    request = build_search(types, pairs, strict=strict, base_url=base,
                           terminology=svc.terminology)
    result = request.result
    if result.contained not in (None, "false"):
        raise InvalidRequest("_contained is not supported", expression="_contained")
    where = request.where
    if compartment is not None:
        scope = compartment_filter(compartment.type, compartment.id, types[0])
        if scope is None:
            raise NotFound(f"{types[0]} is not in the {compartment.type} compartment")
        where = ir.all_of([scope, where])
    settings = svc.settings
    count = settings.default_count if result.count is None else min(result.count,
                                                                    settings.max_count)
    fingerprint = _fingerprint(request, compartment, svc.access.client_id)
    after: tuple[Any, ...] | None = None
    backwards = False
    if result.cursor is not None:
        token = cursors.decode(svc.cursor_key, result.cursor)
        if not isinstance(token, dict) or token.get("q") != fingerprint:
            raise InvalidRequest("_cursor belongs to a different search", expression="_cursor")
        after, backwards = tuple(token["k"]), bool(token["b"])

    sort = _sort_specs(request)
    rows: list[StoredResource] = []
    keys: list[tuple[Any, ...]] = []
    more = False
    if count and result.summary != "count":
        page = svc.store.search(SearchQuery(tuple(types), where, sort, after, backwards, count + 1))
        rows, keys, more = page.rows, page.keys, len(page.rows) > count
        if more:  # the extra row lies beyond the page, in the direction of travel
            rows, keys = (rows[1:], keys[1:]) if backwards else (rows[:count], keys[:count])

    # A count costs a second run of the query: done when asked for (_total=accurate|estimate,
    # _summary=count), and free when the first page holds every match.
    total: int | None = None
    if result.total in ("accurate", "estimate") or result.summary == "count":
        total = svc.store.count(tuple(types), where)
    elif result.total is None and result.cursor is None and not more and count:
        total = len(rows)

    def link(token: dict[str, Any] | None) -> str:
        params = _applied(request)
        if token is not None:
            params.append(("_cursor", cursors.encode(svc.cursor_key, {**token, "q": fingerprint})))
        return page_url(base, path, params)

    links = [("self", page_url(base, path, [*_applied(request), *(
        [("_cursor", result.cursor)] if result.cursor else [])])), ("first", link(None))]
    if rows:
        if (more and not backwards) or (backwards and after is not None):
            links.append(("next", link({"k": list(keys[-1]), "b": False})))
        if (after is not None and not backwards) or (backwards and more):
            links.append(("previous", link({"k": list(keys[0]), "b": True})))

    entries = [_entry(base, row, "match", result.summary, result.elements) for row in rows]
    included, truncated = _includes(svc, rows, result.includes)
    entries += [_entry(base, row, "include", result.summary, result.elements) for row in included]
    if truncated:
        entries.append({"resource": {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "too-costly", "diagnostics":
                       f"_include/_revinclude stopped at {MAX_INCLUDED} resources;"
                       " narrow the search or page with a smaller _count"}]},
            "search": {"mode": "outcome"}})
    return bundle("searchset", entries, links, total)


def _entry(base: str, row: StoredResource, mode: str, summary_mode: str | None,
           elements: tuple[str, ...] | None) -> dict[str, Any]:
    assert row.body is not None
    resource: Any = orjson.Fragment(row.body)
    if summary_mode not in (None, "false") or elements:
        doc = jsonio.loads_trusted(row.body)
        if summary_mode not in (None, "false"):
            doc = summary.summarize(doc, summary_mode)
        elif elements:
            doc = summary.select_elements(doc, list(elements))
        resource = doc
    return {"fullUrl": f"{base}/{row.type}/{row.id}", "resource": resource,
            "search": {"mode": mode}}


def _reference_params(rtype: str, name: str) -> list[str]:
    params = registry().for_type(rtype)
    if name == "*":
        return sorted(c for c, p in params.items() if p.type == "reference")
    param = params.get(name)
    return [name] if param is not None and param.type == "reference" else []


def _includes(svc: Services, matches: list[StoredResource],
              includes: Iterable[Include]) -> tuple[list[StoredResource], bool]:
    includes = list(includes)
    if not includes or not matches:
        return [], False
    seen = {(r.type, r.id) for r in matches}
    out: list[StoredResource] = []
    frontier = matches
    for round_ in range(MAX_ITERATIONS):
        found: list[StoredResource] = []
        for inc in includes:
            if round_ > 0 and not inc.iterate:
                continue
            found += (_revinclude(svc, frontier, inc) if inc.reverse
                      else _include(svc, frontier, inc))
        new = []
        for row in found:
            if (row.type, row.id) not in seen:
                seen.add((row.type, row.id))
                new.append(row)
        if len(out) + len(new) > MAX_INCLUDED:
            out += new[: MAX_INCLUDED - len(out)]
            return out, True
        out += new
        if not new:
            break
        frontier = new
    return out, False


def _include(svc: Services, sources: list[StoredResource], inc: Include) -> list[StoredResource]:
    targets: dict[tuple[str, str], None] = {}
    for row in sources:
        if inc.source not in ("*", row.type) or row.body is None:
            continue
        params = set(_reference_params(row.type, inc.param))
        for entry in extract(jsonio.loads_trusted(row.body)):
            if (isinstance(entry, ReferenceEntry) and entry.param in params and entry.type
                    and entry.id and entry.url is None
                    and (inc.target is None or entry.type == inc.target)):
                targets[(entry.type, entry.id)] = None
            if len(targets) > MAX_INCLUDED:
                break
    out = []
    for rtype, rid in targets:
        stored = svc.store.read(rtype, rid)
        if stored is not None and not stored.deleted:
            out.append(stored)
    return out


def _revinclude(svc: Services, targets: list[StoredResource], inc: Include) -> list[StoredResource]:
    source = inc.source
    params = _reference_params(source, inc.param)
    if not params:
        return []
    by_type: dict[str, list[str]] = {}
    for row in targets:
        by_type.setdefault(row.type, []).append(row.id)
    pointing = ir.any_of([
        ir.Entry(p, "reference", ir.And((ir.Cmp("type", "eq", t), ir.In("id", tuple(ids)))))
        for p in params for t, ids in by_type.items()])
    page = svc.store.search(SearchQuery((source,), pointing, limit=MAX_INCLUDED + 1))
    return page.rows
