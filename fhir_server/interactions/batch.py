"""batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction).

Entries run through the same interaction functions as the REST endpoints (:mod:`.crud`,
:mod:`.search`, :mod:`.history`), never through an HTTP round trip:

* **transaction**: every entry is a unit of work (``crud.*_in``) on ONE store transaction run by
  :func:`run_write`, so all succeed or nothing is written (and a lost race retries the whole
  Bundle). Processing order DELETE, POST, PUT/PATCH, GET/HEAD (http.html#trules). ``fullUrl``s of
  POST entries get new server ids, PUT entries map theirs to ``Type/id``, and every ``reference`` to
  such a fullUrl anywhere in any entry's resource is rewritten; conditional references
  (``Patient?identifier=s|v``) are resolved inside the transaction to exactly one match. A failing
  entry aborts everything; the error names the entry (``Bundle.entry[i]``, index and fullUrl).
* **batch**: each entry is its own unit of work through the public crud functions; a failure is
  reported in that entry's ``response.outcome`` and the others still happen.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl

import jsonpatch
import orjson

from fhir_server.errors import (
    FhirError,
    InvalidRequest,
    Issue,
    PayloadTooLarge,
    PreconditionFailed,
    outcome_json,
)
from fhir_server.fhir import jsonio, structure
from fhir_server.fhir.bundles import bundle as make_bundle
from fhir_server.fhir.instants import parse_instant, to_instant
from fhir_server.interactions import crud, search
from fhir_server.interactions.context import Services
from fhir_server.interactions.history import HISTORY_PARAMETERS, history
from fhir_server.interactions.resources import (
    WriteResult,
    check_if_match,
    check_type,
    etag,
    new_id,
    run_write,
    validate,
)
from fhir_server.search import ir
from fhir_server.store import SearchQuery, Store, StoredResource, Tx

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_TEMPORARY = ("urn:uuid:", "urn:oid:")
_JSON_PATCH = "application/json-patch+json"
_READ_PARAMETERS = frozenset({"_summary", "_elements"})
_PLACEHOLDER = {"resourceType": "Parameters"}  # stands for entry resources in the skeleton check


# -- parsed entries ------------------------------------------------------------------------------
@dataclass(eq=False)
class _Entry:
    index: int
    full_url: str | None
    method: str
    request: dict[str, Any]
    parts: list[str]  # the request URL's path segments below the base
    pairs: list[tuple[str, str]]  # its query parameters
    resource: Any
    rtype: str = ""
    rid: str | None = None
    body: dict[str, Any] | None = None
    where: ir.Node | None = None  # criteria: conditional update/patch/delete, or ifNoneExist
    document: jsonpatch.JsonPatch | None = None
    if_match: int | None = None
    # references inside ``body`` resolved only inside the transaction: (holder, original value)
    pending: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    def label(self) -> str:
        return f"entry {self.index}" + (f" ({self.full_url})" if self.full_url else "")


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one entry did, to be rendered as its response entry."""

    status: int
    stored: StoredResource | None = None  # written or read version
    resource: Any = None  # a search/history Bundle
    created: bool = False
    text: str | None = None  # an informational message (deletes)


def _entry_error(entry: _Entry, exc: FhirError) -> FhirError:
    """The same error (same class and status), naming the entry: index, fullUrl, expression."""
    issues = []
    for issue in exc.issues:
        expression = [f"Bundle.entry[{entry.index}]"]
        for expr in issue.expression:
            head, dot, rest = expr.partition(".")
            if dot and head == entry.rtype:
                expression.append(f"Bundle.entry[{entry.index}].resource.{rest}")
            elif expr.startswith("Bundle."):
                expression.append(expr)
        issues.append(Issue(issue.severity, issue.code, f"{entry.label()}: {issue.diagnostics}",
                            tuple(dict.fromkeys(expression))))
    return type(exc)(f"{entry.label()}: {exc.message}", issues=issues, headers=exc.headers)


def _if_match(entry: _Entry) -> int | None:
    value = entry.request.get("ifMatch")
    if value is None:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or len(text) > 18:
        raise InvalidRequest(f'ifMatch must be a version ETag such as W/"3", got {value!r}',
                             expression=f"Bundle.entry[{entry.index}].request.ifMatch")
    return int(text)


def _split_url(url: str, base: str) -> tuple[list[str], list[tuple[str, str]]]:
    if url.startswith(base + "/") or url == base:
        url = url[len(base):]
    elif "://" in url.split("?", 1)[0]:
        raise InvalidRequest(f"request.url {url!r} is not on this server ({base})")
    path, _, query = url.partition("?")
    parts = [p for p in path.strip("/").split("/") if p] if path.strip("/") else []
    return parts, parse_qsl(query, keep_blank_values=True)


def _parse(index: int, raw: Any, base: str) -> _Entry:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"entry {index} is not an object", expression=f"Bundle.entry[{index}]")
    request = raw.get("request")
    where = f"Bundle.entry[{index}].request"
    if not isinstance(request, dict) or not request.get("method") or not request.get("url"):
        raise InvalidRequest(f"entry {index} needs request.method and request.url", expression=where)
    method = str(request["method"]).upper()
    if method not in _ORDER:
        raise InvalidRequest(f"entry {index}: unsupported request.method {method!r}",
                             expression=f"{where}.method")
    full_url = raw.get("fullUrl")
    parts, pairs = _split_url(str(request["url"]), base)
    return _Entry(index, full_url if isinstance(full_url, str) else None, method, request,
                  parts, pairs, raw.get("resource"))


def _prepare(svc: Services, base: str, entry: _Entry) -> None:
    """Check the entry's URL against its method, validate its resource, parse its conditions."""
    parts, method = entry.parts, entry.method
    if not parts:
        raise InvalidRequest(f"request.url of a {method} entry must name a resource type")
    entry.rtype = parts[0]
    check_type(entry.rtype)
    entry.if_match = _if_match(entry)
    if method in ("GET", "HEAD"):
        return
    if method == "POST":
        if len(parts) != 1 or entry.pairs:
            raise InvalidRequest(f"POST request.url must be a resource type, got {parts!r}")
        entry.body = _resource(entry)
        none_exist = entry.request.get("ifNoneExist")
        if none_exist:
            query = none_exist.split("?", 1)[1] if "?" in none_exist else none_exist
            entry.where = search.criteria(svc, entry.rtype,
                                          parse_qsl(query, keep_blank_values=True), base)
        return
    if len(parts) == 2:
        entry.rid = parts[1]
    elif len(parts) == 1 and entry.pairs:
        entry.where = search.criteria(svc, entry.rtype, entry.pairs, base)
    else:
        raise InvalidRequest(f"{method} request.url must be Type/id or Type?criteria")
    if method == "PUT":
        entry.body = _resource(entry)
        if entry.rid is not None:
            crud.check_update_id(entry.rtype, entry.rid, entry.body)
    elif method == "PATCH":
        entry.document = crud.json_patch(_patch_operations(entry.resource))


def _resource(entry: _Entry) -> dict[str, Any]:
    if entry.resource is None:
        raise InvalidRequest(f"a {entry.method} entry needs a resource",
                             expression=f"Bundle.entry[{entry.index}].resource")
    return validate(entry.resource, entry.rtype)


def _patch_operations(resource: Any) -> Any:
    """A JSON Patch document carried as a Binary (http.html#patch in a transaction)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if kind == "Parameters":
            raise InvalidRequest("FHIRPath Patch (Parameters) is not supported; send JSON Patch "
                                 f"as a Binary with contentType {_JSON_PATCH}")
        raise InvalidRequest(f"a PATCH entry needs a Binary resource with contentType {_JSON_PATCH}")
    validate(resource, "Binary")
    if resource.get("contentType", "").split(";")[0].strip() != _JSON_PATCH:
        raise InvalidRequest(f"the PATCH Binary must have contentType {_JSON_PATCH}")
    try:
        return jsonio.loads(base64.b64decode(resource.get("data", ""), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"the PATCH Binary data is not base64 JSON: {exc}") from None


# -- references ----------------------------------------------------------------------------------
def _is_conditional(ref: str) -> bool:
    head, sep, _ = ref.partition("?")
    return bool(sep) and head in structure.RESOURCE_TYPES


def _rewrite(node: Any, mapping: Mapping[str, str], deferred: frozenset[str],
             found: list[tuple[dict[str, Any], str]]) -> None:
    """Rewrite every ``reference`` equal to a mapped fullUrl (also ``.../_history/n``); collect the
    ones that can only be resolved inside the transaction (conditional references and fullUrls of
    conditional entries) in ``found``, and temporary ids mapped nowhere as errors."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                target = _target(value, mapping)
                if target is not None:
                    node[key] = target
                elif _is_conditional(value) or _strip_history(value) in deferred or (
                        value.startswith(_TEMPORARY)):
                    found.append((node, value))
            elif isinstance(value, dict | list):
                _rewrite(value, mapping, deferred, found)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _rewrite(item, mapping, deferred, found)


def _strip_history(ref: str) -> str:
    head, sep, _ = ref.partition("/_history/")
    return head if sep else ref


def _target(ref: str, mapping: Mapping[str, str]) -> str | None:
    target = mapping.get(ref)
    if target is not None:
        return target
    head, sep, version = ref.partition("/_history/")
    if sep and head in mapping:
        return f"{mapping[head]}/_history/{version}"
    return None


def _resolve(reader: Tx | Store, svc: Services, base: str, ref: str,
             mapping: Mapping[str, str]) -> str:
    target = _target(ref, mapping)
    if target is not None:
        return target
    if _is_conditional(ref):
        rtype, _, query = ref.partition("?")
        where = search.criteria(svc, rtype, parse_qsl(query, keep_blank_values=True), base)
        rows = reader.search(SearchQuery((rtype,), where, limit=2)).rows
        if len(rows) != 1:
            how = "no" if not rows else "more than one"
            raise PreconditionFailed(
                f"the conditional reference {ref!r} matches {how} {rtype}; it must match exactly one")
        return f"{rtype}/{rows[0].id}"
    raise InvalidRequest(f"the reference {ref!r} names no entry of this Bundle")


# -- running entries -----------------------------------------------------------------------------
def _not_modified(entry: _Entry, stored: StoredResource) -> bool:
    none_match = entry.request.get("ifNoneMatch")
    if none_match is not None:
        if none_match.strip() == "*":
            return True
        wanted = {p.strip().removeprefix("W/").strip('"') for p in none_match.split(",")}
        return str(stored.version) in wanted
    since = entry.request.get("ifModifiedSince")
    if since is not None:
        when = parse_instant(since, f"Bundle.entry[{entry.index}].request.ifModifiedSince")
        return stored.ts // 1_000_000 <= when // 1_000_000
    return False


def _get(svc: Services, base: str, entry: _Entry) -> _Outcome:
    """read, vread, search, history: with a transaction's view when ``svc.store`` is the Tx."""
    parts, pairs, rtype = entry.parts, entry.pairs, entry.rtype
    if len(parts) == 1:
        return _Outcome(200, resource=search.search(svc, base, rtype, [rtype], pairs))
    if parts[-1] == "_history" and len(parts) in (2, 3):
        params = dict(pairs)
        unknown = set(params) - HISTORY_PARAMETERS
        if unknown:
            raise InvalidRequest(f"Unknown parameter {sorted(unknown)[0]!r} for history")
        rid = parts[1] if len(parts) == 3 else None
        return _Outcome(200, resource=history(svc, base, params, rtype, rid))
    unknown = {k for k, _ in pairs} - _READ_PARAMETERS - {"_format", "_pretty"}
    if unknown:
        raise InvalidRequest(f"Unknown parameter {sorted(unknown)[0]!r} for read")
    if len(parts) == 2:
        stored = crud.read(svc, rtype, parts[1])
    elif len(parts) == 4 and parts[2] == "_history":
        stored = crud.vread(svc, rtype, parts[1], parts[3])
    else:
        raise InvalidRequest(f"GET request.url {'/'.join(parts)!r} is not supported in a Bundle")
    return _Outcome(304 if _not_modified(entry, stored) else 200, stored)


def _delete_in(tx: Tx, svc: Services, entry: _Entry) -> _Outcome:
    if entry.where is not None:
        results = crud.conditional_delete_in(tx, svc, entry.rtype, entry.where,
                                             svc.settings.conditional_delete_multiple)
        if not results:
            return _Outcome(200, text=f"No {entry.rtype} matched the criteria; nothing was deleted")
        return _Outcome(204, results[-1].stored, text=f"Deleted {len(results)} {entry.rtype}")
    assert entry.rid is not None
    if entry.if_match is not None:
        check_if_match(tx.read(entry.rtype, entry.rid), entry.if_match, entry.rtype, entry.rid)
    result = crud.delete_in(tx, entry.rtype, entry.rid)
    text = (f"Deleted {entry.rtype}/{entry.rid}" if result.changed
            else f"{entry.rtype}/{entry.rid} was already deleted; nothing changed")
    return _Outcome(204, result.stored, text=text)


def _written(result: WriteResult) -> _Outcome:
    return _Outcome(201 if result.created else 200, result.stored, created=result.created)


# -- transaction ---------------------------------------------------------------------------------
def _transaction(svc: Services, base: str, entries: list[_Entry]) -> list[_Outcome]:
    for entry in entries:
        try:
            _prepare(svc, base, entry)
        except FhirError as exc:
            raise _entry_error(entry, exc) from None

    # identities: POST entries get new ids, PUT Type/id entries keep theirs; entries whose id is
    # only known inside the transaction (ifNoneExist, conditional update) are resolved there.
    mapping: dict[str, str] = {}
    ids: dict[int, str] = {}
    deferred: dict[str, _Entry] = {}
    written: dict[str, _Entry] = {}
    seen_urls: set[str] = set()
    for entry in entries:
        if entry.full_url is not None:
            if entry.full_url in seen_urls:
                raise _entry_error(entry, InvalidRequest(
                    f"fullUrl {entry.full_url} appears more than once in the Bundle"))
            seen_urls.add(entry.full_url)
        if entry.method in ("GET", "HEAD"):
            continue
        if entry.method == "POST":
            ids[entry.index] = new_id()
            target: str | None = f"{entry.rtype}/{ids[entry.index]}"
        else:
            target = f"{entry.rtype}/{entry.rid}" if entry.rid is not None else None
        if target is not None:
            other = written.get(target)
            if other is not None:
                raise _entry_error(entry, InvalidRequest(
                    f"{target} is also written by {other.label()}; an identity may appear once"))
            written[target] = entry
        if entry.full_url is None or entry.method in ("DELETE", "PATCH"):
            continue
        if entry.where is not None:  # conditional create or update: the id comes from a search
            deferred[entry.full_url] = entry
        elif target is not None:
            mapping[entry.full_url] = target
    deferred_urls = frozenset(deferred)
    for entry in entries:
        if entry.body is not None:
            _rewrite(entry.body, mapping, deferred_urls, entry.pending)

    ordered = sorted(entries, key=lambda e: _ORDER[e.method])  # stable: request order within
    if any(e.method in ("GET", "HEAD") for e in entries):
        svc.cursor_key  # noqa: B018  (create the store secret before the transaction, not in it)

    def work(tx: Tx) -> list[_Outcome]:
        local = dict(mapping)
        view = Services(svc.settings, cast(Store, tx))  # reads see the transaction's own writes
        if "cursor_key" in svc.__dict__:
            view.__dict__["cursor_key"] = svc.cursor_key
        outcomes: dict[int, _Outcome] = {}
        resolved = False
        for entry in ordered:
            if entry.method in ("POST", "PUT", "PATCH") and not resolved:
                _identify(tx, svc, entries, deferred, ids, local)
                for other in entries:
                    for holder, ref in other.pending:
                        try:
                            holder["reference"] = _resolve(tx, svc, base, ref, local)
                        except FhirError as exc:
                            raise _entry_error(other, exc) from exc
                resolved = True
            try:
                outcomes[entry.index] = _run_in(tx, svc, view, base, entry, ids, local)
            except FhirError as exc:
                raise _entry_error(entry, exc) from exc
        return [outcomes[e.index] for e in entries]

    return run_write(svc.store, work)


def _identify(tx: Tx, svc: Services, entries: list[_Entry], deferred: Mapping[str, _Entry],
              ids: dict[int, str], mapping: dict[str, str]) -> None:
    """The ids of conditional creates and updates that other entries reference, by search."""
    for url, entry in deferred.items():
        if not any(ref == url or _strip_history(ref) == url
                   for other in entries for _, ref in other.pending):
            continue
        assert entry.where is not None
        try:
            rows = tx.search(SearchQuery((entry.rtype,), entry.where, limit=2)).rows
        except FhirError as exc:
            raise _entry_error(entry, exc) from exc
        if len(rows) > 1:
            raise _entry_error(entry, PreconditionFailed(
                f"the criteria match more than one {entry.rtype}"))
        if rows:
            mapping[url] = f"{entry.rtype}/{rows[0].id}"
            if entry.method == "PUT":
                ids.pop(entry.index, None)
        else:
            if entry.method == "PUT":
                assert entry.body is not None
                ids[entry.index] = str(entry.body.get("id") or ids.get(entry.index) or new_id())
            mapping[url] = f"{entry.rtype}/{ids[entry.index]}"


def _run_in(tx: Tx, svc: Services, view: Services, base: str, entry: _Entry,
            ids: Mapping[int, str], mapping: Mapping[str, str]) -> _Outcome:
    method, rtype = entry.method, entry.rtype
    if method == "DELETE":
        return _delete_in(tx, svc, entry)
    if method == "POST":
        assert entry.body is not None
        return _written(crud.create_in(tx, rtype, entry.body, ids[entry.index], entry.where))
    if method == "PUT":
        assert entry.body is not None
        if entry.where is not None:
            body = entry.body
            if body.get("id") is None and entry.index in ids:
                body = {**body, "id": ids[entry.index]}
            return _written(crud.conditional_update_in(tx, rtype, entry.where, body))
        assert entry.rid is not None
        return _written(crud.update_in(tx, svc, rtype, entry.rid, entry.body, entry.if_match))
    if method == "PATCH":
        assert entry.document is not None
        if entry.where is not None:
            return _written(crud.conditional_patch_in(tx, rtype, entry.where, entry.document))
        assert entry.rid is not None
        return _written(crud.patch_in(tx, rtype, entry.rid, entry.document, entry.if_match))
    return _get(view, base, entry)


# -- batch ---------------------------------------------------------------------------------------
def _batch_entry(svc: Services, base: str, entry: _Entry, urls: frozenset[str]) -> _Outcome:
    _prepare(svc, base, entry)
    method, rtype = entry.method, entry.rtype
    if entry.body is not None:
        found: list[tuple[dict[str, Any], str]] = []
        _rewrite(entry.body, {}, urls, found)
        for holder, ref in found:
            if _strip_history(ref) in urls or ref.startswith(_TEMPORARY):
                raise InvalidRequest(
                    f"the reference {ref!r} names another entry: entries of a batch are "
                    "independent (use a transaction)")
            holder["reference"] = _resolve(svc.store, svc, base, ref, {})
    if method in ("GET", "HEAD"):
        return _get(svc, base, entry)
    if method == "DELETE":
        return run_write(svc.store, lambda tx: _delete_in(tx, svc, entry))
    if method == "POST":
        return _written(crud.create(svc, rtype, entry.body, if_none_exist=entry.where))
    if method == "PUT":
        if entry.where is not None:
            return _written(crud.conditional_update(svc, rtype, entry.where, entry.body))
        assert entry.rid is not None
        return _written(crud.update(svc, rtype, entry.rid, entry.body, if_match=entry.if_match))
    assert entry.document is not None
    operations = entry.document.patch
    if entry.where is not None:
        return _written(crud.conditional_patch(svc, rtype, entry.where, operations))
    assert entry.rid is not None
    return _written(crud.patch(svc, rtype, entry.rid, operations, if_match=entry.if_match))


def _batch(svc: Services, base: str, entries: list[_Entry]) -> list[_Outcome | FhirError]:
    urls = frozenset(e.full_url for e in entries if e.full_url)
    out: list[_Outcome | FhirError] = []
    for entry in entries:
        try:
            out.append(_batch_entry(svc, base, entry, urls))
        except FhirError as exc:
            out.append(_entry_error(entry, exc))
    return out


# -- the response Bundle -------------------------------------------------------------------------
def _status(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def _response_entry(base: str, entry: _Entry, outcome: _Outcome | FhirError,
                    wanted: str) -> dict[str, Any]:
    if isinstance(outcome, FhirError):
        return {"response": {"status": _status(outcome.status),
                             "outcome": outcome_json(outcome.issues)}}
    response: dict[str, Any] = {"status": _status(outcome.status)}
    out: dict[str, Any] = {}
    stored = outcome.stored
    is_read = entry.method in ("GET", "HEAD")
    if stored is not None:
        if not is_read:
            response["location"] = f"{stored.type}/{stored.id}/_history/{stored.version}"
        response["etag"] = etag(stored.version)
        response["lastModified"] = to_instant(stored.ts)
        if stored.body is not None and outcome.status != 304 and (
                is_read or wanted == "representation"):
            out["fullUrl"] = f"{base}/{stored.type}/{stored.id}"
            if entry.method != "HEAD":
                out["resource"] = orjson.Fragment(stored.body)
    elif outcome.resource is not None and entry.method != "HEAD":
        out["resource"] = outcome.resource
    if wanted == "operationoutcome" and not is_read:
        if outcome.text is not None:
            text = outcome.text
        elif stored is not None:
            verb = "Created" if outcome.created else "Updated"
            text = f"{verb} {stored.type}/{stored.id} version {stored.version}"
        else:
            text = "OK"
        response["outcome"] = outcome_json([Issue("information", "informational", text)])
    out["response"] = response
    return out


def _check_bundle(svc: Services, bundle: Any) -> list[Any]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        found = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise InvalidRequest(f"POST to the base needs a Bundle, not {found}",
                             expression="Bundle")
    raw_entries = bundle.get("entry", [])
    limit = svc.settings.max_bundle_entries
    if isinstance(raw_entries, list) and len(raw_entries) > limit:
        raise PayloadTooLarge(f"The Bundle has {len(raw_entries)} entries; this server accepts at "
                              f"most {limit} per batch or transaction", expression="Bundle.entry")
    # the Bundle's own structure; each entry's resource is validated with its entry, so that a
    # batch can fail one entry alone and a failure names its entry
    skeleton = dict(bundle)
    if isinstance(raw_entries, list) and "entry" in bundle:
        skeleton["entry"] = [{**e, "resource": _PLACEHOLDER} if isinstance(e, dict) and "resource" in e
                             else e for e in raw_entries]
    validate(skeleton, "Bundle")
    if bundle.get("type") not in ("batch", "transaction"):
        raise InvalidRequest(f"Bundle.type must be batch or transaction, not {bundle.get('type')!r}",
                             expression="Bundle.type")
    return raw_entries if isinstance(raw_entries, list) else []


def process_bundle(svc: Services, base: str, bundle: Any,
                   prefer: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run a ``batch`` or ``transaction`` Bundle; returns the ``batch-response`` or
    ``transaction-response`` Bundle (entries in request order).

    ``prefer``: the parsed ``Prefer`` header (``return`` = ``minimal`` | ``representation`` |
    ``OperationOutcome``). A failed transaction raises the failing entry's :class:`FhirError`.
    """
    raw_entries = _check_bundle(svc, bundle)
    entries = [_parse(i, raw, base) for i, raw in enumerate(raw_entries)]
    wanted = (prefer or {}).get("return", "representation").lower()
    if wanted not in ("minimal", "representation", "operationoutcome"):
        wanted = "representation"
    outcomes: list[_Outcome] | list[_Outcome | FhirError]
    if bundle["type"] == "transaction":
        outcomes = _transaction(svc, base, entries)
        kind = "transaction-response"
    else:
        outcomes = _batch(svc, base, entries)
        kind = "batch-response"
    return make_bundle(kind, [_response_entry(base, e, o, wanted)
                              for e, o in zip(entries, outcomes, strict=True)], [])


__all__ = ["process_bundle"]
