"""A StructureDefinition snapshot compiled into a tree of :class:`Node` the validator walks.

Compiled once per profile: JSON property names of each element (choice types resolved against the
R4 structure tables of ``fhir/structure.py``), cardinalities, fixed and pattern values, bindings,
invariants (native or fhirpathpy, compiled), Reference target types, extension profiles and one
matcher per slice. Only what the profile adds to the base definition is kept: base cardinalities
are the structure validator's, base invariants and required bindings ``base_rules.py``'s. Nodes
with nothing to check below them are pruned, so the walk only visits constrained elements.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir_server.fhir import structure
from fhir_server.fhir.structure import TypeInfo
from fhir_server.profiles.invariants import Invariant, compile_invariant
from fhir_server.profiles.matching import equals, matches, navigate, reference_type

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
_MISSING: Any = object()
_SKIP_KEYS = frozenset({"ele-1", "ext-1"})


@dataclass(eq=False, slots=True)
class Node:
    id: str
    name: str  # element name: ``identifier``, ``value[x]``
    slice_name: str | None = None
    min: int = 0
    max: int | None = None  # None: *
    check_card: bool = False
    names: tuple[str, ...] = ()  # allowed JSON property names
    forbidden: tuple[str, ...] = ()  # JSON names of types the profile removed (choice elements)
    codes: dict[str, str] = field(default_factory=dict)  # JSON name -> type code
    fixed: Any = _MISSING
    pattern: Any = _MISSING
    binding: tuple[str, str] | None = None  # (strength, value set) added by the profile
    invariants: list[Invariant] = field(default_factory=list)
    targets: frozenset[str] | None = None  # allowed Reference target types (profile-restricted)
    all_targets: frozenset[str] = frozenset()
    ext_url: str | None = None  # an extension slice: the extension's profile
    discriminators: tuple[tuple[str, tuple[str, ...], bool], ...] = ()  # (type, path, resolve)
    closed: bool = False
    slices: list[Node] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    info: TypeInfo | None = None
    type_name: str | None = None
    matcher: Callable[[Any], bool] | None = None
    #: one value discriminator on a property (``system``, ``url``): property and value -> slice
    slice_key: str | None = None
    slice_index: dict[str, int] | None = None
    value_checks: bool = True  # False: only the children need looking at

    @property
    def has_fixed(self) -> bool:
        return self.fixed is not _MISSING

    @property
    def has_pattern(self) -> bool:
        return self.pattern is not _MISSING

    def own_checks(self) -> bool:
        return bool(self.check_card or self.has_fixed or self.has_pattern or self.binding
                    or self.invariants or self.targets is not None or self.ext_url
                    or self.forbidden or self.slices)


@dataclass(frozen=True, slots=True)
class Profile:
    url: str
    name: str
    type: str
    root: Node
    resource: Mapping[str, Any]  # the StructureDefinition


def _max(value: Any) -> int | None:
    return None if value in (None, "*") else int(value)


def _targets(types: list[dict[str, Any]], profile_types: Mapping[str, str]) -> frozenset[str]:
    out = set()
    for t in types:
        for tp in t.get("targetProfile", ()):
            out.add(profile_types.get(tp) or tp.rsplit("/", 1)[-1])
    return frozenset(out)


class _Compiler:
    def __init__(self, sd: Mapping[str, Any], base: str, profile_types: Mapping[str, str]) -> None:
        self.sd, self.base, self.profile_types = sd, base, profile_types
        self.url = str(sd.get("url"))
        diff = sd.get("differential", {}).get("element", ())
        self.diff_binding = {e["id"] for e in diff if "binding" in e}
        self.diff_type = {e["id"] for e in diff if "type" in e}

    def compile(self) -> Node:
        nodes: dict[str, Node] = {}
        order: list[Node] = []
        for e in self.sd["snapshot"]["element"]:
            eid: str = e["id"]
            head, _, last = eid.rpartition(".")
            name, _, slice_name = last.partition(":")
            if not head:
                node = Node(eid, name, info=structure.type_info(self.sd["type"]),
                            type_name=self.sd["type"])
                self._common(node, e)
                nodes[eid] = node
                order.append(node)
                continue
            owner = nodes.get(f"{head}.{name}") if slice_name else nodes.get(head)
            parent = nodes.get(head) if not slice_name else None
            if owner is None:
                continue
            info = (parent.info if parent is not None else self._parent_info(nodes, head))
            child = self._element(e, name, slice_name or None, info)
            if child is None:
                continue
            nodes[eid] = child
            order.append(child)
            if slice_name:
                owner.slices.append(child)
            else:
                owner.children.append(child)
        for node in reversed(order):  # bottom-up: prune, then build the slice matchers
            for s in node.slices:
                s.matcher = self._matcher(node, s)
            self._index(node)
            node.children = [c for c in node.children if c.own_checks() or c.children]
            node.value_checks = bool(node.has_fixed or node.has_pattern or node.binding
                                     or node.targets is not None or node.invariants
                                     or node.ext_url)
        return order[0]

    def _parent_info(self, nodes: dict[str, Node], head: str) -> TypeInfo | None:
        parent = nodes.get(head)
        return parent.info if parent is not None else None

    def _element(self, e: dict[str, Any], name: str, slice_name: str | None,
                 parent_info: TypeInfo | None) -> Node | None:
        if parent_info is None:
            return None
        slots = parent_info.elements.get(name)
        if not slots:
            return None
        node = Node(e["id"], name, slice_name)
        type_codes = {t.get("code") for t in e.get("type", ())}
        allowed = [s for s in slots if s.choice is None or s.code in type_codes]
        node.names = tuple(s.name for s in allowed) or tuple(s.name for s in slots)
        node.forbidden = tuple(s.name for s in slots if s not in allowed) if allowed else ()
        node.codes = {s.name: s.code for s in slots}
        if len(allowed) == 1 and allowed[0].info is not None:
            node.info = allowed[0].info
            node.type_name = allowed[0].info.name
        elif len(allowed) == 1:
            node.type_name = allowed[0].code
        base = e.get("base") or {}
        node.min, node.max = int(e.get("min", 0)), _max(e.get("max"))
        base_min, base_max = int(base.get("min", 0)), _max(base.get("max", "*"))
        node.check_card = bool(slice_name) or node.min > base_min or (
            node.max is not None and (base_max is None or node.max < base_max))
        self._common(node, e)
        types = e.get("type", ())
        node.all_targets = _targets(list(types), self.profile_types)
        if e["id"] in self.diff_type and node.all_targets:
            node.targets = node.all_targets
        if len(types) == 1 and types[0].get("code") == "Extension" and types[0].get("profile"):
            node.ext_url = types[0]["profile"][0]
        return node

    def _common(self, node: Node, e: dict[str, Any]) -> None:
        for key, value in e.items():
            if key.startswith("fixed"):
                node.fixed = value
            elif key.startswith("pattern"):
                node.pattern = value
        bind = e.get("binding") or {}
        if e["id"] in self.diff_binding and bind.get("strength") in ("required", "extensible") \
                and bind.get("valueSet"):
            node.binding = (bind["strength"], str(bind["valueSet"]))
        for c in e.get("constraint", ()):
            source = str(c.get("source") or "")
            if c.get("key") in _SKIP_KEYS or source.startswith(CORE_SD):
                continue
            inv = compile_invariant(c, node.type_name, self.base)
            if inv is not None:
                node.invariants.append(inv)
        slicing = e.get("slicing")
        if slicing:
            discs = []
            for d in slicing.get("discriminator", ()):
                path = str(d.get("path", "$this"))
                resolve = path.endswith(".resolve()") or path == "resolve()"
                path = path.removesuffix("resolve()").rstrip(".")
                steps = () if path in ("", "$this") else tuple(path.split("."))
                discs.append((str(d.get("type")), steps, resolve))
            node.discriminators = tuple(discs)
            node.closed = slicing.get("rules") == "closed"

    def _index(self, owner: Node) -> None:
        """A dict lookup instead of matchers when slicing is by one value on one property."""
        if not owner.slices or len(owner.discriminators) != 1:
            return
        kind, steps, resolve = owner.discriminators[0]
        if kind != "value" or len(steps) != 1 or resolve:
            return
        index: dict[str, int] = {}
        for i, s in enumerate(owner.slices):
            expected = _expected(s, steps)
            if type(expected) is not str or expected in index:
                return
            index[expected] = i
        owner.slice_key, owner.slice_index = steps[0], index
        for s in owner.slices:  # matched by that value: its fixed value there holds already
            s.children = [c for c in s.children if not (
                c.name == steps[0] and c.has_fixed and c.min <= 1 and not (
                    c.invariants or c.binding or c.children or c.slices or c.pattern
                    is not _MISSING or c.targets is not None or c.forbidden))]

    def _matcher(self, owner: Node, s: Node) -> Callable[[Any], bool]:
        tests: list[Callable[[Any], bool]] = []
        for kind, steps, resolve in owner.discriminators:
            target = _descend(s, steps)
            if kind == "type" and resolve and target is not None and target.all_targets:
                tests.append(_type_test(steps, target.all_targets))
            elif kind in ("value", "pattern"):
                expected = _expected(s, steps)
                if expected is _MISSING:
                    continue
                exact = (target is not None and target.has_fixed) or steps == ("url",)
                tests.append(_value_test(steps, expected, equals if exact else matches))
        if not tests:
            return lambda item: False
        return lambda item: all(t(item) for t in tests)


def _type_test(steps: tuple[str, ...], allowed: frozenset[str]) -> Callable[[Any], bool]:
    def test(item: Any) -> bool:
        return any(reference_type(r) in allowed for r in navigate(item, steps))

    return test


def _value_test(steps: tuple[str, ...], expected: Any,
                compare: Callable[[Any, Any], bool]) -> Callable[[Any], bool]:
    def test(item: Any) -> bool:
        return any(compare(v, expected) for v in navigate(item, steps))

    return test


def _expected(s: Node, steps: tuple[str, ...]) -> Any:
    """The fixed or pattern value a slice has at a discriminator path (``url``: its extension)."""
    target = _descend(s, steps)
    if target is not None and (target.has_fixed or target.has_pattern):
        return target.fixed if target.has_fixed else target.pattern
    if steps == ("url",) and s.ext_url:
        return s.ext_url
    return _MISSING


def _descend(node: Node, steps: tuple[str, ...]) -> Node | None:
    current: Node | None = node
    for step in steps:
        if current is None:
            return None
        current = next((c for c in current.children if c.name == step), None)
    return current


def compile_profile(sd: Mapping[str, Any], base: str, profile_types: Mapping[str, str]) -> Profile:
    root = _Compiler(sd, base, profile_types).compile()
    return Profile(str(sd.get("url")), str(sd.get("name") or sd.get("id")), str(sd.get("type")),
                   root, sd)
