"""The FHIR REST endpoints under /fhir (https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

from flask import Response

from fhir_server.api import access, http
from fhir_server.api.routes import FhirBlueprint
from fhir_server.errors import Issue, NotFound
from fhir_server.fhir import structure
from fhir_server.fhir.instants import now_us, to_instant
from fhir_server.interactions import crud, search
from fhir_server.interactions.capabilities import capability_statement
from fhir_server.interactions.history import HISTORY_PARAMETERS, history
from fhir_server.interactions.resources import WriteResult
from fhir_server.profiles.enforcement import write_warnings
from fhir_server.search.compartments import compartments

fhir = FhirBlueprint("fhir", __name__, url_prefix="/fhir")
fhir.before_request(http.negotiate)
fhir.before_request(access.authenticate)

_READ_PARAMETERS = frozenset({"_summary", "_elements"})
_STARTED = to_instant(now_us())


@fhir.interaction("/metadata", "GET", "capabilities", "server")
def metadata() -> Response:
    """https://hl7.org/fhir/R4/http.html#capabilities"""
    query = http.params({"mode"})
    if query.get("mode", "full") != "full":
        return http.outcome_response(
            [Issue("error", "not-supported", "Only mode=full is supported", ("mode",))], 400)
    routed = [(r.interaction, r.level) for r in fhir.routed]
    doc = capability_statement(routed, http.services().settings, http.base_url(), _STARTED)
    return http.json_response(doc)


@fhir.interaction("/<rtype>/<rid>", "GET", "read", "instance")
def read(rtype: str, rid: str) -> Response:
    query = http.params(_READ_PARAMETERS)
    stored = crud.read(http.services(), rtype, rid)
    if http.not_modified(stored):
        return Response(status=304, headers=http.version_headers(stored))
    return http.resource_response(stored, query=query)


@fhir.interaction("/<rtype>/<rid>/_history/<vid>", "GET", "vread", "instance")
def vread(rtype: str, rid: str, vid: str) -> Response:
    query = http.params(_READ_PARAMETERS)
    stored = crud.vread(http.services(), rtype, rid, vid)
    if http.not_modified(stored):
        return Response(status=304, headers=http.version_headers(stored))
    return http.resource_response(stored, query=query)


def _written(result: WriteResult, status: int) -> Response:
    """Honour ``Prefer: return=minimal | representation | OperationOutcome``."""
    stored = result.stored
    location = f"{http.base_url()}/{stored.type}/{stored.id}/_history/{stored.version}"
    where = {"Location" if status == 201 else "Content-Location": location}
    wanted = http.prefer().get("return", "representation").lower()
    if wanted == "minimal":
        return Response(status=status, headers={**where, **http.version_headers(stored)})
    if wanted == "operationoutcome":
        verb = "Created" if result.created else "Updated"
        issue = Issue("information", "informational",
                      f"{verb} {stored.type}/{stored.id} version {stored.version}")
        warnings = write_warnings(http.services().settings, stored.body)  # profile warnings
        return http.outcome_response([issue, *warnings], status,
                                     {**where, **http.version_headers(stored)})
    return http.resource_response(stored, status, where)


@fhir.interaction("/<rtype>", "POST", "create", "type")
def create(rtype: str) -> Response:
    http.params(())
    svc = http.services()
    criteria = http.header_criteria("If-None-Exist")
    condition = None if criteria is None else search.criteria(svc, rtype, criteria, http.base_url())
    body = http.read_resource_body()
    result = crud.create(svc, rtype, body, if_none_exist=condition)
    return _written(result, 201 if result.created else 200)


@fhir.interaction("/<rtype>", "PUT", "update", "type")
def conditional_update(rtype: str) -> Response:
    svc = http.services()
    where = search.criteria(svc, rtype, http.query_pairs(), http.base_url())
    result = crud.conditional_update(svc, rtype, where, http.read_resource_body())
    return _written(result, 201 if result.created else 200)


@fhir.interaction("/<rtype>", "PATCH", "patch", "type")
def conditional_patch(rtype: str) -> Response:
    svc = http.services()
    where = search.criteria(svc, rtype, http.query_pairs(), http.base_url())
    result = crud.conditional_patch(svc, rtype, where, http.read_body(http.JSON_PATCH))
    return _written(result, 200)


@fhir.interaction("/<rtype>", "DELETE", "delete", "type")
def conditional_delete(rtype: str) -> Response:
    svc = http.services()
    where = search.criteria(svc, rtype, http.query_pairs(), http.base_url())
    results = crud.conditional_delete(svc, rtype, where,
                                      multiple=svc.settings.conditional_delete_multiple)
    if http.prefer().get("return", "").lower() == "operationoutcome" or not results:
        text = (f"Deleted {len(results)} {rtype}" if results
                else f"No {rtype} matched the criteria; nothing was deleted")
        return http.outcome_response([Issue("information", "informational", text)], 200)
    return Response(status=204)


def _searchset(types: list[str], pairs: list[tuple[str, str]], path: str,
               compartment: search.Compartment | None = None, explicit: bool = True) -> Response:
    doc = search.search(http.services(), http.base_url(), path, types, pairs,
                        strict=not http.lenient(), compartment=compartment,
                        explicit_types=explicit)
    return http.json_response(doc)


@fhir.interaction("/<rtype>", "GET", "search-type", "type")
def search_type(rtype: str) -> Response:
    return _searchset([rtype], http.query_pairs(), rtype)


@fhir.interaction("/<rtype>/_search", "POST", "search-type", "type")
def search_type_post(rtype: str) -> Response:
    return _searchset([rtype], http.form_pairs(), rtype)


def _search_system(pairs: list[tuple[str, str]]) -> Response:
    """Without ``_type``: every type (those the client may search); with it: those, each needing
    search permission."""
    types = [t for k, v in pairs if k == "_type" for t in v.split(",") if t]
    rest = [(k, v) for k, v in pairs if k != "_type"]
    return _searchset(types or sorted(structure.RESOURCE_TYPES), rest, "", explicit=bool(types))


@fhir.interaction("/", "GET", "search-system", "system")
def search_system() -> Response:
    return _search_system(http.query_pairs())


@fhir.interaction("/_search", "POST", "search-system", "system")
def search_system_post() -> Response:
    return _search_system(http.form_pairs())


@fhir.interaction("/<ctype>/<cid>/<rtype>", "GET", "search-compartment", "compartment")
def search_compartment(ctype: str, cid: str, rtype: str) -> Response:
    if ctype not in compartments():
        raise NotFound(f"{ctype} is not a compartment this server supports")
    return _searchset([rtype], http.query_pairs(), f"{ctype}/{cid}/{rtype}",
                      search.Compartment(ctype, cid))


@fhir.interaction("/<rtype>/<rid>", "PUT", "update", "instance")
def update(rtype: str, rid: str) -> Response:
    http.params(())
    result = crud.update(http.services(), rtype, rid, http.read_resource_body(),
                         if_match=http.if_match())
    return _written(result, 201 if result.created else 200)


@fhir.interaction("/<rtype>/<rid>", "PATCH", "patch", "instance")
def patch(rtype: str, rid: str) -> Response:
    http.params(())
    operations = http.read_body(http.JSON_PATCH)
    result = crud.patch(http.services(), rtype, rid, operations, if_match=http.if_match())
    return _written(result, 200)


@fhir.interaction("/<rtype>/<rid>", "DELETE", "delete", "instance")
def delete(rtype: str, rid: str) -> Response:
    http.params(())
    result = crud.delete(http.services(), rtype, rid)
    headers = {"ETag": f'W/"{result.stored.version}"'}
    if http.prefer().get("return", "").lower() == "operationoutcome":
        text = (f"Deleted {rtype}/{rid}" if result.changed
                else f"{rtype}/{rid} was already deleted; nothing changed")
        return http.outcome_response([Issue("information", "informational", text)], 200, headers)
    return Response(status=204, headers=headers)


@fhir.interaction("/<rtype>/<rid>/_history", "GET", "history-instance", "instance")
def history_instance(rtype: str, rid: str) -> Response:
    query = http.params(HISTORY_PARAMETERS)
    return http.json_response(history(http.services(), http.base_url(), query, rtype, rid))


@fhir.interaction("/<rtype>/_history", "GET", "history-type", "type")
def history_type(rtype: str) -> Response:
    query = http.params(HISTORY_PARAMETERS)
    return http.json_response(history(http.services(), http.base_url(), query, rtype))


@fhir.interaction("/_history", "GET", "history-system", "system")
def history_system() -> Response:
    query = http.params(HISTORY_PARAMETERS)
    return http.json_response(history(http.services(), http.base_url(), query))

