"""Reading terminology: the compact R4 core extract (package data) and the platform's own
``terminology/*.json`` (CodeSystems, ValueSets, ConceptMaps) under the conformance directory.

The conformance directory holds ``terminology/`` and ``profiles/``: ``FHIR_CONFORMANCE_DIR``
(``Settings.conformance_dir``), by default the source tree (the repository root, two levels above
this package).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from fhir_server.fhir.identifiers import DEFAULT_CANONICAL_BASE

CORE_DATA = "r4_terminology.json"
TERMINOLOGY_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")


def conformance_root(setting: str | None = None) -> Path:
    """The directory holding ``terminology/`` and ``profiles/``."""
    if setting:
        return Path(setting)
    return Path(__file__).resolve().parents[2]


def rebase(data: bytes, canonical_base: str | None) -> bytes:
    """The JSON text of a conformance file with the platform's canonical URLs moved from
    ``DEFAULT_CANONICAL_BASE`` (what the files are written with) to ``canonical_base``
    (``FHIR_CANONICAL_BASE``); unchanged when that is the default or None."""
    if not canonical_base or canonical_base.rstrip("/") == DEFAULT_CANONICAL_BASE:
        return data
    return data.replace(DEFAULT_CANONICAL_BASE.encode() + b"/", canonical_base.rstrip("/").encode() + b"/")


@dataclass
class Content:
    """Terminology resources by type, in load order (later ones win on the same canonical URL)."""

    code_systems: list[dict[str, Any]] = field(default_factory=list)
    value_sets: list[dict[str, Any]] = field(default_factory=list)
    concept_maps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, resource: Any) -> None:
        if not isinstance(resource, dict) or not isinstance(resource.get("url"), str):
            return
        kind = resource.get("resourceType")
        if kind == "CodeSystem":
            self.code_systems.append(resource)
        elif kind == "ValueSet":
            self.value_sets.append(resource)
        elif kind == "ConceptMap":
            self.concept_maps.append(resource)


def core_content(into: Content) -> None:
    """The R4 core CodeSystems and ValueSets (written by ``scripts/extract_terminology.py``)."""
    data = resources.files("fhir_server.terminology").joinpath("data", CORE_DATA)
    if not data.is_file():
        return
    bundle = orjson.loads(data.read_bytes())
    for resource in bundle.get("resources", ()):
        into.add(resource)


def json_files(directory: Path) -> list[Path]:
    """The ``*.json`` files of ``directory`` (sorted; none when it does not exist)."""
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def local_content(into: Content, root: Path, canonical_base: str | None = None) -> None:
    """The platform's ``terminology/*.json`` (a file may also hold a Bundle of resources)."""
    for path in json_files(root / "terminology"):
        resource = orjson.loads(rebase(path.read_bytes(), canonical_base))
        if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
            for entry in resource.get("entry", ()):
                into.add(entry.get("resource"))
        else:
            into.add(resource)


def load(conformance_dir: str | None = None, canonical_base: str | None = None) -> Content:
    content = Content()
    core_content(content)
    local_content(content, conformance_root(conformance_dir), canonical_base)
    return content
