"""Install the platform's conformance resources into the store, so they can be read and searched.

``install_conformance(svc)`` writes every JSON resource under ``terminology/`` and ``profiles/`` of
the conformance directory (``FHIR_CONFORMANCE_DIR``, by default the source tree) with its own fixed
``id`` (PUT semantics: a new version when the file changed). Unchanged resources are skipped, so a
second run writes nothing; a file holding a Bundle contributes its entries. A file that is not a
resource (no ``resourceType``/``id``) or not valid R4 is an error naming the file: the directory is
part of the deployment and must be right. The files are written with ``DEFAULT_CANONICAL_BASE``;
under another ``FHIR_CANONICAL_BASE`` their URLs are moved to it.

Called by ``fhir-server serve`` (once, before the workers fork) and ``fhir-server seed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fhir_server.errors import FhirError, InvalidRequest
from fhir_server.fhir import jsonio
from fhir_server.interactions.context import Services
from fhir_server.interactions.resources import check_type, put, run_write, validate
from fhir_server.store import Tx
from fhir_server.terminology.loader import conformance_root, rebase

FOLDERS = ("terminology", "profiles")


def conformance_files(conformance_dir: str | None = None) -> list[Path]:
    """The ``*.json`` files of ``terminology/`` and ``profiles/`` (recursively), sorted."""
    root = conformance_root(conformance_dir)
    return [p for folder in FOLDERS if (root / folder).is_dir()
            for p in sorted((root / folder).rglob("*.json"))]


def _resources(path: Path, canonical_base: str | None) -> Iterator[dict[str, Any]]:
    try:
        doc = jsonio.loads(rebase(path.read_bytes(), canonical_base))
    except FhirError as exc:
        raise InvalidRequest(f"{path}: {exc}") from exc
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        for entry in doc.get("entry", ()):
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                yield entry["resource"]
        return
    yield doc


def _comparable(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without the server-stamped ``meta.versionId``/``meta.lastUpdated``."""
    out = dict(resource)
    meta = {k: v for k, v in (out.pop("meta", None) or {}).items()
            if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    return out


def load_conformance(conformance_dir: str | None = None, canonical_base: str | None = None
                     ) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, id, resource) of every conformance resource, validated as R4, with the platform's
    canonical URLs on ``canonical_base`` (see :func:`~fhir_server.terminology.loader.rebase`)."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    seen: dict[tuple[str, str], Path] = {}
    for path in conformance_files(conformance_dir):
        for resource in _resources(path, canonical_base):
            rtype = resource.get("resourceType") if isinstance(resource, dict) else None
            rid = resource.get("id") if isinstance(resource, dict) else None
            if not isinstance(rtype, str) or not isinstance(rid, str):
                raise InvalidRequest(f"{path}: a conformance resource needs resourceType and id")
            if (rtype, rid) in seen:
                raise InvalidRequest(f"{path}: {rtype}/{rid} is also defined in {seen[rtype, rid]}")
            seen[rtype, rid] = path
            try:
                check_type(rtype)
                out.append((rtype, rid, validate(resource, rtype)))
            except FhirError as exc:
                raise InvalidRequest(f"{path}: {exc}") from exc
    return out


def install_conformance(svc: Services) -> int:
    """Write the conformance resources that are new or changed; returns how many were written."""
    resources = load_conformance(svc.settings.conformance_dir, svc.settings.canonical_base)

    def work(tx: Tx) -> int:
        written = 0
        for rtype, rid, resource in resources:
            current = tx.read(rtype, rid)
            if current is not None and current.body is not None and \
                    _comparable(jsonio.loads_trusted(current.body)) == _comparable(resource):
                continue
            put(tx, rtype, rid, resource, current, "PUT")
            written += 1
        return written

    return run_write(svc.store, work)
