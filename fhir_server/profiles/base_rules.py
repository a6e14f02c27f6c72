"""The R4 base specification's invariants and required bindings, checked on any resource.

``data/r4_rules.json`` (written by ``scripts/build_profiles.py``) lists, by element path
(``Period``, ``Patient.contact``, ``Patient.gender``), the invariants of the official
StructureDefinitions (without ``ele-1``/``ext-1``/``txt-*``, which the structure validator covers,
and without best-practice guidance such as ``dom-6``) and the required bindings on coded elements.
The walk follows the R4 structure tables of ``fhir/structure.py`` (the resource has passed
structural validation), so every object is typed without looking anything up by name. Invariants
are compiled on first use of their path, natively where :mod:`natives` has them.
"""

from __future__ import annotations

import json
import threading
from functools import cache
from importlib import resources
from typing import Any

from fhir_server.errors import Issue
from fhir_server.fhir import structure
from fhir_server.fhir.structure import Slot, TypeInfo
from fhir_server.profiles import bindings
from fhir_server.profiles.catalog import EvalContext
from fhir_server.profiles.invariants import Invariant, compile_invariant, focus_path

_Step = tuple[Slot, "str | None", "tuple[Invariant, ...]"]


class BaseRules:
    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw: dict[str, list[list[str]]] = raw["constraints"]
        self.bindings: dict[str, str] = raw["bindings"]
        self._compiled: dict[str, tuple[Invariant, ...]] = {}
        self._plans: dict[str, tuple[tuple[Invariant, ...], dict[str, _Step]]] = {}
        self._lock = threading.RLock()

    def invariants(self, path: str, type_name: str | None) -> tuple[Invariant, ...]:
        found = self._compiled.get(path)
        if found is not None:
            return found
        with self._lock:
            out = []
            for key, severity, human, expression in self._raw.get(path, ()):
                inv = compile_invariant({"key": key, "severity": severity, "human": human,
                                         "expression": expression}, type_name, None)
                if inv is not None:
                    out.append(inv)
            self._compiled[path] = found = tuple(out)
        return found

    def plan(self, info: TypeInfo) -> tuple[tuple[Invariant, ...], dict[str, _Step]]:
        """For one type: its own invariants, and per JSON property what to check and whether to
        descend (properties with nothing to do are left out)."""
        found = self._plans.get(info.name)
        if found is not None:
            return found
        own = self.invariants(info.name, info.name)
        steps: dict[str, _Step] = {}
        for key, slot in info.props.items():
            epath = f"{info.name}.{slot.element}"
            valueset = self.bindings.get(epath)
            invs: tuple[Invariant, ...] = ()
            if slot.info is None or slot.info.name != epath:
                invs = self.invariants(epath, slot.code)
            if valueset or invs or slot.info is not None or slot.resource:
                steps[key] = (slot, valueset, invs)
        self._plans[info.name] = found = (own, steps)
        return found

    def warm(self, type_name: str) -> None:
        """Compile the invariants of a resource type and of every type reachable from it."""
        seen: set[str] = set()
        stack = [structure.type_info(type_name)]
        while stack:
            info = stack.pop()
            if info is None or info.name in seen:
                continue
            seen.add(info.name)
            self.plan(info)
            for slot in info.props.values():
                if slot.info is not None:
                    stack.append(slot.info)


@cache
def base_rules() -> BaseRules:
    text = resources.files("fhir_server.profiles").joinpath("data/r4_rules.json").read_text("utf-8")
    return BaseRules(json.loads(text))


class BaseWalker:
    """One run over one resource (and its contained / nested resources)."""

    def __init__(self, terminology: bindings.TerminologyLike | None, ctx: EvalContext,
                 issues: list[Issue]) -> None:
        self.rules = base_rules()
        self.terminology = terminology
        self.ctx = ctx
        self.issues = issues

    def resource(self, resource: dict[str, Any], path: str) -> None:
        info = structure.type_info(str(resource.get("resourceType")))
        if info is not None:
            self.walk(resource, info, path, self.ctx)

    def _invariant(self, inv: Invariant, item: Any, path: str, ctx: EvalContext) -> None:
        if inv.evaluate(item, ctx) is False:
            where = focus_path(path, inv.focus, item)
            self.issues.append(Issue(inv.severity, "invariant",
                                     f"{inv.key}: {inv.human} (R4 base rule)", (where,)))

    def walk(self, obj: dict[str, Any], info: TypeInfo, path: str, ctx: EvalContext) -> None:
        own, plan = self.rules.plan(info)
        for inv in own:
            self._invariant(inv, obj, path, ctx)
        terminology = self.terminology
        for key, value in obj.items():
            step = plan.get(key)
            if step is None:
                continue
            slot, valueset, invs = step
            many = isinstance(value, list)
            for i, item in enumerate(value if many else (value,)):
                if item is None:
                    continue
                ipath = f"{path}.{key}[{i}]" if many else f"{path}.{key}"
                if valueset is not None and terminology is not None:
                    issue = bindings.check(terminology, "required", valueset, slot.code, item,
                                           ipath, f"{info.name}.{slot.element}")
                    if issue is not None:
                        self.issues.append(issue)
                for inv in invs:
                    self._invariant(inv, item, ipath, ctx)
                if not isinstance(item, dict):
                    continue
                if slot.resource:
                    rtype = str(item.get("resourceType"))
                    nested = structure.type_info(rtype)
                    if nested is not None:
                        inner = EvalContext(item, ctx.resolver, ctx.now, ctx.root_resource,
                                            ctx.member_of)
                        self.walk(item, nested, f"{ipath}.ofType({rtype})", inner)
                elif slot.info is not None:
                    self.walk(item, slot.info, ipath, ctx)
