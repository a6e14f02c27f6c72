"""The in-memory IR evaluator over hand-built index entries, and with build_search end to end."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal as D

from fhir_server.search import ir
from fhir_server.search.evaluate import row_matches, search
from fhir_server.search.index import (
    CompositeEntry,
    DateEntry,
    IndexEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
)
from fhir_server.search.query import build_search

DAY = 86_400_000_000
Y2020 = 18262 * DAY  # 2020-01-01T00:00:00Z
Y2021 = 18628 * DAY

DB: dict[tuple[str, str], list[IndexEntry]] = {
    ("Patient", "p1"): [
        StringEntry("name", "wang li", "Wang Li"), TokenEntry("gender", None, "male"),
        DateEntry("birthdate", Y2020 + 40 * DAY, Y2020 + 41 * DAY),
        TokenEntry("_id", None, "p1"),
        TokenEntry("identifier", "http://x", "123", None, "http://v2", "MR"),
        ReferenceEntry("organization", "Organization", "o1"),
    ],
    ("Patient", "p2"): [
        StringEntry("name", "muller", "Müller"), TokenEntry("_id", None, "p2"),
        TokenEntry("identifier", None, "123"),
    ],
    ("Patient", "p3"): [TokenEntry("_id", None, "p3"), ReferenceEntry("organization", "Organization",
                                                                       "gone")],
    ("Organization", "o1"): [StringEntry("name", "acme", "ACME"), TokenEntry("_id", None, "o1")],
    ("Observation", "ob1"): [
        ReferenceEntry("subject", "Patient", "p1"), ReferenceEntry("patient", "Patient", "p1"),
        TokenEntry("code", "http://loinc.org", "8480-6", "systolic"),
        QuantityEntry("value-quantity", D("120"), D("119.5"), D("120.5"), "http://unitsofmeasure.org",
                      "mm[Hg]", "mmHg"),
        CompositeEntry("code-value-quantity", (
            TokenEntry("code", "http://loinc.org", "8480-6"),
            QuantityEntry("value-quantity", D("120"), D("119.5"), D("120.5"),
                          "http://unitsofmeasure.org", "mm[Hg]", "mmHg"))),
        DateEntry("date", Y2020, Y2021),
    ],
    ("Observation", "ob2"): [
        ReferenceEntry("subject", "Patient", "p2"),
        TokenEntry("code", "http://loinc.org", "8462-4"),
        QuantityEntry("value-quantity", D("80"), D("79.5"), D("80.5"), None, None, "mmHg"),
        CompositeEntry("code-value-quantity", (
            TokenEntry("code", "http://loinc.org", "8462-4"),
            QuantityEntry("value-quantity", D("80"), D("79.5"), D("80.5"), None, None, "mmHg"))),
    ],
    ("AuditEvent", "a1"): [ReferenceEntry("entity", "Observation", "ob1"),
                           ReferenceEntry("agent", "Practitioner", "dr")],
}


def entries_of(rtype: str, rid: str) -> Sequence[IndexEntry]:
    return DB.get((rtype, rid), [])


def all_ids(rtype: str) -> list[str]:
    return [rid for (t, rid) in DB if t == rtype]


def find(rtype: str, node: ir.Node) -> list[str]:
    return search(node, rtype, entries_of, all_ids)


def q(rtype: str, *pairs: tuple[str, str]) -> list[str]:
    req = build_search([rtype], pairs, now=Y2020, base_url="http://me/fhir")
    return find(rtype, req.where)


def test_rows() -> None:
    e = TokenEntry("x", None, "a")
    assert row_matches(ir.Cmp("code", "eq", "a"), e) is True
    assert row_matches(ir.Cmp("system", "eq", "a"), e) is None  # unknown, as in SQL
    assert row_matches(ir.Not(ir.Cmp("system", "eq", "a")), e) is None
    assert row_matches(ir.Null("system"), e) is True
    assert row_matches(ir.Or((ir.Cmp("system", "eq", "a"), ir.Cmp("code", "eq", "a"))), e) is True
    assert row_matches(ir.And((ir.Cmp("system", "eq", "a"), ir.Cmp("code", "eq", "b"))), e) is False
    assert row_matches(ir.In("code", ("b", "a")), e) is True
    assert row_matches(ir.Cmp("code", "gt", 1), e) is False  # strings never order with numbers
    d = DateEntry("d", 5, 10)
    assert row_matches(ir.Cmp("low", "ge", ir.Timestamp(5)), d) is True
    assert row_matches(ir.Cmp("high", "lt", ir.Timestamp(10)), d) is False
    n = QuantityEntry("q", D("1.5"), None, None, None, None, None)
    assert row_matches(ir.Cmp("value", "gt", D("1.49")), n) is True
    assert row_matches(ir.Cmp("value", "le", 1), n) is False
    s = StringEntry("s", "wang li", "Wang Li")
    assert row_matches(ir.Cmp("norm", "sw", "wan"), s) is True
    assert row_matches(ir.Cmp("norm", "co", "g l"), s) is True
    assert row_matches(ir.Cmp("norm", "sw", "li"), s) is False
    c = CompositeEntry("c", (TokenEntry("a", None, "x"), QuantityEntry("b", D(3), None, None, None,
                                                                        None, None)))
    assert row_matches(ir.And((ir.Cmp("c0_code", "eq", "x"), ir.Cmp("c1_value", "ge", 3))), c) is True
    assert row_matches(ir.Cmp("c2_value", "eq", 3), c) is None


def test_resource_nodes() -> None:
    assert find("Patient", ir.And()) == ["p1", "p2", "p3"]
    assert find("Patient", ir.Or()) == []
    assert find("Patient", ir.Missing("gender", "token", True)) == ["p2", "p3"]
    assert find("Patient", ir.Missing("gender", "token", False)) == ["p1"]
    assert find("Patient", ir.IdIn(("p2", "p9"))) == ["p2"]
    assert find("Patient", ir.TypeIs(("Patient",))) == ["p1", "p2", "p3"]
    assert find("Patient", ir.TypeIs(("Observation",))) == []
    assert find("Patient", ir.Not(ir.Entry("gender", "token", ir.Cmp("code", "eq", "male")))) == [
        "p2", "p3"]


def test_chain_follows_existing_targets_only() -> None:
    anything = ir.And()
    assert find("Patient", ir.Chain("organization", "Organization", anything)) == ["p1"]
    assert find("Patient", ir.Chain("organization", "Organization",
                                    ir.Missing("name", "string", True))) == []


def test_has() -> None:
    node = ir.Has("Observation", "subject", ir.Entry("code", "token", ir.Cmp("code", "eq", "8480-6")))
    assert find("Patient", node) == ["p1"]
    nested = ir.Has("Observation", "subject", ir.Has("AuditEvent", "entity", ir.And()))
    assert find("Patient", nested) == ["p1"]


def test_queries_end_to_end() -> None:
    assert q("Patient", ("name", "WANG")) == ["p1"]
    assert q("Patient", ("name", "li")) == []
    assert q("Patient", ("name:contains", "li")) == ["p1"]
    assert q("Patient", ("name:exact", "Müller")) == ["p2"]
    assert q("Patient", ("name", "mül")) == ["p2"]
    assert q("Patient", ("gender:not", "male")) == ["p2", "p3"]
    assert q("Patient", ("identifier", "123")) == ["p1", "p2"]
    assert q("Patient", ("identifier", "|123")) == ["p2"]
    assert q("Patient", ("identifier", "http://x|")) == ["p1"]
    assert q("Patient", ("identifier:of-type", "http://v2|MR|123")) == ["p1"]
    assert q("Patient", ("birthdate", "2020-02")) == ["p1"]
    assert q("Patient", ("birthdate", "2020-02-10")) == ["p1"]
    assert q("Patient", ("birthdate", "gt2020-02-10")) == []
    assert q("Patient", ("birthdate", "lt2020-02-10,gt2020-03")) == []
    assert q("Patient", ("birthdate", "le2020-02-10")) == ["p1"]
    assert q("Patient", ("_id", "p1,p3")) == ["p1", "p3"]
    assert q("Patient", ("organization.name", "acme")) == ["p1"]
    assert q("Patient", ("organization:missing", "true")) == ["p2"]
    assert q("Patient", ("_has:Observation:subject:code", "http://loinc.org|8462-4")) == ["p2"]
    assert q("Patient", ("_has:Observation:subject:_has:AuditEvent:entity:agent",
                         "Practitioner/dr")) == ["p1"]
    assert q("Observation", ("subject.name", "wang")) == ["ob1"]
    assert q("Observation", ("subject:Patient.organization.name", "acme")) == ["ob1"]
    assert q("Observation", ("subject", "http://me/fhir/Patient/p2")) == ["ob2"]
    assert q("Observation", ("subject", "p1")) == ["ob1"]
    assert q("Observation", ("value-quantity", "gt100")) == ["ob1"]
    assert q("Observation", ("value-quantity", "80||mmHg")) == ["ob2"]
    assert q("Observation", ("value-quantity", "120|http://unitsofmeasure.org|mm[Hg]")) == ["ob1"]
    assert q("Observation", ("code-value-quantity", "http://loinc.org|8480-6$gt100")) == ["ob1"]
    assert q("Observation", ("code-value-quantity", "8462-4$gt100")) == []
    assert q("Observation", ("code:text", "SYSTOL")) == ["ob1"]
    assert q("Observation", ("date", "2020")) == ["ob1"]
    assert q("Observation", ("date", "2020-06")) == []
    assert q("Observation", ("date", "ap2020-06")) == ["ob1"]  # ap: overlaps the widened range
    assert q("Observation", ("date", "ap2022-06")) == []
