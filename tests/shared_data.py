"""The shared folder beside the repository (``../shared``): official R4 examples, Synthea bundles.

Loaded with :func:`fhir_server.fhir.jsonio.loads` (exact decimals), cached per process.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fhir_server.fhir import jsonio


def shared_dir() -> Path:
    return Path(__file__).resolve().parents[1].parent / "shared"


def _load_dir(name: str) -> list[tuple[str, Any]]:
    folder = shared_dir() / name
    if not folder.is_dir():
        return []
    return [
        (path.name, jsonio.loads(path.read_bytes()))
        for path in sorted(folder.glob("*.json"))
        if not path.name.startswith("_")  # _package.json, _counts.json
    ]


@cache
def examples() -> list[tuple[str, Any]]:
    """The official R4 examples in ``shared/fhir-r4-examples`` as (filename, resource)."""
    return _load_dir("fhir-r4-examples")


@cache
def synthea_bundles() -> list[tuple[str, Any]]:
    """The Synthea transaction bundles in ``shared/synthea`` as (filename, bundle)."""
    return _load_dir("synthea")


#: For tests that need the official examples (and Synthea): skipped, saying why, when ``../shared``
#: is not beside the repository.
needs_shared = pytest.mark.skipif(
    not (shared_dir() / "fhir-r4-examples").is_dir(), reason="../shared is not present")
