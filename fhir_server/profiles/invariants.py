"""Compiled invariants: a native function when one exists for exactly this key and expression,
otherwise the expression compiled once by fhirpathpy.

fhirpathpy does not implement every FHIRPath function (``resolve()``, ``hasValue()``,
``htmlChecks()``, ``conformsTo()``, ``memberOf()`` ...). An invariant it cannot run is skipped, never
an error: :meth:`Invariant.evaluate` returns None ("not evaluated"), as it does when the expression
evaluates to an empty collection.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir_server.profiles.catalog import EvalContext, Native, local_rules
from fhir_server.profiles.natives import BASE_NATIVES, UCUM

log = logging.getLogger(__name__)

_TRACE = re.compile(r"\.trace\('[^']*'(?:,\s*[A-Za-z_.]+)?\)")
_lock = threading.Lock()
_compiled: dict[str, Callable[[Any, dict[str, Any]], list[Any]] | None] = {}
#: expressions fhirpathpy turned out not to support (the reason, for diagnostics)
UNSUPPORTED: dict[str, str] = {}


def _fhirpathpy(expression: str) -> Callable[[Any, dict[str, Any]], list[Any]] | None:
    """fhirpathpy's compiled form of ``expression`` (``trace()`` calls removed), cached."""
    if expression in _compiled:
        return _compiled[expression]
    with _lock:
        if expression not in _compiled:
            import fhirpathpy
            from fhirpathpy.models import models

            try:
                fn: Callable[[Any, dict[str, Any]], list[Any]] | None = fhirpathpy.compile(
                    _TRACE.sub("", expression), models["r4"])
            except Exception as exc:  # the grammar or a feature fhirpathpy lacks
                UNSUPPORTED[expression] = f"{type(exc).__name__}: {exc}"
                log.info("invariant not evaluable by fhirpathpy: %r: %s", expression, exc)
                fn = None
            _compiled[expression] = fn
    return _compiled[expression]


def _node(item: Any, type_name: str | None) -> Any:
    if type_name is None or (isinstance(item, dict) and "resourceType" in item):
        return item
    from fhirpathpy.engine.nodes import ResourceNode

    return ResourceNode.create_node(item, type_name)  # type: ignore[no-untyped-call]


@dataclass(slots=True)
class Invariant:
    key: str
    severity: str
    human: str
    expression: str
    type_name: str | None  # FHIR type of the context element (for fhirpathpy's model)
    native: Native | None = None
    focus: str | None = None  # child element to name in the issue (e.g. ``value``)

    def evaluate(self, item: Any, ctx: EvalContext) -> bool | None:
        """True: holds; False: broken; None: could not be evaluated (skipped)."""
        if self.native is not None:
            return self.native(item, ctx)
        if self.expression in UNSUPPORTED:
            return None
        fn = _fhirpathpy(self.expression)
        if fn is None:
            return None
        env = {"resource": ctx.resource, "rootResource": ctx.root_resource, "context": item,
               "ucum": UCUM}
        try:
            result = fn(_node(item, self.type_name), env)
        except Exception as exc:
            message = str(exc)
            if "Not implemented" in message or "not supported" in message.lower():
                UNSUPPORTED[self.expression] = message
            log.debug("invariant %s not evaluated: %s", self.key, exc)
            return None
        if not result:
            return None
        if len(result) == 1 and isinstance(result[0], bool):
            return result[0]
        return True


def focus_path(path: str, focus: str | None, item: Any) -> str:
    """Where an invariant's issue points: the element, or its ``focus`` child (``value`` of an
    extension is its ``value[x]`` property, e.g. ``valueString``)."""
    if not focus:
        return path
    if focus == "value" and isinstance(item, dict) and "value" not in item:
        key = next((k for k in item if k.startswith("value")), None)
        return f"{path}.{key}" if key else path
    return f"{path}.{focus}"


def compile_invariant(constraint: dict[str, Any], type_name: str | None,
                      base: str | None) -> Invariant | None:
    """An :class:`Invariant` for one ``ElementDefinition.constraint`` (None without expression);
    ``base``: the canonical base of the local profiles (None for R4 base rules)."""
    key, expression = constraint.get("key"), constraint.get("expression")
    if not isinstance(key, str) or not isinstance(expression, str):
        return None
    severity = "warning" if constraint.get("severity") == "warning" else "error"
    human = str(constraint.get("human") or key)
    native = BASE_NATIVES.get((key, expression))
    focus = None
    local = local_rules(base).get(key) if base is not None else None
    if local is not None and local.expression == expression:
        native, focus = local.native, local.focus
    invariant = Invariant(key, severity, human, expression, type_name, native, focus)
    if native is None:
        _fhirpathpy(expression)  # compile now, not on the first resource
    return invariant
