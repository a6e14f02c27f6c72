"""The IR of the token modifiers :in, :not-in, :below, :above (golden s-expressions)."""

from __future__ import annotations

import pytest

from fhir_server.errors import InvalidRequest
from fhir_server.search.query import build_search
from fhir_server.terminology.service import Terminology

S = "http://example.org/cs"
TERM = Terminology(
    [{"resourceType": "CodeSystem", "url": S, "content": "complete", "concept": [
        {"code": "a", "concept": [{"code": "a1"}, {"code": "a2", "concept": [{"code": "a2x"}]}]},
        {"code": "b"}]}],
    [{"resourceType": "ValueSet", "url": "http://example.org/vs/a", "compose": {"include": [
        {"system": S, "filter": [{"property": "concept", "op": "is-a", "value": "a2"}]},
        {"system": "http://other", "concept": [{"code": "z"}]}]}},
     {"resourceType": "ValueSet", "url": "http://example.org/vs/empty", "compose": {"include": [
         {"system": S, "concept": [{"code": "nope"}]}]}}],
    [])
SYS = f'(or (eq system "{S}") (null system))'


def where(query: str, rtype: str = "Observation") -> str:
    key, _, value = query.partition("=")
    return str(build_search((rtype,), [(key, value)], terminology=TERM).where)


@pytest.mark.parametrize(("query", "expected"), [
    ("code:in=http://example.org/vs/a",
     f'(or (entry code (and {SYS} (in code "a2" "a2x")))'
     ' (entry code (and (or (eq system "http://other") (null system)) (eq code "z"))))'),
    ("code:not-in=http://example.org/vs/a",
     f'(not (or (entry code (and {SYS} (in code "a2" "a2x")))'
     ' (entry code (and (or (eq system "http://other") (null system)) (eq code "z")))))'),
    ("code:in=http://example.org/vs/empty", "(or)"),
    ("code:not-in=http://example.org/vs/empty", "(not (or))"),
    (f"code:below={S}|a", f'(entry code (and {SYS} (in code "a" "a1" "a2" "a2x")))'),
    (f"code:above={S}|a2x", f'(entry code (and {SYS} (in code "a" "a2" "a2x")))'),
    ("code:below=b", f'(entry code (and {SYS} (eq code "b")))'),
    (f"code:below={S}|a1,b", f'(or (entry code (and {SYS} (eq code "a1")))'
                             f' (entry code (and {SYS} (eq code "b"))))'),
])
def test_ir(query: str, expected: str) -> None:
    assert where(query) == expected


def test_without_a_terminology_service_the_modifiers_are_a_400() -> None:
    with pytest.raises(InvalidRequest, match="needs a terminology service") as caught:
        build_search(("Observation",), [("code:in", "http://example.org/vs/a")])
    assert caught.value.issues[0].expression == ("code:in",)
