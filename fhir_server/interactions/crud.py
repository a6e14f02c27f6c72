"""create, read, vread, update, patch, delete (https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from fhir_server.errors import Gone, InvalidRequest, NotFound, Unprocessable
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
from fhir_server.store import StoredResource, Tx


def read(svc: Services, rtype: str, rid: str) -> StoredResource:
    """https://hl7.org/fhir/R4/http.html#read: 404 if unknown, 410 if deleted."""
    check_type(rtype)
    return current_or_raise(svc.store, rtype, rid)


def vread(svc: Services, rtype: str, rid: str, version: str) -> StoredResource:
    """https://hl7.org/fhir/R4/http.html#vread: a deletion version answers 410."""
    check_type(rtype)
    if not version.isdigit() or len(version) > 18:
        raise NotFound(f"{rtype}/{rid} has no version {version!r}")
    stored = svc.store.vread(rtype, rid, int(version))
    if stored is None:
        raise NotFound(f"{rtype}/{rid} has no version {version}")
    if stored.deleted:
        raise Gone(f"Version {version} of {rtype}/{rid} is a deletion")
    return stored


def create(svc: Services, rtype: str, resource: Any) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#create: the server assigns the id (a client id is ignored)."""
    check_type(rtype)
    body = validate(resource, rtype)
    rid = new_id()
    stored = run_write(svc.store, lambda tx: put(tx, rtype, rid, body, None, "POST"))
    return WriteResult(stored, created=True)


def update(
    svc: Services, rtype: str, rid: str, resource: Any, *, if_match: int | None = None
) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#update: the body's id must equal the URL's."""
    check_type(rtype)
    body = validate(resource, rtype)
    if body.get("id") != rid:
        given = body.get("id")
        raise InvalidRequest(
            f"The resource id {given!r} does not match the id {rid!r} in the URL"
            if given is not None
            else f"The resource has no id; an update of {rtype}/{rid} needs \"id\": \"{rid}\"",
            expression=f"{rtype}.id",
        )

    def work(tx: Tx) -> WriteResult:
        current = tx.read(rtype, rid)
        if current is None and not svc.settings.allow_update_create:
            raise NotFound(
                f"{rtype}/{rid} does not exist, and this server does not create resources by"
                " update (client-assigned ids); use POST to create"
            )
        check_if_match(current, if_match, rtype, rid)
        stored = put(tx, rtype, rid, body, current, "PUT")
        return WriteResult(stored, created=current is None)

    return run_write(svc.store, work)


def patch(
    svc: Services, rtype: str, rid: str, operations: Any, *, if_match: int | None = None
) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#patch with JSON Patch (RFC 6902); validated like update."""
    check_type(rtype)
    if not isinstance(operations, list) or not operations:
        raise InvalidRequest("A JSON Patch document must be a non-empty array of operations")
    try:
        document = jsonpatch.JsonPatch(operations)
    except (jsonpatch.InvalidJsonPatch, jsonpointer.JsonPointerException, TypeError) as exc:
        raise InvalidRequest(f"Invalid JSON Patch document: {exc}") from None

    def work(tx: Tx) -> WriteResult:
        current = current_or_raise(tx, rtype, rid)
        check_if_match(current, if_match, rtype, rid)
        assert current.body is not None
        try:
            patched = document.apply(jsonio.loads_trusted(current.body))
        except jsonpatch.JsonPatchTestFailed as exc:
            raise Unprocessable(f"JSON Patch test failed: {exc}") from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise Unprocessable(f"JSON Patch cannot be applied to {rtype}/{rid}: {exc}") from None
        body = validate(patched, rtype)
        if body.get("id") != rid:
            raise InvalidRequest("A patch may not change the resource id", expression=f"{rtype}.id")
        return WriteResult(put(tx, rtype, rid, body, current, "PATCH"))

    return run_write(svc.store, work)


def delete(svc: Services, rtype: str, rid: str) -> WriteResult:
    """https://hl7.org/fhir/R4/http.html#delete: soft delete; deleting again changes nothing."""
    check_type(rtype)

    def work(tx: Tx) -> WriteResult:
        current = tx.read(rtype, rid)
        if current is None:
            raise NotFound(f"{rtype}/{rid} is not known")
        if current.deleted:
            return WriteResult(current, changed=False)
        return WriteResult(put(tx, rtype, rid, None, current, "DELETE"))

    return run_write(svc.store, work)
