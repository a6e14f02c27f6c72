"""schemathesis against the Flask app (SECURITY.md, issue 6 "How it is checked"): requests generated
from an OpenAPI description of the main FHIR endpoints, sent without a token, with a broad token
and with a referral partner's token (whose data policy puts chains and ``_has`` into every query).

Nothing may answer 500; without a token nothing but the public documents (``/fhir/metadata``,
``/fhir/.well-known/smart-configuration``) may answer 2xx or 3xx, and the token endpoint never issues a
token to a generated (unsigned) request. Deterministic (``derandomize``) and small (a few dozen
examples per operation and mode), positive and negative (schema-violating) cases alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from fhir_server.app import create_app
from fhir_server.config import DEFAULT_CANONICAL_BASE, Settings
from fhir_server.interactions.load import load
from fhir_server.store.sqlite import SqliteStore
from tests.oauth import ec_key, get_token, register

TYPES = ["Patient", "Encounter", "Immunization", "ServiceRequest", "Observation", "Organization",
         "Task", "AuditEvent"]
IDS = ["p1", "p2", "e1", "e2", "sr1", "i1", "o1", "org-h", "org-ref", "nope"]
PUBLIC = {("GET", "/fhir/metadata"), ("GET", "/fhir/.well-known/smart-configuration")}
EXAMPLES = {"positive": 10, "negative": 6}

# enums (real types and ids with a few wrong ones) so most positive cases reach data; the negative
# cases bring arbitrary strings
_type = {"type": "string", "enum": [*TYPES, "patient", "Bundle", "Unknown", "$everything", "_search"]}
_id = {"type": "string", "enum": [*IDS, "a" * 65, "..", "p1;drop", "%00", "_history"]}
_search_params = [
    {"name": name, "in": "query", "required": False, "schema": schema}
    for name, schema in [
        ("_id", {"type": "string"}),
        ("_count", {"anyOf": [{"type": "integer", "minimum": -5, "maximum": 2000}, {"type": "string"}]}),
        ("_sort", {"anyOf": [{"type": "string", "enum": ["_id", "-_lastUpdated", "birthdate",
                                                            "name,-date", "$where", "body"]},
                             {"type": "string"}]}),
        ("_include", {"anyOf": [{"type": "string", "enum": [
            "Encounter:subject", "ServiceRequest:subject", "*", "Immunization:patient:Patient",
            "Patient:link:iterate"]}, {"type": "string"}]}),
        ("_revinclude", {"anyOf": [{"type": "string", "enum": [
            "Encounter:subject", "Immunization:patient", "*", "AuditEvent:entity"]},
            {"type": "string"}]}),
        ("_elements", {"type": "string"}),
        ("_summary", {"type": "string", "enum": ["true", "false", "count", "text", "data", "x"]}),
        ("_total", {"type": "string", "enum": ["none", "estimate", "accurate", "x"]}),
        ("_has:ServiceRequest:subject:status", {"type": "string"}),
        ("subject:Patient.name", {"type": "string"}),
        ("patient", {"anyOf": [{"type": "string", "enum": ["Patient/p1", "p2", "Patient/nope"]},
                               {"type": "string"}]}),
        ("name", {"type": "string"}),
        ("identifier", {"type": "string"}),
        ("status", {"type": "string"}),
        ("date", {"type": "string"}),
        ("_lastUpdated", {"type": "string"}),
        ("_cursor", {"type": "string"}),
    ]
] + [{"name": "other", "in": "query", "required": False, "style": "form", "explode": True,
      "schema": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 3}}]

_resource = {"anyOf": [
    {"type": "object", "required": ["resourceType", "gender"], "additionalProperties": False,
     "properties": {
         "resourceType": {"type": "string", "enum": ["Patient"]},
         "id": {"type": "string", "enum": ["p1", "p2", "x"]},
         "gender": {"type": "string", "enum": ["male", "female", "other", "unknown"]},
         "birthDate": {"type": "string", "pattern": "^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9])$"},
         "active": {"type": "boolean"},
         "name": {"type": "array", "maxItems": 2, "items": {
             "type": "object", "additionalProperties": False,
             "properties": {"family": {"type": "string", "minLength": 1},
                            "given": {"type": "array", "items": {"type": "string", "minLength": 1}}}}},
         "meta": {"type": "object", "properties": {
             "security": {"type": "array", "items": {"type": "object"}},
             "tag": {"type": "array", "items": {"type": "object"}}}},
     }},
    {"type": "object", "required": ["resourceType"], "properties": {
        "resourceType": {"type": "string", "enum": TYPES}}},
]}
_bundle = {"type": "object", "required": ["resourceType", "type"], "properties": {
    "resourceType": {"type": "string", "enum": ["Bundle"]},
    "type": {"type": "string", "enum": ["batch", "transaction", "searchset"]},
    "entry": {"type": "array", "maxItems": 4, "items": {"type": "object", "properties": {
        "fullUrl": {"type": "string"},
        "resource": _resource,
        "request": {"type": "object", "required": ["method", "url"], "properties": {
            "method": {"type": "string", "enum": ["GET", "POST", "PUT", "DELETE", "PATCH"]},
            "url": {"anyOf": [{"type": "string", "enum": [
                "Patient/p1", "Patient/p2", "Encounter/e2", "Patient",
                "Patient?_has:ServiceRequest:subject:status=active", "Immunization?patient=p1",
                "Patient/p1/$everything", "AuditEvent"]},
                {"type": "string"}]},
            "ifNoneExist": {"type": "string"}, "ifMatch": {"type": "string"}}}}}},
}}
_form_token = {"type": "object", "properties": {
    "grant_type": {"type": "string", "enum": ["client_credentials", "password", ""]},
    "client_assertion_type": {"type": "string", "enum": [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "x"]},
    "client_assertion": {"type": "string"},
    "scope": {"type": "string", "enum": ["system/*.rs", "system/Patient.cruds", "patient/*.read", "x"]},
}}
_form_token_only = {"type": "object", "required": ["token"], "properties": {"token": {"type": "string"},
                                                     "token_type_hint": {"type": "string"}}}


def _op(summary: str, params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
        media: str = "application/fhir+json") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"default": {"description": "any"}}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
    return op


def _path(*names: str) -> list[dict[str, Any]]:
    schemas = {"type": _type, "id": _id, "vid": {"type": "string", "pattern": "^[0-9a-z]{1,4}$"}}
    return [{"name": n, "in": "path", "required": True, "schema": schemas[n]} for n in names]


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "ehc-fhir (fuzzing subset)", "version": "1"},
    "paths": {
        "/fhir/metadata": {"get": _op("capabilities")},
        "/fhir/.well-known/smart-configuration": {"get": _op("SMART discovery")},
        "/fhir/{type}/{id}": {
            "parameters": _path("type", "id"),
            "get": _op("read", [{"name": "_elements", "in": "query", "schema": {"type": "string"}}]),
            "put": _op("update", body=_resource),
            "delete": _op("delete"),
            "patch": _op("patch", body={"type": "array", "maxItems": 3, "items": {
                "type": "object", "properties": {
                    "op": {"type": "string", "enum": ["add", "replace", "remove", "test", "move"]},
                    "path": {"type": "string", "enum": ["/gender", "/id", "/meta/security",
                                                        "/meta/tag/0", "/name/0/family"]},
                    "value": {}}}}, media="application/json-patch+json"),
        },
        "/fhir/Patient/{id}": {"parameters": _path("id"), "get": _op("read a Patient"),
                               "put": _op("update a Patient", body=_resource)},
        "/fhir/{type}/{id}/_history": {"parameters": _path("type", "id"), "get": _op("history")},
        "/fhir/{type}/{id}/_history/{vid}": {"parameters": _path("type", "id", "vid"),
                                             "get": _op("vread")},
        "/fhir/{type}": {"parameters": _path("type"), "get": _op("search", _search_params),
                         "post": _op("create", body=_resource)},
        "/fhir/{type}/_search": {"parameters": _path("type"),
                                 "post": _op("search (POST)", body={
                                     "type": "object", "additionalProperties": {"type": "string"}},
                                     media="application/x-www-form-urlencoded")},
        "/fhir/{type}/_history": {"parameters": _path("type"), "get": _op("type history", [
            {"name": "_count", "in": "query", "schema": {"type": "string"}},
            {"name": "_since", "in": "query", "schema": {"type": "string"}}])},
        "/fhir/_history": {"get": _op("system history", [
            {"name": "_count", "in": "query", "schema": {"type": "string"}}])},
        "/fhir": {"get": _op("system search", [
            {"name": "_type", "in": "query", "schema": {"type": "string"}}, *_search_params[:4]]),
                  "post": _op("batch/transaction", body=_bundle)},
        "/fhir/Patient/{id}/$everything": {"parameters": _path("id"), "get": _op("everything", [
            {"name": "_count", "in": "query", "schema": {"type": "string"}},
            {"name": "_type", "in": "query", "schema": {"type": "string"}}])},
        "/fhir/Patient/{id}/{type}": {"parameters": _path("id", "type"),
                                      "get": _op("compartment search", _search_params[:6])},
        "/auth/token": {"post": _op("token", body=_form_token,
                                    media="application/x-www-form-urlencoded")},
        "/auth/introspect": {"post": _op("introspect", body=_form_token_only,
                                         media="application/x-www-form-urlencoded")},
        "/auth/revoke": {"post": _op("revoke", body=_form_token_only,
                                     media="application/x-www-form-urlencoded")},
    },
}


def _load(svc: Any, body: dict[str, Any]) -> None:
    load(svc, [body])


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app, store = make_app(tmp_path)
    yield app
    store.close()


def make_app(tmp_path: Path) -> tuple[Flask, SqliteStore]:
    settings_ = Settings(store_url=f"sqlite:///{tmp_path / 'fuzz.db'}", access_log=False, auth=True,
                         enforce_profiles="off")
    store = SqliteStore.from_url(settings_.store_url)
    app = create_app(settings_, store)
    svc = app.extensions["fhir"]
    card = f"{DEFAULT_CANONICAL_BASE}/sid/ehc-mindex"
    for body in (
        {"resourceType": "Organization", "id": "org-h", "name": "hospital"},
        {"resourceType": "Organization", "id": "org-ref", "name": "community centre"},
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "2020-01-01",
         "identifier": [{"system": card, "value": "A" * 64}], "name": [{"family": "李"}]},
        {"resourceType": "Patient", "id": "p2", "gender": "male", "birthDate": "1960-05-06"},
        {"resourceType": "Encounter", "id": "e1", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "subject": {"reference": "Patient/p1"}, "serviceProvider": {"reference": "Organization/org-h"}},
        {"resourceType": "Encounter", "id": "e2", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
         "subject": {"reference": "Patient/p2"}},
        {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
         "subject": {"reference": "Patient/p1"}, "performer": [{"reference": "Organization/org-ref"}]},
        {"resourceType": "Immunization", "id": "i1", "status": "completed",
         "patient": {"reference": "Patient/p1"}, "vaccineCode": {"text": "HepB"},
         "occurrenceDateTime": "2020-01-02"},
        {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "height"},
         "subject": {"reference": "Patient/p2"}, "valueQuantity": {"value": 170, "unit": "cm"}},
    ):
        _load(svc, body)
    return app, store


def _tokens(app: Flask) -> dict[str, str | None]:
    store = app.extensions["fhir"].raw_store
    keys = {"wide": ec_key("wide-1"), "referral": ec_key("ref-1")}
    register(store, "wide", "hospital", keys["wide"], organization="Organization/org-h",
             scope="system/*.cruds", policy=[])
    register(store, "referral", "referral", keys["referral"], organization="Organization/org-ref")
    client = app.test_client()
    return {"none": None,
            "wide": get_token(client, keys["wide"], "wide", "system/*.cruds"),
            "referral": get_token(client, keys["referral"], "referral", "system/*.cruds")}


def _run(operation: Any, mode: GenerationMode, check: Callable[[Any], None]) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(max_examples=EXAMPLES[str(mode)], derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=strategy)
    def run(case: Any) -> None:
        check(case)

    try:
        run()
    except Unsatisfiable:
        if mode == GenerationMode.POSITIVE:
            raise  # negative: an operation with nothing to get wrong (GET /fhir/metadata)


def test_no_500_and_no_access_without_a_token(app: Flask) -> None:
    tokens = _tokens(app)
    schema = schemathesis.openapi.from_dict(OPENAPI)
    schema.app = app
    statuses: dict[str, Counter[int]] = {who: Counter() for who in tokens}
    failures: list[str] = []

    for who, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        def check(case: Any, who: str = who, headers: dict[str, str] = headers) -> None:
            response = case.call(headers=headers)
            status = response.status_code
            statuses[who][status] += 1
            where = f"{who}: {case.method} {case.formatted_path} -> {status}"
            if status >= 500:
                failures.append(f"{where}\n  {case.as_curl_command(headers=headers)}\n"
                                f"  {response.text[:300]}")
            public = (case.method, case.path) in PUBLIC
            if not headers and not public and status < 400 and not case.path.startswith("/auth/"):
                failures.append(f"{where} without a token\n  {case.as_curl_command()}")
            if case.path == "/auth/token" and status < 400:
                failures.append(f"{where}: a token for an unsigned request")

        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run(operation, mode, check)

    assert not failures, "\n".join(failures[:20])
    # the run exercised what it claims: without a token, mostly 401; with one, successes too
    assert statuses["none"][401] > sum(statuses["none"].values()) / 2, statuses["none"]
    for who in ("wide", "referral"):
        ok = sum(n for s, n in statuses[who].items() if s < 300)
        assert ok >= 20, (who, statuses[who])
        assert statuses[who][403] + statuses[who][404] > 0, (who, statuses[who])
