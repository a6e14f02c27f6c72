"""SMART scopes: parsing, canonical text, mediation against a ceiling, and what a grant allows."""

from __future__ import annotations

import pytest

from fhir_server.auth.roles import ROLES
from fhir_server.auth.scopes import Scope, allows, format_scopes, mediate, parse_scope, parse_scopes


def S(context: str, rtype: str, letters: str, params: tuple[tuple[str, str], ...] = (),
      v1: bool = False) -> Scope:
    return Scope(context, rtype, frozenset(letters), params, v1)


def granted(requested: str, ceiling: str) -> str:
    return format_scopes(mediate(requested, ceiling))


# -- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("system/Patient.rs", S("system", "Patient", "rs")),
    ("system/Patient.r", S("system", "Patient", "r")),
    ("system/Patient.cruds", S("system", "Patient", "cruds")),
    ("system/Encounter.cud", S("system", "Encounter", "cud")),
    ("system/Task.cru", S("system", "Task", "cru")),
    ("system/ServiceRequest.rsu", None),  # letters out of cruds order
    ("system/ServiceRequest.rus", S("system", "ServiceRequest", "rus")),
    ("system/*.rs", S("system", "*", "rs")),
    ("patient/*.rs", S("patient", "*", "rs")),
    ("user/Observation.s", S("user", "Observation", "s")),
    ("system/Patient.read", S("system", "Patient", "rs", v1=True)),
    ("system/Patient.write", S("system", "Patient", "cud", v1=True)),
    ("system/Patient.*", S("system", "Patient", "cruds", v1=True)),
    ("system/*.*", S("system", "*", "cruds", v1=True)),
    ("system/*.read", S("system", "*", "rs", v1=True)),
    ("system/Observation.rs?category=laboratory",
     S("system", "Observation", "rs", (("category", "laboratory"),))),
    ("system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|"
     "laboratory",
     S("system", "Observation", "rs",
       (("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),))),
    ("system/Observation.rs?status=final&category=vital-signs",
     S("system", "Observation", "rs", (("category", "vital-signs"), ("status", "final")))),
    ("system/Observation.rs?code=a%26b", S("system", "Observation", "rs", (("code", "a&b"),))),
    ("system/Encounter.rs?class=AMB", S("system", "Encounter", "rs", (("class", "AMB"),))),
])
def test_parse_scope(text: str, expected: Scope | None) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize("text", [
    "", "openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access",
    "system/Patient", "system/Patient.", "system/Patient.x", "system/Patient.sr", "system/Patient.rr",
    "system/Patient.rsc", "system/Patient.dc", "system/Patient.crudsx", "system/Patient.READ",
    "system/Patient.Read", "system/Patient.readwrite", "system/patient.rs", "system/Foo.rs",
    "System/Patient.rs", "admin/Patient.rs", "system/Patient.rs?", "system/Patient.rs?category",
    "system/Patient.rs?category=", "system/Patient.rs?=x", "system/Patient.rs?a=b&",
    "system/Patient.rs?a=%ZZ", "system/Patient.rs?a=%0A", "system/Patient.rs?a=%FF",
    "system/*.", "system/**.rs", "/Patient.rs", "system//Patient.rs", "system/Patient.rs ",
    "system/Patient.r s", "system/Patient.rs?" + "a=b&" * 400 + "a=c",
])
def test_not_a_scope_is_never_a_grant(text: str) -> None:
    assert parse_scope(text) is None
    if not any(ch.isspace() for ch in text):  # a space separates two scopes in a scope string
        assert mediate(text, "system/*.cruds") == []


@pytest.mark.parametrize(("text", "canonical"), [
    ("system/Patient.rs", "system/Patient.rs"),
    ("system/Patient.read", "system/Patient.read"),
    ("system/Patient.write", "system/Patient.write"),
    ("system/Patient.*", "system/Patient.*"),
    ("system/Observation.rs?status=final&category=lab", "system/Observation.rs?category=lab&status=final"),
    ("system/Observation.rs?code=a%26b", "system/Observation.rs?code=a%26b"),
    ("system/Observation.rs?code=http://loinc.org|1234-5", "system/Observation.rs?code=http://loinc.org|1234-5"),
    ("system/Observation.rs?code=a%20b", "system/Observation.rs?code=a%20b"),
])
def test_canonical_text_round_trips(text: str, canonical: str) -> None:
    scope = parse_scope(text)
    assert scope is not None
    assert str(scope) == canonical
    assert parse_scope(str(scope)) == scope


def test_a_v1_scope_narrowed_to_letters_without_a_v1_spelling_prints_v2() -> None:
    assert str(S("system", "Patient", "r", v1=True)) == "system/Patient.r"


def test_parse_scopes_keeps_order_drops_junk_and_duplicates() -> None:
    scopes = parse_scopes("openid system/Patient.rs  system/Patient.sr system/Encounter.r system/Patient.rs")
    assert [str(s) for s in scopes] == ["system/Patient.rs", "system/Encounter.r"]


# -- mediation --------------------------------------------------------------------------------
@pytest.mark.parametrize(("requested", "ceiling", "expected"), [
    # exact and narrowed
    ("system/Patient.rs", "system/Patient.rs", "system/Patient.rs"),
    ("system/Patient.cruds", "system/Patient.rs", "system/Patient.rs"),
    ("system/Patient.r", "system/Patient.rs", "system/Patient.r"),
    ("system/Encounter.cruds", "system/Encounter.rs system/Patient.rs", "system/Encounter.rs"),
    # never widened: letters outside the ceiling, types outside the ceiling
    ("system/Patient.d", "system/Patient.rs", ""),
    ("system/Observation.rs", "system/Patient.rs", ""),
    ("system/Patient.c", "system/Patient.rs system/Encounter.cruds", ""),
    # wildcards on either side
    ("system/*.rs", "system/Patient.rs system/Encounter.r",
     "system/Patient.rs system/Encounter.r"),
    ("system/*.cruds", "system/Claim.rs system/PaymentReconciliation.crs",
     "system/Claim.rs system/PaymentReconciliation.crs"),
    ("system/Patient.rs", "system/*.r", "system/Patient.r"),
    ("system/*.rs", "system/*.cruds", "system/*.rs"),
    # v1 in, v1 out when the granted letters have a v1 form; else v2
    ("system/Patient.read", "system/Patient.cruds", "system/Patient.read"),
    ("system/Patient.read", "system/Patient.rs", "system/Patient.read"),
    ("system/Patient.read", "system/Patient.r", "system/Patient.r"),
    ("system/Patient.*", "system/Patient.rs", "system/Patient.read"),
    ("system/Patient.write", "system/Patient.cruds", "system/Patient.write"),
    ("system/Patient.write", "system/Patient.crs", "system/Patient.c"),
    ("system/*.read", "system/Patient.cruds system/Organization.rs",
     "system/Patient.read system/Organization.read"),
    ("system/Patient.*", "system/Patient.cruds", "system/Patient.*"),
    # v2 asked against a ceiling written in v1
    ("system/Patient.rs", "system/Patient.read", "system/Patient.rs"),
    ("system/Patient.cruds", "system/Patient.write", "system/Patient.cud"),
    # patient/ and user/ scopes are never granted to backend clients
    ("patient/*.rs", "system/*.cruds", ""),
    ("user/Patient.rs", "system/*.cruds", ""),
    ("patient/Patient.rs", "patient/Patient.rs", ""),
    ("system/Patient.rs", "patient/Patient.rs", ""),
    ("patient/Patient.rs system/Patient.r", "system/Patient.rs", "system/Patient.r"),
    # non-resource and malformed scopes are dropped, the rest granted
    ("openid fhirUser offline_access system/Patient.rs", "system/Patient.rs", "system/Patient.rs"),
    ("system/Patient.sr system/Patient.s", "system/Patient.rs", "system/Patient.s"),
    ("", "system/Patient.rs", ""),
    ("system/Patient.rs", "", ""),
    # granular: asked criteria kept; ceiling criteria restrict; both apply together
    ("system/Observation.rs?category=laboratory", "system/Observation.rs",
     "system/Observation.rs?category=laboratory"),
    ("system/Observation.rs", "system/Observation.crs?category=laboratory",
     "system/Observation.rs?category=laboratory"),
    ("system/Observation.cruds?status=final", "system/Observation.crs?category=laboratory",
     "system/Observation.crs?category=laboratory&status=final"),
    ("system/*.rs", "system/Observation.rs?category=laboratory",
     "system/Observation.rs?category=laboratory"),
    ("system/Observation.read?category=lab", "system/Observation.cruds",
     "system/Observation.read?category=lab"),
    # scopes covered by another granted scope are not repeated
    ("system/Patient.rs system/Patient.r", "system/Patient.cruds", "system/Patient.rs"),
    ("system/Patient.r system/Patient.rs", "system/Patient.cruds", "system/Patient.rs"),
    ("system/Observation.rs?category=lab system/Observation.rs", "system/Observation.rs",
     "system/Observation.rs"),
    ("system/Patient.rs system/Patient.read", "system/Patient.cruds", "system/Patient.rs"),
    ("system/Patient.r system/Patient.s", "system/Patient.rs", "system/Patient.r system/Patient.s"),
    # audit records only with an explicit AuditEvent scope, on both sides
    ("system/*.rs", "system/AuditEvent.rs system/Patient.rs", "system/Patient.rs"),
    ("system/AuditEvent.rs", "system/*.cruds", ""),
    ("system/AuditEvent.rs", "system/AuditEvent.rs", "system/AuditEvent.rs"),
    ("system/*.*", "system/*.*", "system/*.*"),
])
def test_mediate(requested: str, ceiling: str, expected: str) -> None:
    assert granted(requested, ceiling) == expected


def test_granted_scopes_are_never_wider_than_the_ceiling_for_every_role() -> None:
    every = "system/*.cruds system/*.* patient/*.* user/*.* system/AuditEvent.cruds"
    for role in ROLES.values():
        ceiling = parse_scopes(role.ceiling)
        for scope in mediate(every, role.ceiling):
            assert scope.context == "system"
            assert scope.resource_type != "*"
            assert any(c.resource_type == scope.resource_type
                       and scope.interactions <= c.interactions
                       and set(c.params) <= set(scope.params) for c in ceiling), scope


def test_insurer_cannot_obtain_clinical_or_write_scopes() -> None:
    insurer = ROLES["insurer"].ceiling
    assert granted("system/Observation.rs system/Condition.rs", insurer) == ""
    assert granted("system/Encounter.cruds", insurer) == "system/Encounter.rs"
    assert granted("system/PaymentReconciliation.*", insurer) == "system/PaymentReconciliation.crs"


# -- allows -----------------------------------------------------------------------------------
def test_allows_by_type_and_letter() -> None:
    scopes = mediate("system/Patient.rs system/Encounter.c system/Observation.rs?category=lab",
                     "system/*.cruds")
    assert [str(s) for s in allows(scopes, "Patient", "r")] == ["system/Patient.rs"]
    assert allows(scopes, "Patient", "u") == []
    assert allows(scopes, "Patient", "c") == []  # write does not imply read, nor read write
    assert [str(s) for s in allows(scopes, "Encounter", "c")] == ["system/Encounter.c"]
    assert allows(scopes, "Encounter", "r") == []
    assert allows(scopes, "Condition", "r") == []
    assert [s.params for s in allows(scopes, "Observation", "s")] == [(("category", "lab"),)]


def test_allows_returns_every_alternative() -> None:
    scopes = parse_scopes("system/Observation.rs?category=lab system/Observation.r?category=vital")
    assert len(allows(scopes, "Observation", "r")) == 2
    assert len(allows(scopes, "Observation", "s")) == 1


def test_star_type_never_allows_audit_events() -> None:
    star = parse_scopes("system/*.cruds")
    assert allows(star, "Patient", "d") == star
    for letter in "cruds":
        assert allows(star, "AuditEvent", letter) == []
    explicit = parse_scopes("system/AuditEvent.rs")
    assert allows(explicit, "AuditEvent", "r") == explicit
    assert allows(explicit, "AuditEvent", "u") == []


def test_write_does_not_imply_read_in_v1() -> None:
    write = parse_scopes("system/Patient.write")
    assert allows(write, "Patient", "r") == []
    assert allows(write, "Patient", "s") == []
    assert allows(write, "Patient", "u") == write
