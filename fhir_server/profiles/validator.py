"""Validation of a resource against StructureDefinitions: the profile's compiled tree
(:mod:`model`) plus the R4 base rules (:mod:`base_rules`).

The resource must already be structurally valid R4 (``fhir/structure.py``): types, base
cardinalities and JSON shape are not re-checked here. Issues carry the FHIRPath of the element
(``Patient.identifier[2].value``); an invariant's diagnostics start with its key
(``cin-checksum: ...``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fhir_server.errors import Issue
from fhir_server.profiles import bindings
from fhir_server.profiles.base_rules import BaseWalker
from fhir_server.profiles.catalog import EvalContext, Resolver
from fhir_server.profiles.invariants import focus_path
from fhir_server.profiles.loader import Registry, strip_version
from fhir_server.profiles.matching import equals, matches, reference_type
from fhir_server.profiles.model import Node, Profile

MAX_ISSUES = 100


class _Full(Exception):
    pass


class _Run:
    """One resource against one profile."""

    def __init__(self, registry: Registry, terminology: bindings.TerminologyLike | None,
                 profile: Profile, ctx: EvalContext, issues: list[Issue]) -> None:
        self.registry, self.terminology = registry, terminology
        self.profile, self.ctx, self.issues = profile, ctx, issues

    def add(self, severity: str, code: str, text: str, path: str) -> None:
        self.issues.append(Issue(severity, code, f"{text} [{self.profile.name}]", (path,)))
        if len(self.issues) >= MAX_ISSUES:
            raise _Full

    def element(self, node: Node, item: Any, path: str, kind: str | None) -> None:
        if node.value_checks:
            self.values(node, item, path, kind)
        if node.children and isinstance(item, dict):
            for child in node.children:
                self.child(child, item, path)

    def values(self, node: Node, item: Any, path: str, kind: str | None) -> None:
        if node.has_fixed and not equals(item, node.fixed):
            self.add("error", "value", f"{node.id}: must be exactly {_show(node.fixed)}, not "
                     f"{_show(item)}", path)
        if node.has_pattern and not matches(item, node.pattern):
            self.add("error", "value", f"{node.id}: must match {_show(node.pattern)}", path)
        if node.binding is not None and kind is not None and self.terminology is not None:
            issue = bindings.check(self.terminology, node.binding[0], node.binding[1], kind, item,
                                   path, node.id)
            if issue is not None:
                self.add(issue.severity, issue.code, issue.diagnostics, path)
        if node.targets is not None and isinstance(item, dict):
            target = reference_type(item)
            if target is not None and target not in node.targets and "Resource" not in node.targets:
                allowed = " | ".join(sorted(node.targets))
                self.add("error", "structure", f"{node.id}: must refer to {allowed}, not {target}",
                         f"{path}.reference" if "reference" in item else path)
        for inv in node.invariants:
            if inv.evaluate(item, self.ctx) is False:
                where = focus_path(path, inv.focus, item)
                self.add(inv.severity, "invariant", f"{inv.key}: {inv.human}", where)
        if node.ext_url is not None:
            self.extension(node.ext_url, item, path)

    def extension(self, url: str, item: Any, path: str) -> None:
        ext = self.registry.get(url)
        if ext is None or ext.type != "Extension":
            return
        outer, self.profile = self.profile, ext
        try:
            self.element(ext.root, item, path, None)
        finally:
            self.profile = outer

    def child(self, node: Node, obj: dict[str, Any], path: str) -> None:
        entries: list[tuple[Any, str, str]] = []  # (item, path, type code)
        count = 0
        for name in node.forbidden:
            if name in obj or "_" + name in obj:
                allowed = ", ".join(node.names)
                self.add("error", "structure", f"{node.id}: {name} is not allowed here (allowed: "
                         f"{allowed})", f"{path}.{name}")
        for name in node.names:
            value = obj.get(name)
            if value is None:
                if "_" + name in obj:
                    count += 1  # a primitive with only extensions
                continue
            kind = node.codes.get(name, "")
            if isinstance(value, list):
                count += len(value)
                entries.extend((v, f"{path}.{name}[{i}]", kind) for i, v in enumerate(value)
                               if v is not None)
            else:
                count += 1
                entries.append((value, f"{path}.{name}", kind))
        where = f"{path}.{node.names[0]}" if node.names else path
        if node.check_card:
            self.cardinality(node, count, where)
        if node.slices:
            self.slices(node, entries, where)
        for item, ipath, kind in entries:
            self.element(node, item, ipath, kind)

    def cardinality(self, node: Node, count: int, where: str) -> None:
        if count < node.min:
            found = f"found {count}" if count else "none found"
            self.add("error", "required", f"{node.id}: at least {node.min} required ({found})",
                     where)
        elif node.max is not None and count > node.max:
            self.add("error", "structure", f"{node.id}: at most {node.max} allowed (found "
                     f"{count})", where)

    @staticmethod
    def _slice_of(node: Node, item: Any) -> int | None:
        if node.slice_index is not None:
            if not isinstance(item, dict) or node.slice_key is None:
                return None
            value = item.get(node.slice_key)
            return node.slice_index.get(value) if isinstance(value, str) else None
        return next((i for i, s in enumerate(node.slices)
                     if s.matcher is not None and s.matcher(item)), None)

    def slices(self, node: Node, entries: list[tuple[Any, str, str]], where: str) -> None:
        buckets: list[list[tuple[Any, str, str]]] = [[] for _ in node.slices]
        for entry in entries:
            found = self._slice_of(node, entry[0])
            if found is not None:
                buckets[found].append(entry)
            elif node.closed:
                self.add("error", "structure", f"{node.id}: matches none of the slices "
                         f"({', '.join(str(s.slice_name) for s in node.slices)}) and the "
                         "slicing is closed", entry[1])
            elif node.name == "extension" and isinstance(entry[0], dict):
                url = entry[0].get("url")
                if isinstance(url, str):
                    self.extension(url, entry[0], entry[1])
        for s, matched in zip(node.slices, buckets, strict=True):
            self.cardinality(s, len(matched), where)
            for item, ipath, kind in matched:
                self.element(s, item, ipath, kind)


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, dict | list) else str(value)
    return text if len(text) <= 120 else text[:117] + "..."


class Validator:
    """Validates resources against the profiles of a registry and the R4 base rules."""

    def __init__(self, registry: Registry, terminology: bindings.TerminologyLike | None) -> None:
        self.registry = registry
        self.terminology = (bindings.CachedTerminology(terminology) if terminology is not None
                            else None)

    def validate(self, resource: dict[str, Any], profiles: Iterable[str] = (), *,
                 resolver: Resolver | None = None, base: bool = True,
                 now: datetime | None = None) -> list[Issue]:
        """Issues of ``resource`` against each of ``profiles`` (URLs; an unknown one is a
        warning) and, with ``base``, the R4 base invariants and required bindings."""
        issues: list[Issue] = []
        rtype = str(resource.get("resourceType"))
        member_of = self.terminology.validate_code if self.terminology is not None else None
        ctx = EvalContext(resource, resolver, now or datetime.now(UTC), member_of=member_of)
        try:
            if base:
                BaseWalker(self.terminology, ctx, issues).resource(resource, rtype)
            for url in dict.fromkeys(strip_version(u) for u in profiles):
                profile = self.registry.get(url)
                if profile is None:
                    if self.registry.known(url):
                        if self.registry.type_of(url) != rtype:
                            issues.append(Issue("error", "processing", f"the profile {url} is "
                                                f"for {self.registry.type_of(url)}, not {rtype}",
                                                (f"{rtype}.meta.profile",)))
                        continue
                    issues.append(Issue("warning", "not-supported", f"the profile {url} is not "
                                        "known to this server; the resource was not checked "
                                        "against it", (f"{rtype}.meta.profile",)))
                    continue
                if profile.type != rtype:
                    issues.append(Issue("error", "processing", f"the profile {url} is for "
                                        f"{profile.type}, not {rtype}", (f"{rtype}.meta.profile",)))
                    continue
                _Run(self.registry, self.terminology, profile, ctx, issues).element(
                    profile.root, resource, rtype, None)
        except _Full:
            pass
        return issues
