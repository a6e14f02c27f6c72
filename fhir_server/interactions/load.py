"""Bulk load of resources that carry their own ids (the seed generator, imports).

Each resource is validated like an update and written with PUT semantics (a new version if it
exists), in transactions of ``batch_size`` resources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from fhir_server.errors import InvalidRequest
from fhir_server.interactions.context import Services
from fhir_server.interactions.resources import check_type, put, run_write, validate
from fhir_server.store import Tx


def _batched(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def load(
    svc: Services,
    resources: Iterable[dict[str, Any]],
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    written = 0
    for chunk in _batched(resources, batch_size):
        prepared = []
        for resource in chunk:
            rtype, rid = resource.get("resourceType"), resource.get("id")
            if not isinstance(rtype, str) or not isinstance(rid, str):
                raise InvalidRequest("every loaded resource needs resourceType and id")
            check_type(rtype)
            prepared.append((rtype, rid, validate(resource, rtype)))

        def work(tx: Tx, prepared: list[tuple[str, str, dict[str, Any]]] = prepared) -> None:
            for rtype, rid, body in prepared:
                put(tx, rtype, rid, body, tx.read(rtype, rid), "PUT")

        run_write(svc.store, work)
        written += len(prepared)
        if progress:
            progress(len(prepared))
    return written
