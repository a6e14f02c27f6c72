"""Terminology operations over HTTP: ``$expand``, ``$validate-code`` (ValueSet and CodeSystem),
``$lookup``, ``$subsumes``, ``$translate``, each at type and instance level, by GET (query
parameters) and POST (a Parameters resource; query parameters may be added).

Routes are recorded as ``Type/$name`` with the level ``operation`` so the CapabilityStatement lists
them. ``/ValueSet/$expand`` has more static parts than ``/<rtype>/<rid>``, and
``/ValueSet/<rid>/$expand`` more than the compartment search ``/<ctype>/<cid>/<rtype>``, so Werkzeug
routes them here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Response, request

from fhir_server.api import http
from fhir_server.api.fhir_views import fhir
from fhir_server.errors import InvalidRequest
from fhir_server.fhir import jsonio
from fhir_server.interactions import crud
from fhir_server.interactions.context import Services
from fhir_server.operations import terminology as ops
from fhir_server.operations.terminology_input import Param, from_parameters, from_query

__all__ = ["fhir"]

Operation = Callable[[Services, dict[str, Any], "dict[str, Any] | None"], dict[str, Any]]


def _input(name: str, spec: Mapping[str, Param]) -> dict[str, Any]:
    lenient = http.lenient()
    values = from_query(name, http.query_pairs(), spec, lenient)
    if request.method == "POST":
        body = from_parameters(name, http.read_resource_body(), spec, lenient)
        for key in body.keys() & values.keys():
            if not spec[key].repeats:
                raise InvalidRequest(f"{key} is given both in the URL and in the body",
                                     expression=key)
            body[key] = values[key] + body[key]
        values = {**values, **body}
    return values


def _register(rtype: str, name: str, spec: Mapping[str, Param], run: Operation) -> None:
    code = f"{rtype}/${name}"
    slug = f"{rtype.lower()}_{name.replace('-', '_')}"

    def type_level() -> Response:
        return http.json_response(run(http.services(), _input(code, spec), None))

    def instance_level(rid: str) -> Response:
        svc = http.services()
        values = _input(code, spec)
        stored = crud.read(svc, rtype, rid)
        assert stored.body is not None
        resource = jsonio.loads_trusted(stored.body)
        return http.json_response(run(svc, values, resource))

    for method in ("GET", "POST"):
        for view, rule in ((type_level, f"/{rtype}/${name}"), (instance_level, f"/{rtype}/<rid>/${name}")):
            level = "type" if view is type_level else "instance"
            bound = _named(view, f"{slug}_{level}_{method.lower()}")
            fhir.interaction(rule, method, code, "operation")(bound)


def _named(view: Callable[..., Response], name: str) -> Callable[..., Response]:
    def bound(*args: Any, **kwargs: Any) -> Response:
        return view(*args, **kwargs)

    bound.__name__ = bound.__qualname__ = name
    return bound


_register("ValueSet", "expand", ops.EXPAND, ops.expand)
_register("ValueSet", "validate-code", ops.VS_VALIDATE, ops.validate_value_set_code)
_register("CodeSystem", "lookup", ops.LOOKUP, ops.lookup)
_register("CodeSystem", "validate-code", ops.CS_VALIDATE, ops.validate_code_system_code)
_register("CodeSystem", "subsumes", ops.SUBSUMES, ops.subsumes)
_register("ConceptMap", "translate", ops.TRANSLATE, ops.translate)
