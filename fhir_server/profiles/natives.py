"""Native versions of the commonest R4 base invariants (same semantics, ~1 µs instead of ~75 µs).

Keyed by constraint key *and* the exact R4 expression: a definition that differs is evaluated by
fhirpathpy instead. ``tests/unit/test_profiles_invariants.py`` compares each with fhirpathpy (where
fhirpathpy can run it: it lacks ``hasValue()``, which ``per-1`` needs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_server.profiles.catalog import EvalContext, Native

UCUM = "http://unitsofmeasure.org"


def _has(obj: Any, key: str) -> bool:
    return isinstance(obj, dict) and obj.get(key) is not None


def _contained(resource: Any) -> list[dict[str, Any]]:
    items = resource.get("contained") if isinstance(resource, dict) else None
    return [c for c in items or () if isinstance(c, dict)]


def _dom2(resource: Any, _ctx: EvalContext) -> bool | None:
    return not any("contained" in c for c in _contained(resource))


def _dom4(resource: Any, _ctx: EvalContext) -> bool | None:
    for c in _contained(resource):
        meta = c.get("meta")
        if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
            return False
    return True


def _dom5(resource: Any, _ctx: EvalContext) -> bool | None:
    for c in _contained(resource):
        meta = c.get("meta")
        if isinstance(meta, dict) and "security" in meta:
            return False
    return True


def _strings(node: Any, out: set[str]) -> None:
    """Every string value under ``node`` that starts with '#' (references and canonicals)."""
    if isinstance(node, dict):
        for value in node.values():
            _strings(value, out)
    elif isinstance(node, list):
        for value in node:
            _strings(value, out)
    elif isinstance(node, str) and node.startswith("#"):
        out.add(node)


def _dom3(resource: Any, _ctx: EvalContext) -> bool | None:
    """Every contained resource is referenced from the resource, or references the container."""
    contained = _contained(resource)
    if not contained:
        return True
    outside = {k: v for k, v in resource.items() if k != "contained"}
    refs: set[str] = set()
    _strings(outside, refs)
    for c in contained:
        _strings(c, refs)
    for c in contained:
        if f"#{c.get('id')}" in refs:
            continue
        inner: set[str] = set()
        _strings(c, inner)
        if "#" not in inner:
            return False
    return True


def _moment(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _per1(period: Any, _ctx: EvalContext) -> bool | None:
    """``start <= end`` with FHIRPath precision rules (empty, i.e. None, when undecidable)."""
    start, end = period.get("start"), period.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    if "T" in start and "T" in end:
        a, b = _moment(start), _moment(end)
        if a is None or b is None:
            return None
        return a <= b
    if "T" not in start and "T" not in end:
        if len(start) == len(end):
            return start <= end
        n = min(len(start), len(end))  # different precisions: compare what both have
        return None if start[:n] == end[:n] else start[:n] < end[:n]
    n = min(len(start), len(end), 10)
    return None if start[:n] == end[:n] else start[:n] < end[:n]


def _qty3(q: Any, _ctx: EvalContext) -> bool | None:
    return not _has(q, "code") or _has(q, "system")


def _sqty1(q: Any, _ctx: EvalContext) -> bool | None:
    return not _has(q, "comparator")


def _drt1(q: Any, _ctx: EvalContext) -> bool | None:
    if not _has(q, "code"):
        return True
    return q.get("system") == UCUM and _has(q, "value")


def _cpt2(cp: Any, _ctx: EvalContext) -> bool | None:
    return not _has(cp, "value") or _has(cp, "system")


def _att1(att: Any, _ctx: EvalContext) -> bool | None:
    return not _has(att, "data") or _has(att, "contentType")


def _ref1(ref: Any, ctx: EvalContext) -> bool | None:
    reference = ref.get("reference")
    if not isinstance(reference, str) or not reference.startswith("#"):
        return True
    return reference[1:] in {c.get("id") for c in _contained(ctx.root_resource)}


def _pat1(contact: Any, _ctx: EvalContext) -> bool | None:
    return any(k in contact for k in ("name", "telecom", "address", "organization"))


def _imm1(education: Any, _ctx: EvalContext) -> bool | None:
    return "documentType" in education or "reference" in education


def _prr1(sr: Any, _ctx: EvalContext) -> bool | None:
    return "orderDetail" not in sr or "code" in sr


def _inv1_task(task: Any, _ctx: EvalContext) -> bool | None:
    return _per1({"start": task.get("authoredOn"), "end": task.get("lastModified")}, _ctx)


def _obs6(obs: Any, _ctx: EvalContext) -> bool | None:
    return "dataAbsentReason" not in obs or not any(k.startswith("value") for k in obs)


_DOM3 = ("contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants()"
         ".as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or "
         "descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#')"
         ".exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched',"
         " id).empty()")

#: (key, R4 expression) -> native
BASE_NATIVES: dict[tuple[str, str], Native] = {
    ("dom-2", "contained.contained.empty()"): _dom2,
    ("dom-3", _DOM3): _dom3,
    ("dom-4", "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()"): _dom4,
    ("dom-5", "contained.meta.security.empty()"): _dom5,
    ("per-1", "start.hasValue().not() or end.hasValue().not() or (start <= end)"): _per1,
    ("qty-3", "code.empty() or system.exists()"): _qty3,
    ("sqty-1", "comparator.empty()"): _sqty1,
    ("drt-1", "code.exists() implies ((system = %ucum) and value.exists())"): _drt1,
    ("cpt-2", "value.empty() or system.exists()"): _cpt2,
    ("att-1", "data.empty() or contentType.exists()"): _att1,
    ("ref-1", "reference.startsWith('#').not() or (reference.substring(1).trace('url') in "
              "%rootResource.contained.id.trace('ids'))"): _ref1,
    ("pat-1", "name.exists() or telecom.exists() or address.exists() or organization.exists()"):
        _pat1,
    ("imm-1", "documentType.exists() or reference.exists()"): _imm1,
    ("prr-1", "orderDetail.empty() or code.exists()"): _prr1,
    ("inv-1", "lastModified.exists().not() or authoredOn.exists().not() or lastModified >= "
              "authoredOn"): _inv1_task,
    ("obs-6", "dataAbsentReason.empty() or value.empty()"): _obs6,
}
