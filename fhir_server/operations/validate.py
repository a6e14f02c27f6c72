"""``$validate`` (https://hl7.org/fhir/R4/resource-operation-validate.html).

The answer is an OperationOutcome, status 200 even when the resource is invalid: structure
errors, then (for a structurally valid resource) the R4 base invariants and required bindings and
the profiles: the one nominated by ``profile``, else those the resource declares plus the ones the
server enforces for its type (what a create or update would be checked against). References are
resolved against the store, so ``resolve()`` invariants (an Immunization not before the Patient's
birth) are evaluated here.

``mode``: ``create`` (an ``id`` is ignored by a create: information), ``update`` (the resource
needs the ``id`` of the instance, which must exist), ``delete`` (the instance must exist; this
server has no rule against deleting it).
"""

from __future__ import annotations

from typing import Any

from fhir_server.errors import Gone, InvalidRequest, Issue, NotFound, outcome_json
from fhir_server.fhir import jsonio, structure
from fhir_server.interactions.context import Services
from fhir_server.interactions.resources import check_type, store_resolver
from fhir_server.profiles.enforcement import enforcement

PARAMETERS = frozenset({"mode", "profile"})
MODES = ("create", "update", "delete")


def split_parameters(body: Any, rtype: str) -> tuple[Any, dict[str, str]]:
    """The resource and the ``mode``/``profile`` of a ``Parameters`` body (a plain resource is
    returned as is)."""
    if not (isinstance(body, dict) and body.get("resourceType") == "Parameters"
            and rtype != "Parameters"):
        return body, {}
    resource: Any = None
    params: dict[str, str] = {}
    for i, p in enumerate(body.get("parameter") or ()):
        name = p.get("name") if isinstance(p, dict) else None
        if name == "resource":
            resource = p.get("resource")
        elif name in PARAMETERS:
            value = next((v for k, v in p.items() if k.startswith("value")), None)
            if not isinstance(value, str):
                raise InvalidRequest(f"Parameter {name!r} needs a string value",
                                     expression=f"Parameters.parameter[{i}]")
            params[str(name)] = value
        else:
            raise InvalidRequest(f"Unknown $validate parameter {name!r}",
                                 expression=f"Parameters.parameter[{i}]")
    if resource is None:
        raise InvalidRequest("The Parameters have no 'resource' to validate",
                             expression="Parameters.parameter")
    return resource, params


def validate(svc: Services, rtype: str, resource: Any, *, rid: str | None = None,
             mode: str | None = None, profile: str | None = None) -> dict[str, Any]:
    """The OperationOutcome of validating ``resource`` (None at instance level: the stored one)."""
    check_type(rtype)
    if mode is not None and mode not in MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(MODES)}, not {mode!r}",
                             expression="mode")
    rules = enforcement(svc.settings)
    url = None
    if profile is not None:
        url = rules.registry.resolve_name(profile)
        if url is None:
            raise InvalidRequest(f"The profile {profile} is not known to this server, which "
                                 "cannot validate against it", expression="profile")
    current = None
    if rid is not None:
        current = svc.store.read(rtype, rid)
        if current is None:
            raise NotFound(f"{rtype}/{rid} is not known")
        if current.deleted and (resource is None or mode == "delete"):
            raise Gone(f"{rtype}/{rid} was deleted")
    if mode == "delete":
        if rid is None:
            raise InvalidRequest("mode=delete validates deleting an instance: use "
                                 f"{rtype}/[id]/$validate", expression="mode")
        return outcome_json([Issue("information", "informational",
                                   f"{rtype}/{rid} may be deleted")])
    if resource is None:
        assert current is not None and current.body is not None
        resource = jsonio.loads_trusted(current.body)
    issues: list[Issue] = list(structure.validate(resource, rtype))
    if isinstance(resource, dict):
        issues += _mode_issues(rtype, resource, rid, mode)
    if any(i.severity in ("error", "fatal") for i in issues) or not isinstance(resource, dict):
        return outcome_json(issues)
    resolver = store_resolver(svc.store)
    profiles = [url] if url is not None else rules.profiles_for(resource)
    issues += rules.validator.validate(resource, profiles, resolver=resolver)
    return outcome_json(issues)


def _mode_issues(rtype: str, resource: dict[str, Any], rid: str | None,
                 mode: str | None) -> list[Issue]:
    given = resource.get("id")
    if mode == "update":
        if given is None:
            return [Issue("error", "required", "An update needs the resource id", (f"{rtype}.id",))]
        if rid is not None and given != rid:
            return [Issue("error", "invalid", f"The resource id {given!r} does not match the id "
                          f"{rid!r} in the URL", (f"{rtype}.id",))]
    if mode == "create" and given is not None:
        return [Issue("information", "informational", "A create ignores the resource id: the "
                      "server assigns one", (f"{rtype}.id",))]
    return []
