"""Shared by the profile tests: a validator, valid seed resources to break, and the assertion that
a broken resource has exactly the expected issues."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from fhir_server.fhir import structure
from fhir_server.fhir.identifiers import DEFAULT_CANONICAL_BASE, identifier_systems
from fhir_server.profiles import Validator, registry
from fhir_server.terminology.service import terminology
from seed import SEED_REFERENCE_DATE, generate

BASE = DEFAULT_CANONICAL_BASE
SD = f"{BASE}/StructureDefinition/"
CS = f"{BASE}/CodeSystem/"
SYS = identifier_systems(BASE)
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # the day after the seed's "today"
PROFILE = {"Patient": "rhip-patient", "Encounter": "rhip-encounter",
           "Immunization": "rhip-immunization", "ServiceRequest": "rhip-referral",
           "Task": "rhip-referral-task"}

Resource = dict[str, Any]
Expected = tuple[str, str, str]  # (severity, key, expression)


@cache
def validator() -> Validator:
    return Validator(registry(), terminology())


@cache
def population() -> tuple[Resource, ...]:
    return tuple(generate(80, seed=1, today=SEED_REFERENCE_DATE))


def resolver(reference: str) -> Resource | None:
    return {f"{r['resourceType']}/{r['id']}": r for r in population()}.get(reference)


def pick(rtype: str, test: Callable[[Resource], bool] = lambda r: True) -> Resource:
    """A deep copy of the first seed resource of ``rtype`` passing ``test``."""
    found = next(r for r in population() if r["resourceType"] == rtype and test(r))
    return copy.deepcopy(found)


def systems(resource: Resource) -> list[str]:
    return [i.get("system", "") for i in resource.get("identifier", ())]


def index_of(resource: Resource, system: str) -> int:
    return systems(resource).index(system)


def check(resource: Resource, profile: str | None = None, **kw: Any) -> list[Expected]:
    """(severity, key, expression) of every issue: the key is the invariant key, or the element
    id for cardinality, binding, type and fixed/pattern issues."""
    assert not structure.validate(resource), structure.validate(resource)
    name = profile or PROFILE[resource["resourceType"]]
    kw.setdefault("resolver", resolver)
    kw.setdefault("now", NOW)
    issues = validator().validate(resource, [SD + name], **kw)
    return [(i.severity, i.diagnostics.split(": ", 1)[0], i.expression[0] if i.expression else "")
            for i in issues]


@dataclass(frozen=True)
class Case:
    """Break one rule of a valid seed resource: ``expected`` are all the issues it must have."""

    id: str
    rtype: str
    break_it: Callable[[Resource], Any]
    expected: tuple[Expected, ...]
    test: Callable[[Resource], bool] = lambda r: True

    def run(self) -> None:
        resource = pick(self.rtype, self.test)
        before = check(resource)
        assert before == [], f"the seed resource must be valid to start with: {before}"
        self.break_it(resource)
        got, want = sorted(check(resource)), sorted(self.expected)
        assert got == want, f"got {got}, expected {want}"


def err(key: str, expression: str) -> Expected:
    return ("error", key, expression)


def warn(key: str, expression: str) -> Expected:
    return ("warning", key, expression)
