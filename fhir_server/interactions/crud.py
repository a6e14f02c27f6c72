"""create, read, vread, update, patch, delete (https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from fhir_server.errors import (
    Conflict,
    Gone,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from fhir_server.fhir import jsonio
from fhir_server.interactions.context import Services
from fhir_server.interactions.resources import (
    WriteResult,
    check_if_match,
    check_type,
    current_or_raise,
    new_id,
    put,
    run_write,
    validate,
)
from fhir_server.search import ir
from fhir_server.store import SearchQuery, StoredResource, Tx, UniqueViolation, VersionConflict


def read(svc: Services, rtype: str, rid: str) -> StoredResource:
    """https://hl7.org/fhir/R4/http.html#read: 404 if unknown, 410 if deleted."""
    check_type(rtype)
    svc.access.require(rtype, "r")
    return current_or_raise(svc.store, rtype, rid)


def vread(svc: Services, rtype: str, rid: str, version: str) -> StoredResource:
    """https://hl7.org/fhir/R4/http.html#vread: a deletion version answers 410."""
    check_type(rtype)
    svc.access.require(rtype, "r")
    if not version.isdigit() or len(version) > 18:
        raise NotFound(f"{rtype}/{rid} has no version {version!r}")
    stored = svc.store.vread(rtype, rid, int(version))
    if stored is None:
        raise NotFound(f"{rtype}/{rid} has no version {version}")
    if stored.deleted:
        raise Gone(f"Version {version} of {rtype}/{rid} is a deletion")
    return stored


def _matches(tx: Tx, rtype: str, where: ir.Node, limit: int = 2) -> list[StoredResource]:
    return tx.search(SearchQuery((rtype,), where, limit=limit)).rows


# Each interaction is a unit of work on a transaction (``*_in``), which a transaction Bundle runs
# with its other entries in one store transaction, and a public function that validates its input
# and runs the unit alone (retrying it when a concurrent writer won a race).

def create_in(tx: Tx, rtype: str, body: dict[str, Any], rid: str,
              if_none_exist: ir.Node | None = None) -> WriteResult:
    if if_none_exist is not None:
        found = _matches(tx, rtype, if_none_exist)
        if len(found) > 1:
            raise PreconditionFailed(
                f"If-None-Exist matches more than one {rtype}", expression="If-None-Exist")
        if found:
            return WriteResult(found[0], changed=False)
    try:
        return WriteResult(put(tx, rtype, rid, body, None, "POST"), created=True)
    except UniqueViolation as exc:
        if if_none_exist is not None:  # a concurrent create won: run again, and find it
            raise VersionConflict(str(exc)) from exc
        raise


def create(svc: Services, rtype: str, resource: Any, *,
           if_none_exist: ir.Node | None = None) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#create: the server assigns the id (a client id is ignored).

    With ``If-None-Exist`` criteria (conditional create): one match is returned unchanged, several
    are a 412; the search and the create happen in one transaction.
    """
    check_type(rtype)
    svc.access.require(rtype, "c")
    body = validate(resource, rtype, svc.store)
    rid = new_id()
    return run_write(svc.store, lambda tx: create_in(tx, rtype, body, rid, if_none_exist))


def check_update_id(rtype: str, rid: str, body: dict[str, Any]) -> None:
    if body.get("id") != rid:
        given = body.get("id")
        raise InvalidRequest(
            f"The resource id {given!r} does not match the id {rid!r} in the URL"
            if given is not None
            else f"The resource has no id; an update of {rtype}/{rid} needs \"id\": \"{rid}\"",
            expression=f"{rtype}.id",
        )


def update_in(tx: Tx, svc: Services, rtype: str, rid: str, body: dict[str, Any],
              if_match: int | None = None) -> WriteResult:
    current = tx.read(rtype, rid)
    if current is None and not svc.settings.allow_update_create:
        raise NotFound(
            f"{rtype}/{rid} does not exist, and this server does not create resources by"
            " update (client-assigned ids); use POST to create"
        )
    check_if_match(current, if_match, rtype, rid)
    return WriteResult(put(tx, rtype, rid, body, current, "PUT"), created=current is None)


def update(
    svc: Services, rtype: str, rid: str, resource: Any, *, if_match: int | None = None
) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#update: the body's id must equal the URL's."""
    check_type(rtype)
    svc.access.require(rtype, "u")
    body = validate(resource, rtype, svc.store)
    check_update_id(rtype, rid, body)
    return run_write(svc.store, lambda tx: update_in(tx, svc, rtype, rid, body, if_match))


def json_patch(operations: Any) -> jsonpatch.JsonPatch:
    if not isinstance(operations, list) or not operations:
        raise InvalidRequest("A JSON Patch document must be a non-empty array of operations")
    try:
        return jsonpatch.JsonPatch(operations)
    except (jsonpatch.InvalidJsonPatch, jsonpointer.JsonPointerException, TypeError) as exc:
        raise InvalidRequest(f"Invalid JSON Patch document: {exc}") from None


def patch_in(tx: Tx, rtype: str, rid: str, document: jsonpatch.JsonPatch,
             if_match: int | None = None) -> WriteResult:
    current = current_or_raise(tx, rtype, rid)
    check_if_match(current, if_match, rtype, rid)
    assert current.body is not None
    try:
        patched = document.apply(jsonio.loads_trusted(current.body))
    except jsonpatch.JsonPatchTestFailed as exc:
        raise Unprocessable(f"JSON Patch test failed: {exc}") from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise Unprocessable(f"JSON Patch cannot be applied to {rtype}/{rid}: {exc}") from None
    body = validate(patched, rtype, tx)
    if body.get("id") != rid:
        raise InvalidRequest("A patch may not change the resource id", expression=f"{rtype}.id")
    return WriteResult(put(tx, rtype, rid, body, current, "PATCH"))


def patch(
    svc: Services, rtype: str, rid: str, operations: Any, *, if_match: int | None = None
) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#patch with JSON Patch (RFC 6902); validated like update."""
    check_type(rtype)
    svc.access.require(rtype, "u")
    document = json_patch(operations)
    return run_write(svc.store, lambda tx: patch_in(tx, rtype, rid, document, if_match))


def delete_in(tx: Tx, rtype: str, rid: str) -> WriteResult:
    current = tx.read(rtype, rid)
    if current is None:
        raise NotFound(f"{rtype}/{rid} is not known")
    if current.deleted:
        return WriteResult(current, changed=False)
    return WriteResult(put(tx, rtype, rid, None, current, "DELETE"))


def delete(svc: Services, rtype: str, rid: str) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#delete: soft delete; deleting again changes nothing."""
    check_type(rtype)
    svc.access.require(rtype, "d")
    return run_write(svc.store, lambda tx: delete_in(tx, rtype, rid))


def conditional_update_in(tx: Tx, rtype: str, where: ir.Node, body: dict[str, Any]) -> WriteResult:
    found = _matches(tx, rtype, where)
    if len(found) > 1:
        raise PreconditionFailed(f"The criteria match more than one {rtype}")
    if not found:
        rid = body.get("id") or new_id()
        if tx.read(rtype, rid) is not None:
            raise Conflict(f"{rtype}/{rid} exists but does not match the criteria",
                           expression=f"{rtype}.id")
        return WriteResult(put(tx, rtype, rid, body, None, "PUT"), created=True)
    current = found[0]
    if body.get("id") not in (None, current.id):
        raise InvalidRequest(
            f"The resource id {body.get('id')!r} differs from the matching {rtype}/{current.id}",
            expression=f"{rtype}.id")
    return WriteResult(put(tx, rtype, current.id, {**body, "id": current.id}, current, "PUT"))


def conditional_update(svc: Services, rtype: str, where: ir.Node, resource: Any) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#cond-update: no match creates, one match is updated,
    several are a 412."""
    check_type(rtype)
    svc.access.require(rtype, "u")
    body = validate(resource, rtype, svc.store)
    return run_write(svc.store, lambda tx: conditional_update_in(tx, rtype, where, body))


def conditional_delete_in(tx: Tx, svc: Services, rtype: str, where: ir.Node,
                          multiple: bool) -> list[WriteResult]:
    limit = svc.settings.max_count
    found = _matches(tx, rtype, where, limit=limit + 1 if multiple else 2)
    if len(found) > 1 and not multiple:
        raise PreconditionFailed(
            f"The criteria match more than one {rtype}; this server deletes one at a time")
    if len(found) > limit:
        raise PreconditionFailed(f"The criteria match more than {limit}")
    return [WriteResult(put(tx, rtype, row.id, None, row, "DELETE")) for row in found]


def conditional_delete(svc: Services, rtype: str, where: ir.Node, *,
                       multiple: bool) -> list[WriteResult]:
    """https://hl7.org/fhir/R4/http.html#cdelete: every match is deleted when ``multiple``;
    otherwise several matches are a 412."""
    check_type(rtype)
    svc.access.require(rtype, "d")
    return run_write(svc.store,
                     lambda tx: conditional_delete_in(tx, svc, rtype, where, multiple))


def conditional_patch_in(tx: Tx, rtype: str, where: ir.Node,
                         document: jsonpatch.JsonPatch) -> WriteResult:
    found = _matches(tx, rtype, where)
    if not found:
        raise NotFound(f"No {rtype} matches the criteria")
    if len(found) > 1:
        raise PreconditionFailed(f"The criteria match more than one {rtype}")
    return patch_in(tx, rtype, found[0].id, document)


def conditional_patch(svc: Services, rtype: str, where: ir.Node, operations: Any) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#patch (conditional): exactly one match is patched."""
    check_type(rtype)
    svc.access.require(rtype, "u")
    document = json_patch(operations)
    return run_write(svc.store, lambda tx: conditional_patch_in(tx, rtype, where, document))
