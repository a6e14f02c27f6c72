"""The CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html), built from the
interactions actually routed, so nothing is listed that is not served."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_server import FHIR_VERSION, __version__
from fhir_server.auth.discovery import capability_security
from fhir_server.config import Settings
from fhir_server.fhir import structure
from fhir_server.profiles.enforcement import enforcement
from fhir_server.profiles.model import CORE_SD
from fhir_server.search.compartments import compartments
from fhir_server.search.params import registry

TYPE_LEVEL_ORDER = ("read", "vread", "update", "patch", "delete", "history-instance",
                    "history-type", "create", "search-type")


def capability_statement(
    routed: Iterable[tuple[str, str]], settings: Settings, base: str, date: str
) -> dict[str, Any]:
    """``routed``: (interaction code, level) pairs of the routes that exist; an operation is
    recorded as (``Type/$name``, ``"operation"``)."""
    pairs = set(routed)
    operations: dict[str, list[str]] = {}
    for code, level in sorted(pairs):
        if level == "operation" and "/$" in code:
            op_type, name = code.split("/$", 1)
            operations.setdefault(op_type, []).append(name)
    type_codes = [c for c in TYPE_LEVEL_ORDER if (c, "type") in pairs or (c, "instance") in pairs]
    conditional = {c for c, level in pairs if level == "type"}
    system_codes = sorted(c for c, level in pairs if level == "system")
    searchable = "search-type" in type_codes
    params = registry()
    rules = enforcement(settings)  # local profiles: supportedProfile, enforced ones: profile
    registry_ = rules.registry
    resources = []
    for rtype in sorted(structure.RESOURCE_TYPES):
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": c} for c in type_codes],
            "versioning": "versioned-update",
            "readHistory": "vread" in type_codes,
            "updateCreate": settings.allow_update_create,
            "conditionalCreate": searchable and "create" in conditional,
            "conditionalRead": "not-supported",
            "conditionalUpdate": searchable and "update" in conditional,
            "conditionalDelete": ("not-supported" if not (searchable and "delete" in conditional)
                                  else "multiple" if settings.conditional_delete_multiple
                                  else "single"),
        }
        if searchable:
            entry["searchInclude"] = ["*"]
            entry["searchRevInclude"] = ["*"]
            entry["searchParam"] = [
                {"name": code, "definition": p.url, "type": p.type}
                for code, p in sorted(params.for_type(rtype).items())
                if p.type != "special" and p.expression]
        profiles = registry_.for_type(rtype)
        enforced = rules.by_type.get(rtype, ()) if rules.names else ()
        entry["profile"] = enforced[0] if len(enforced) == 1 else CORE_SD + rtype
        if profiles:
            entry["supportedProfile"] = sorted(p.url for p in profiles)
        if rtype in operations or "Resource" in operations:  # Resource/$x: every type has it
            entry["operation"] = [
                {"name": name, "definition": f"http://hl7.org/fhir/OperationDefinition/{t}-{name}"}
                for t in (rtype, "Resource") for name in operations.get(t, ())]
        resources.append(entry)
    rest: dict[str, Any] = {"mode": "server", "resource": resources}
    if system_codes:
        rest["interaction"] = [{"code": c} for c in system_codes]
    if settings.auth:  # SMART Backend Services (fhir_server/auth)
        rest["security"] = capability_security(base)
    if any(level == "compartment" for _, level in pairs):
        rest["compartment"] = [f"http://hl7.org/fhir/CompartmentDefinition/{c.lower()}"
                               for c in sorted(compartments())]
    return {
        "resourceType": "CapabilityStatement",
        "id": "ehc-fhir",
        "url": f"{base}/metadata",
        "name": "EhcFhirServer",
        "title": "ehc-fhir: FHIR R4 server of the electronic health card platform",
        "status": "active",
        "experimental": False,
        "date": date,
        "publisher": "ehc-fhir",
        "kind": "instance",
        "software": {"name": "ehc-fhir", "version": __version__},
        "implementation": {"description": "ehc-fhir FHIR R4 server", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }
