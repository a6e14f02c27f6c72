"""The platform's StructureDefinitions (``profiles/*.json`` under the conformance directory),
loaded and compiled once per (directory, canonical base).

The files are written for :data:`~fhir_server.fhir.identifiers.DEFAULT_CANONICAL_BASE`; another
``FHIR_CANONICAL_BASE`` is substituted in their text when they are read, so profile URLs,
extension URLs, identifier systems and code systems all follow the setting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from fhir_server.fhir import structure
from fhir_server.fhir.identifiers import DEFAULT_CANONICAL_BASE
from fhir_server.profiles.model import CORE_SD, Profile, compile_profile
from fhir_server.terminology.loader import conformance_root


def read_resources(root: Path, base: str = DEFAULT_CANONICAL_BASE) -> Iterator[dict[str, Any]]:
    """Every resource of ``root/profiles/*.json`` (sorted by file name), with ``base`` applied."""
    directory = root / "profiles"
    if not directory.is_dir():
        return
    old, new = DEFAULT_CANONICAL_BASE.encode(), base.rstrip("/").encode()
    for path in sorted(directory.glob("*.json")):
        raw = path.read_bytes()
        if new != old:
            raw = raw.replace(old, new)
        resource = orjson.loads(raw)
        if isinstance(resource, dict):
            yield resource


def strip_version(url: str) -> str:
    return url.split("|", 1)[0]


def core_type(url: str) -> str | None:
    """``Patient`` for ``http://hl7.org/fhir/StructureDefinition/Patient`` (a base resource)."""
    if url.startswith(CORE_SD):
        name = url[len(CORE_SD):]
        if name in structure.RESOURCE_TYPES:
            return name
    return None


@dataclass
class Registry:
    """Compiled profiles and extensions by canonical URL."""

    base: str
    profiles: dict[str, Profile] = field(default_factory=dict)
    resources: list[dict[str, Any]] = field(default_factory=list)  # as read (for install, tests)

    def get(self, url: str) -> Profile | None:
        return self.profiles.get(strip_version(url))

    def known(self, url: str) -> bool:
        """A local profile, or an R4 base resource definition (validated by the base rules)."""
        url = strip_version(url)
        return url in self.profiles or core_type(url) is not None

    def type_of(self, url: str) -> str | None:
        url = strip_version(url)
        profile = self.profiles.get(url)
        return profile.type if profile is not None else core_type(url)

    def for_type(self, rtype: str) -> list[Profile]:
        return [p for p in self.profiles.values() if p.type == rtype]

    def resolve_name(self, name: str) -> str | None:
        """A profile URL from a URL or a short name (``rhip-patient``)."""
        name = name.strip()
        if self.known(name):
            return strip_version(name)
        url = f"{self.base}/StructureDefinition/{name}"
        return url if url in self.profiles else None


_lock = threading.Lock()


@cache
def _load(root: str, base: str) -> Registry:
    from fhir_server.profiles.base_rules import base_rules

    registry = Registry(base.rstrip("/"))
    sds = []
    for resource in read_resources(Path(root), base):
        registry.resources.append(resource)
        if resource.get("resourceType") == "StructureDefinition" and resource.get("snapshot"):
            sds.append(resource)
    types = {str(sd["url"]): str(sd["type"]) for sd in sds}
    rules = base_rules()
    for sd in sds:
        profile = compile_profile(sd, registry.base, types)
        registry.profiles[profile.url] = profile
        if profile.type != "Extension":
            rules.warm(profile.type)
    return registry


def registry(conformance_dir: str | None = None, base: str = DEFAULT_CANONICAL_BASE) -> Registry:
    """The compiled profiles of a conformance directory for a canonical base (loaded once)."""
    root = str(conformance_root(conformance_dir).resolve())
    with _lock:
        return _load(root, base.rstrip("/"))
