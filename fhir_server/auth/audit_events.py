"""AuditEvents in the shape of IHE Basic Audit Log Patterns (BALP), built from plain data.

Pure: no I/O, no Flask. :mod:`fhir_server.auth.audit` collects what happened (who, which
interaction, which resources and patients, the outcome) and this module turns it into audit log
records (:class:`~fhir_server.fhir.audit_record.AuditRecord`: the few facts that vary from one
event to the next; the store renders the R4 AuditEvent from it when one is read, see that module
for the BALP shape).

One event per Patient concerned (BALP PatientQuery: a search whose results concern 2 Patients gives
2 events); an interaction concerning no Patient gives one event without a Patient entity.

Token requests (SMART Backend Services) follow IHE IUA ITI-71 "Get Access Token": ``type``
``DCM#110114`` User Authentication, ``subtype`` ``urn:ihe:event-type-code#ITI-71``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, NamedTuple

from fhir_server.fhir.audit_record import (
    AUDIT_TYPE,
    ORGANIZATION_ROLES,
    REST,
    TOKEN,
    TOKEN_EVENT,
    AuditRecord,
    client_system,
    render,
    split_reference,
)
from fhir_server.search import ir
from fhir_server.search.compartments import compartment_params
from fhir_server.search.fhirpath import CompiledPath, compile_path
from fhir_server.search.params import Registry, registry

__all__ = ["AUDIT_TYPE", "AuditRecord"]

#: restful-interaction code -> AuditEvent.action
ACTIONS = {
    "read": "R", "vread": "R", "history-instance": "R", "history-type": "R", "history-system": "R",
    "create": "C", "update": "U", "patch": "U", "delete": "D",
    "search-type": "E", "search-system": "E", "search-compartment": "E", "capabilities": "E",
    "batch": "E", "transaction": "E", "operation": "E",
}
#: the HTTP method of a stored version -> the write interaction that made it
WRITE_INTERACTIONS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
#: the AuditEvent search parameters the audit log answers (see :mod:`fhir_server.store.audit_keys`)
INDEXED_PARAMS = frozenset({"_id", "_lastUpdated", "date", "type", "subtype", "outcome", "agent",
                            "entity", "patient"})
#: what AuditEvent searches can be sorted by
SORTS = frozenset({"_id", "_lastUpdated", "date"})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made the request: the token's client, or what is known of an unauthenticated caller."""

    address: str | None  # the network address the request came from
    client_id: str | None = None  # None: no valid token (401), or a token request naming none
    organization: str | None = None  # "Organization/ID"
    role: str | None = None
    token_hash: str | None = None  # SHA-256 (hex) of the access token


@dataclass(frozen=True, slots=True)
class Server:
    base_url: str  # the FHIR base as the client addressed it
    canonical: str  # the platform's canonical base (identifier systems)


class Rest(NamedTuple):
    """One FHIR interaction, as the audit records it (a tuple: built for every request)."""

    interaction: str  # a restful-interaction code ("operation" for $operations)
    recorded: int  # microseconds since the epoch
    status: int  # the HTTP status answered
    caller: Caller
    server: Server
    request_id: str | None
    what: tuple[str, ...] = ()  # the resource concerned: "Type/id" or "Type/id/_history/n"
    query: bytes | None = None  # the raw query (searches, operations)
    outcome_desc: str | None = None  # why it failed
    operation: str | None = None  # "Patient/$everything" for operations
    action: str | None = None  # overrides ACTIONS[interaction] (update-as-create: C)


def outcome_code(status: int) -> str:
    """audit-event-outcome: 0 success, 4 minor failure (the request was refused or wrong), 8 serious
    failure (the server failed), 12 major failure (the server is unavailable)."""
    if status < 400:
        return "0"
    if status < 500:
        return "4"
    return "12" if status == 503 else "8"


def event_id() -> str:
    """A UUID version 7 (RFC 9562): time-ordered, so that the audit log's rows are appended to its
    id index rather than scattered over it. The 74 random bits come from a generator of this
    module seeded from the OS (again in every forked process): an id must be unique, not secret,
    and a system call per event was a measurable part of the audit's cost."""
    ms = time.time_ns() // 1_000_000
    rand = _random.getrandbits(74)
    value = ((ms & _MS_MASK) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
             | rand & _LOW_MASK)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_random = random.Random()  # unique ids, not secrets
os.register_at_fork(after_in_child=_random.seed)  # a forked worker must not repeat its parent's
_MS_MASK = (1 << 48) - 1
_LOW_MASK = (1 << 62) - 1


@lru_cache(maxsize=1024)
def _who(caller: Caller, server: Server) -> tuple[Any, ...]:
    """The record fields of a caller, from ``client_system`` to ``server`` (cached per caller)."""
    org_type, org_id, _ = split_reference(caller.organization)
    system = client_system(server.canonical) if caller.client_id is not None else None
    org_role = ORGANIZATION_ROLES.get(caller.role or "", "PROV") if org_id is not None else None
    return (system, caller.client_id, org_role, org_type, org_id, caller.address,
            caller.token_hash, server.base_url)


def rest_records(event: Rest, patients: Iterable[str] = (), ts: int | None = None
                 ) -> list[AuditRecord]:
    """The audit records of ``event``: one per Patient in ``patients`` ("Patient/id"), or one;
    written at ``ts`` (default: ``event.recorded``)."""
    if len(event.what) > 1:
        raise ValueError("an audited interaction concerns at most one resource")
    action = event.action or ACTIONS.get(event.interaction, "E")
    desc = event.outcome_desc if event.status >= 400 else None
    what_type, what_id, what_version = split_reference(event.what[0] if event.what else None)
    head = (REST, event.interaction, event.operation, action, outcome_code(event.status), desc,
            *_who(event.caller, event.server), event.request_id, what_type, what_id,
            what_version, event.query)
    written = event.recorded if ts is None else ts
    out = []
    for patient in dict.fromkeys(patients) or (None,):
        pid = None if patient is None else patient.removeprefix("Patient/")
        out.append(AuditRecord._make((event_id(), written, event.recorded, *head, pid, None,
                                      None)))
    return out


def rest_events(event: Rest, patients: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The AuditEvents of ``event`` as served (without ``meta``): see :func:`rest_records`."""
    return [render(r, meta=False) for r in rest_records(event, patients)]


def token_record(recorded: int, caller: Caller, server: Server, request_id: str | None,
                 outcome: str, reason: str, scope: str | None = None, ts: int | None = None
                 ) -> AuditRecord:
    """A token request (IUA ITI-71 shape): ``outcome`` "success" or the OAuth error returned;
    ``scope`` the scope granted (success) or asked for (failure), never the assertion."""
    ok = outcome == "success"
    desc = None if ok else (f"{outcome}: {reason}" if reason and reason != outcome else outcome)
    return AuditRecord._make((event_id(), recorded if ts is None else ts, recorded, TOKEN,
                              TOKEN_EVENT, None, "E", "0" if ok else "4", desc,
                              *_who(caller, server), request_id, None, None, None, None, None,
                              scope or None, None))


def token_event(recorded: int, caller: Caller, server: Server, request_id: str | None,
                outcome: str, reason: str, scope: str | None = None) -> dict[str, Any]:
    """The AuditEvent of a token request as served (without ``meta``): :func:`token_record`."""
    return render(token_record(recorded, caller, server, request_id, outcome, reason, scope),
                  meta=False)


# -- the Patients a resource concerns ------------------------------------------------------------
@cache
def _patient_paths(rtype: str) -> tuple[CompiledPath, ...]:
    """The compiled expressions of ``rtype``'s Patient-compartment parameters (subject, patient,
    performer...): a resource concerns the Patients they refer to."""
    reg = registry()
    out = []
    for code in compartment_params("Patient", rtype):
        param = reg.get(rtype, code)
        if param is not None and param.expression:
            out.append(compile_path(param.expression, param.base))
    return tuple(out)


def _patient_of(reference: Any) -> str | None:
    if not isinstance(reference, dict):
        return None
    text = reference.get("reference")
    if not isinstance(text, str):
        return None
    head, _, _ = text.partition("/_history/")
    parts = head.rsplit("/", 2)
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return f"Patient/{parts[-1]}"
    return None


def patients_of(resource: Any) -> list[str]:
    """The Patients (``Patient/id``) a resource concerns: itself if it is one, else those its
    Patient-compartment references point to; nested Bundles (search results, batch responses) are
    walked entry by entry."""
    out: dict[str, None] = {}
    for doc in _resources(resource):
        rtype = doc.get("resourceType")
        if rtype == "Patient":
            if isinstance(doc.get("id"), str):
                out[f"Patient/{doc['id']}"] = None
            continue
        if not isinstance(rtype, str):
            continue
        for path in _patient_paths(rtype):
            for value in path(doc):
                patient = _patient_of(value)
                if patient is not None:
                    out[patient] = None
    return list(out)


def _resources(doc: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(doc, dict):
        return
    if doc.get("resourceType") != "Bundle":
        yield doc
        return
    for entry in doc.get("entry") or ():
        if isinstance(entry, dict):
            yield from _resources(entry.get("resource"))


# -- search ------------------------------------------------------------------------------------
@cache
def index_registry() -> Registry:
    """A registry of the indexed AuditEvent parameters (the tests compare against it)."""
    reg = registry()
    params = [p for code, p in reg.for_type(AUDIT_TYPE).items() if code in INDEXED_PARAMS]
    return Registry(params, [AUDIT_TYPE])


def unindexed(types: Iterable[str], where: ir.Node, sort: Iterable[str] = ()) -> str | None:
    """The first AuditEvent parameter of a search that is not indexed (its search would find
    nothing, silently), or None. Walks chains and ``_has`` into AuditEvent as well."""
    types = tuple(types)
    if AUDIT_TYPE in types:
        for name in sort:
            if name not in SORTS:
                return name
    return _unindexed(where, types)


def _unindexed(node: ir.Node, types: tuple[str, ...]) -> str | None:
    audit = AUDIT_TYPE in types
    if isinstance(node, ir.Entry | ir.Missing):
        return node.param if audit and node.param not in INDEXED_PARAMS else None
    if isinstance(node, ir.Chain):
        if audit and node.param not in INDEXED_PARAMS:
            return node.param
        return _unindexed(node.query, (node.target,))
    if isinstance(node, ir.Has):
        if node.type == AUDIT_TYPE and node.param not in INDEXED_PARAMS:
            return node.param
        return _unindexed(node.query, (node.type,))
    if isinstance(node, ir.And | ir.Or):
        for item in node.items:
            found = _unindexed(item, types)
            if found is not None:
                return found
    if isinstance(node, ir.Not):
        return _unindexed(node.item, types)
    return None
