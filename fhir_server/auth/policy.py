"""Access decisions: a token's SMART scopes and its client's data policy, compiled into IR filters.

Pure (no I/O). An :class:`Access` answers, per resource type:

* may the client do interaction ``c``/``r``/``u``/``d``/``s`` at all (:meth:`Access.allowed`; a
  ``False`` is a 403), and
* which instances (:meth:`Access.visible` for reads and searches, :meth:`Access.writable` for
  writes): ``None`` means every instance, otherwise an IR condition that the store ANDs into the
  query (:mod:`fhir_server.auth.guard`), so rows outside it never leave the store.

A filter is *scopes ∩ policy*: the granular criteria of the scopes granting the interaction (several
scopes: any of them; one without criteria: no restriction), AND the data-policy rules of the type
(several rules: any of them). Policy syntax is in :data:`fhir_server.auth.roles.POLICY_SYNTAX`;
``write:`` rules restrict writes on top of the read rules (a client never writes what it cannot
read). Filters are compiled once per token (the :class:`Access` is cached by the token hash).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from fhir_server.auth.grants import Grant
from fhir_server.auth.scopes import allows
from fhir_server.errors import FhirError, Forbidden
from fhir_server.search import ir
from fhir_server.search.compartments import compartment_params, compartment_types
from fhir_server.search.query import build_search

READ_LETTERS = ("r", "s")
NOTHING: ir.Node = ir.Or()  # false: no instance
OWNER_TAG_PATH = "CodeSystem/record-owner"  # under the canonical base
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
             "code": "SUBSETTED", "display": "subsetted"}

_ALLOWED_CACHE = 4096  # decisions remembered per Access (the grant's scopes never change)
_RULE = re.compile(r"(?:(?P<prefix>write|compartment):)?(?P<type>\*|[A-Z][A-Za-z]+)\?(?P<query>.+)")

#: Fields an insurer sees (DOMAIN.md C.7: identifiers to reconcile claims, no clinical detail).
_INSURER_FIELDS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"resourceType", "id", "meta", "identifier", "active", "name", "gender",
                          "birthDate"}),
    "Encounter": frozenset({"resourceType", "id", "meta", "extension", "identifier", "status",
                            "class", "type", "serviceType", "priority", "subject", "episodeOfCare",
                            "basedOn", "period", "length", "serviceProvider", "partOf"}),
}
#: Identifier systems an insurer or MCH programme never sees (the card system's master index).
_HIDDEN_IDENTIFIER_SUFFIXES = ("/sid/ehc-mindex",)


class Access:
    """What one request may see and do. ``Access(None, ...)`` (auth off) allows everything."""

    def __init__(self, grant: Grant | None, canonical_base: str) -> None:
        self.grant = grant
        self.canonical = canonical_base.rstrip("/")
        self._visible: dict[str, ir.Node | None] = {}
        self._writable: dict[tuple[str, str], ir.Node | None] = {}
        self._allowed: dict[str, bool] = {}  # "Type.letter" -> a scope grants it

    # -- identity ---------------------------------------------------------------------------------
    @property
    def restricted(self) -> bool:
        return self.grant is not None

    @property
    def client_id(self) -> str | None:
        return self.grant.client_id if self.grant else None

    @property
    def organization(self) -> str | None:
        return self.grant.organization if self.grant else None

    @property
    def owner_tag(self) -> dict[str, str] | None:
        """The ``meta.tag`` marking records written by this client's organisation."""
        if self.grant is None:
            return None
        return {"system": f"{self.canonical}/{OWNER_TAG_PATH}",
                "code": self.grant.organization.partition("/")[2]}

    # -- interactions -----------------------------------------------------------------------------
    def allowed(self, rtype: str, letter: str) -> bool:
        if self.grant is None:
            return True
        key = rtype + "." + letter
        found = self._allowed.get(key)
        if found is None:
            found = bool(allows(self.grant.scopes, rtype, letter))
            if len(self._allowed) < _ALLOWED_CACHE:  # types are checked names: a bounded set
                self._allowed[key] = found
        return found

    def require(self, rtype: str, letter: str) -> None:
        """Raise 403 unless a scope grants ``letter`` on ``rtype``."""
        if not self.allowed(rtype, letter):
            verb = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}[letter]
            raise Forbidden(f"The access token does not allow you to {verb} {rtype} resources"
                            f" (granted: {self.grant.scope if self.grant else ''})")

    # -- instances --------------------------------------------------------------------------------
    def visible(self, rtype: str) -> ir.Node | None:
        """Instances of ``rtype`` the client may read or find (None: all)."""
        if self.grant is None:
            return None
        if rtype not in self._visible:
            scopes = self._scope_part(rtype, READ_LETTERS)
            self._visible[rtype] = _and(scopes, self._rules(rtype, write=False))
        return self._visible[rtype]

    def writable(self, rtype: str, letter: str) -> ir.Node | None:
        """Instances of ``rtype`` the client may create/update/delete (``letter``; None: all)."""
        if self.grant is None:
            return None
        key = (rtype, letter)
        if key not in self._writable:
            scopes = self._scope_part(rtype, (letter,))
            rules = _and(self._rules(rtype, write=False), self._rules(rtype, write=True))
            self._writable[key] = _and(scopes, rules)
        return self._writable[key]

    def _scope_part(self, rtype: str, letters: tuple[str, ...]) -> ir.Node | None:
        assert self.grant is not None
        granting = [s for letter in letters for s in allows(self.grant.scopes, rtype, letter)]
        if not granting:
            return NOTHING
        if any(not s.params for s in granting):
            return None
        return ir.any_of(_criteria(rtype, s.params) for s in granting)

    def _rules(self, rtype: str, *, write: bool) -> ir.Node | None:
        """The policy rules for ``rtype`` (read rules, or the ``write:`` ones): any may match."""
        assert self.grant is not None
        found: list[ir.Node] = []
        for text in self.grant.policy:
            m = _RULE.fullmatch(self._expand(text))
            if m is None:  # validated at registration; an unreadable rule denies, never widens
                return NOTHING
            prefix, target, query = m["prefix"], m["type"], m["query"]
            if (prefix == "write") != write:
                continue
            pairs = parse_qsl(query, keep_blank_values=True)
            if prefix == "compartment":
                if target == rtype:
                    found.append(_criteria(rtype, pairs))
                elif rtype in compartment_types(target):
                    inner = _criteria(target, pairs)
                    found.append(ir.any_of(ir.Chain(p, target, inner)
                                           for p in compartment_params(target, rtype)))
            elif target in ("*", rtype):
                found.append(_criteria(rtype, pairs))
        return ir.any_of(found) if found else None

    def _expand(self, rule: str) -> str:
        assert self.grant is not None
        tag = self.owner_tag or {}
        return (rule.replace("{organization}", self.grant.organization)
                .replace("{record-owner}", f"{tag.get('system')}|{tag.get('code')}")
                .replace("{canonical}", self.canonical))

    # -- what is returned -------------------------------------------------------------------------
    @cached_property
    def masker(self) -> Callable[[str, dict[str, Any]], dict[str, Any] | None] | None:
        """A function removing what this role may not see from a resource (None: nothing)."""
        if self.grant is None or self.grant.role not in ("insurer", "mch"):
            return None
        fields = _INSURER_FIELDS if self.grant.role == "insurer" else {}

        def mask(rtype: str, doc: dict[str, Any]) -> dict[str, Any] | None:
            keep = fields.get(rtype)
            out = {k: v for k, v in doc.items() if keep is None or k in keep}
            hidden = [i for i in out.get("identifier", []) if isinstance(i, dict)
                      and str(i.get("system", "")).endswith(_HIDDEN_IDENTIFIER_SUFFIXES)]
            if hidden:
                out["identifier"] = [i for i in out["identifier"] if i not in hidden]
            if len(out) == len(doc) and not hidden:
                return None  # unchanged
            meta = dict(out.get("meta", {}))
            meta["tag"] = [*meta.get("tag", []), SUBSETTED]
            out["meta"] = meta
            return out
        return mask


def _criteria(rtype: str, pairs: Any) -> ir.Node:
    try:
        return _one_resource_per_link(build_search((rtype,), list(pairs), strict=True).where)
    except FhirError:  # checked at registration (check_rule); a rule that no longer compiles denies
        return NOTHING


def _one_resource_per_link(node: ir.Node) -> ir.Node:
    """In a policy rule, ``_has`` conditions through the same link describe ONE resource:
    ``_has:ServiceRequest:subject:performer=X&_has:ServiceRequest:subject:status=active`` is "a
    ServiceRequest with performer X that is active" (plain FHIR search would accept two different
    ServiceRequests, which would let a completed referral to X and an active one elsewhere open a
    patient's record)."""
    if not isinstance(node, ir.And):
        return node
    merged: dict[tuple[str, str], int] = {}
    items: list[ir.Node] = []
    for item in node.items:
        if isinstance(item, ir.Has):
            key = (item.type, item.param)
            if key in merged:
                first = items[merged[key]]
                assert isinstance(first, ir.Has)
                items[merged[key]] = ir.Has(item.type, item.param,
                                            ir.all_of((first.query, item.query)))
                continue
            merged[key] = len(items)
        items.append(item)
    return ir.all_of(items)


def check_rule(rule: str) -> None:
    """Raise ValueError unless ``rule`` compiles for the type(s) it names (placeholders filled
    with sample values); used when a client is registered."""
    sample = Access(None, "https://example.org/fhir")
    text = (rule.replace("{organization}", "Organization/x")
            .replace("{record-owner}", f"{sample.canonical}/{OWNER_TAG_PATH}|x")
            .replace("{canonical}", sample.canonical))
    m = _RULE.fullmatch(text)
    if m is None:
        raise ValueError(f"policy {rule!r} is not of the form [write:|compartment:]Type?query")
    rtype = "Basic" if m["type"] == "*" else m["type"]
    try:
        build_search((rtype,), parse_qsl(m["query"], keep_blank_values=True), strict=True)
    except FhirError as exc:
        raise ValueError(f"policy {rule!r}: {exc.message}") from None


def _and(a: ir.Node | None, b: ir.Node | None) -> ir.Node | None:
    if a is None:
        return b
    if b is None:
        return a
    if NOTHING in (a, b):
        return NOTHING
    return ir.all_of((a, b))
