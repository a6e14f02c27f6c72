"""Write the platform's conformance resources under ``profiles/`` and the base-rule extract.

    .venv/bin/python scripts/build_profiles.py [--shared ../shared] [--base URL]

* ``profiles/StructureDefinition-*.json``: the profiles and extensions of
  ``scripts/profile_resources.py`` and ``scripts/profile_sources.py`` (differentials), each with a
  snapshot generated here from the official R4 definitions (profiles-resources.json and
  profiles-types.json): the base snapshot, with each differential element merged into the element
  of the same id, new slices inserted after their sliced element, and the elements of a data type
  (or of the sliced backbone element) expanded when the differential constrains inside it.
* ``profiles/NamingSystem-*.json``: one per identifier system of DOMAIN.md §A.
* ``fhir_server/profiles/data/r4_rules.json``: the R4 base invariants and required bindings by
  element path, for the validator's base-spec checks.

Deterministic: same inputs, byte-identical files.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from naming_systems import naming_systems  # noqa: E402
from profile_resources import resources  # noqa: E402
from profile_sources import CORE, Builder, Source, extensions  # noqa: E402

from fhir_server.fhir.identifiers import DEFAULT_CANONICAL_BASE  # noqa: E402

VERSION = "0.1.0"
DATE = "2026-11-23"
PUBLISHER = "ehc-fhir 区域全民健康信息平台"
DROP = ("mapping",)  # not needed by the server, and most of the size


def load_base(shared: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in ("profiles-types.json", "profiles-resources.json"):
        bundle = json.loads((shared / "fhir-r4" / name).read_text("utf-8"))
        for entry in bundle["entry"]:
            sd = entry["resource"]
            if sd.get("resourceType") == "StructureDefinition":
                out[sd["id"]] = sd
    return out


def _clean(element: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in copy.deepcopy(element).items() if k not in DROP}


class Snapshot:
    """An ordered list of ElementDefinitions being constrained."""

    def __init__(self, base: dict[str, Any], types: dict[str, dict[str, Any]]) -> None:
        self.elements = [_clean(e) for e in base["snapshot"]["element"]]
        self.types = types

    def find(self, eid: str) -> int | None:
        for i, e in enumerate(self.elements):
            if e["id"] == eid:
                return i
        return None

    def _end_of(self, pos: int) -> int:
        """Index after the element at ``pos`` and everything under it (children and slices)."""
        eid = self.elements[pos]["id"]
        i = pos + 1
        while i < len(self.elements):
            other = self.elements[i]["id"]
            if not (other.startswith(eid + ".") or other.startswith(eid + ":")):
                break
            i += 1
        return i

    def ensure(self, eid: str) -> int:
        pos = self.find(eid)
        if pos is not None:
            return pos
        head, _, last = eid.rpartition(".")
        name, _, slice_name = last.partition(":")
        if slice_name:
            owner = self.ensure(f"{head}.{name}")
            new = {k: v for k, v in copy.deepcopy(self.elements[owner]).items() if k != "slicing"}
            new["id"], new["sliceName"] = eid, slice_name
            at = self._end_of(owner)
            self.elements.insert(at, new)
            return at
        parent = self.ensure(head)
        self._expand(parent)
        pos = self.find(eid)
        if pos is None:
            raise SystemExit(f"{eid}: no such element")
        return pos

    def _expand(self, pos: int) -> None:
        """Insert the children of the element at ``pos`` (from its sliced twin or its type)."""
        parent = self.elements[pos]
        pid, ppath = parent["id"], parent["path"]
        if self._end_of(pos) > pos + 1 and any(
                e["id"].startswith(pid + ".") for e in self.elements[pos + 1:self._end_of(pos)]):
            return  # already expanded
        children: list[dict[str, Any]] = []
        if parent.get("sliceName"):
            twin_id = pid.rsplit(":", 1)[0]
            twin = self.find(twin_id)
            assert twin is not None
            for e in self.elements[twin + 1:self._end_of(twin)]:
                if e["id"].startswith(twin_id + "."):
                    child = copy.deepcopy(e)
                    child["id"] = pid + e["id"][len(twin_id):]
                    children.append(child)
        if not children:
            codes = {t["code"] for t in parent.get("type", ())}
            if len(codes) != 1:
                raise SystemExit(f"{pid}: cannot expand an element of types {sorted(codes)}")
            tname = codes.pop()
            for e in self.types[tname]["snapshot"]["element"][1:]:
                child = _clean(e)
                child["id"] = pid + e["id"][len(tname):]
                child["path"] = ppath + e["path"][len(tname):]
                children.append(child)
        self.elements[pos + 1:pos + 1] = children

    def apply(self, diff: dict[str, Any], source: str) -> None:
        pos = self.ensure(diff["id"])
        target = self.elements[pos]
        for key, value in diff.items():
            if key in ("id", "path"):
                continue
            if key == "constraint":
                have = {c["key"] for c in target.get("constraint", ())}
                target.setdefault("constraint", []).extend(
                    c for c in copy.deepcopy(value) if c["key"] not in have)
                continue
            if key.startswith(("fixed", "pattern")):
                for old in [k for k in target if k.startswith(("fixed", "pattern"))]:
                    del target[old]
            target[key] = copy.deepcopy(value)
        if "constraint" in diff:
            for c in target["constraint"]:
                c.setdefault("source", source)


def structure_definition(src: Source, b: Builder, base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    url = b.url(src.name)
    snap = Snapshot(base[src.type], base)
    for diff in src.elements:
        snap.apply(diff, url)
    is_ext = src.type == "Extension"
    sd: dict[str, Any] = {
        "resourceType": "StructureDefinition",
        "id": src.name,
        "url": url,
        "version": VERSION,
        "name": "".join(p[:1].upper() + p[1:] for p in src.name.replace("-", " ").split()),
        "title": src.title,
        "status": "active",
        "experimental": False,
        "date": DATE,
        "publisher": PUBLISHER,
        "description": src.description,
        "fhirVersion": "4.0.1",
        "kind": "complex-type" if is_ext else "resource",
        "abstract": False,
    }
    if is_ext:
        sd["context"] = [{"type": "element", "expression": c} for c in src.context]
    sd.update({
        "type": src.type,
        "baseDefinition": CORE + src.type,
        "derivation": "constraint",
        "snapshot": {"element": snap.elements},
        "differential": {"element": src.elements},
    })
    return sd


# ---------------------------------------------------------------------------------------------
# base rules extract


def _best_practice(c: dict[str, Any]) -> bool:
    return any(x.get("url", "").endswith("elementdefinition-bestpractice") and x.get("valueBoolean")
               for x in c.get("extension", ()))


SKIPPED_KEYS = {"ele-1", "ext-1", "txt-1", "txt-2"}  # the structure validator checks these


def base_rules(base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    constraints: dict[str, list[list[str]]] = {}
    bindings: dict[str, str] = {}
    for sd in sorted(base.values(), key=lambda s: s["id"]):
        if sd.get("derivation") != "specialization" or sd.get("kind") == "logical":
            continue
        for e in sd["snapshot"]["element"]:
            path = e["path"]
            found = []
            for c in e.get("constraint", ()):
                if c["key"] in SKIPPED_KEYS or _best_practice(c) or "expression" not in c:
                    continue
                found.append([c["key"], c["severity"], c["human"], c["expression"]])
            for t in e.get("type", ()):
                for profile in t.get("profile", ()):
                    prof = base.get(profile.rsplit("/", 1)[-1])
                    if prof is not None and prof.get("derivation") == "constraint":
                        root = prof["snapshot"]["element"][0]
                        found += [[c["key"], c["severity"], c["human"], c["expression"]]
                                  for c in root.get("constraint", ())
                                  if c["key"] not in SKIPPED_KEYS and c.get("source", "/" + prof[
                                      "id"]).endswith("/" + prof["id"])]
            if found:
                constraints[path] = found
            bind = e.get("binding") or {}
            codes = {t["code"] for t in e.get("type", ())}
            if bind.get("strength") == "required" and bind.get("valueSet") and codes & {
                    "code", "Coding", "CodeableConcept"}:
                bindings[path] = bind["valueSet"].split("|")[0]
    return {"constraints": constraints, "bindings": bindings}


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--base", default=DEFAULT_CANONICAL_BASE)
    parser.add_argument("--out", type=Path, default=ROOT / "profiles")
    parser.add_argument("--rules", type=Path,
                        default=ROOT / "fhir_server" / "profiles" / "data" / "r4_rules.json")
    args = parser.parse_args()
    base = load_base(args.shared)
    b = Builder(args.base)
    args.out.mkdir(exist_ok=True)
    for old in args.out.glob("*.json"):
        old.unlink()
    count = 0
    for src in extensions(b) + resources(b):
        write(args.out / f"StructureDefinition-{src.name}.json", structure_definition(src, b, base))
        count += 1
    for ns in naming_systems(b.base):
        write(args.out / f"NamingSystem-{ns['id']}.json", ns)
        count += 1
    rules = base_rules(base)
    args.rules.parent.mkdir(parents=True, exist_ok=True)
    args.rules.write_text(
        json.dumps(rules, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n",
        "utf-8")
    print(f"wrote {count} resources to {args.out} and {len(rules['constraints'])} constrained "
          f"paths, {len(rules['bindings'])} required bindings to {args.rules}")


if __name__ == "__main__":
    main()
