"""Extract the R4 core CodeSystems and ValueSets the terminology service needs.

Reads ../shared/fhir-r4/valuesets.json (the official R4 bundle, 9.9 MB) and writes
fhir_server/terminology/data/r4_terminology.json: per CodeSystem its canonical metadata, content,
property declarations and the concept tree with code and display only (plus the properties that
some ValueSet filters on, and status/inactive/notSelectable/parent/child); per ValueSet its
metadata and ``compose`` (or its ``expansion`` when it has no compose). Definitions, narrative,
designations and extensions are dropped.

Usage: python scripts/extract_terminology.py [path/to/valuesets.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "fhir-r4" / "valuesets.json"
TARGET = ROOT / "fhir_server" / "terminology" / "data" / "r4_terminology.json"

META = ("resourceType", "id", "url", "version", "name", "title", "status")
ALWAYS_PROPERTIES = {"status", "inactive", "notSelectable", "parent", "child", "deprecated"}


def _filtered_properties(value_sets: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for vs in value_sets:
        compose = vs.get("compose", {})
        for part in (*compose.get("include", ()), *compose.get("exclude", ())):
            out.update(f["property"] for f in part.get("filter", ()) if "property" in f)
    return out


def _concepts(raw: list[dict[str, Any]], keep: set[str]) -> list[dict[str, Any]]:
    out = []
    for c in raw:
        item: dict[str, Any] = {"code": c["code"]}
        if c.get("display"):
            item["display"] = c["display"]
        props = [p for p in c.get("property", ()) if p.get("code") in keep]
        if props:
            item["property"] = props
        if c.get("concept"):
            item["concept"] = _concepts(c["concept"], keep)
        out.append(item)
    return out


def _code_system(cs: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    out = {k: cs[k] for k in META if k in cs}
    for key in ("content", "caseSensitive", "valueSet", "hierarchyMeaning"):
        if key in cs:
            out[key] = cs[key]
    props = [{"code": p["code"], "type": p.get("type", "string")} for p in cs.get("property", ())
             if p.get("code") in keep]
    if props:
        out["property"] = props
    if cs.get("concept"):
        out["concept"] = _concepts(cs["concept"], keep)
    return out


def _strip_compose(compose: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "inactive" in compose:
        out["inactive"] = compose["inactive"]
    for key in ("include", "exclude"):
        parts = []
        for part in compose.get(key, ()):
            p = {k: part[k] for k in ("system", "version", "filter", "valueSet") if k in part}
            if part.get("concept"):
                p["concept"] = [{k: c[k] for k in ("code", "display") if k in c} for c in part["concept"]]
            parts.append(p)
        if parts:
            out[key] = parts
    return out


def _value_set(vs: dict[str, Any]) -> dict[str, Any]:
    out = {k: vs[k] for k in META if k in vs}
    if "compose" in vs:
        out["compose"] = _strip_compose(vs["compose"])
    elif "expansion" in vs:
        out["expansion"] = {"contains": vs["expansion"].get("contains", [])}
    return out


THO = "http://terminology.hl7.org/CodeSystem/"


def _tho_cs(name: str, title: str, rows: list[tuple[str, str]], vs: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "CodeSystem", "id": name, "url": THO + name,
                           "name": name.replace("-", ""), "title": title, "status": "active",
                           "content": "complete"}
    if vs:
        out["valueSet"] = vs
    out["concept"] = [{"code": c, "display": d} for c, d in rows]
    return out


#: HL7 terminology (THO) tables that valuesets.json does not carry (they are in the separate v2/v3
#: packages) but that the platform's data and bindings use. Written out by hand from HL7 v3/v2
#: (R4-era content); small and stable.
SUPPLEMENT: list[dict[str, Any]] = [
    _tho_cs("v3-MaritalStatus", "MaritalStatus", [
        ("A", "Annulled"), ("D", "Divorced"), ("I", "Interlocutory"), ("L", "Legally Separated"),
        ("M", "Married"), ("P", "Polygamous"), ("S", "Never Married"), ("T", "Domestic partner"),
        ("U", "unmarried"), ("W", "Widowed")]),
    _tho_cs("v2-0131", "Contact Role", [
        ("BP", "Billing contact person"), ("C", "Emergency Contact"), ("CP", "Contact person"),
        ("E", "Employer"), ("EP", "Emergency contact person"), ("F", "Federal Agency"),
        ("I", "Insurance Company"), ("N", "Next-of-Kin"), ("O", "Other"),
        ("PR", "Person preparing referral"), ("S", "State Agency"), ("U", "Unknown")]),
    _tho_cs("v3-NullFlavor", "NullFlavor", [
        ("NI", "NoInformation"), ("INV", "invalid"), ("DER", "derived"), ("OTH", "other"),
        ("NINF", "negative infinity"), ("PINF", "positive infinity"), ("UNC", "un-encoded"),
        ("MSK", "masked"), ("NA", "not applicable"), ("UNK", "unknown"),
        ("ASKU", "asked but unknown"), ("NAV", "temporarily unavailable"), ("NASK", "not asked"),
        ("NAVU", "Not available"), ("QS", "quantity sufficient"), ("TRC", "trace"),
        ("NP", "not present")]),
    _tho_cs("v3-Confidentiality", "Confidentiality", [
        ("U", "unrestricted"), ("L", "low"), ("M", "moderate"), ("N", "normal"), ("R", "restricted"),
        ("V", "very restricted")],
        "http://terminology.hl7.org/ValueSet/v3-ConfidentialityClassification"),
    {"resourceType": "ValueSet", "id": "v3-ActEncounterCode",
     "url": "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode", "name": "ActEncounterCode",
     "status": "active", "compose": {"include": [{"system": THO + "v3-ActCode", "concept": [
         {"code": c, "display": d} for c, d in (
             ("AMB", "ambulatory"), ("EMER", "emergency"), ("FLD", "field"), ("HH", "home health"),
             ("IMP", "inpatient encounter"), ("ACUTE", "inpatient acute"),
             ("NONAC", "inpatient non-acute"), ("OBSENC", "observation encounter"),
             ("PRENC", "pre-admission"), ("SS", "short stay"), ("VR", "virtual"))]}]}},
]


def extract(source: Path) -> dict[str, Any]:
    bundle = json.loads(source.read_text(encoding="utf-8"))
    resources = [e["resource"] for e in bundle["entry"]]
    value_sets = [r for r in resources if r["resourceType"] == "ValueSet"]
    keep = ALWAYS_PROPERTIES | _filtered_properties(value_sets)
    out: list[dict[str, Any]] = []
    for r in resources:
        if r["resourceType"] == "CodeSystem" and r.get("content") != "supplement":
            out.append(_code_system(r, keep))
        elif r["resourceType"] == "ValueSet":
            out.append(_value_set(r))
    known = {r["url"] for r in out}
    out.extend(r for r in SUPPLEMENT if r["url"] not in known)
    return {"source": "hl7.fhir.r4.core 4.0.1 valuesets.json", "resources": out}


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    data = extract(source)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n",
                      encoding="utf-8")
    print(f"{TARGET.relative_to(ROOT)}: {len(data['resources'])} resources,"
          f" {TARGET.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
