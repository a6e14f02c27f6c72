"""build_search: query pairs -> IR, golden strings written by hand."""

from __future__ import annotations

import pytest

from fhir_server.errors import InvalidRequest
from fhir_server.search import ir
from fhir_server.search.query import SearchRequest, UnknownParameter, build_search
from fhir_server.search.single_valued import single_valued
from fhir_server.search.syntax import Include, SortKey
from fhir_server.search.types.uri import prefixes

NOW = 0
BASE = "http://example.org/fhir"


def where(rtype: str, query: str, **kw: object) -> str:
    return str(search(rtype, query, **kw).where)


def search(rtype: str, query: str, **kw: object) -> SearchRequest:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")] if query else []
    return build_search([rtype], pairs, now=NOW, base_url=BASE, **kw)  # type: ignore[arg-type]


GOLDEN = [
    # string
    ("Patient", "name=Wáng  LI", '(entry name (sw norm "wang li"))'),
    ("Patient", "name:exact=Wáng", '(entry name (eq exact "Wáng"))'),
    ("Patient", "name:contains=ang", '(entry name (co norm "ang"))'),
    ("Patient", "family=a\\,b,c", '(or (entry family (sw norm "a,b")) (entry family (sw norm "c")))'),
    # token
    ("Patient", "gender=male", '(entry gender (eq code "male"))'),
    ("Patient", "identifier=http://x|123",
     '(entry identifier (and (eq system "http://x") (eq code "123")))'),
    ("Patient", "identifier=|123", '(entry identifier (and (null system) (eq code "123")))'),
    ("Patient", "identifier=http://x|", '(entry identifier (eq system "http://x"))'),
    ("Patient", "identifier=a\\|b", '(entry identifier (eq code "a|b"))'),
    ("Patient", "gender:not=male,female",
     '(not (or (entry gender (eq code "male")) (entry gender (eq code "female"))))'),
    ("Observation", "code:text=Blood Pressure", '(entry code (co text "blood pressure"))'),
    ("Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053",
     '(entry identifier (and (eq type_system "http://terminology.hl7.org/CodeSystem/v2-0203")'
     ' (eq type_code "MR") (eq code "446053")))'),
    ("Patient", "active=true", '(entry active (eq code "true"))'),
    ("Patient", "_id=a,b", '(or (entry _id (eq code "a")) (entry _id (eq code "b")))'),
    ("Patient", "_tag=http://s|t", '(entry _tag (and (eq system "http://s") (eq code "t")))'),
    ("Patient", "_security=R", '(entry _security (eq code "R"))'),
    # date
    ("Patient", "birthdate=2020",
     "(entry birthdate (and (ge low 2020-01-01T00:00:00Z) (le high 2021-01-01T00:00:00Z)))"),
    ("Patient", "birthdate=lt2020-03",
     "(entry birthdate (lt low 2020-03-01T00:00:00Z))"),
    # birthDate is single-valued: the two conditions become one index entry (see single_valued.py)
    ("Patient", "birthdate=ge2020-01-01&birthdate=le2020-12-31",
     "(entry birthdate (and (or (gt high 2020-01-02T00:00:00Z) (and (ge low 2020-01-01T00:00:00Z)"
     " (le high 2020-01-02T00:00:00Z))) (or (lt low 2020-12-31T00:00:00Z)"
     " (and (ge low 2020-12-31T00:00:00Z) (le high 2021-01-01T00:00:00Z)))))"),
    # Observation.component.value is not: each condition may be met by a different component
    ("Observation", "component-value-quantity=gt5&component-value-quantity=lt10",
     "(and (entry component-value-quantity (gt value 5)) (entry component-value-quantity"
     " (lt value 10)))"),
    ("Patient", "_lastUpdated=gt2021-01-01T10:00:00Z",
     "(entry _lastUpdated (gt high 2021-01-01T10:00:01Z))"),
    ("Patient", "birthdate=sa2020", "(entry birthdate (ge low 2021-01-01T00:00:00Z))"),
    # number and quantity
    ("RiskAssessment", "probability=0.5", "(entry probability (and (ge value 0.45) (lt value 0.55)))"),
    ("RiskAssessment", "probability=gt0.8", "(entry probability (gt value 0.8))"),
    ("Observation", "value-quantity=5.4|http://unitsofmeasure.org|mg",
     '(entry value-quantity (and (ge value 5.35) (lt value 5.45) (eq system "http://unitsofmeasure.org")'
     ' (eq code "mg")))'),
    ("Observation", "value-quantity=le5.4||mg",
     '(entry value-quantity (and (le value 5.4) (or (eq code "mg") (eq unit "mg"))))'),
    ("Observation", "value-quantity=5.4", "(entry value-quantity (and (ge value 5.35) (lt value 5.45)))"),
    # reference
    ("Observation", "subject=Patient/123",
     '(entry subject (and (eq type "Patient") (eq id "123")))'),
    ("Observation", "subject=123",
     '(entry subject (and (in type "Device" "Group" "Location" "Patient") (eq id "123")))'),
    ("Observation", "subject:Patient=123", '(entry subject (and (eq type "Patient") (eq id "123")))'),
    ("Encounter", "patient=123", '(entry patient (and (in type "Group" "Patient") (eq id "123")))'),
    ("Observation", f"subject={BASE}/Patient/123",
     '(entry subject (and (eq type "Patient") (eq id "123")))'),
    ("Observation", "subject=http://other.org/fhir/Patient/123",
     '(entry subject (eq url "http://other.org/fhir/Patient/123"))'),
    ("Observation", "subject=Patient/123/_history/2",
     '(entry subject (and (eq type "Patient") (eq id "123") (eq version "2")))'),
    ("Observation", "subject:identifier=http://x|42",
     '(entry subject (and (eq identifier_system "http://x") (eq identifier_value "42")))'),
    ("Observation", "subject:identifier=42", '(entry subject (eq identifier_value "42"))'),
    ("Observation", "subject:missing=true", "(missing subject true)"),
    ("Observation", "subject:missing=false,true", "(or (missing subject false) (missing subject true))"),
    ("Patient", "name:missing=true", "(missing name true)"),
    ("PlanDefinition", "derived-from=http://x.org/Q/1|2.0",
     '(entry derived-from (and (eq url "http://x.org/Q/1") (eq version "2.0")))'),
    # uri
    ("ValueSet", "url=http://acme.org/fhir/ValueSet/123",
     '(entry url (eq value "http://acme.org/fhir/ValueSet/123"))'),
    ("ValueSet", "url:below=http://acme.org/fhir/", '(entry url (sw value "http://acme.org/fhir/"))'),
    ("ValueSet", "url:above=http://acme.org/fhir/ValueSet/123",
     '(entry url (in value "http://acme.org/fhir/ValueSet/123" "http://acme.org/fhir/ValueSet"'
     ' "http://acme.org/fhir" "http://acme.org"))'),
    ("Patient", "_profile=http://p.org/P", '(entry _profile (eq value "http://p.org/P"))'),
    ("Patient", "_source=http://s.org/1", '(entry _source (eq value "http://s.org/1"))'),
    # composite
    ("Observation", "code-value-quantity=http://loinc.org|8480-6$gt100",
     '(entry code-value-quantity (and (eq c0_system "http://loinc.org") (eq c0_code "8480-6")'
     " (gt c1_value 100)))"),
    ("Observation", "component-code-value-quantity=8480-6$lt60||mm[Hg]",
     '(entry component-code-value-quantity (and (eq c0_code "8480-6") (lt c1_value 60)'
     ' (or (eq c1_code "mm[Hg]") (eq c1_unit "mm[Hg]"))))'),
    ("Observation", "code-value-date=a$2020",
     '(entry code-value-date (and (eq c0_code "a") (ge c1_low 2020-01-01T00:00:00Z)'
     " (le c1_high 2021-01-01T00:00:00Z)))"),
    ("Observation", "code-value-string=a$Foo", '(entry code-value-string (and (eq c0_code "a")'
     ' (sw c1_norm "foo")))'),
    ("Observation", "code-value-quantity:missing=true", "(missing code-value-quantity true)"),
    # chains
    ("Observation", "subject:Patient.name=wang",
     '(chain subject Patient (entry name (sw norm "wang")))'),
    ("Observation", "subject.name=wang",  # Device has no name parameter: not a candidate
     '(or (chain subject Location (entry name (sw norm "wang")))'
     ' (chain subject Patient (entry name (sw norm "wang"))))'),
    ("Observation", "subject.birthdate=2020",
     "(chain subject Patient (entry birthdate (and (ge low 2020-01-01T00:00:00Z)"
     " (le high 2021-01-01T00:00:00Z))))"),
    ("Patient", "general-practitioner:Practitioner.name:exact=Wang",
     '(chain general-practitioner Practitioner (entry name (eq exact "Wang")))'),
    ("Encounter", "patient.organization.name=acme",
     '(chain patient Patient (chain organization Organization (entry name (sw norm "acme"))))'),
    ("Encounter", "patient.organization:Organization.name=acme,b",
     '(chain patient Patient (chain organization Organization (or (entry name (sw norm "acme"))'
     ' (entry name (sw norm "b")))))'),
    ("Observation", "subject:Patient.gender:missing=true",
     "(chain subject Patient (missing gender true))"),
    # _has
    ("Patient", "_has:Observation:patient:code=1234-5",
     '(has Observation patient (entry code (eq code "1234-5")))'),
    ("Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/1",
     '(has Observation patient (has AuditEvent entity (entry agent (and (eq type "Practitioner")'
     ' (eq id "1")))))'),
    ("Patient", "_has:Observation:subject:performer:Practitioner.name=x",
     '(has Observation subject (chain performer Practitioner (entry name (sw norm "x"))))'),
    # several parameters
    ("Patient", "", "(and)"),
    ("Patient", "gender=male&name=a",
     '(and (entry gender (eq code "male")) (entry name (sw norm "a")))'),
]


@pytest.mark.parametrize(("rtype", "query", "expected"), GOLDEN)
def test_golden(rtype: str, query: str, expected: str) -> None:
    assert where(rtype, query) == expected


def test_ap_uses_now() -> None:
    day = 86_400_000_000
    got = where("Patient", "birthdate=ap1970-01-11")  # now = 0
    # distance to now is 10 days -> margin 1 day
    assert got == ("(entry birthdate (and (lt low 1970-01-13T00:00:00Z)"
                   " (gt high 1970-01-10T00:00:00Z)))")
    assert ir.Timestamp(12 * day).us == 12 * day


ERRORS = [
    # (type, query, expression, words in the message)
    ("Patient", "nope=1", "nope", "unknown search parameter"),
    ("Patient", "name:below=x", "name:below", "modifier :below"),
    ("Patient", "name:text=x", "name:text", "modifier :text"),
    ("Patient", "birthdate:exact=2020", "birthdate:exact", "modifier :exact"),
    ("Patient", "gender:exact=x", "gender:exact", "modifier :exact"),
    ("Patient", "gender:in=http://vs", "gender:in", "terminology"),
    ("Patient", "gender:not-in=http://vs", "gender:not-in", "terminology"),
    ("Observation", "code:below=http://s|1", "code:below", "terminology"),
    ("Observation", "code:above=http://s|1", "code:above", "terminology"),
    ("Patient", "birthdate=2020-13", "birthdate", "not a valid date"),
    ("Patient", "birthdate=xx2020", "birthdate", "not a valid date"),
    ("RiskAssessment", "probability=abc", "probability", "not a number"),
    ("Observation", "value-quantity=5|mg", "value-quantity", "not a quantity"),
    ("Patient", "name:missing=yes", "name:missing", "true or false"),
    ("Patient", "identifier=a|b|c", "identifier", "more than one"),
    ("Patient", "identifier=|", "identifier", "'|' alone"),
    ("Patient", "identifier:of-type=a|b", "identifier:of-type", "type_system|type_code|value"),
    ("Patient", "name=%20", "name", "blank"),
    ("Observation", "subject=Patient/1/x", "subject", "not a reference"),
    ("Observation", "subject=Practitioner/1", "subject", "not a possible target"),
    ("Observation", "subject:Patient=Group/1", "subject:Patient", "not a possible target"),
    ("Observation", "subject:Practitioner=1", "subject:Practitioner", "not a target type"),
    ("Observation", "subject:above=http://x", "subject:above", "not supported"),
    ("Observation", "code-value-quantity=a", "code-value-quantity", "takes 2 values"),
    ("Observation", "code-value-quantity=a$b$c", "code-value-quantity", "takes 2 values"),
    ("Observation", "code-value-quantity=a$lt5,b$lt6", "code-value-quantity", "multipleOr"),
    ("Observation", "code-value-quantity:exact=a$1", "code-value-quantity:exact", "modifier :exact"),
    ("Observation", "code.name=x", "code.name", "cannot chain through 'code'"),
    ("Observation", "subject.nope=x", "subject.nope", "has a search parameter 'nope'"),
    ("Observation", "subject:Patient.nope=x", "subject:Patient.nope",
     "has a search parameter 'nope'"),
    ("Observation", "subject:Patient.name:below=x", "subject:Patient.name:below", "modifier :below"),
    ("Patient", "_has:Nope:patient:code=1", "_has:Nope:patient:code", "unknown resource type"),
    ("Patient", "_has:Observation:code:code=1", "_has:Observation:code:code",
     "no reference search parameter"),
    ("Patient", "_has:Account:owner:name=1", "_has:Account:owner:name", "cannot refer to a Patient"),
    ("Patient", "_has:Observation:patient:nope=1", "_has:Observation:patient:nope",
     "unknown search parameter"),
    ("Patient", "_text=x", "_text", "not supported"),
    ("Patient", "_content=x", "_content", "not supported"),
    ("Location", "near=1|2|3", "near", "not supported"),
    ("Patient", "_sort=nope", "_sort", "cannot sort by 'nope'"),
    ("Patient", "_include=Patient:nope", "_include", "no reference search parameter"),
    ("Patient", "_include=Patient:name", "_include", "no reference search parameter"),
    ("Patient", "_include=Nope:subject", "_include", "unknown resource type"),
    ("Patient", "_revinclude:iterate=Observation:subject:Practitioner", "_revinclude:iterate",
     "not a target"),
    ("Patient", "_count=x", "_count", "non-negative"),
]


@pytest.mark.parametrize(("rtype", "query", "expression", "words"), ERRORS)
def test_errors(rtype: str, query: str, expression: str, words: str | None) -> None:
    query = query.replace("%20", " ")
    with pytest.raises(InvalidRequest) as info:
        search(rtype, query)
    assert info.value.issues[0].expression == (expression,)
    if words is not None:
        assert words in info.value.message


def test_performer_can_refer_to_patient() -> None:
    # the _has:Observation:performer case above is valid: Observation.performer may be a Patient
    assert where("Patient", "_has:Observation:performer:code=1") == (
        '(has Observation performer (entry code (eq code "1")))')


IGNORABLE = [
    "nope=1", "name:below=x", "gender:exact=x", "code.name=x", "subject.nope=x",
    "_has:Nope:patient:code=1", "_text=x", "subject:Practitioner=1",
]
ALWAYS_ERRORS = [
    "birthdate=2020-13", "gender:in=http://vs", "name:missing=yes", "identifier=a|b|c",
    "subject=Practitioner/1", "code-value-quantity=a", "name= ", "identifier=|",
]


def _rtype(query: str) -> str:
    return "Observation" if query.startswith(("code", "subject")) else "Patient"


@pytest.mark.parametrize("query", IGNORABLE)
def test_lenient_ignores_unknown_and_reports_it(query: str) -> None:
    with pytest.raises(UnknownParameter):
        search(_rtype(query), query)
    key = query.split("=", 1)[0]
    got = search(_rtype(query), f"{query}&_id=1", strict=False)
    assert str(got.where) == '(entry _id (eq code "1"))'  # never widened: the rest still applies
    assert got.ignored == (key,)
    assert got.applied == (("_id", "1"),)


@pytest.mark.parametrize("query", ALWAYS_ERRORS)
def test_bad_values_are_errors_even_when_lenient(query: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        search(_rtype(query), query, strict=False)
    assert not isinstance(info.value, UnknownParameter)


def test_empty_values_are_ignored_and_reported() -> None:
    got = search("Patient", "name=&gender=male")
    assert got.ignored == ("name",)
    assert got.applied == (("gender", "male"),)
    assert str(got.where) == '(entry gender (eq code "male"))'


def test_applied_and_result_parameters() -> None:
    got = search("Patient", "_count=10&name=a,b&_sort=-birthdate,_id&_format=json&_pretty=true"
                 "&_include=Patient:organization&_revinclude=Observation:subject&_total=accurate")
    assert got.applied == (
        ("name", "a,b"), ("_count", "10"), ("_sort", "-birthdate,_id"), ("_total", "accurate"),
        ("_include", "Patient:organization"), ("_revinclude", "Observation:subject"))
    assert got.result.count == 10
    assert got.result.sort == (SortKey("birthdate", True), SortKey("_id"))
    assert got.result.includes == (Include("Patient", "organization"),
                                   Include("Observation", "subject", reverse=True))
    assert got.ignored == ()


def test_lenient_sort_and_include_keep_the_valid_ones() -> None:
    got = search("Patient", "_sort=nope,-_lastUpdated&_include=Patient:nope&_include=*"
                 "&_include:iterate=Patient:organization:Organization", strict=False)
    assert got.result.sort == (SortKey("_lastUpdated", True),)
    assert got.result.includes == (Include("*", "*"),
                                   Include("Patient", "organization", "Organization", iterate=True))
    assert got.applied == (("_sort", "-_lastUpdated"), ("_include", "*"),
                           ("_include:iterate", "Patient:organization:Organization"))
    assert got.ignored == ("_sort", "_include")


def test_several_types() -> None:
    got = build_search(["Patient", "Practitioner"], [("name", "wang"), ("_lastUpdated", "2020")],
                       now=NOW)
    assert str(got.where) == (
        '(and (entry name (sw norm "wang")) (entry _lastUpdated (and (ge low 2020-01-01T00:00:00Z)'
        " (le high 2021-01-01T00:00:00Z))))")
    assert got.types == ("Patient", "Practitioner")
    # a parameter on one type only is unknown for the search
    with pytest.raises(UnknownParameter):
        build_search(["Patient", "Practitioner"], [("gender", "x"), ("birthdate", "2020")])
    with pytest.raises(UnknownParameter):
        build_search(["Patient", "Organization"], [("_sort", "birthdate")])


def test_several_types_with_different_ir() -> None:
    got = build_search(["Observation", "Condition"], [("subject", "1")], now=NOW)
    assert str(got.where) == (
        '(or (and (type-is Observation) (entry subject (and (in type "Device" "Group" "Location"'
        ' "Patient") (eq id "1")))) (and (type-is Condition) (entry subject (and (in type "Group"'
        ' "Patient") (eq id "1")))))')


def test_unknown_type() -> None:
    with pytest.raises(InvalidRequest):
        build_search(["Nope"], [])


def test_syntax_errors_surface() -> None:
    with pytest.raises(InvalidRequest) as info:
        search("Patient", "name=a,,b")
    assert info.value.issues[0].expression == ("name",)


def test_uri_prefixes() -> None:
    assert prefixes("urn:oid:1.2.3") == ("urn:oid:1.2.3",)
    assert prefixes("http://a.org/") == ("http://a.org/", "http://a.org")
    assert prefixes("http://a.org/x/y") == ("http://a.org/x/y", "http://a.org/x", "http://a.org")


@pytest.mark.parametrize(("expression", "single"), [
    ("Patient.birthDate", True), ("Patient.meta.lastUpdated", True), ("Observation.effective", True),
    ("Encounter.period", True), ("Patient.name.family", False), ("Patient.name", False),
    ("Observation.component.value", False), ("Patient.birthDate | Person.birthDate", False),
    ("Observation.value.as(Quantity)", False), (None, False),
])
def test_single_valued_paths(expression: str | None, single: bool) -> None:
    assert single_valued(expression) is single
