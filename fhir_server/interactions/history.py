"""history at instance, type and system level (https://hl7.org/fhir/R4/http.html#history)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_server.errors import InvalidRequest, NotFound
from fhir_server.fhir import cursors
from fhir_server.fhir.bundles import bundle, history_entry, page_url
from fhir_server.fhir.instants import parse_instant
from fhir_server.interactions.context import Services
from fhir_server.interactions.resources import check_type
from fhir_server.store import HistoryQuery

HISTORY_PARAMETERS = frozenset({"_count", "_since", "_cursor"})


def parse_count(value: str | None, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise InvalidRequest(f"_count must be a non-negative integer, got {value!r}",
                             expression="_count")
    return min(int(value), maximum)


def history(
    svc: Services,
    base: str,
    params: Mapping[str, str],
    rtype: str | None = None,
    rid: str | None = None,
) -> dict[str, Any]:
    """A ``history`` Bundle, newest first, paged by an opaque keyset cursor."""
    if rtype is not None:
        check_type(rtype)
        svc.access.require(rtype, "s" if rid is None else "r")
        if rid is not None and svc.store.read(rtype, rid) is None:
            raise NotFound(f"{rtype}/{rid} is not known")
    count = parse_count(params.get("_count"), svc.settings.default_count, svc.settings.max_count)
    since = parse_instant(params["_since"], "_since") if "_since" in params else None
    after: tuple[int, str, str, int] | None = None
    if "_cursor" in params:
        raw = cursors.decode(svc.cursor_key, params["_cursor"])
        if not (isinstance(raw, list) and len(raw) == 4):
            raise InvalidRequest("_cursor is not a history cursor", expression="_cursor")
        after = (int(raw[0]), str(raw[1]), str(raw[2]), int(raw[3]))
    query = HistoryQuery(rtype, rid, since, None, after, count + 1)
    rows = svc.store.history(query) if count else []
    more = len(rows) > count
    rows = rows[:count]

    path = "/".join(p for p in (rtype, rid, "_history") if p)
    kept = [(k, params[k]) for k in ("_since", "_count") if k in params]
    links = [("self", page_url(base, path, [*kept, *_cursor_param(params)])),
             ("first", page_url(base, path, kept))]
    if more:
        last = rows[-1]
        token = cursors.encode(svc.cursor_key, [last.ts, last.type, last.id, last.version])
        links.append(("next", page_url(base, path, [*kept, ("_cursor", token)])))
    return bundle("history", [history_entry(base, row) for row in rows], links)


def _cursor_param(params: Mapping[str, str]) -> list[tuple[str, str]]:
    return [("_cursor", params["_cursor"])] if "_cursor" in params else []
