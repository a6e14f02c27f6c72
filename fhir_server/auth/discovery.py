"""Where the OAuth endpoints are, and how the server describes them: the SMART configuration
(``/fhir/.well-known/smart-configuration``) and the CapabilityStatement's ``rest.security``.

The endpoints live beside the FHIR base: ``{root}/auth/token``, ``/auth/introspect`` and
``/auth/revoke``, where ``root`` is the FHIR base without its final ``/fhir``.
"""

from __future__ import annotations

from typing import Any

from fhir_server.auth.clients import ALGORITHMS
from fhir_server.auth.roles import ROLES

TOKEN_PATH = "/auth/token"
INTROSPECT_PATH = "/auth/introspect"
REVOKE_PATH = "/auth/revoke"
AUTH_METHOD = "private_key_jwt"
GRANT_TYPE = "client_credentials"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def server_root(fhir_base: str) -> str:
    """The URL the OAuth paths hang from, given the FHIR base (``https://h/fhir`` -> ``https://h``)."""
    base = fhir_base.rstrip("/")
    return base[: -len("/fhir")] if base.endswith("/fhir") else base


def endpoints(fhir_base: str) -> dict[str, str]:
    root = server_root(fhir_base)
    return {"token": root + TOKEN_PATH, "introspect": root + INTROSPECT_PATH,
            "revoke": root + REVOKE_PATH}


def scopes_supported() -> list[str]:
    """Every scope some role preset can be granted (v2 form; the v1 forms are accepted too)."""
    seen: dict[str, None] = {}
    for role in ROLES.values():
        for scope in role.ceiling.split():
            seen.setdefault(scope, None)
    return sorted(seen)


def smart_configuration(fhir_base: str) -> dict[str, Any]:
    """https://build.fhir.org/ig/HL7/smart-app-launch/conformance.html (Backend Services only)."""
    urls = endpoints(fhir_base)
    return {
        "token_endpoint": urls["token"],
        "grant_types_supported": [GRANT_TYPE],
        "token_endpoint_auth_methods_supported": [AUTH_METHOD],
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "scopes_supported": scopes_supported(),
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        "introspection_endpoint": urls["introspect"],
        "revocation_endpoint": urls["revoke"],
    }


def capability_security(fhir_base: str) -> dict[str, Any]:
    """``CapabilityStatement.rest.security`` for a server with OAuth on."""
    urls = endpoints(fhir_base)
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [
            {"url": "token", "valueUri": urls["token"]},
            {"url": "introspect", "valueUri": urls["introspect"]},
            {"url": "revoke", "valueUri": urls["revoke"]},
        ]}],
        "service": [{
            "coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR"}],
            "text": "OAuth 2.0, SMART Backend Services",
        }],
        "description": ("SMART Backend Services: client_credentials grant with private_key_jwt"
                        " client assertions (RS384 or ES384) at the token endpoint; bearer tokens"
                        " of at most 300 s; SMART v1 and v2 system scopes. Discovery:"
                        f" {fhir_base.rstrip('/')}/.well-known/smart-configuration"),
    }
