"""Shared rules of the resource interactions: type checks, validation, versions, meta."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fhir_server.config import Settings
from fhir_server.errors import (
    Conflict,
    FhirError,
    Gone,
    InvalidResource,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from fhir_server.fhir import jsonio, structure
from fhir_server.fhir.identifiers import DEFAULT_CANONICAL_BASE, identifier_systems
from fhir_server.fhir.instants import now_us, to_instant
from fhir_server.profiles.enforcement import Enforcement, enforcement
from fhir_server.search import index, ir
from fhir_server.store import (
    NewVersion,
    SearchQuery,
    Store,
    StoredResource,
    Tx,
    UniqueViolation,
    VersionConflict,
)
from fhir_server.store.base import Reader

T = TypeVar("T")
_MAX_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class WriteResult:
    stored: StoredResource
    created: bool = False
    changed: bool = True  # False when nothing was written (e.g. deleting a deleted resource)


def check_type(rtype: str) -> None:
    if rtype not in structure.RESOURCE_TYPES:
        raise NotFound(f"Unknown resource type {rtype!r}: this is not an R4 resource type")


def validate(resource: Any, rtype: str, reader: Reader | None = None) -> dict[str, Any]:
    """Structural R4 validation (400 with every issue found), then the profiles the resource
    declares or its type must conform to (422 on errors; see ``profiles/enforcement.py``).
    ``reader``: where invariants using ``resolve()`` find referenced resources (an immunisation
    not dated before the patient's birth); without one those invariants are skipped."""
    issues = structure.validate(resource, rtype)
    if issues:
        raise InvalidResource(issues[0].diagnostics, issues=issues)
    assert isinstance(resource, dict)
    if _profiles is not None:
        _profiles.enforce(resource, None if reader is None else store_resolver(reader))
    return resource


def store_resolver(reader: Reader) -> Callable[[str], dict[str, Any] | None]:
    """``resolve()`` for invariants: a local reference's current resource as the caller may see it
    (None when it is not a local reference, unknown, deleted or not visible)."""
    def resolve(reference: str) -> dict[str, Any] | None:
        parts = reference.split("/_history/")[0].split("/")
        if len(parts) < 2 or parts[-2] not in structure.RESOURCE_TYPES or not parts[-1]:
            return None
        try:
            stored = reader.read(parts[-2], parts[-1])
        except FhirError:  # not visible to the caller: not resolvable, never a failure
            return None
        if stored is None or stored.body is None:
            return None
        found = jsonio.loads_trusted(stored.body)
        return found if isinstance(found, dict) else None
    return resolve


_profiles: Enforcement | None = None


def use_profiles(settings: Settings) -> None:
    """Set the profile rules writes are checked against (from ``FHIR_ENFORCE_PROFILES``)."""
    global _profiles
    chosen = enforcement(settings)
    if chosen is not _profiles:
        chosen.load()
        _profiles = chosen


def new_id() -> str:
    return str(uuid.uuid4())


def current_or_raise(tx: Tx | Store, rtype: str, rid: str) -> StoredResource:
    current = tx.read(rtype, rid)
    if current is None:
        raise NotFound(f"{rtype}/{rid} is not known")
    if current.deleted:
        raise Gone(f"{rtype}/{rid} was deleted", headers={"ETag": etag(current.version)})
    return current


def check_if_match(current: StoredResource | None, if_match: int | None, rtype: str, rid: str) -> None:
    if if_match is None:
        return
    have = current.version if current else 0
    if have != if_match:
        raise PreconditionFailed(
            f"If-Match: {rtype}/{rid} is at version {have}, not {if_match}",
            expression="If-Match",
        )


def etag(version: int) -> str:
    return f'W/"{version}"'


def stamp(resource: dict[str, Any], rid: str, version: int, ts: int) -> dict[str, Any]:
    """The stored JSON: server-owned ``id``, ``meta.versionId`` and ``meta.lastUpdated``.

    ``resourceType`` and ``id`` lead, as people expect to read them; the rest keeps its order.
    """
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = to_instant(ts)
    out: dict[str, Any] = {"resourceType": resource["resourceType"], "id": rid, "meta": meta}
    for key, value in resource.items():
        if key not in out:
            out[key] = value
    return out


_card_systems = identifier_systems(DEFAULT_CANONICAL_BASE)


def use_canonical_base(base: str) -> None:
    """Set the platform's identifier systems (from ``FHIR_CANONICAL_BASE``) for card claims."""
    global _card_systems
    _card_systems = identifier_systems(base)


def card_claims(resource: dict[str, Any]) -> tuple[str, ...]:
    """The health-card identifiers an active Patient holds exclusively, as ``system|value``.

    Superseded cards (``use: old``) stay claimed: they still find their resident. An inactive
    Patient (``active: false``, e.g. a merged duplicate) holds none.
    """
    if resource.get("resourceType") != "Patient" or resource.get("active") is False:
        return ()
    keys = set()
    for identifier in resource.get("identifier") or ():
        system, value = identifier.get("system"), identifier.get("value")
        if system and value and _card_systems.is_patient_card_system(system):
            keys.add(f"{system}|{value}")
    return tuple(sorted(keys))


#: Where a resident may be referred to by card alone (DOMAIN.md: the record is keyed by the card).
CARD_REFERENCES = {"Encounter": "subject", "Immunization": "patient", "ServiceRequest": "subject"}


def resolve_card_references(tx: Tx, resource: dict[str, Any]) -> dict[str, Any]:
    """A reference given only by a card ``identifier`` gets the literal ``Patient/id`` of the active
    Patient holding that card (the identifier is kept); an unknown card is a 422."""
    rtype = resource.get("resourceType", "")
    element = CARD_REFERENCES.get(rtype)
    if element is None:
        return resource
    ref = resource.get(element)
    if not isinstance(ref, dict) or "reference" in ref or not isinstance(ref.get("identifier"), dict):
        return resource
    system, value = ref["identifier"].get("system"), ref["identifier"].get("value")
    where = f"{rtype}.{element}.identifier"
    if not (system and value and _card_systems.is_patient_card_system(system)):
        raise Unprocessable(
            f"{rtype}.{element} refers to a resident by an identifier that is not a health-card"
            f" identifier ({system}); give a literal reference or a card identifier",
            expression=where)
    token = ir.Entry("identifier", "token", ir.And((ir.Cmp("system", "eq", system),
                                                   ir.Cmp("code", "eq", value))))
    active = ir.Not(ir.Entry("active", "token", ir.Cmp("code", "eq", "false")))
    rows = tx.search(SearchQuery(("Patient",), ir.And((token, active)), limit=2)).rows
    if len(rows) != 1:
        raise Unprocessable(
            f"No active Patient holds the card {system}|{value}" if not rows
            else f"More than one active Patient holds the card {system}|{value}",
            expression=where)
    return {**resource, element: {"reference": f"Patient/{rows[0].id}", **ref}}


def put(
    tx: Tx,
    rtype: str,
    rid: str,
    resource: dict[str, Any] | None,
    current: StoredResource | None,
    method: str,
) -> StoredResource:
    """Write the next version after ``current`` (a deletion when ``resource`` is None)."""
    version = current.version + 1 if current else 1
    ts = now_us()
    if current and ts <= current.ts:  # clocks of different processes may disagree slightly
        ts = current.ts + 1
    if resource is None:
        new = NewVersion(rtype, rid, version, ts, method, None)
    else:
        stamped = stamp(resolve_card_references(tx, resource), rid, version, ts)
        new = NewVersion(rtype, rid, version, ts, method, jsonio.dumps(stamped),
                         tuple(index.extract(stamped)), card_claims(stamped))
    written = tx.put(new, current.version if current else 0) or new  # as a guarded tx stamped it
    return StoredResource(rtype, rid, version, ts, method, written.body)


def run_write(store: Store, work: Callable[[Tx], T]) -> T:
    """Run ``work`` in a write transaction, retrying when a concurrent writer won the race.

    ``work`` re-reads what it needs each time, so a retry re-checks ``If-Match`` against the
    version that won (and answers 412 then).
    """
    for attempt in range(_MAX_ATTEMPTS):
        try:
            with store.transaction() as tx:
                return work(tx)
        except VersionConflict as exc:
            if attempt == _MAX_ATTEMPTS - 1:
                raise Conflict(f"Too many concurrent writes: {exc}") from exc
            # back off (with jitter) so the winner can commit before the next try re-reads
            time.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.2)))
        except UniqueViolation as exc:
            system, _, value = exc.key.partition("|")
            raise Conflict(
                f"The identifier {system}|{value} already belongs to {exc.owner}: one resident,"
                " one record. Update that Patient, or create with If-None-Exist to get it back.",
                expression="Patient.identifier") from None
    raise AssertionError("unreachable")
