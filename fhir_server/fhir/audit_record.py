"""An AuditEvent as the audit log keeps it: a flat record of what varies from one event to the next,
and its rendering as an IHE BALP AuditEvent (https://profiles.ihe.net/ITI/BALP/).

Pure: no I/O. The audit trail writes one event per read, so the stores keep each event as one
row (SQLite) or document (MongoDB) of :class:`AuditRecord` fields, about 300 bytes, instead of the
2 KB of JSON, and render the JSON only when an AuditEvent is read (:func:`render`). The shapes:

* REST events (``type`` ``audit-event-type#rest``): ``subtype`` the ``restful-interaction`` code
  (plus, for an operation, its OperationDefinition canonical); ``action`` C/R/U/D/E; ``recorded``;
  ``outcome`` 0/4/8/12 and ``outcomeDesc`` for failures; agents: the **client**
  (``who.identifier`` = ``{canonical}/sid/oauth-client|client_id``, ``requestor``, its network
  address, ``policy`` = the SHA-256 of its access token), the **organisation** it acts for
  (``who.reference``; BALP "userorg"), and the **server**; DICOM roles as in BALP: for reads
  (action R) the server is the Source Role and the client the Destination, otherwise the client
  is the Source; ``source``: the server; entities: the request id (BALP ``XrequestId``), the
  resource concerned, the raw query base64-encoded, the Patient (``object-role#1``);
* token requests (IUA ITI-71 "Get Access Token": ``type`` ``DCM#110114``, ``subtype``
  ``urn:ihe:event-type-code#ITI-71``): the client as an Application, the authorisation server, the
  request id, the request (its OAuth outcome and scope), and on success the token's SHA-256.

:func:`parse` is the inverse, for AuditEvents stored as JSON by earlier versions (migrated into
the audit log): an event it cannot reproduce exactly keeps its JSON verbatim in ``body``.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Any, NamedTuple

from fhir_server.errors import InvalidRequest
from fhir_server.fhir import jsonio
from fhir_server.fhir.instants import parse_instant, to_instant

AUDIT_TYPE = "AuditEvent"
CLIENT_ID_PATH = "sid/oauth-client"  # under the canonical base: the identifier system of clients
REST = "rest"  # AuditEvent.type code of REST events
TOKEN = "110114"  # AuditEvent.type code of token requests (DCM User Authentication)
TOKEN_EVENT = "ITI-71"  # their subtype code

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_BALP = "https://profiles.ihe.net/ITI/BALP/CodeSystem"
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
OPERATION_SYSTEM = "urn:ietf:rfc:3986"
OPERATION_BASE = "http://hl7.org/fhir/OperationDefinition/"
TOKEN_HASH_SYSTEM = "urn:ietf:rfc:6920"
TOKEN_HASH_PREFIX = "sha-256;"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"

REST_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": REST,
             "display": "Restful Operation"}
TOKEN_TYPE = {"system": _DCM, "code": TOKEN, "display": "User Authentication"}
TOKEN_SUBTYPE = {"system": "urn:ihe:event-type-code", "code": TOKEN_EVENT,
                 "display": "Get Access Token"}
#: AuditEvent.type code -> its Coding
TYPES = {REST: REST_TYPE, TOKEN: TOKEN_TYPE}
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
ORGANIZATION_ROLES = {"insurer": "PAYOR"}  # client role -> v3-RoleClass (default PROV)
_PAYOR = {"system": _ROLE_CLASS, "code": "PAYOR", "display": "invoice payor"}
_PROVIDER = {"system": _ROLE_CLASS, "code": "PROV", "display": "healthcare provider"}


class AuditRecord(NamedTuple):
    """One AuditEvent (always version 1). The field order is the SQLite column order."""

    id: str
    ts: int  # meta.lastUpdated: when it was written, microseconds since the epoch
    recorded: int  # when the event happened, microseconds
    type: str  # REST or TOKEN
    subtype: str  # the restful-interaction code, or TOKEN_EVENT
    operation: str | None  # "Patient/$everything": a second subtype
    action: str  # C R U D E
    outcome: str  # 0 4 8 12
    outcome_desc: str | None  # why it failed (a token request: "error: reason")
    client_system: str | None  # the identifier system of client ids
    client_id: str | None  # None: no valid token, or a token request naming no client
    org_role: str | None  # the v3-RoleClass of the organisation: PAYOR (insurers) or PROV
    org_type: str | None  # the organisation the client acts for: "Organization"
    org_id: str | None
    address: str | None  # the client's network address
    token_hash: str | None  # SHA-256 (hex) of the access token, never the token
    server: str  # the FHIR base URL as the client addressed it
    request_id: str | None  # X-Request-Id
    what_type: str | None  # the resource concerned: Type/id[/_history/version]
    what_id: str | None
    what_version: str | None
    query: bytes | None  # the raw query (searches, operations)
    patient: str | None  # the id of the Patient concerned
    scope: str | None  # a token request: the scope granted (success) or asked for
    body: bytes | None = None  # the JSON, for an event this record cannot reproduce

    @property
    def reads(self) -> bool:
        return self.action == "R"


def split_reference(text: str | None) -> tuple[str | None, str | None, str | None]:
    """``Type/id[/_history/v]`` -> (type, id, version); a text without ``/`` is an id."""
    if text is None:
        return None, None, None
    head, _, version = text.partition("/_history/")
    rtype, slash, rid = head.partition("/")
    if not slash:
        return None, head, version or None
    return rtype, rid, version or None


def _join(rtype: str | None, rid: str | None, version: str | None = None) -> str:
    text = f"{rtype}/{rid}" if rtype else str(rid)
    return f"{text}/_history/{version}" if version else text


def operation_code(operation: str) -> str:
    """``Patient/$everything`` -> its OperationDefinition canonical."""
    rtype, _, name = operation.partition("/$")
    return f"{OPERATION_BASE}{rtype}-{name}"


# -- rendering ------------------------------------------------------------------------------------
def render_json(record: AuditRecord) -> bytes:
    """The AuditEvent as served."""
    if record.body is not None:
        return record.body
    return jsonio.dumps(render(record))


def render(record: AuditRecord, meta: bool = True) -> dict[str, Any]:
    """The AuditEvent (``meta`` False: without ``meta``, as the audit builds it before storing)."""
    if record.body is not None:
        return dict(jsonio.loads_trusted(record.body))
    doc: dict[str, Any] = {"resourceType": AUDIT_TYPE, "id": record.id}
    if meta:
        doc["meta"] = {"versionId": "1", "lastUpdated": to_instant(record.ts)}
    token = record.type == TOKEN
    doc["type"] = TYPES.get(record.type, REST_TYPE)
    if token:
        doc["subtype"] = [TOKEN_SUBTYPE]
    else:
        doc["subtype"] = [{"system": INTERACTION_SYSTEM, "code": record.subtype,
                           "display": record.subtype}]
        if record.operation:
            doc["subtype"].append({"system": OPERATION_SYSTEM,
                                   "code": operation_code(record.operation),
                                   "display": record.operation})
    doc["action"] = record.action
    doc["recorded"] = to_instant(record.recorded)
    doc["outcome"] = record.outcome
    if record.outcome_desc is not None:
        doc["outcomeDesc"] = record.outcome_desc
    if token:
        doc["agent"] = [*_client_agents(record, _APPLICATION),
                        {"type": {"coding": [_AUTHZ_SERVER]}, "who": _server_reference(record),
                         "requestor": False, "network": {"address": record.server, "type": "5"}}]
    else:
        client_role, server_role = ((_DESTINATION_ROLE, _SOURCE_ROLE) if record.reads
                                    else (_SOURCE_ROLE, _DESTINATION_ROLE))
        doc["agent"] = [*_client_agents(record, client_role), _server_agent(record, server_role)]
    doc["source"] = {"site": record.server, "observer": _server_reference(record),
                     "type": [_APPLICATION_SERVER]}
    entities = _token_entities(record) if token else _rest_entities(record)
    if entities:
        doc["entity"] = entities
    return doc


def _client_agents(record: AuditRecord, role: dict[str, str]) -> list[dict[str, Any]]:
    codings: list[dict[str, str]] = [role]
    agent: dict[str, Any] = {"type": {"coding": codings}}
    if record.client_id is not None:
        codings.append(_OAUTH_AGENT)
        agent["who"] = {"identifier": {"system": record.client_system,
                                       "value": record.client_id}, "display": record.client_id}
    else:
        agent["who"] = {"display": "unidentified client"}
    agent["requestor"] = True
    if record.token_hash:
        agent["policy"] = [record.token_hash]
    if record.address:
        agent["network"] = {"address": record.address, "type": "2"}  # 2: IP address
    agents = [agent]
    if record.org_id is not None:
        agents.append({"type": {"coding": [_PAYOR if record.org_role == "PAYOR" else _PROVIDER]},
                       "who": {"reference": _join(record.org_type, record.org_id)},
                       "requestor": False})
    return agents


def _server_agent(record: AuditRecord, role: dict[str, str]) -> dict[str, Any]:
    return {"type": {"coding": [role]}, "who": _server_reference(record), "requestor": False,
            "network": {"address": record.server, "type": "5"}}  # 5: URI


def _server_reference(record: AuditRecord) -> dict[str, Any]:
    return {"display": f"ehc-fhir {record.server}"}


def _request_entity(request_id: str) -> dict[str, Any]:
    return {"what": {"identifier": {"value": request_id}}, "type": _REQUEST_ID}


def _rest_entities(record: AuditRecord) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if record.request_id:
        entities.append(_request_entity(record.request_id))
    if record.what_id is not None:
        what = _join(record.what_type, record.what_id, record.what_version)
        entities.append({"what": {"reference": what}, "type": _SYSTEM_OBJECT,
                         "role": _DOMAIN_RESOURCE})
    if record.query is not None:
        entities.append({"type": _SYSTEM_OBJECT, "role": _QUERY_ROLE,
                         "query": base64.b64encode(record.query).decode("ascii")})
    if record.patient is not None:
        entities.append({"what": {"reference": f"Patient/{record.patient}"}, "type": _PERSON,
                         "role": _PATIENT_ROLE})
    return entities


def oauth_outcome(record: AuditRecord) -> str:
    """A token request's OAuth outcome: ``success`` or the error code returned."""
    if record.outcome == "0" or not record.outcome_desc:
        return "success"
    return record.outcome_desc.partition(": ")[0]


def _token_entities(record: AuditRecord) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if record.request_id:
        entities.append(_request_entity(record.request_id))
    detail = [{"type": "outcome", "valueString": oauth_outcome(record)}]
    if record.scope:
        detail.append({"type": "scope", "valueString": record.scope})
    entities.append({"type": _SYSTEM_OBJECT, "role": _QUERY_ROLE, "name": "token request",
                     "detail": detail})
    if record.outcome == "0" and record.token_hash:
        entities.append({"what": {"identifier": {"system": TOKEN_HASH_SYSTEM,
                                                 "value": TOKEN_HASH_PREFIX + record.token_hash}},
                         "type": _SYSTEM_OBJECT, "role": _SECURITY_RESOURCE,
                         "name": "access token (SHA-256)"})
    return entities


# -- parsing --------------------------------------------------------------------------------------
def parse(body: bytes) -> AuditRecord:
    """The record of a stored AuditEvent's JSON; ``body`` kept verbatim unless :func:`render_json`
    gives it back exactly (as JSON: key order aside)."""
    doc = jsonio.loads_trusted(body)
    if not isinstance(doc, dict) or doc.get("resourceType") != AUDIT_TYPE \
            or not isinstance(doc.get("id"), str):
        raise InvalidRequest("not an AuditEvent with an id")
    try:
        record = _parse(doc)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, binascii.Error,
            InvalidRequest):
        record = _fallback(doc, body)
    if render(record) != doc:
        record = record._replace(body=bytes(body))
    return record


def _instant(value: Any) -> int:
    return parse_instant(str(value), "AuditEvent")


def _parse(doc: dict[str, Any]) -> AuditRecord:
    fields: dict[str, Any] = {name: None for name in AuditRecord._fields}
    fields["id"] = doc["id"]
    meta = doc.get("meta") or {}
    fields["recorded"] = _instant(doc["recorded"])
    fields["ts"] = _instant(meta["lastUpdated"]) if "lastUpdated" in meta else fields["recorded"]
    fields["type"] = doc["type"]["code"]
    subtypes = doc.get("subtype") or []
    fields["subtype"] = subtypes[0]["code"]
    if len(subtypes) > 1:
        fields["operation"] = subtypes[1].get("display")
    fields["action"] = doc.get("action", "E")
    fields["outcome"] = doc.get("outcome", "0")
    fields["outcome_desc"] = doc.get("outcomeDesc")
    fields["server"] = (doc.get("source") or {}).get("site", "")
    for agent in doc.get("agent") or []:
        who = agent.get("who") or {}
        if agent.get("requestor"):
            ident = who.get("identifier") or {}
            fields["client_system"], fields["client_id"] = ident.get("system"), ident.get("value")
            fields["token_hash"] = (agent.get("policy") or [None])[0]
            fields["address"] = (agent.get("network") or {}).get("address")
        elif "reference" in who:
            fields["org_type"], fields["org_id"], _ = split_reference(who["reference"])
            fields["org_role"] = agent["type"]["coding"][0]["code"]
    for entity in doc.get("entity") or []:
        what = entity.get("what") or {}
        role = (entity.get("role") or {}).get("code")
        if (entity.get("type") or {}).get("code") == "XrequestId":
            fields["request_id"] = what["identifier"]["value"]
        elif role == "1":
            fields["patient"] = split_reference(what["reference"])[1]
        elif role == "4":
            (fields["what_type"], fields["what_id"],
             fields["what_version"]) = split_reference(what["reference"])
        elif role == "24" and "query" in entity:
            fields["query"] = base64.b64decode(entity["query"], validate=True)
        elif role == "24":
            for detail in entity.get("detail") or []:
                if detail.get("type") == "scope":
                    fields["scope"] = detail.get("valueString")
    return AuditRecord(**fields)


def _fallback(doc: dict[str, Any], body: bytes) -> AuditRecord:
    """The search keys that can be read of an AuditEvent of another shape (kept verbatim)."""
    def code(value: Any) -> str:
        return str(value.get("code", "")) if isinstance(value, dict) else ""

    subtypes: list[Any] = doc["subtype"] if isinstance(doc.get("subtype"), list) else []
    meta: dict[str, Any] = doc["meta"] if isinstance(doc.get("meta"), dict) else {}
    try:
        recorded = _instant(doc.get("recorded"))
    except InvalidRequest:
        recorded = 0
    try:
        ts = _instant(meta.get("lastUpdated"))
    except InvalidRequest:
        ts = recorded
    fields: dict[str, Any] = {name: None for name in AuditRecord._fields}
    fields.update(id=doc["id"], ts=ts, recorded=recorded, type=code(doc.get("type")),
                  subtype=code(subtypes[0]) if subtypes else "", action=str(doc.get("action", "")),
                  outcome=str(doc.get("outcome", "")), server="", body=bytes(body))
    return AuditRecord(**fields)


@lru_cache(maxsize=256)
def client_system(canonical: str) -> str:
    return f"{canonical}/{CLIENT_ID_PATH}"
