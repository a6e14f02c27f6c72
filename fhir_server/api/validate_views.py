"""``$validate`` at type and instance level: thin views over ``operations/validate.py``.

Routes are recorded as ``Resource/$validate`` operations (every resource type has them).
``/<rtype>/<rid>/$validate`` has a static part, so it wins over the compartment search
``/<ctype>/<cid>/<rtype>``.
"""

from __future__ import annotations

from flask import Response, request

from fhir_server.api import http
from fhir_server.api.fhir_views import fhir
from fhir_server.operations.validate import PARAMETERS, split_parameters, validate

__all__ = ["fhir"]


def _body(rtype: str) -> tuple[object, dict[str, str]]:
    query = http.params(PARAMETERS)
    resource, params = split_parameters(http.read_resource_body(), rtype)
    return resource, {**query, **params}


@fhir.interaction("/<rtype>/$validate", "POST", "Resource/$validate", "operation")
def validate_type(rtype: str) -> Response:
    resource, params = _body(rtype)
    doc = validate(http.services(), rtype, resource, mode=params.get("mode"),
                   profile=params.get("profile"))
    return http.json_response(doc)


@fhir.interaction("/<rtype>/<rid>/$validate", "POST", "Resource/$validate", "operation")
def validate_instance(rtype: str, rid: str) -> Response:
    if not request.get_data(cache=True).strip():  # no body: the stored resource
        params = http.params(PARAMETERS)
        resource = None
    else:
        resource, params = _body(rtype)
    doc = validate(http.services(), rtype, resource, rid=rid, mode=params.get("mode"),
                   profile=params.get("profile"))
    return http.json_response(doc)


@fhir.interaction("/<rtype>/<rid>/$validate", "GET", "Resource/$validate", "operation")
def validate_stored(rtype: str, rid: str) -> Response:
    params = http.params(PARAMETERS)
    doc = validate(http.services(), rtype, None, rid=rid, mode=params.get("mode"),
                   profile=params.get("profile"))
    return http.json_response(doc)
