"""HTTP details shared by the views: media types, Prefer, ETags, parameters, responses."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from flask import Response, current_app, g, request

from fhir_server.errors import (
    InvalidRequest,
    Issue,
    NotAcceptable,
    UnsupportedMediaType,
    outcome_json,
)
from fhir_server.fhir import jsonio, summary
from fhir_server.fhir.instants import parse_http_date, to_http_date
from fhir_server.interactions.context import Services
from fhir_server.store import StoredResource

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
_JSON_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
_FORMATS = {
    "json": FHIR_JSON,
    "application/json": FHIR_JSON,
    "application/fhir+json": FHIR_JSON,
    "application/json+fhir": FHIR_JSON,
}
_XML_FORMATS = frozenset({"xml", "text/xml", "application/xml", "application/fhir+xml",
                          "application/xml+fhir", "ttl", "application/fhir+turtle",
                          "text/turtle", "html", "text/html"})
GLOBAL_PARAMETERS = frozenset({"_format", "_pretty"})
_PLAIN_ACCEPT = frozenset({"*/*", FHIR_JSON, "application/json", "application/json+fhir"})
_ETAG = re.compile(r'\s*(?:W/)?"(\d{1,18})"\s*')
CONTENT_TYPE = f"{FHIR_JSON}; charset=utf-8"


def services() -> Services:
    """The request's services: guarded by the caller's access when auth is on (api/access.py)."""
    svc: Services | None = g.get("fhir_services")
    return svc if svc is not None else current_app.extensions["fhir"]


def base_url() -> str:
    configured = services().settings.base_url
    return configured or request.host_url.rstrip("/") + "/fhir"


# -- content negotiation --------------------------------------------------------------------------
def negotiate() -> None:
    """Check ``_format`` and ``Accept``: only the JSON forms are served (else 406)."""
    fmt = request.args.get("_format") if request.query_string else None
    if fmt is not None:
        key = fmt.split(";")[0].strip().lower()
        if key in _FORMATS:
            return
        if key in _XML_FORMATS:
            raise NotAcceptable(f"_format={fmt} is not supported: this server speaks FHIR JSON only",
                                expression="_format")
        raise NotAcceptable(f"Unknown _format {fmt!r}; use json", expression="_format")
    header = request.headers.get("Accept")
    if not header or header in _PLAIN_ACCEPT:
        return
    accept = request.accept_mimetypes
    if not accept or accept.best_match([FHIR_JSON, "application/json", "application/json+fhir"]):
        return
    raise NotAcceptable(
        f"Cannot produce any of Accept: {request.headers.get('Accept')}; "
        f"this server produces {FHIR_JSON}"
    )


def pretty() -> bool:
    if not request.query_string:
        return False
    value = request.args.get("_pretty")
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise InvalidRequest(f"_pretty must be true or false, got {value!r}", expression="_pretty")


def read_body(*media_types: str) -> Any:
    """The parsed JSON body, after checking its media type, size and nesting depth."""
    mimetype = request.mimetype
    allowed = set(media_types)
    if mimetype not in allowed:
        shown = request.content_type or "none"
        if mimetype and ("xml" in mimetype or "turtle" in mimetype):
            detail = "this server accepts FHIR JSON only"
        else:
            detail = "expected " + " or ".join(sorted(allowed))
        raise UnsupportedMediaType(f"Content-Type {shown} is not supported: {detail}")
    charset = request.mimetype_params.get("charset")
    if charset and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"charset {charset} is not supported: FHIR JSON is UTF-8")
    data = request.get_data(cache=False)
    if not data.strip():
        raise InvalidRequest("The request body is empty")
    return jsonio.loads(data, max_depth=services().settings.max_json_depth)


def read_resource_body() -> Any:
    return read_body(*_JSON_TYPES)


# -- parameters ----------------------------------------------------------------------------------
def prefer() -> dict[str, str]:
    out: dict[str, str] = {}
    for header in request.headers.getlist("Prefer"):
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key:
                out[key.strip().lower()] = value.strip().strip('"')
    return out


def lenient() -> bool:
    return prefer().get("handling") == "lenient"


def params(allowed: Iterable[str]) -> dict[str, str]:
    """Single-valued query parameters; unknown ones are a 400 unless ``handling=lenient``."""
    out: dict[str, str] = {}
    if not request.query_string:
        return out
    known = GLOBAL_PARAMETERS.union(allowed)
    strict = not lenient()
    for key in request.args:
        values = request.args.getlist(key)
        if key not in known:
            if strict:
                raise InvalidRequest(
                    f"Unknown or unsupported parameter {key!r} for this interaction",
                    expression=key,
                )
            continue
        if len(values) > 1:
            raise InvalidRequest(f"Parameter {key!r} may be given only once", expression=key)
        out[key] = values[0]
    return out


def query_pairs() -> list[tuple[str, str]]:
    """Every query parameter, repeated ones included, without the global ``_format``/``_pretty``."""
    return [(k, v) for k, v in request.args.items(multi=True) if k not in GLOBAL_PARAMETERS]


def form_pairs() -> list[tuple[str, str]]:
    """``POST .../_search``: the form body's parameters after the URL's."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType(
            "POST _search takes an application/x-www-form-urlencoded body")
    return query_pairs() + [(k, v) for k, v in request.form.items(multi=True)
                            if k not in GLOBAL_PARAMETERS]


def header_criteria(name: str) -> list[tuple[str, str]] | None:
    """Search criteria given in a header (``If-None-Exist: identifier=a|b``)."""
    value = request.headers.get(name)
    if value is None:
        return None
    query = value.split("?", 1)[1] if "?" in value else value
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        raise InvalidRequest(f"{name} must hold search criteria such as identifier=system|value",
                             expression=name)
    return pairs


def if_match() -> int | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    match = _ETAG.fullmatch(header)
    if not match:
        raise InvalidRequest(f'If-Match must be a version ETag such as W/"3", got {header!r}',
                             expression="If-Match")
    return int(match.group(1))


def not_modified(stored: StoredResource) -> bool:
    """``If-None-Match`` (preferred) or ``If-Modified-Since`` says the client copy is current."""
    header = request.headers.get("If-None-Match")
    if header is not None:
        if header.strip() == "*":
            return True
        return any(
            (m := _ETAG.fullmatch(part)) is not None and int(m.group(1)) == stored.version
            for part in header.split(",")
        )
    since = request.headers.get("If-Modified-Since")
    if since is not None:
        when = parse_http_date(since)
        return when is not None and stored.ts // 1_000_000 <= when // 1_000_000
    return False


# -- responses -----------------------------------------------------------------------------------
def json_response(doc: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    response = Response(jsonio.dumps(doc, pretty=pretty()), status=status,
                        content_type=CONTENT_TYPE)
    if headers:
        response.headers.update(headers)
    return response


def outcome_response(issues: Iterable[Issue], status: int,
                     headers: Mapping[str, str] | None = None) -> Response:
    return json_response(outcome_json(issues), status, headers)


def version_headers(stored: StoredResource) -> dict[str, str]:
    return {"ETag": f'W/"{stored.version}"', "Last-Modified": to_http_date(stored.ts)}


def resource_response(
    stored: StoredResource, status: int = 200, headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> Response:
    """The stored JSON as is (the fast path), or re-rendered for ``_summary``/``_elements``/pretty."""
    assert stored.body is not None
    body = stored.body
    query = query or {}
    if "_summary" in query or "_elements" in query or pretty():
        doc = jsonio.loads_trusted(body)
        if "_summary" in query:
            if "_elements" in query:
                raise InvalidRequest("_summary and _elements cannot be combined",
                                     expression="_elements")
            doc = summary.summarize(doc, query["_summary"])
        elif "_elements" in query:
            names = [n.strip() for n in query["_elements"].split(",") if n.strip()]
            doc = summary.select_elements(doc, names)
        body = jsonio.dumps(doc, pretty=pretty())
    response = Response(body, status=status, content_type=CONTENT_TYPE)
    response.headers.update(version_headers(stored))
    if headers:
        response.headers.update(headers)
    return response
