"""AuditEvent resources in the shape of IHE Basic Audit Log Patterns (BALP), built from plain data.

Pure: no I/O, no Flask. :mod:`fhir_server.auth.audit` collects what happened (who, which
interaction, which resources and patients, the outcome) and this module turns it into R4
AuditEvents (https://profiles.ihe.net/ITI/BALP/):

* ``type`` ``audit-event-type#rest``; ``subtype`` the ``restful-interaction`` code (plus, for an
  operation, its OperationDefinition canonical); ``action`` C/R/U/D/E; ``recorded``; ``outcome``
  0/4/8/12 and ``outcomeDesc`` for failures;
* agents: the **client** (``who.identifier`` = ``{canonical}/sid/oauth-client|client_id``,
  ``requestor``, the network address it connected from, ``policy`` = the SHA-256 of its access
  token, never the token: BALP's OAuth agent keeps the token's id there), the **organisation** it
  acts for (``who.reference``; BALP's "userorg" agent), and the **server**. DICOM roles as in BALP:
  for reads (action R) the server is the Source Role and the client the Destination; for every
  other interaction the client is the Source;
* ``source``: the server, observer of the event (``security-source-type#4`` Application Server);
* entities: the request id (BALP ``XrequestId``), the resource(s) concerned (``Type/id`` for
  instance-level interactions), the Patient (``object-role#1``) and, for searches and
  operations, the raw query base64-encoded in ``entity.query``.

One event per Patient concerned (BALP PatientQuery: a search whose results concern 2 Patients gives
2 events); an interaction concerning no Patient gives one event without a Patient entity.

Token requests (SMART Backend Services) follow IHE IUA ITI-71 "Get Access Token": ``type``
``DCM#110114`` User Authentication, ``subtype`` ``urn:ihe:event-type-code#ITI-71``.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.fhir.instants import to_instant
from fhir_server.search import index, ir
from fhir_server.search.compartments import compartment_params
from fhir_server.search.fhirpath import CompiledPath, compile_path
from fhir_server.search.index import IndexEntry
from fhir_server.search.params import Registry, registry
from fhir_server.store.base import NewVersion

AUDIT_TYPE = "AuditEvent"
CLIENT_ID_PATH = "sid/oauth-client"  # under the canonical base: the identifier system of clients

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_BALP = "https://profiles.ihe.net/ITI/BALP/CodeSystem"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"

REST_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
             "display": "Restful Operation"}
TOKEN_TYPE = {"system": _DCM, "code": "110114", "display": "User Authentication"}
TOKEN_SUBTYPE = {"system": "urn:ihe:event-type-code", "code": "ITI-71",
                 "display": "Get Access Token"}
_SOURCE_ROLE = {"system": _DCM, "code": "110153", "display": "Source Role ID"}
_DESTINATION_ROLE = {"system": _DCM, "code": "110152", "display": "Destination Role ID"}
_APPLICATION = {"system": _DCM, "code": "110150", "display": "Application"}
_OAUTH_AGENT = {"system": f"{_BALP}/UserAgentTypes", "code": "UserOauthAgent",
                "display": "User OAuth Agent participant"}
_AUTHZ_SERVER = {"system": f"{_BALP}/UserAgentTypes", "code": "AuthzOauthService",
                 "display": "OAuth Authorization Server"}
_REQUEST_ID = {"system": f"{_BALP}/BasicAuditEntityType", "code": "XrequestId",
               "display": "X-Request-Id"}
_SYSTEM_OBJECT = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
_PERSON = {"system": _ENTITY_TYPE, "code": "1", "display": "Person"}
_PATIENT_ROLE = {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"}
_DOMAIN_RESOURCE = {"system": _OBJECT_ROLE, "code": "4", "display": "Domain Resource"}
_QUERY_ROLE = {"system": _OBJECT_ROLE, "code": "24", "display": "Query"}
_SECURITY_RESOURCE = {"system": _OBJECT_ROLE, "code": "13", "display": "Security Resource"}
_APPLICATION_SERVER = {"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                       "code": "4", "display": "Application Server"}
#: the organisation a client acts for (BALP "userorg"): an insurer pays, the others provide care
_ORGANIZATION_ROLE = {
    "insurer": {"system": _ROLE_CLASS, "code": "PAYOR", "display": "invoice payor"},
}
_PROVIDER = {"system": _ROLE_CLASS, "code": "PROV", "display": "healthcare provider"}

#: restful-interaction code -> AuditEvent.action
ACTIONS = {
    "read": "R", "vread": "R", "history-instance": "R", "history-type": "R", "history-system": "R",
    "create": "C", "update": "U", "patch": "U", "delete": "D",
    "search-type": "E", "search-system": "E", "search-compartment": "E", "capabilities": "E",
    "batch": "E", "transaction": "E", "operation": "E",
}
#: the HTTP method of a stored version -> the write interaction that made it
WRITE_INTERACTIONS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
#: the AuditEvent search parameters that are indexed (see :func:`index_registry`)
INDEXED_PARAMS = frozenset({"_id", "_lastUpdated", "date", "type", "subtype", "outcome", "agent",
                            "entity", "patient"})


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


@dataclass(frozen=True, slots=True)
class Rest:
    """One FHIR interaction, as the audit records it."""

    interaction: str  # a restful-interaction code ("operation" for $operations)
    recorded: int  # microseconds since the epoch
    status: int  # the HTTP status answered
    caller: Caller
    server: Server
    request_id: str | None
    what: tuple[str, ...] = ()  # the resources concerned: "Type/id" or "Type/id/_history/n"
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


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _client_agents(caller: Caller, server: Server, role: dict[str, str]) -> list[dict[str, Any]]:
    codings: list[dict[str, str]] = [role]
    agent: dict[str, Any] = {"type": {"coding": codings}}
    if caller.client_id is not None:
        codings.append(_OAUTH_AGENT)
        agent["who"] = {"identifier": {"system": f"{server.canonical}/{CLIENT_ID_PATH}",
                                       "value": caller.client_id}, "display": caller.client_id}
    else:
        agent["who"] = {"display": "unidentified client"}
    agent["requestor"] = True
    if caller.token_hash:
        agent["policy"] = [caller.token_hash]
    if caller.address:
        agent["network"] = {"address": caller.address, "type": "2"}  # 2: IP address
    agents = [agent]
    if caller.organization:
        agents.append({"type": {"coding": [_ORGANIZATION_ROLE.get(caller.role or "", _PROVIDER)]},
                       "who": {"reference": caller.organization}, "requestor": False})
    return agents


@lru_cache(maxsize=1024)
def _rest_agents(caller: Caller, server: Server, reads: bool) -> list[dict[str, Any]]:
    """The agents of a REST event (cached per caller: shared by events, never mutated)."""
    client_role, server_role = ((_DESTINATION_ROLE, _SOURCE_ROLE) if reads
                                else (_SOURCE_ROLE, _DESTINATION_ROLE))
    return [*_client_agents(caller, server, client_role), _server_agent(server, server_role)]


def event_id() -> str:
    """A UUID version 7 (RFC 9562): time-ordered, so that the audit trail's rows are appended
    to the store's indexes rather than scattered over them (half the write cost in SQLite)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64 | 0b10 << 62
             | rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def _server_agent(server: Server, role: dict[str, str]) -> dict[str, Any]:
    return {"type": {"coding": [role]}, "who": _server_reference(server), "requestor": False,
            "network": {"address": server.base_url, "type": "5"}}  # 5: URI


def _server_reference(server: Server) -> dict[str, Any]:
    # display only: an identifier would add an index row to every event for a constant value
    return {"display": f"ehc-fhir {server.base_url}"}


@lru_cache(maxsize=64)
def _source(server: Server) -> dict[str, Any]:
    return {"site": server.base_url, "observer": _server_reference(server),
            "type": [_APPLICATION_SERVER]}


def _request_entity(request_id: str) -> dict[str, Any]:
    return {"what": {"identifier": {"value": request_id}}, "type": _REQUEST_ID}


def _subtypes(event: Rest) -> list[dict[str, str]]:
    out = [_coding(_INTERACTION, event.interaction, event.interaction)]
    if event.operation:
        rtype, _, name = event.operation.partition("/$")
        out.append(_coding("urn:ietf:rfc:3986",
                           f"http://hl7.org/fhir/OperationDefinition/{rtype}-{name}",
                           event.operation))
    return out


def rest_events(event: Rest, patients: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The AuditEvents of ``event``: one per Patient in ``patients`` ("Patient/id"), or one."""
    action = event.action or ACTIONS.get(event.interaction, "E")
    reads = action == "R"
    common: dict[str, Any] = {
        "resourceType": AUDIT_TYPE,
        "type": REST_TYPE,
        "subtype": _subtypes(event),
        "action": action,
        "recorded": to_instant(event.recorded),
        "outcome": outcome_code(event.status),
    }
    if event.outcome_desc and event.status >= 400:
        common["outcomeDesc"] = event.outcome_desc
    common["agent"] = _rest_agents(event.caller, event.server, reads)
    common["source"] = _source(event.server)
    entities: list[dict[str, Any]] = []
    if event.request_id:
        entities.append(_request_entity(event.request_id))
    entities += [{"what": {"reference": ref}, "type": _SYSTEM_OBJECT, "role": _DOMAIN_RESOURCE}
                 for ref in event.what]
    if event.query is not None:
        entities.append({"type": _SYSTEM_OBJECT, "role": _QUERY_ROLE,
                         "query": base64.b64encode(event.query).decode("ascii")})
    out = []
    for patient in dict.fromkeys(patients) or (None,):
        doc = {**common, "id": event_id()}
        extra = [] if patient is None else [
            {"what": {"reference": patient}, "type": _PERSON, "role": _PATIENT_ROLE}]
        if entities or extra:
            doc["entity"] = [*entities, *extra]
        out.append(_ordered(doc))
    return out


def token_event(recorded: int, caller: Caller, server: Server, request_id: str | None,
                outcome: str, reason: str, scope: str | None = None) -> dict[str, Any]:
    """A token request (IUA ITI-71 shape): ``outcome`` "success" or the OAuth error returned;
    ``scope`` the scope granted (success) or asked for (failure), never the assertion."""
    ok = outcome == "success"
    client = _client_agents(caller, server, _APPLICATION)
    authz = {"type": {"coding": [_AUTHZ_SERVER]}, "who": _server_reference(server),
             "requestor": False, "network": {"address": server.base_url, "type": "5"}}
    entities: list[dict[str, Any]] = []
    if request_id:
        entities.append(_request_entity(request_id))
    detail = [{"type": "outcome", "valueString": outcome}]
    if scope:
        detail.append({"type": "scope", "valueString": scope})
    request_entity: dict[str, Any] = {"type": _SYSTEM_OBJECT, "role": _QUERY_ROLE,
                                      "name": "token request", "detail": detail}
    entities.append(request_entity)
    if ok and caller.token_hash:
        entities.append({"what": {"identifier": {"system": "urn:ietf:rfc:6920",
                                                 "value": f"sha-256;{caller.token_hash}"}},
                         "type": _SYSTEM_OBJECT, "role": _SECURITY_RESOURCE,
                         "name": "access token (SHA-256)"})
    doc: dict[str, Any] = {
        "resourceType": AUDIT_TYPE, "id": event_id(), "type": TOKEN_TYPE,
        "subtype": [TOKEN_SUBTYPE], "action": "E",
        "recorded": to_instant(recorded), "outcome": "0" if ok else "4",
    }
    if not ok:
        doc["outcomeDesc"] = f"{outcome}: {reason}" if reason and reason != outcome else outcome
    doc["agent"] = [*client, authz]
    doc["source"] = _source(server)
    doc["entity"] = entities
    return doc


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    """``resourceType`` and ``id`` first, as every stored resource."""
    return {"resourceType": doc["resourceType"], "id": doc["id"],
            **{k: v for k, v in doc.items() if k not in ("resourceType", "id")}}


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


# -- stored form and index ------------------------------------------------------------------------
def new_version(doc: dict[str, Any], recorded: int, ts: int) -> NewVersion:
    """``doc`` (recorded at ``recorded``) as version 1 written at ``ts`` (``meta`` stamped), with
    its index entries."""
    meta = {"versionId": "1", "lastUpdated": to_instant(ts)}
    doc = {"resourceType": AUDIT_TYPE, "id": doc["id"], "meta": meta,
           **{k: v for k, v in doc.items() if k not in ("resourceType", "id", "meta")}}
    return NewVersion(AUDIT_TYPE, doc["id"], 1, ts, "POST", jsonio.dumps(doc),
                      index_entries(doc, recorded, ts))


def index_entries(doc: dict[str, Any], recorded: int, ts: int) -> tuple[IndexEntry, ...]:
    """The entries of :data:`INDEXED_PARAMS`, built from the event's known shape rather than by
    evaluating every AuditEvent search expression (several times cheaper; the tests check they
    equal what :func:`fhir_server.search.index.extract` gives for those parameters)."""
    out: list[IndexEntry] = [
        index.TokenEntry("_id", None, doc["id"]),
        index.DateEntry("_lastUpdated", ts, ts + 1),
        index.DateEntry("date", recorded, recorded + 1),
        *_coding_entries("type", _key(doc["type"])),
        index.TokenEntry("outcome", None, doc["outcome"]),
    ]
    for coding in doc.get("subtype", ()):
        out += _coding_entries("subtype", _key(coding))
    for agent in doc.get("agent", ()):
        who = agent.get("who")
        if who is not None:
            out += _reference_entries("agent", who)
    for entity in doc.get("entity", ()):
        what = entity.get("what")
        if what is not None:
            found = _reference_entries("entity", what)
            out += found
            out += (index.ReferenceEntry("patient", e.type, e.id, e.version, e.url)
                    for e in found if isinstance(e, index.ReferenceEntry) and e.type == "Patient")
    return tuple(dict.fromkeys(out))


def _key(coding: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    return coding.get("system"), coding.get("code"), coding.get("display")


@lru_cache(maxsize=1024)
def _coding_entries(param: str, key: tuple[str | None, str | None, str | None]
                    ) -> tuple[IndexEntry, ...]:
    system, code, display = key
    coding = {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v}
    return tuple(index.CONVERTERS["token"](param, coding, "Coding"))


def _reference_entries(param: str, value: dict[str, Any]) -> tuple[IndexEntry, ...]:
    ident = value.get("identifier")
    text = value.get("reference")
    if not isinstance(ident, dict):
        return _literal_entries(param, text) if isinstance(text, str) else ()
    return _identified_entries(param, text if isinstance(text, str) else None,
                               ident.get("system"), ident.get("value"))


@lru_cache(maxsize=8192)
def _literal_entries(param: str, text: str) -> tuple[IndexEntry, ...]:
    return tuple(index.CONVERTERS["reference"](param, {"reference": text}, "Reference"))


@lru_cache(maxsize=1024)
def _identified_entries(param: str, text: str | None, system: str | None,
                        value: str | None) -> tuple[IndexEntry, ...]:
    literal = _literal_entries(param, text) if text is not None else ()
    return (*literal, index.ReferenceEntry(param, identifier_system=system,
                                           identifier_value=value))


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
            if name not in INDEXED_PARAMS:
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
