"""Binding checks through the terminology service.

* required: a ``code``/``Coding`` outside the value set, or a ``CodeableConcept`` with no coding in
  it, is an error;
* extensible: a warning when no code is in the value set and the codes are from a code system
  this server knows (so a code from an unknown system is taken as the extension it may be).

A value set the server cannot expand (unknown, or drawing on SNOMED CT, LOINC ...) is not checked.
"""

from __future__ import annotations

from typing import Any, Protocol

from fhir_server.errors import Issue


class TerminologyLike(Protocol):
    def validate_code(self, valueset: str, system: str | None, code: str,
                      display: str | None = None) -> bool | None: ...

    def code_system(self, url: str, version: str | None = None) -> Any: ...


class CachedTerminology:
    """Memoised ``validate_code`` and ``code_system`` lookups (the terminology is fixed for the
    life of the process); bounded, cleared when full."""

    LIMIT = 20000

    def __init__(self, terminology: TerminologyLike) -> None:
        self.inner = terminology
        self._codes: dict[tuple[str, str | None, str], bool | None] = {}
        self._systems: dict[str, bool] = {}

    def validate_code(self, valueset: str, system: str | None, code: str,
                      display: str | None = None) -> bool | None:
        key = (valueset, system, code)
        try:
            return self._codes[key]
        except KeyError:
            pass
        if len(self._codes) >= self.LIMIT:
            self._codes.clear()
        result = self._codes[key] = self.inner.validate_code(valueset, system, code)
        return result

    def code_system(self, url: str, version: str | None = None) -> Any:
        known = self._systems.get(url)
        if known is None:
            if len(self._systems) >= self.LIMIT:
                self._systems.clear()
            known = self._systems[url] = self.inner.code_system(url) is not None
        return True if known else None


def _codings(value: Any, kind: str) -> list[tuple[str | None, str]] | None:
    """(system, code) pairs of a code / Coding / CodeableConcept; None when not coded data."""
    if kind == "code":
        return [(None, value)] if isinstance(value, str) else None
    if kind == "Coding":
        items = [value]
    elif kind == "CodeableConcept":
        items = value.get("coding") or [] if isinstance(value, dict) else []
    else:
        return None
    out = []
    for c in items:
        if isinstance(c, dict) and isinstance(c.get("code"), str):
            system = c.get("system")
            out.append((system if isinstance(system, str) else None, c["code"]))
    return out


def _label(system: str | None, code: str) -> str:
    return f"{system}|{code}" if system else repr(code)


def check(terminology: TerminologyLike, strength: str, valueset: str, kind: str, value: Any,
          path: str, where: str) -> Issue | None:
    """One item against a binding; ``where`` names the profile element for the message."""
    codes = _codings(value, kind)
    if codes is None:
        return None
    results = [terminology.validate_code(valueset, s, c) for s, c in codes]
    if any(r is True for r in results):
        return None
    if codes and all(r is None for r in results):
        return None  # the value set cannot be checked here
    shown = ", ".join(_label(s, c) for s, c in codes) or "no coding"
    if strength == "required":
        if not codes and kind == "CodeableConcept":
            if terminology.validate_code(valueset, None, "\x00") is None:
                return None
            text = f"{where}: a code from {valueset} is required (binding required), but there is no coding"
        else:
            text = f"{where}: {shown} is not in the value set {valueset} (binding required)"
        return Issue("error", "code-invalid", text, (path,))
    if strength == "extensible" and (kind == "code" or any(
            s is not None and terminology.code_system(s) is not None for s, _ in codes)):
        return Issue("warning", "code-invalid",
                     f"{where}: {shown} is not in the value set {valueset} (binding extensible: "
                     "use a code from it when one fits)", (path,))
    return None
