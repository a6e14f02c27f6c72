"""SMART on FHIR resource scopes (App Launch 2.x, section "Scopes for requesting FHIR resources").

Pure: no I/O. Grammar::

    (patient|user|system) "/" (ResourceType|"*") "." (v2 letters | "read" | "write" | "*") ["?" query]

v2 letters are a non-empty subsequence of ``cruds`` in that order (``rs``, ``cud``; ``sr`` or ``rr``
is not a scope). v1 forms map to letters: ``read`` -> ``rs``, ``write`` -> ``cud``, ``*`` ->
``cruds``. ``r`` covers read, vread and instance history; ``s`` search and type/system history;
``u`` update and patch. Write does not imply read. The optional query (granular scopes, e.g.
``system/Observation.rs?category=laboratory``) restricts the scope to matching instances; several
parameters in one scope all apply (AND); several scopes are alternatives (OR).

Anything else (``openid``, ``launch``, ``offline_access``, a malformed or unknown-type scope) is
not a resource scope: :func:`parse_scope` returns None and it is never a grant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

from fhir_server.fhir import structure

CONTEXTS = frozenset({"system", "patient", "user"})
LETTERS = "cruds"
#: v1 action -> v2 letters, and back (only these three letter sets have a v1 spelling)
V1_TO_V2 = {"read": "rs", "write": "cud", "*": "cruds"}
V2_TO_V1 = {letters: action for action, letters in V1_TO_V2.items()}
#: Audit records are read only with an explicit AuditEvent scope, never through "*"
AUDIT_TYPE = "AuditEvent"

_SCOPE = re.compile(
    r"(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})"
    r"\.(?P<action>c?r?u?d?s?|read|write|\*)(?:\?(?P<query>.+))?"
)
_PARAM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-.:]{0,127}")
_MAX_SCOPE_LENGTH = 1024
_QUOTE_SAFE = "/:|,.-_~*@!$'()+;"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Scope:
    context: str  # "system" | "patient" | "user"
    resource_type: str  # a resource type or "*"
    interactions: frozenset[str]  # subset of {"c","r","u","d","s"}
    params: tuple[tuple[str, str], ...] = ()  # granular criteria, sorted; values percent-decoded
    v1: bool = False  # asked in v1 form (.read/.write/.*): echoed back in that form

    @property
    def letters(self) -> str:
        """The interactions in ``cruds`` order."""
        return "".join(c for c in LETTERS if c in self.interactions)

    @property
    def query(self) -> str:
        """The granular criteria as a query string (``""`` when there are none)."""
        return "&".join(f"{name}={quote(value, safe=_QUOTE_SAFE)}" for name, value in self.params)

    def __str__(self) -> str:
        letters = self.letters
        action = V2_TO_V1[letters] if self.v1 and letters in V2_TO_V1 else letters
        text = f"{self.context}/{self.resource_type}.{action}"
        return f"{text}?{self.query}" if self.params else text

    def covers_type(self, resource_type: str) -> bool:
        """This scope names ``resource_type`` (``*`` names every type but AuditEvent)."""
        if self.resource_type == "*":
            return resource_type != AUDIT_TYPE
        return self.resource_type == resource_type


def _parse_query(query: str) -> tuple[tuple[str, str], ...] | None:
    params = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if not sep or not _PARAM_NAME.fullmatch(name) or not value or _BAD_ESCAPE.search(value):
            return None
        decoded = unquote(value, errors="strict") if "%" in value else value
        if not decoded or any(ord(ch) < 0x20 for ch in decoded):
            return None
        params.append((name, decoded))
    return tuple(sorted(set(params)))


@lru_cache(maxsize=4096)
def parse_scope(text: str) -> Scope | None:
    """The resource scope ``text`` denotes, or None if it is not one (never a grant)."""
    if len(text) > _MAX_SCOPE_LENGTH:
        return None
    match = _SCOPE.fullmatch(text)
    if match is None:
        return None
    rtype = match["type"]
    if rtype != "*" and rtype not in structure.RESOURCE_TYPES:
        return None
    action = match["action"]
    v1 = action in V1_TO_V2
    letters = V1_TO_V2[action] if v1 else action
    if not letters:
        return None
    params: tuple[tuple[str, str], ...] = ()
    if match["query"] is not None:
        try:
            parsed = _parse_query(match["query"])
        except UnicodeDecodeError:
            return None
        if parsed is None:
            return None
        params = parsed
    return Scope(match["context"], rtype, frozenset(letters), params, v1)


def parse_scopes(text: str) -> list[Scope]:
    """The resource scopes of a space-separated scope string, in order, without duplicates."""
    out: list[Scope] = []
    for token in text.split():
        scope = parse_scope(token)
        if scope is not None and scope not in out:
            out.append(scope)
    return out


def format_scopes(scopes: Iterable[Scope]) -> str:
    return " ".join(str(s) for s in scopes)


def _intersect(asked: Scope, ceiling: Scope) -> Scope | None:
    if asked.context != "system" or ceiling.context != "system":
        return None  # backend clients have no patient or user context
    if asked.resource_type == "*":
        if ceiling.resource_type == AUDIT_TYPE:
            return None  # "*" never reaches audit records, however the ceiling reads
        rtype = ceiling.resource_type
    elif ceiling.resource_type == "*":
        if asked.resource_type == AUDIT_TYPE:
            return None
        rtype = asked.resource_type
    elif asked.resource_type == ceiling.resource_type:
        rtype = asked.resource_type
    else:
        return None
    interactions = asked.interactions & ceiling.interactions
    if not interactions:
        return None
    params = tuple(sorted(set(asked.params) | set(ceiling.params)))  # both restrictions apply
    return Scope("system", rtype, interactions, params, asked.v1)


def mediate(requested: str, ceiling: str) -> list[Scope]:
    """The scopes granted for ``requested`` under the client's ``ceiling``: their intersection.

    Never wider than either side: each requested scope is intersected with each ceiling scope
    (types, letters; granular criteria of both are kept, so a granular ceiling restricts). Only
    ``system/`` scopes are granted (backend clients have no patient or user context). A v1 request
    is answered in v1 form when the granted letters have one. Empty: nothing grantable.
    """
    limits = parse_scopes(ceiling)
    granted: list[Scope] = []
    for asked in parse_scopes(requested):
        for limit in limits:
            scope = _intersect(asked, limit)
            if scope is not None and scope not in granted:
                granted.append(scope)
    return _drop_subsumed(granted)


def _subsumes(wide: Scope, narrow: Scope) -> bool:
    return (wide.context == narrow.context
            and (wide.resource_type == narrow.resource_type
                 or (wide.resource_type == "*" and narrow.resource_type != AUDIT_TYPE))
            and wide.interactions >= narrow.interactions
            and set(wide.params) <= set(narrow.params))


def _drop_subsumed(scopes: list[Scope]) -> list[Scope]:
    """Leave out scopes another granted scope already covers (``system/*.rs`` asked against a
    ceiling of ``system/*.rs system/Patient.r`` is ``system/*.rs``, not both)."""
    return [s for i, s in enumerate(scopes)
            if not any(j != i and _subsumes(o, s) and (not _subsumes(s, o) or j < i)
                       for j, o in enumerate(scopes))]


def allows(scopes: Sequence[Scope], resource_type: str, interaction: str) -> list[Scope]:
    """The scopes granting ``interaction`` (one of c, r, u, d, s) on ``resource_type``.

    Several matches are alternatives (a resource is allowed if any of their criteria match); a
    match without ``params`` allows every instance. ``*`` never matches AuditEvent.
    """
    return [s for s in scopes if interaction in s.interactions and s.covers_type(resource_type)]
