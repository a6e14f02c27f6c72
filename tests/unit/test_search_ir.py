"""The search IR (golden strings, level checks) and the date/number precision and prefix rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fhir_server.errors import InvalidRequest
from fhir_server.search.dates import (
    DATE_MAX_US,
    DATE_MIN_US,
    date_conditions,
    date_range,
    number_conditions,
    number_range,
)
from fhir_server.search.ir import (
    And,
    Chain,
    Cmp,
    Entry,
    Has,
    IdIn,
    In,
    Missing,
    Node,
    Not,
    Null,
    Or,
    Timestamp,
    TypeIs,
    all_of,
    any_of,
)

D = Decimal
T2020 = Timestamp(1_577_836_800_000_000)  # 2020-01-01T00:00:00Z

GOLDEN: list[tuple[Node, str]] = [
    (Cmp("code", "eq", "1234-5"), '(eq code "1234-5")'),
    (Cmp("low", "ge", T2020), "(ge low 2020-01-01T00:00:00Z)"),
    (Cmp("norm", "sw", 'wa"ng'), r'(sw norm "wa\"ng")'),
    (Cmp("norm", "co", "王"), '(co norm "王")'),
    (Cmp("value", "lt", D("100.50")), "(lt value 100.50)"),
    (Cmp("value", "gt", D("1E+2")), "(gt value 100)"),
    (Cmp("value", "le", 7), "(le value 7)"),
    (Cmp("value", "eq", True), "(eq value true)"),
    (In("code", ("a", "b")), '(in code "a" "b")'),
    (Null("system"), "(null system)"),
    (And(), "(and)"),
    (Or(), "(or)"),
    (Entry("gender", "token", Cmp("code", "eq", "male")), '(entry gender (eq code "male"))'),
    (Entry("gender", "token"), "(entry gender (and))"),
    (Entry("identifier", "token", And((Null("system"), Cmp("code", "eq", "123")))),
     '(entry identifier (and (null system) (eq code "123")))'),
    (Missing("gender", "token", True), "(missing gender true)"),
    (Missing("birthdate", "date", False), "(missing birthdate false)"),
    (Not(Entry("gender", "token", Cmp("code", "eq", "male"))),
     '(not (entry gender (eq code "male")))'),
    (Chain("subject", "Patient", Entry("name", "string", Cmp("norm", "sw", "wang"))),
     '(chain subject Patient (entry name (sw norm "wang")))'),
    (Has("Observation", "patient", Entry("code", "token", Cmp("code", "eq", "1234-5"))),
     '(has Observation patient (entry code (eq code "1234-5")))'),
    (Has("Observation", "patient", Has("AuditEvent", "entity", IdIn(("u1",)))),
     '(has Observation patient (has AuditEvent entity (id-in "u1")))'),
    (IdIn(("a", "b")), '(id-in "a" "b")'),
    (TypeIs(("Observation", "Patient")), "(type-is Observation Patient)"),
    (Entry("code-value-quantity", "composite",
           And((Cmp("c0_code", "eq", "8480-6"), Cmp("c1_value", "gt", D(100))))),
     '(entry code-value-quantity (and (eq c0_code "8480-6") (gt c1_value 100)))'),
    (And((
        Entry("birthdate", "date", Cmp("low", "ge", T2020)),
        Or((Entry("name", "string", Cmp("norm", "sw", "wang")),
            Entry("name", "string", Cmp("norm", "sw", "li")))),
        Not(Missing("gender", "token", True)),
    )),
     '(and (entry birthdate (ge low 2020-01-01T00:00:00Z))'
     ' (or (entry name (sw norm "wang")) (entry name (sw norm "li")))'
     ' (not (missing gender true)))'),
    (Or((Chain("subject", "Patient", Entry("name", "string", Cmp("norm", "sw", "wang"))),
         Chain("subject", "Group", Entry("name", "string", Cmp("norm", "sw", "wang"))))),
     '(or (chain subject Patient (entry name (sw norm "wang")))'
     ' (chain subject Group (entry name (sw norm "wang"))))'),
]


@pytest.mark.parametrize(("node", "text"), GOLDEN)
def test_golden_strings(node: Node, text: str) -> None:
    assert str(node) == text


def test_nodes_are_frozen_values() -> None:
    a = Entry("gender", "token", Cmp("code", "eq", "male"))
    b = Entry("gender", "token", Cmp("code", "eq", "male"))
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.param = "x"  # type: ignore[misc]


def test_levels() -> None:
    assert Cmp("code", "eq", "x").level == "row"
    assert Entry("gender", "token").level == "resource"
    assert And().level == "any"
    assert Not(And((Cmp("code", "eq", "x"),))).level == "row"
    assert Or((IdIn(("a",)),)).level == "resource"


@pytest.mark.parametrize("build", [
    lambda: And((Cmp("code", "eq", "x"), IdIn(("a",)))),  # row and resource mixed
    lambda: Or((Entry("gender", "token"), Null("system"))),
    lambda: Entry("gender", "token", Entry("name", "string")),  # a resource inside an entry
    lambda: Entry("gender", "token", Cmp("low", "ge", T2020)),  # not a token field
    lambda: Entry("birthdate", "date", Cmp("code", "eq", "x")),
    lambda: Entry("x", "composite", Cmp("code", "eq", "x")),  # composite fields are c<i>_<field>
    lambda: Chain("subject", "Patient", Cmp("code", "eq", "x")),
    lambda: Has("Observation", "patient", Null("system")),
    lambda: Cmp("code", "sw", 5),
    lambda: Cmp("code", "like", "x"),  # type: ignore[arg-type]
    lambda: Cmp("code; DROP", "eq", "x"),
    lambda: In("code", ()),
])
def test_malformed_trees_are_refused(build: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        build()  # type: ignore[operator]


def test_all_of_any_of_flatten() -> None:
    a, b, c = (Entry(n, "token") for n in ("a", "b", "c"))
    assert all_of([a]) is a
    assert all_of([And((a, b)), c]) == And((a, b, c))
    assert any_of([Or((a,)), Or((b, c))]) == Or((a, b, c))
    assert str(all_of([])) == "(and)"
    assert str(any_of([])) == "(or)"


@pytest.mark.parametrize(("us", "text"), [
    (0, "1970-01-01T00:00:00Z"),
    (1, "1970-01-01T00:00:00.000001Z"),
    (-1, "1969-12-31T23:59:59.999999Z"),
    (951_782_400_000_000, "2000-02-29T00:00:00Z"),
    (1_583_316_000_500_000, "2020-03-04T10:00:00.500000Z"),
    (DATE_MIN_US, "0001-01-01T00:00:00Z"),
    (DATE_MAX_US, "10000-01-01T00:00:00Z"),
])
def test_timestamp_printing(us: int, text: str) -> None:
    assert str(Timestamp(us)) == text


# -- dates -----------------------------------------------------------------------------------------

DATE_RANGES = [
    # value, low, high (ISO, UTC)
    ("2020", "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"),
    ("2020-02", "2020-02-01T00:00:00Z", "2020-03-01T00:00:00Z"),
    ("2019-02", "2019-02-01T00:00:00Z", "2019-03-01T00:00:00Z"),
    ("2020-12", "2020-12-01T00:00:00Z", "2021-01-01T00:00:00Z"),
    ("2020-02-29", "2020-02-29T00:00:00Z", "2020-03-01T00:00:00Z"),
    ("2020-03-04", "2020-03-04T00:00:00Z", "2020-03-05T00:00:00Z"),
    ("2020-12-31", "2020-12-31T00:00:00Z", "2021-01-01T00:00:00Z"),
    ("2020-03-04T10:00", "2020-03-04T10:00:00Z", "2020-03-04T10:01:00Z"),  # no zone: UTC
    ("2020-03-04T10:00Z", "2020-03-04T10:00:00Z", "2020-03-04T10:01:00Z"),
    ("2020-03-04T10:00:00", "2020-03-04T10:00:00Z", "2020-03-04T10:00:01Z"),
    ("2020-03-04T10:00:00Z", "2020-03-04T10:00:00Z", "2020-03-04T10:00:01Z"),
    ("2020-03-04T10:00:00+08:00", "2020-03-04T02:00:00Z", "2020-03-04T02:00:01Z"),
    ("2020-03-04T02:00:00+08:00", "2020-03-03T18:00:00Z", "2020-03-03T18:00:01Z"),
    ("2020-03-04T22:30:00-05:30", "2020-03-05T04:00:00Z", "2020-03-05T04:00:01Z"),
    ("2020-03-04T10:00:00+00:00", "2020-03-04T10:00:00Z", "2020-03-04T10:00:01Z"),
    ("2020-03-04T10:00:00.5Z", "2020-03-04T10:00:00.500000Z", "2020-03-04T10:00:00.600000Z"),
    ("2020-03-04T10:00:00.25Z", "2020-03-04T10:00:00.250000Z", "2020-03-04T10:00:00.260000Z"),
    ("2020-03-04T10:00:00.123Z", "2020-03-04T10:00:00.123000Z", "2020-03-04T10:00:00.124000Z"),
    ("2020-03-04T10:00:00.123456Z", "2020-03-04T10:00:00.123456Z",
     "2020-03-04T10:00:00.123457Z"),
    ("2020-03-04T10:00:00.1234567Z", "2020-03-04T10:00:00.123456Z",  # beyond µs: truncated
     "2020-03-04T10:00:00.123457Z"),
    ("2020-03-04T23:59:59.999+08:00", "2020-03-04T15:59:59.999000Z",
     "2020-03-04T16:00:00Z"),
    ("0001", "0001-01-01T00:00:00Z", "0002-01-01T00:00:00Z"),
    ("9999-12-31", "9999-12-31T00:00:00Z", "10000-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(("value", "low", "high"), DATE_RANGES)
def test_date_ranges(value: str, low: str, high: str) -> None:
    lo, hi = date_range(value, "date")
    assert (str(Timestamp(lo)), str(Timestamp(hi))) == (low, high)


def test_date_range_microseconds() -> None:
    assert date_range("2020", "date") == (1_577_836_800_000_000, 1_609_459_200_000_000)
    assert date_range("1970-01-01T00:00:00Z", "date") == (0, 1_000_000)
    assert date_range("1969-12-31T23:59:59.9Z", "date") == (-100_000, 0)
    assert date_range("1970-01-01T08:00:00+08:00", "date") == (0, 1_000_000)


@pytest.mark.parametrize("value", [
    "", "20", "202", "20200", "2020-1", "2020-13", "2020-00", "2020-02-30", "2019-02-29",
    "2020-03-04T", "2020-03-04T10", "2020-03-04T24:00", "2020-03-04T10:60", "2020-03-04T10:00:60",
    "2020-03-04T10:00:00.", "2020-03-04T10:00:00+8:00", "2020-03-04T10:00:00+15:00",
    "2020-03-04T10:00:00+08:60", "2020-03-04Z", "2020Z", "0000", "2020-03-04 10:00:00",
    "today", "ge2020", "２０２０",
])
def test_bad_dates(value: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        date_range(value, "birthdate")
    assert info.value.issues[0].expression == ("birthdate",)


Y2020 = date_range("2020", "date")
DAY = date_range("2020-03-04", "date")
DATE_PREFIXES = [
    ("eq", Y2020, "(and (ge low 2020-01-01T00:00:00Z) (le high 2021-01-01T00:00:00Z))"),
    ("ne", Y2020, "(or (lt low 2020-01-01T00:00:00Z) (gt high 2021-01-01T00:00:00Z))"),
    ("gt", Y2020, "(gt high 2021-01-01T00:00:00Z)"),
    ("lt", Y2020, "(lt low 2020-01-01T00:00:00Z)"),
    ("ge", Y2020, "(or (gt high 2021-01-01T00:00:00Z)"
                  " (and (ge low 2020-01-01T00:00:00Z) (le high 2021-01-01T00:00:00Z)))"),
    ("le", Y2020, "(or (lt low 2020-01-01T00:00:00Z)"
                  " (and (ge low 2020-01-01T00:00:00Z) (le high 2021-01-01T00:00:00Z)))"),
    ("sa", Y2020, "(ge low 2021-01-01T00:00:00Z)"),
    ("eb", Y2020, "(le high 2020-01-01T00:00:00Z)"),
    ("eq", DAY, "(and (ge low 2020-03-04T00:00:00Z) (le high 2020-03-05T00:00:00Z))"),
    ("sa", DAY, "(ge low 2020-03-05T00:00:00Z)"),
    ("eb", DAY, "(le high 2020-03-04T00:00:00Z)"),
]


@pytest.mark.parametrize(("prefix", "bounds", "text"), DATE_PREFIXES)
def test_date_prefixes(prefix: str, bounds: tuple[int, int], text: str) -> None:
    assert str(date_conditions(prefix, *bounds)) == text


def test_date_ap_widens_by_a_tenth_of_the_distance_from_now() -> None:
    now = date_range("2030-01-01", "now")[0]
    # 2020 ends 2021-01-01: 9 years (3287 days) before now, a tenth is 328.7 days
    assert str(date_conditions("ap", *Y2020, now=now)) == (
        "(and (lt low 2021-11-25T16:48:00Z) (gt high 2019-02-06T07:12:00Z))")
    # now inside or next to the range: the one-day floor
    now = date_range("2020-03-04T12:00:00Z", "now")[0]
    assert str(date_conditions("ap", *DAY, now=now)) == (
        "(and (lt low 2020-03-06T00:00:00Z) (gt high 2020-03-03T00:00:00Z))")
    # a range after now: distance to its start, 10 years (3652 days), a tenth is 365.2 days
    now = date_range("2010-01-01", "now")[0]
    assert str(date_conditions("ap", *Y2020, now=now)) == (
        "(and (lt low 2022-01-01T04:48:00Z) (gt high 2018-12-31T19:12:00Z))")
    with pytest.raises(ValueError):
        date_conditions("ap", *Y2020)


def test_unknown_prefix_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        date_conditions("xx", *Y2020)
    with pytest.raises(ValueError):
        number_conditions("xx", "1", "n")


def test_date_conditions_fit_a_date_entry() -> None:
    for prefix in ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"):
        Entry("birthdate", "date", date_conditions(prefix, *Y2020))


# -- numbers ---------------------------------------------------------------------------------------

NUMBER_RANGES = [
    ("100", D("99.5"), D("100.5")),
    ("100.00", D("99.995"), D("100.005")),
    ("1e2", D("50"), D("150")),
    ("1.0e2", D("95"), D("105")),
    ("1.00E2", D("99.5"), D("100.5")),
    ("1e-2", D("0.005"), D("0.015")),
    ("0", D("-0.5"), D("0.5")),
    ("0.0", D("-0.05"), D("0.05")),
    ("-5", D("-5.5"), D("-4.5")),
    ("+5", D("4.5"), D("5.5")),
    ("5.4", D("5.35"), D("5.45")),
    ("12345678901234567890123456789012345", D("12345678901234567890123456789012344.5"),
     D("12345678901234567890123456789012345.5")),
]


@pytest.mark.parametrize(("value", "low", "high"), NUMBER_RANGES)
def test_number_ranges(value: str, low: Decimal, high: Decimal) -> None:
    assert number_range(value, "n") == (low, high)


@pytest.mark.parametrize("value", ["", "abc", "1.", ".5", "1e", "1,5", "NaN", "Infinity", "0x10",
                                   "1 ", "--1", "gt5"])
def test_bad_numbers(value: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        number_range(value, "probability")
    assert info.value.issues[0].expression == ("probability",)


NUMBER_PREFIXES = [
    ("eq", "100", "(and (ge value 99.5) (lt value 100.5))"),
    ("ne", "100", "(or (lt value 99.5) (ge value 100.5))"),
    ("gt", "100", "(gt value 100)"),
    ("lt", "100", "(lt value 100)"),
    ("ge", "100", "(ge value 100)"),
    ("le", "100", "(le value 100)"),
    ("sa", "100", "(gt value 100)"),
    ("eb", "100", "(lt value 100)"),
    ("ap", "100", "(and (ge value 90) (lt value 110))"),
    ("ap", "0", "(and (ge value -0.5) (lt value 0.5))"),  # the implicit precision is the floor
    ("ap", "1", "(and (ge value 0.5) (lt value 1.5))"),
    ("ap", "-20", "(and (ge value -22) (lt value -18))"),
    ("eq", "1e2", "(and (ge value 50) (lt value 150))"),
    ("gt", "1e2", "(gt value 100)"),
    ("eq", "0.8", "(and (ge value 0.75) (lt value 0.85))"),
]


@pytest.mark.parametrize(("prefix", "value", "text"), NUMBER_PREFIXES)
def test_number_prefixes(prefix: str, value: str, text: str) -> None:
    assert str(number_conditions(prefix, value, "n")) == text


def test_number_conditions_on_another_field() -> None:
    assert str(number_conditions("gt", "5.4", "value-quantity", field="c1_value")) == (
        "(gt c1_value 5.4)")
