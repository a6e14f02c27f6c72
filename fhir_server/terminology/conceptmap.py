"""ConceptMap translation (R4 ``$translate``): pure, no I/O.

Every ``group.element.target`` of every known ConceptMap becomes a :class:`Translation` indexed by
(source system, source code). A query narrows by map ``url``, source ValueSet (``ConceptMap.source``),
target ValueSet (``ConceptMap.target``) or target system (``group.target``). ``unmatched`` is not
evaluated (no map here uses it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: R4 ConceptMapEquivalence codes that are *not* a usable translation.
NEGATIVE = frozenset({"unmatched", "disjoint"})


@dataclass(frozen=True, slots=True)
class Translation:
    equivalence: str
    system: str
    code: str
    display: str | None
    source_system: str
    source_code: str
    map_url: str
    comment: str | None = None

    @property
    def positive(self) -> bool:
        return self.equivalence not in NEGATIVE


@dataclass(frozen=True, slots=True)
class MapInfo:
    url: str
    source: str | None  # source ValueSet canonical
    target: str | None  # target ValueSet canonical


def _canonical(resource: Mapping[str, Any], prefix: str) -> str | None:
    for suffix in ("Canonical", "Uri"):
        value = resource.get(prefix + suffix)
        if isinstance(value, str):
            return value.split("|", 1)[0]
    return None


class ConceptMaps:
    """Translations of all maps, by (source system, source code)."""

    def __init__(self, maps: Iterable[Mapping[str, Any]]) -> None:
        self.maps: dict[str, MapInfo] = {}
        self._index: dict[tuple[str, str], list[Translation]] = {}
        for cm in maps:
            url = cm.get("url")
            if not isinstance(url, str):
                continue
            self.maps[url] = MapInfo(url, _canonical(cm, "source"), _canonical(cm, "target"))
            for group in cm.get("group", ()):
                source_system, target_system = group.get("source"), group.get("target")
                if not isinstance(source_system, str):
                    continue
                for element in group.get("element", ()):
                    code = element.get("code")
                    if not isinstance(code, str):
                        continue
                    for target in element.get("target", ()):
                        self._index.setdefault((source_system, code), []).append(Translation(
                            str(target.get("equivalence", "equivalent")),
                            str(target_system or ""), str(target.get("code", "")),
                            target.get("display"), source_system, code, url,
                            target.get("comment")))

    def translate(self, system: str, code: str, *, url: str | None = None,
                  source: str | None = None, target: str | None = None,
                  target_system: str | None = None) -> list[Translation]:
        """Translations of ``system|code``; ``target`` matches a map's target ValueSet or, for
        convenience, a target system."""
        out: list[Translation] = []
        for t in self._index.get((system, code), ()):
            info = self.maps[t.map_url]
            if url is not None and t.map_url != url.split("|", 1)[0]:
                continue
            if source is not None and info.source != source.split("|", 1)[0]:
                continue
            if target is not None and target.split("|", 1)[0] not in (info.target, t.system):
                continue
            if target_system is not None and t.system != target_system:
                continue
            out.append(t)
        return out
