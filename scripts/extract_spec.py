"""Extract compact tables from the official FHIR R4 (4.0.1) definitions.

Run from the repository root::

    .venv/bin/python scripts/extract_spec.py [--shared ../shared]

Reads ``<shared>/fhir-r4/profiles-types.json`` and ``profiles-resources.json`` (Bundles of
StructureDefinitions, using their ``snapshot``) and writes
``fhir_server/fhir/data/r4_structure.json``.
One function per extract; ``main()`` runs them all. Output keys are sorted so regeneration is
deterministic.

``r4_structure.json`` layout::

    {
      "fhirVersion": "4.0.1",
      "resourceTypes": ["Account", ...],            # concrete (kind resource, abstract false)
      "primitives": {"date": {"json": "string", "regex": "..."}, ...},
      "types": {                                    # complex datatypes, resources, backbones
        "Patient": {"kind": "resource", "elements": {
            "name": {"min": 0, "max": "*", "summary": true,
                     "types": {"name": ["HumanName", false]}},  # JSON name -> [type, primitive?]
            "deceased[x]": {"min": 0, "max": "1", "summary": true,
                            "types": {"deceasedBoolean": ["boolean", true],
                                      "deceasedDateTime": ["dateTime", true]}},
            "contact": {"min": 0, "max": "*", "summary": false,
                        "types": {"contact": ["Patient.contact", false]}},
            ...}},
        "Patient.contact": {"kind": "backbone", "elements": {...}},
        "Questionnaire.item": {...},                # Questionnaire.item.item has
                                                    #   "contentReference": "#Questionnaire.item"
        ...
      }
    }

Element types named ``http://hl7.org/fhirpath/System.*`` (``Element.id``, ``Extension.url``) are
written as their ``structuredefinition-fhir-type`` (``string``, ``uri``) with ``"attribute": true``:
in JSON they are plain values without a ``_name`` companion. ``Resource.id`` is typed ``id``.

``r4_search_parameters.json`` (from ``<shared>/fhir-r4/search-parameters.json``) layout::

    {
      "fhirVersion": "4.0.1",
      "parameters": [                               # sorted by url
        {"url": "http://hl7.org/fhir/SearchParameter/clinical-code", "code": "code",
         "type": "token", "base": ["AllergyIntolerance", ...],
         "expressions": {"AllergyIntolerance": "AllergyIntolerance.code | AllergyIntolerance...",
                         "Condition": "Condition.code", ...},     # narrowed per base, or null
         "expression": "<the official expression>", "xpathUsage": "normal", "target": [...],
         "multipleOr": true, "multipleAnd": true, "modifier": [...], "comparator": [...],
         "component": [{"definition": "<url>", "expression": "code"}, ...]},   # composites
        ...]
    }

Optional keys are written only when present. A shared expression such as
``AllergyIntolerance.code | Condition.code`` keeps, per base, the union branches starting with that
type (``X.path``, ``(X.path as T)``) or with no resource type at all.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "fhir_server" / "fhir" / "data"

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
JSON_KIND_ROOTS = {"boolean": "boolean", "decimal": "number", "integer": "integer"}


def load_definitions(shared: Path) -> dict[str, dict[str, Any]]:
    """All base StructureDefinitions (specialisations and the abstract roots), by id."""
    out: dict[str, dict[str, Any]] = {}
    for name in ("profiles-types.json", "profiles-resources.json"):
        bundle = json.loads((shared / "fhir-r4" / name).read_text(encoding="utf-8"))
        for entry in bundle["entry"]:
            res = entry["resource"]
            if res.get("resourceType") != "StructureDefinition":
                continue
            if res.get("derivation") == "constraint" or res.get("kind") == "logical":
                continue
            out[res["id"]] = res
    return out


def _ext(type_ref: dict[str, Any], url: str) -> Any:
    for ext in type_ref.get("extension", []):
        if ext.get("url") == url:
            return ext.get("valueUrl", ext.get("valueString"))
    return None


def extract_resource_types(defs: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(
        sd["id"] for sd in defs.values() if sd["kind"] == "resource" and not sd.get("abstract")
    )


def extract_primitives(defs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for sd in defs.values():
        if sd["kind"] != "primitive-type":
            continue
        name = sd["id"]
        # JSON kind: follow the base chain to its root primitive (positiveInt -> integer).
        root = name
        while True:
            base = defs[root].get("baseDefinition", "").rsplit("/", 1)[-1]
            if base in ("", "Element") or base not in defs:
                break
            root = base
        entry: dict[str, Any] = {"json": JSON_KIND_ROOTS.get(root, "string")}
        for el in sd["snapshot"]["element"]:
            if el["path"] == f"{name}.value":
                for t in el.get("type", []):
                    regex = _ext(t, REGEX_EXT)
                    if regex:
                        entry["regex"] = regex
        out[name] = entry
    return out


def _type_codes(el: dict[str, Any], path: str, resource: bool) -> tuple[list[str], bool]:
    """The element's type codes and whether it is an attribute-like System.* value."""
    codes: list[str] = []
    attribute = False
    for t in el.get("type", []):
        code = t["code"]
        if code.startswith("http://hl7.org/fhirpath/System."):
            attribute = True
            code = _ext(t, FHIR_TYPE_EXT) or "string"
        codes.append(code)
    if resource and attribute and path.count(".") == 1 and path.endswith(".id"):
        # Resource.id (and every resource's copy of it) is an ``id``; it is not an XML attribute
        # but the R4 JSON schema gives it no ``_id`` companion either.
        codes = ["id"]
    return codes, attribute


def extract_types(
    defs: dict[str, dict[str, Any]], primitives: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    types: dict[str, dict[str, Any]] = {}
    for sd in defs.values():
        if sd["kind"] == "primitive-type":
            continue
        root = sd["id"]
        kind = "resource" if sd["kind"] == "resource" else "datatype"
        types[root] = {"kind": kind, "elements": {}}
        if sd.get("abstract"):
            types[root]["abstract"] = True
        elements = sd["snapshot"]["element"]
        backbones = {
            el["path"]
            for el in elements
            if any(t["code"] in ("BackboneElement", "Element") for t in el.get("type", []))
            and "." in el["path"]
        }
        for path in backbones:
            types[path] = {"kind": "backbone", "elements": {}}
        for el in elements:
            path = el["path"]
            if "." not in path:
                continue
            parent, name = path.rsplit(".", 1)
            if parent not in types:
                raise ValueError(f"no parent for {path}")
            entry: dict[str, Any] = {
                "min": el["min"],
                "max": el["max"],
                "summary": bool(el.get("isSummary")),
            }
            if el.get("isModifier"):
                entry["modifier"] = True
            if "contentReference" in el:
                ref = el["contentReference"]
                entry["contentReference"] = ref
                entry["types"] = {name: [ref.lstrip("#"), False]}
                types[parent]["elements"][name] = entry
                continue
            codes, attribute = _type_codes(el, path, kind == "resource")
            if attribute:
                entry["attribute"] = True
            if path in backbones:
                codes = [path]
            if name.endswith("[x]"):
                stem = name[:-3]
                entry["types"] = {
                    stem + code[0].upper() + code[1:]: [code, code in primitives] for code in codes
                }
            else:
                (code,) = codes
                entry["types"] = {name: [code, code in primitives]}
            types[parent]["elements"][name] = entry
    return types


def extract_structure(shared: Path) -> dict[str, Any]:
    defs = load_definitions(shared)
    primitives = extract_primitives(defs)
    return {
        "fhirVersion": "4.0.1",
        "resourceTypes": extract_resource_types(defs),
        "primitives": primitives,
        "types": extract_types(defs, primitives),
    }


def split_union(expression: str) -> list[str]:
    """Top-level ``|`` branches of a FHIRPath expression (not inside parentheses or quotes)."""
    branches: list[str] = []
    depth = 0
    quote = False
    start = 0
    for i, ch in enumerate(expression):
        if quote:
            if ch == "\\":
                continue
            if ch == "'":
                quote = False
        elif ch == "'":
            quote = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            branches.append(expression[start:i].strip())
            start = i + 1
    branches.append(expression[start:].strip())
    return branches


_LEADING_NAME = re.compile(r"\(*\s*([A-Za-z][A-Za-z0-9_]*)")


def narrow_expression(expression: str, base: str, resource_types: set[str]) -> str | None:
    """The union branches of ``expression`` that apply to resources of type ``base``."""
    kept = []
    for branch in split_union(expression):
        match = _LEADING_NAME.match(branch)
        lead = match.group(1) if match else ""
        if lead == base or lead not in resource_types:
            kept.append(branch)
    return " | ".join(kept) if kept else None


def extract_search_parameters(shared: Path) -> dict[str, Any]:
    bundle = json.loads((shared / "fhir-r4" / "search-parameters.json").read_text(encoding="utf-8"))
    defs = load_definitions(shared)
    resource_types = {sd["id"] for sd in defs.values() if sd["kind"] == "resource"}
    params: list[dict[str, Any]] = []
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res.get("resourceType") != "SearchParameter":
            continue
        out: dict[str, Any] = {
            "url": res["url"],
            "code": res["code"],
            "type": res["type"],
            "base": sorted(res["base"]),
            "xpathUsage": res.get("xpathUsage", "normal"),
        }
        expression = res.get("expression")
        out["expression"] = expression
        out["expressions"] = {
            base: narrow_expression(expression, base, resource_types) if expression else None
            for base in res["base"]
        }
        if res.get("target"):
            out["target"] = sorted(res["target"])
        for key in ("modifier", "comparator"):
            if res.get(key):
                out[key] = list(res[key])
        for key in ("multipleOr", "multipleAnd"):
            if key in res:
                out[key] = res[key]
        if res.get("component"):
            out["component"] = [
                {"definition": c["definition"], "expression": c["expression"]}
                for c in res["component"]
            ]
        params.append(out)
    params.sort(key=lambda p: p["url"])
    return {"fhirVersion": "4.0.1", "parameters": params}


def extract_compartments(shared: Path) -> dict[str, Any]:
    """``r4_compartments.json``: from every ``<shared>/fhir-r4/compartmentdefinition-*.json``::

        {"fhirVersion": "4.0.1",
         "compartments": {"Patient": {"url": "http://hl7.org/fhir/CompartmentDefinition/patient",
                                      "resources": {"Account": ["subject"], ...}}}}

    Only resource types with at least one parameter are listed (the others cannot be in the
    compartment); the compartment's own type (Patient) is in it by ``_id`` as well.
    """
    compartments: dict[str, Any] = {}
    for path in sorted((shared / "fhir-r4").glob("compartmentdefinition-*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        compartments[res["code"]] = {
            "url": res["url"],
            "resources": {r["code"]: list(r["param"]) for r in res.get("resource", ())
                          if r.get("param")},
        }
    return {"fhirVersion": "4.0.1", "compartments": compartments}


def write_json(name: str, data: Any) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / name
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    args = parser.parse_args(argv)
    path = write_json("r4_structure.json", extract_structure(args.shared))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    path = write_json("r4_search_parameters.json", extract_search_parameters(args.shared))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    path = write_json("r4_compartments.json", extract_compartments(args.shared))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
