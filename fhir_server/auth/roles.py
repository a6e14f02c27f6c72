"""Role presets: the scope ceiling and data policy a client of each kind of partner starts with.

SMART scopes say *what* (types, interactions); the data policy says *whose* (which instances), as
FHIR search criteria. Every access is scope ∩ policy. Policy strings are kept verbatim; the
placeholders ``{organization}`` (the client's ``Organization/ID``), ``{record-owner}`` (the tag
marking records owned by the client's organisation) and ``{canonical}`` (the canonical base) are
expanded by the policy compiler (``fhir_server.auth.policy``). Syntax: see :data:`POLICY_SYNTAX`.
"""

from __future__ import annotations

from dataclasses import dataclass

POLICY_SYNTAX = """\
Data policy criteria (repeatable; replace the role's default policy when given):
  Type?query              Type is restricted to instances matching query (FHIR search syntax);
                          several criteria for one type: an instance matching any of them is allowed
  write:Type?query        the restriction applies to writes (create/update/patch/delete) only
  *?query                 every type is restricted to matching instances ('write:*?query' too)
  compartment:Patient?query
                          every type in the Patient compartment is restricted to the compartments
                          of the Patients matching query
  In a rule, _has conditions through the same link (_has:ServiceRequest:subject:...) are about
  ONE resource: performer=X and status=active means one active ServiceRequest to X.
  Placeholders: {organization} (the client's Organization/ID), {record-owner} (the tag of records
  owned by the client's organisation), {canonical} (the server's canonical base URL)."""


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    ceiling: str  # space-separated SMART v2 system scopes
    policy: tuple[str, ...]


def _scopes(spec: str) -> str:
    return " ".join(f"system/{item}" for item in spec.split())


ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(
            "hospital",
            "reads and writes clinical records; writes limited to its own organisation's records",
            _scopes("Patient.cruds Encounter.cruds ServiceRequest.cruds Immunization.cruds Task.cruds"
                    " Observation.cruds Condition.cruds Procedure.cruds DiagnosticReport.cruds"
                    " DocumentReference.cruds MedicationRequest.cruds AllergyIntolerance.cruds"
                    " CarePlan.cruds EpisodeOfCare.cruds Claim.cruds Organization.rs"
                    " Practitioner.rs PractitionerRole.rs Location.rs"),
            ("write:*?_tag={record-owner}",),
        ),
        Role(
            "insurer",
            "encounters and the patient identifiers needed to reconcile claims; no clinical detail",
            _scopes("Encounter.rs Patient.rs Claim.rs ClaimResponse.rs ExplanationOfBenefit.rs"
                    " Coverage.rs PaymentReconciliation.crs Organization.rs"),
            (),
        ),
        Role(
            "mch",
            "maternal and child health programme: immunisations, MCH encounters, patients",
            _scopes("Patient.rs Immunization.cruds EpisodeOfCare.cruds Encounter.rs Observation.crs"
                    " Organization.rs Practitioner.rs"),
            ("Encounter?type={canonical}/CodeSystem/mch-visit-type|",),
        ),
        Role(
            "referral",
            "referral partner: its referrals and tasks, and the history of patients referred to it",
            _scopes("ServiceRequest.rus Task.cru Patient.rs Encounter.rs Immunization.rs"
                    " Observation.rs Condition.rs Procedure.rs DiagnosticReport.rs"
                    " DocumentReference.rs MedicationRequest.rs AllergyIntolerance.rs"
                    " Organization.rs Practitioner.rs PractitionerRole.rs"),
            ("ServiceRequest?performer={organization}",
             "Task?owner={organization}",
             "compartment:Patient?_has:ServiceRequest:subject:performer={organization}"
             "&_has:ServiceRequest:subject:status=active"),
        ),
    )
}
