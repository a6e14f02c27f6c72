"""Appending a writer round to the audit log on every store: any number of events (SQLite binds them
in multi-row INSERTs of 128, 32 and 8 rows and the rest one by one), all of them readable and
counted, in order; an id already in the log (or twice in one round) fails the append and the
transaction appends nothing."""

from __future__ import annotations

import pytest

from fhir_server.auth import audit_events as ae
from fhir_server.fhir import audit_record
from fhir_server.search import ir
from fhir_server.search.query import build_search
from fhir_server.store import SearchQuery, SortSpec, Store, VersionConflict

SERVER = ae.Server("http://localhost/fhir", "https://ehc.example.cn")
H1 = ae.Caller("10.1.2.3", "h1", "Organization/h1", "hospital", "ab" * 32)
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def _round(count: int, start: int = 0) -> list[ae.AuditRecord]:
    """``count`` read events, one per millisecond, each of its own Patient and request."""
    out: list[ae.AuditRecord] = []
    for n in range(start, start + count):
        event = ae.Rest("read", T0 + n * 1000, 200, H1, SERVER, f"r-{n}", (f"Patient/p{n}",))
        out += ae.rest_records(event, [f"Patient/p{n}"], T0 + n * 1000 + 50)
    return out


@pytest.mark.parametrize("count", [1, 7, 8, 9, 40, 128, 169, 300])
def test_a_round_of_any_size_is_appended_whole(store: Store, count: int) -> None:
    records = _round(count)
    with store.transaction() as tx:
        tx.append_audit(records)
    assert store.count(("AuditEvent",), ir.And()) == count
    for record in (records[0], records[count // 2], records[-1]):
        stored = store.read("AuditEvent", record.id)
        assert stored is not None and stored.body == audit_record.render_json(record)
    page = store.search(SearchQuery(("AuditEvent",), ir.And(), (SortSpec("date", "date"),),
                                    limit=count + 1))
    assert [r.id for r in page.rows] == [r.id for r in records]
    last = records[-1]
    where = build_search(("AuditEvent",), [("patient", f"Patient/p{count - 1}")],
                         strict=True).where
    found = store.search(SearchQuery(("AuditEvent",), where, limit=5)).rows
    assert [r.id for r in found] == [last.id]


@pytest.mark.parametrize("at", [0, 100, 140, 149])
def test_a_repeated_id_appends_nothing(store: Store, at: int) -> None:
    """In a 128-row statement, a 32-row one, or the rows appended one by one."""
    earlier = _round(3, start=1000)
    with store.transaction() as tx:
        tx.append_audit(earlier)
    records = _round(150)
    records[at] = records[at]._replace(id=earlier[1].id)
    with pytest.raises(VersionConflict), store.transaction() as tx:
        tx.append_audit(records)
    assert store.count(("AuditEvent",), ir.And()) == 3
    twice = _round(150, start=2000)
    twice[at] = twice[at]._replace(id=twice[(at + 1) % 150].id)
    with pytest.raises(VersionConflict), store.transaction() as tx:
        tx.append_audit(twice)
    assert store.count(("AuditEvent",), ir.And()) == 3
