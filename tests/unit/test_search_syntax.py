"""Search syntax: query pairs -> raw parameters and result parameters (expectations by hand)."""

from __future__ import annotations

import pytest

from fhir_server.errors import InvalidRequest
from fhir_server.search.syntax import (
    ChainLink,
    HasLink,
    Include,
    ParsedQuery,
    RawParameter,
    ResultParameters,
    SortKey,
    parse_query,
    split_prefix,
    split_raw,
    split_values,
    unescape,
)

L = ChainLink
H = HasLink


def one(key: str, value: str) -> RawParameter:
    parsed = parse_query([(key, value)])
    assert len(parsed.parameters) == 1
    return parsed.parameters[0]


RAW = [
    # key, value, name, modifier, chain, has, values
    ("name", "wang", "name", None, (), (), ("wang",)),
    ("name", "wang,li", "name", None, (), (), ("wang", "li")),
    ("name:exact", "Wang", "name", "exact", (), (), ("Wang",)),
    ("name:contains", "an", "name", "contains", (), (), ("an",)),
    ("code:text", "blood pressure", "code", "text", (), (), ("blood pressure",)),
    ("gender:not", "male", "gender", "not", (), (), ("male",)),
    ("gender:missing", "true", "gender", "missing", (), (), ("true",)),
    ("code:above", "http://snomed.info/sct|235862008", "code", "above", (), (),
     ("http://snomed.info/sct|235862008",)),
    ("code:below", "1234", "code", "below", (), (), ("1234",)),
    ("code:in", "http://example.org/vs", "code", "in", (), (), ("http://example.org/vs",)),
    ("code:not-in", "http://example.org/vs", "code", "not-in", (), (), ("http://example.org/vs",)),
    ("identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053",
     "identifier", "of-type", (), (), ("http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053",)),
    ("subject:identifier", "urn:oid:1.2|123", "subject", "identifier", (), (), ("urn:oid:1.2|123",)),
    ("subject:Patient", "123", "subject", "Patient", (), (), ("123",)),
    ("_id", "a,b,c", "_id", None, (), (), ("a", "b", "c")),
    ("_lastUpdated", "ge2020-01-01", "_lastUpdated", None, (), (), ("ge2020-01-01",)),
    ("general-practitioner", "Practitioner/1", "general-practitioner", None, (), (),
     ("Practitioner/1",)),
    ("value-quantity", "5.4|http://unitsofmeasure.org|mg", "value-quantity", None, (), (),
     ("5.4|http://unitsofmeasure.org|mg",)),
    # chains
    ("subject.name", "wang", "subject", None, (L("name"),), (), ("wang",)),
    ("subject:Patient.name", "wang", "subject", "Patient", (L("name"),), (), ("wang",)),
    ("general-practitioner.name", "li", "general-practitioner", None, (L("name"),), (), ("li",)),
    ("subject:Patient.name:exact", "Wang", "subject", "Patient", (L("name", "exact"),), (),
     ("Wang",)),
    ("a.b:X.c", "v", "a", None, (L("b", "X"), L("c")), (), ("v",)),
    ("patient.organization:Organization.partof.name:contains", "hosp", "patient", None,
     (L("organization", "Organization"), L("partof"), L("name", "contains")), (), ("hosp",)),
    ("subject.gender:missing", "false", "subject", None, (L("gender", "missing"),), (),
     ("false",)),
    # _has
    ("_has:Observation:patient:code", "1234-5", "code", None, (), (H("Observation", "patient"),),
     ("1234-5",)),
    ("_has:Observation:patient:code:text", "glucose", "code", "text", (),
     (H("Observation", "patient"),), ("glucose",)),
    ("_has:Observation:patient:_has:AuditEvent:entity:user", "MyUserId", "user", None, (),
     (H("Observation", "patient"), H("AuditEvent", "entity")), ("MyUserId",)),
    ("_has:Observation:subject:performer.name", "li", "performer", None, (L("name"),),
     (H("Observation", "subject"),), ("li",)),
    # escapes: split on unescaped commas only, the escapes stay for the type module
    ("name", r"a\,b,c", "name", None, (), (), (r"a\,b", "c")),
    ("code", r"http://x|a\|b", "code", None, (), (), (r"http://x|a\|b",)),
    ("name", r"a\\,b", "name", None, (), (), (r"a\\", "b")),
    ("name", r"a\$b", "name", None, (), (), (r"a\$b",)),
    ("name", "tail\\", "name", None, (), (), ("tail\\",)),
    ("code-value-quantity", r"http://loinc.org|8480-6$gt100,x$y", "code-value-quantity", None, (),
     (), (r"http://loinc.org|8480-6$gt100", "x$y")),
    ("name", "王", "name", None, (), (), ("王",)),
]


@pytest.mark.parametrize(("key", "value", "name", "modifier", "chain", "has", "values"), RAW)
def test_raw_parameters(key: str, value: str, name: str, modifier: str | None,
                        chain: tuple[ChainLink, ...], has: tuple[HasLink, ...],
                        values: tuple[str, ...]) -> None:
    assert one(key, value) == RawParameter(key, name, modifier, chain, has, values)


def test_leaf_is_the_parameter_the_values_apply_to() -> None:
    assert one("subject:Patient.name:exact", "x").leaf == L("name", "exact")
    assert one("name:exact", "x").leaf == L("name", "exact")
    assert one("name", "x").leaf == L("name")


def test_repeated_parameters_stay_separate_in_order() -> None:
    parsed = parse_query([("date", "ge2020"), ("name", "a"), ("date", "lt2021")])
    assert parsed.parameters == (
        RawParameter("date", "date", values=("ge2020",)),
        RawParameter("name", "name", values=("a",)),
        RawParameter("date", "date", values=("lt2021",)),
    )
    assert parsed.result == ResultParameters()


def test_empty_values_are_ignored_and_reported() -> None:
    parsed = parse_query([("name", ""), ("gender", "male"), ("birthdate:missing", "")])
    assert parsed == ParsedQuery((RawParameter("gender", "gender", values=("male",)),),
                                 ResultParameters(), ("name", "birthdate:missing"))


BAD_KEYS = [
    # key, value, expression
    ("", "x", ""),
    ("name:", "x", "name:"),
    ("name.", "x", "name."),
    (".name", "x", ".name"),
    ("subject..name", "x", "subject..name"),
    ("subject:Patient.", "x", "subject:Patient."),
    ("name:foo", "x", "name:foo"),
    ("name:exact:contains", "x", "name:exact:contains"),
    ("subject:missing.name", "x", "subject:missing.name"),
    ("subject.organization:exact.name", "x", "subject.organization:exact.name"),
    ("na me", "x", "na me"),
    ("name$", "x", "name$"),
    ("_has", "x", "_has"),
    ("_has:Observation", "x", "_has:Observation"),
    ("_has:Observation:patient", "x", "_has:Observation:patient"),
    ("_has:Observation:patient:", "x", "_has:Observation:patient:"),
    ("_has:observation:patient:code", "x", "_has:observation:patient:code"),
    ("_has:Observation::code", "x", "_has:Observation::code"),
    ("_has:Observation:patient:_has:Encounter:subject", "x",
     "_has:Observation:patient:_has:Encounter:subject"),
    ("name:", "", "name:"),  # a malformed name is an error even with an empty value
    ("name", "a,,b", "name"),
    ("name", "a,", "name"),
    ("name", ",", "name"),
]


@pytest.mark.parametrize(("key", "value", "expression"), BAD_KEYS)
def test_malformed_parameters(key: str, value: str, expression: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_query([(key, value)])
    assert info.value.issues[0].expression == (expression,)
    assert info.value.status == 400


# -- value helpers ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "sep", "raw", "unescaped"), [
    ("http://loinc.org|1234-5", "|", ["http://loinc.org", "1234-5"], ["http://loinc.org", "1234-5"]),
    ("|1234-5", "|", ["", "1234-5"], ["", "1234-5"]),
    ("http://loinc.org|", "|", ["http://loinc.org", ""], ["http://loinc.org", ""]),
    ("1234-5", "|", ["1234-5"], ["1234-5"]),
    (r"a\|b|c", "|", [r"a\|b", "c"], ["a|b", "c"]),
    (r"a\\|b", "|", [r"a\\", "b"], ["a\\", "b"]),
    ("5.4|http://unitsofmeasure.org|mg", "|", ["5.4", "http://unitsofmeasure.org", "mg"],
     ["5.4", "http://unitsofmeasure.org", "mg"]),
    (r"http://loinc.org|8480-6$gt100", "$", [r"http://loinc.org|8480-6", "gt100"],
     ["http://loinc.org|8480-6", "gt100"]),
    (r"a\$b$c\,d", "$", [r"a\$b", r"c\,d"], ["a$b", "c,d"]),
])
def test_split(value: str, sep: str, raw: list[str], unescaped: list[str]) -> None:
    assert split_raw(value, sep) == raw
    assert split_values(value, sep) == unescaped


@pytest.mark.parametrize(("raw", "text"), [
    (r"a\,b", "a,b"), (r"a\|b", "a|b"), (r"a\$b", "a$b"), (r"a\\b", "a\\b"),
    (r"a\nb", r"a\nb"), ("a\\", "a\\"), (r"\\\,", "\\,"), ("plain", "plain"),
])
def test_unescape(raw: str, text: str) -> None:
    assert unescape(raw) == text


@pytest.mark.parametrize(("value", "expected"), [
    ("ge2020", ("ge", "2020")),
    ("lt2020-03-04T10:00:00Z", ("lt", "2020-03-04T10:00:00Z")),
    ("eq5.4", ("eq", "5.4")),
    ("ne100", ("ne", "100")),
    ("gt0", ("gt", "0")),
    ("le1e2", ("le", "1e2")),
    ("sa2020", ("sa", "2020")),
    ("eb2020", ("eb", "2020")),
    ("ap2020", ("ap", "2020")),
    ("lt-5", ("lt", "-5")),
    ("gt+5", ("gt", "+5")),
    ("2020", ("eq", "2020")),
    ("-5", ("eq", "-5")),
    ("lemon", ("eq", "lemon")),
    ("ne", ("eq", "ne")),
    ("gtx1", ("eq", "gtx1")),
    ("le-", ("eq", "le-")),
    ("xx2020", ("eq", "xx2020")),
    ("GE2020", ("eq", "GE2020")),
    ("", ("eq", "")),
])
def test_split_prefix(value: str, expected: tuple[str, str]) -> None:
    assert split_prefix(value) == expected


# -- result parameters -----------------------------------------------------------------------------

def result(*pairs: tuple[str, str]) -> ResultParameters:
    parsed = parse_query(pairs)
    assert parsed.parameters == ()
    return parsed.result


RESULTS = [
    ([("_sort", "-date,name")], ResultParameters(sort=(SortKey("date", True), SortKey("name")))),
    ([("_sort", "_lastUpdated")], ResultParameters(sort=(SortKey("_lastUpdated"),))),
    ([("_sort", "-_id")], ResultParameters(sort=(SortKey("_id", True),))),
    ([("_count", "0")], ResultParameters(count=0)),
    ([("_count", "50")], ResultParameters(count=50)),
    ([("_total", "none")], ResultParameters(total="none")),
    ([("_total", "estimate")], ResultParameters(total="estimate")),
    ([("_total", "accurate")], ResultParameters(total="accurate")),
    ([("_summary", "count")], ResultParameters(summary="count")),
    ([("_summary", "true")], ResultParameters(summary="true")),
    ([("_summary", "text")], ResultParameters(summary="text")),
    ([("_summary", "data")], ResultParameters(summary="data")),
    ([("_summary", "false")], ResultParameters(summary="false")),
    ([("_elements", "identifier,active, name")],
     ResultParameters(elements=("identifier", "active", "name"))),
    ([("_contained", "both"), ("_containedType", "contained")],
     ResultParameters(contained="both", contained_type="contained")),
    ([("_cursor", "abc.def")], ResultParameters(cursor="abc.def")),
    ([("_format", "application/fhir+json"), ("_pretty", "true")],
     ResultParameters(format="application/fhir+json", pretty=True)),
    ([("_pretty", "false")], ResultParameters(pretty=False)),
    ([("_include", "Observation:subject")],
     ResultParameters(includes=(Include("Observation", "subject"),))),
    ([("_include", "Observation:subject:Patient")],
     ResultParameters(includes=(Include("Observation", "subject", "Patient"),))),
    ([("_include", "Observation:*")], ResultParameters(includes=(Include("Observation", "*"),))),
    ([("_include", "*")], ResultParameters(includes=(Include("*", "*"),))),
    ([("_revinclude", "Provenance:target")],
     ResultParameters(includes=(Include("Provenance", "target", reverse=True),))),
    ([("_include:iterate", "Patient:general-practitioner")],
     ResultParameters(includes=(Include("Patient", "general-practitioner", iterate=True),))),
    ([("_revinclude:iterate", "Observation:has-member:Observation")],
     ResultParameters(includes=(Include("Observation", "has-member", "Observation", True, True),))),
    ([("_include:recurse", "Organization:partof")],
     ResultParameters(includes=(Include("Organization", "partof", iterate=True),))),
    ([("_include", "Observation:subject"), ("_revinclude", "Encounter:subject"),
      ("_include", "Observation:performer")],
     ResultParameters(includes=(Include("Observation", "subject"),
                                Include("Encounter", "subject", reverse=True),
                                Include("Observation", "performer")))),
]


@pytest.mark.parametrize(("pairs", "expected"), RESULTS)
def test_result_parameters(pairs: list[tuple[str, str]], expected: ResultParameters) -> None:
    assert result(*pairs) == expected


def test_result_parameters_are_separated_from_search_parameters() -> None:
    parsed = parse_query([("name", "wang"), ("_count", "10"), ("_sort", "birthdate"),
                          ("_include", "Patient:organization"), ("gender", "female")])
    assert [p.key for p in parsed.parameters] == ["name", "gender"]
    assert parsed.result == ResultParameters(
        sort=(SortKey("birthdate"),), count=10,
        includes=(Include("Patient", "organization"),))


BAD_RESULTS = [
    # pairs, expression
    ([("_count", "-1")], "_count"),
    ([("_count", "ten")], "_count"),
    ([("_count", "1.5")], "_count"),
    ([("_count", "")], "_count"),
    ([("_count", "١٠")], "_count"),  # non-ASCII digits
    ([("_count", "1"), ("_count", "2")], "_count"),
    ([("_count:exact", "1")], "_count:exact"),
    ([("_total", "all")], "_total"),
    ([("_summary", "yes")], "_summary"),
    ([("_summary", "true"), ("_elements", "name")], "_elements"),
    ([("_sort", "")], "_sort"),
    ([("_sort", "date,,name")], "_sort"),
    ([("_sort", "-")], "_sort"),
    ([("_sort", "--date")], "_sort"),
    ([("_sort", "subject.name")], "_sort"),
    ([("_elements", "name,")], "_elements"),
    ([("_elements", "na-me")], "_elements"),
    ([("_contained", "maybe")], "_contained"),
    ([("_containedType", "both")], "_containedType"),
    ([("_pretty", "yes")], "_pretty"),
    ([("_include", "")], "_include"),
    ([("_include", "Observation")], "_include"),
    ([("_include", "observation:subject")], "_include"),
    ([("_include", "Observation:subject:patient")], "_include"),
    ([("_include", "Observation:subject:Patient:x")], "_include"),
    ([("_include", "Observation:subject,Observation:performer")], "_include"),
    ([("_include:exact", "Observation:subject")], "_include:exact"),
    ([("_revinclude", "Provenance:")], "_revinclude"),
    ([("_revinclude:iterate", ":target")], "_revinclude:iterate"),
]


@pytest.mark.parametrize(("pairs", "expression"), BAD_RESULTS)
def test_bad_result_parameters(pairs: list[tuple[str, str]], expression: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_query(pairs)
    assert info.value.issues[0].expression == (expression,)
