"""Bundle construction (pure). Stored bodies are spliced in as raw JSON, never re-parsed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_server.fhir.instants import now_us, to_instant
from fhir_server.store import StoredResource

_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def page_url(base: str, path: str, params: Iterable[tuple[str, str]]) -> str:
    url = f"{base}/{path}" if path else base
    query = urlencode(list(params))
    return f"{url}?{query}" if query else url


def history_entry(base: str, stored: StoredResource) -> dict[str, Any]:
    ref = f"{stored.type}/{stored.id}"
    entry: dict[str, Any] = {"fullUrl": f"{base}/{ref}"}
    if stored.body is not None:
        entry["resource"] = orjson.Fragment(stored.body)
    entry["request"] = {
        "method": stored.method,
        "url": stored.type if stored.method == "POST" else ref,
    }
    entry["response"] = {
        "status": _STATUS.get(stored.method, "200 OK"),
        "etag": f'W/"{stored.version}"',
        "lastModified": to_instant(stored.ts),
    }
    return entry


def bundle(
    bundle_type: str,
    entries: list[dict[str, Any]],
    links: list[tuple[str, str]],
    total: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": to_instant(now_us())},
        "type": bundle_type,
    }
    if total is not None:
        out["total"] = total
    if links:
        out["link"] = [{"relation": rel, "url": url} for rel, url in links]
    if entries:
        out["entry"] = entries
    return out
