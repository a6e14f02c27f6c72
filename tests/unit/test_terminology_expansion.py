"""ValueSet expansion, CodeSystem hierarchy and ConceptMap translation on hand-written resources."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.terminology.codesystem import CodeSystemIndex
from fhir_server.terminology.conceptmap import ConceptMaps
from fhir_server.terminology.service import Terminology

S = "http://example.org/cs/animals"
VS = "http://example.org/vs/"

ANIMALS: dict[str, Any] = {
    "resourceType": "CodeSystem", "url": S, "version": "2", "content": "complete",
    "property": [{"code": "legs", "type": "integer"}, {"code": "wild", "type": "boolean"},
                 {"code": "status", "type": "code"}],
    "concept": [
        {"code": "animal", "display": "Animal", "concept": [
            {"code": "mammal", "display": "Mammal", "concept": [
                {"code": "dog", "display": "Dog", "designation": [{"language": "zh", "value": "狗"}],
                 "property": [{"code": "legs", "valueInteger": 4}, {"code": "wild", "valueBoolean": False}]},
                {"code": "wolf", "display": "Wolf",
                 "property": [{"code": "legs", "valueInteger": 4}, {"code": "wild", "valueBoolean": True}]},
                {"code": "whale", "display": "Whale",
                 "property": [{"code": "legs", "valueInteger": 0}, {"code": "wild", "valueBoolean": True},
                              {"code": "status", "valueCode": "retired"}]},
            ]},
            {"code": "bird", "display": "Bird", "concept": [
                {"code": "hen", "display": "Hen", "property": [{"code": "legs", "valueInteger": 2}]},
            ]},
        ]},
        # a second parent by property: a bat is also a "flyer"
        {"code": "flyer", "display": "Flyer"},
        {"code": "bat", "display": "Bat", "property": [{"code": "parent", "valueCode": "mammal"},
                                                       {"code": "parent", "valueCode": "flyer"}]},
    ],
}
FRAGMENT = {"resourceType": "CodeSystem", "url": "http://example.org/cs/part", "content": "fragment",
            "concept": [{"code": "a"}]}


def vs(name: str, *include: dict[str, Any], exclude: tuple[dict[str, Any], ...] = (),
       **extra: Any) -> dict[str, Any]:
    compose: dict[str, Any] = {"include": list(include)}
    if exclude:
        compose["exclude"] = list(exclude)
    return {"resourceType": "ValueSet", "url": VS + name, "compose": compose, **extra}


def flt(prop: str, op: str, value: str) -> dict[str, Any]:
    return {"system": S, "filter": [{"property": prop, "op": op, "value": value}]}


VALUE_SETS = [
    vs("all", {"system": S}),
    vs("mammals", flt("concept", "is-a", "mammal")),
    vs("below-mammal", flt("concept", "descendent-of", "mammal")),
    vs("not-birds", flt("concept", "is-not-a", "bird")),
    vs("above-dog", flt("concept", "generalizes", "dog")),
    vs("four-legs", flt("legs", "=", "4")),
    vs("wild-mammals", {"system": S, "filter": [
        {"property": "concept", "op": "is-a", "value": "mammal"},
        {"property": "wild", "op": "=", "value": "true"}]}),
    vs("w-regex", flt("code", "regex", "w.*")),
    vs("in-list", flt("code", "in", "dog,hen,nope")),
    vs("legs-known", flt("legs", "exists", "true")),
    vs("parent-mammal", flt("parent", "=", "mammal")),
    vs("listed", {"system": S, "concept": [{"code": "dog", "display": "Doggy"}, {"code": "unicorn"}]}),
    vs("mammals-no-whale", flt("concept", "is-a", "mammal"),
       exclude=({"system": S, "concept": [{"code": "whale"}]},)),
    vs("import", {"valueSet": [VS + "mammals", VS + "four-legs"]}),
    vs("import-and-system", {"system": S, "concept": [{"code": "dog"}, {"code": "hen"}],
                             "valueSet": [VS + "mammals"]}),
    vs("union", {"valueSet": [VS + "w-regex"]}, {"system": S, "concept": [{"code": "hen"}]}),
    vs("active-only", flt("concept", "is-a", "mammal")),
    vs("unknown-system", {"system": "http://snomed.info/sct"}),
    vs("unknown-system-listed", {"system": "http://snomed.info/sct", "concept": [{"code": "123"}]}),
    vs("fragment-whole", {"system": "http://example.org/cs/part"}),
    vs("bad-filter", flt("concept", "child-of", "x")),
    vs("bad-property", flt("colour", "=", "red")),
    vs("imports-unknown", {"valueSet": ["http://example.org/vs/nowhere"]}),
    vs("cycle-a", {"valueSet": [VS + "cycle-b"]}),
    vs("cycle-b", {"valueSet": [VS + "cycle-a"]}),
    {"resourceType": "ValueSet", "url": VS + "expanded", "version": "1",
     "expansion": {"contains": [{"system": S, "code": "dog", "display": "Dog"},
                                {"system": S, "code": "wolf", "contains": [{"system": S, "code": "hen"}]}]}},
]
VALUE_SETS[16]["compose"]["inactive"] = False


@pytest.fixture(scope="module")
def term() -> Terminology:
    return Terminology([ANIMALS, FRAGMENT], VALUE_SETS, [])


def codes(term: Terminology, name: str) -> set[str] | None:
    found = term.codes_in(VS + name)
    return None if found is None else {c for _, c in found}


@pytest.mark.parametrize(("name", "expected"), [
    ("all", {"animal", "mammal", "dog", "wolf", "whale", "bird", "hen", "flyer", "bat"}),
    ("mammals", {"mammal", "dog", "wolf", "whale", "bat"}),
    ("below-mammal", {"dog", "wolf", "whale", "bat"}),
    ("not-birds", {"animal", "mammal", "dog", "wolf", "whale", "flyer", "bat"}),
    ("above-dog", {"dog", "mammal", "animal"}),
    ("four-legs", {"dog", "wolf"}),
    ("wild-mammals", {"wolf", "whale"}),
    ("w-regex", {"wolf", "whale"}),
    ("in-list", {"dog", "hen"}),
    ("legs-known", {"dog", "wolf", "whale", "hen"}),
    ("parent-mammal", {"dog", "wolf", "whale", "bat"}),
    ("listed", {"dog"}),  # unicorn is not a code of the (complete) system
    ("mammals-no-whale", {"mammal", "dog", "wolf", "bat"}),
    ("import", {"dog", "wolf"}),
    ("import-and-system", {"dog"}),
    ("union", {"wolf", "whale", "hen"}),
    ("active-only", {"mammal", "dog", "wolf", "bat"}),  # compose.inactive = false drops the whale
    ("unknown-system-listed", {"123"}),
    ("expanded", {"dog", "wolf", "hen"}),
])
def test_expansions(term: Terminology, name: str, expected: set[str]) -> None:
    assert codes(term, name) == expected


@pytest.mark.parametrize(("name", "why"), [
    ("unknown-system", "http://snomed.info/sct is not known"),
    ("fragment-whole", "not complete here"),
    ("bad-filter", "child-of"),
    ("bad-property", "no property 'colour'"),
    ("imports-unknown", "nowhere is not known"),
    ("cycle-a", "imports itself"),
    ("nope", "is not known"),
])
def test_not_expandable_is_none_with_a_reason(term: Terminology, name: str, why: str) -> None:
    assert term.codes_in(VS + name) is None
    assert term.validate_code(VS + name, S, "dog") is None
    result = term.check_code(VS + name, S, "dog")
    assert result.result is None and result.message is not None and why in result.message


def test_validate_code(term: Terminology) -> None:
    assert term.validate_code(VS + "mammals", S, "dog") is True
    assert term.validate_code(VS + "mammals", S, "hen") is False
    assert term.validate_code(VS + "mammals", "http://other", "dog") is False
    assert term.validate_code(VS + "mammals", None, "dog") is True  # any system
    assert term.validate_code(VS + "mammals", S, "dog", "Dog") is True
    assert term.validate_code(VS + "mammals", S, "dog", " dog ") is True  # case and spaces
    assert term.validate_code(VS + "mammals", S, "dog", "狗") is True  # a designation
    assert term.validate_code(VS + "mammals", S, "dog", "Cat") is False
    assert term.validate_code(VS + "listed", S, "dog", "Doggy") is True  # the ValueSet's display
    assert term.validate_code(VS + "unknown-system-listed", "http://snomed.info/sct", "123") is True
    assert term.validate_code(VS + "unknown-system-listed", "http://snomed.info/sct", "124") is False


def test_versions(term: Terminology) -> None:
    assert term.validate_code(VS + "expanded|1", S, "dog") is True
    assert term.validate_code(VS + "expanded|2", S, "dog") is None  # another version: unknown here
    assert term.validate_code(VS + "mammals|9", S, "dog") is True  # no version on the ValueSet
    assert term.code_system(S + "|2") is not None and term.code_system(S + "|3") is None


def test_hierarchy_and_subsumption() -> None:
    cs = CodeSystemIndex(ANIMALS)
    assert cs.descendants("mammal") == ["dog", "wolf", "whale", "bat"]
    assert set(cs.ancestors("bat")) == {"mammal", "flyer", "animal"}
    assert cs.ancestors("animal") == [] and cs.descendants("nope") == []
    assert cs.subsumes("animal", "dog") == "subsumes"
    assert cs.subsumes("dog", "mammal") == "subsumed-by"
    assert cs.subsumes("dog", "dog") == "equivalent"
    assert cs.subsumes("dog", "hen") == "not-subsumed"
    assert cs.subsumes("flyer", "bat") == "subsumes"
    assert cs.concepts["whale"].inactive and not cs.concepts["wolf"].inactive


def test_lookup_and_descendants(term: Terminology) -> None:
    info = term.lookup(S, "dog")
    assert info is not None
    assert info["display"] == "Dog" and info["version"] == "2"
    assert info["designation"] == [{"language": "zh", "value": "狗"}]
    props = {(p["code"], next(v for k, v in p.items() if k != "code")) for p in info["property"]}
    assert {("legs", 4), ("wild", False), ("parent", "mammal"), ("inactive", False)} <= props
    assert term.lookup(S, "cat") is None and term.lookup("http://nope", "dog") is None
    assert term.descendants(S, "bird") == frozenset({"bird", "hen"})
    assert term.ancestors(S, "hen") == frozenset({"hen", "bird", "animal"})
    assert term.descendants(S, "cat") is None and term.descendants("http://nope", "x") is None
    assert term.systems_with("dog") == [S]
    assert term.systems_with("a") == []  # only in a fragment


def test_concept_maps() -> None:
    maps = ConceptMaps([{
        "resourceType": "ConceptMap", "url": "http://example.org/cm/1",
        "sourceCanonical": "http://example.org/vs/a", "targetCanonical": "http://example.org/vs/b",
        "group": [{"source": S, "target": "http://t", "element": [
            {"code": "dog", "target": [{"code": "D", "display": "Dee", "equivalence": "equivalent"},
                                       {"code": "C", "equivalence": "wider"}]},
            {"code": "hen", "target": [{"equivalence": "unmatched"}]}]}]}])
    found = maps.translate(S, "dog")
    assert [(t.code, t.equivalence, t.display) for t in found] == [("D", "equivalent", "Dee"),
                                                                   ("C", "wider", None)]
    assert maps.translate(S, "dog", target="http://example.org/vs/b") == found
    assert maps.translate(S, "dog", target="http://t") == found  # a target system also matches
    assert maps.translate(S, "dog", target="http://example.org/vs/c") == []
    assert maps.translate(S, "dog", source="http://example.org/vs/a|1.0") == found
    assert maps.translate(S, "dog", url="http://example.org/cm/2") == []
    assert maps.translate("http://other", "dog") == []
    hen = maps.translate(S, "hen")
    assert len(hen) == 1 and not hen[0].positive
