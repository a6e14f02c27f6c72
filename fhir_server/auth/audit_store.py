"""The store as an audited request sees it: write audits in the data's transaction, and an
append-only audit trail.

:class:`AuditedStore` wraps the request's store (for an authenticated request, the
:class:`~fhir_server.auth.guard.GuardedStore`). Every write of the request goes through its
:meth:`~AuditedStore.transaction`, whose :class:`AuditedTx`:

* refuses any write of an AuditEvent (405), whoever asks and whatever their scopes: REST
  interactions, batch and transaction entries, conditional writes alike;
* remembers each version written and, when the unit of work has finished without error, puts one
  AuditEvent per version (per Patient concerned) into the SAME transaction, before it commits. If
  that put fails, the transaction rolls back and the data write fails with it; if the data write
  fails, no audit of it is written (the request's failure is audited afterwards, see
  :mod:`fhir_server.auth.audit`). A retried unit of work (a lost compare-and-set race) starts a new
  transaction and records afresh.

Searches of AuditEvent by a parameter that is not indexed (see
:data:`~fhir_server.auth.audit_events.INDEXED_PARAMS`) are refused (400) rather than silently
finding nothing. With ``FHIR_AUTH=off`` nothing is audited, but the same wrapper (without a
recorder) still keeps the trail append-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from fhir_server.auth.audit_events import AUDIT_TYPE, SORTS, AuditRecord, unindexed
from fhir_server.auth.audit_writer import writing
from fhir_server.auth.guard import GuardedTx
from fhir_server.errors import InvalidRequest, MethodNotAllowed
from fhir_server.search import ir
from fhir_server.store.base import (
    HistoryQuery,
    NewVersion,
    Reader,
    SearchPage,
    SearchQuery,
    Store,
    StoredResource,
    Tx,
)
from fhir_server.store.view import StoreView

APPEND_ONLY = ("AuditEvent records are append-only: they are written by the server and cannot be"
               " created, updated, patched or deleted through the API")


@dataclass(frozen=True, slots=True)
class Written:
    """One version a request wrote: what its AuditEvent is built from."""

    type: str
    id: str
    version: int
    method: str  # POST, PUT, PATCH, DELETE
    created: bool  # there was no current version
    body: bytes | None  # the version written, or for a deletion the version deleted


#: builds the audit records of the writes of one transaction
Recorder = Callable[[list[Written]], list[AuditRecord]]


def refuse_audit_write(rtype: str) -> None:
    if rtype == AUDIT_TYPE:
        raise MethodNotAllowed(APPEND_ONLY, headers={"Allow": "GET"})


def _check_search(query: SearchQuery) -> None:
    sort = [s.param for s in query.sort]
    name = unindexed(query.types, query.where, sort)
    if name is not None and name in sort and AUDIT_TYPE in query.types:
        raise InvalidRequest(f"AuditEvent cannot be sorted by {name!r}: the audit trail sorts by"
                             f" {', '.join(sorted(SORTS))}", expression="_sort")
    if name is not None:
        raise InvalidRequest(f"AuditEvent cannot be searched by {name!r}: the audit trail is"
                             " indexed for _id, _lastUpdated, date, type, subtype, outcome, agent,"
                             " entity and patient", expression=name)


class _Reads:
    inner: Reader

    def read(self, type: str, id: str) -> StoredResource | None:
        return self.inner.read(type, id)

    def vread(self, type: str, id: str, version: int) -> StoredResource | None:
        return self.inner.vread(type, id, version)

    def history(self, query: HistoryQuery) -> list[StoredResource]:
        return self.inner.history(query)

    def search(self, query: SearchQuery) -> SearchPage:
        _check_search(query)
        return self.inner.search(query)

    def count(self, types: tuple[str, ...], where: ir.Node) -> int:
        _check_search(SearchQuery(types, where))
        return self.inner.count(types, where)


class AuditedTx(_Reads):
    """``inner`` (the guarded transaction), writing audits through ``raw`` (the store's own)."""

    inner: Tx

    def __init__(self, inner: Tx, raw: Tx) -> None:
        self.inner = inner
        self.raw = raw
        self.written: list[Written] = []

    def put(self, new: NewVersion, expected_version: int) -> NewVersion | None:
        refuse_audit_write(new.type)
        body = new.body
        if body is None:  # a deletion: the Patients concerned are those of the version deleted
            current = self.raw.read(new.type, new.id)
            body = current.body if current is not None else None
        written = self.inner.put(new, expected_version)
        self.written.append(Written(new.type, new.id, new.version, new.method,
                                    expected_version == 0, body))
        return written

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        refuse_audit_write(AUDIT_TYPE)


class AuditedStore(_Reads, StoreView):
    """``inner`` (the request's store) with audited, append-only writes (module docstring).
    ``record`` None: append-only only (``FHIR_AUTH=off``)."""

    def __init__(self, inner: Store, raw: Store, record: Recorder | None = None,
                 on_commit: Callable[[int], None] | None = None) -> None:
        super().__init__(inner)
        self.inner: Store = inner
        self.raw = raw  # the store itself (``inner`` may be a GuardedStore over it)
        self.record = record
        self.on_commit = on_commit

    @contextmanager
    def transaction(self) -> Iterator[AuditedTx]:
        with writing(self.raw), self.store.transaction() as tx:
            # audits bypass the guard: they go to the store's own transaction
            audited = AuditedTx(tx, tx.tx if isinstance(tx, GuardedTx) else tx)
            yield audited
            written = audited.written
            if self.record is not None and written:
                audited.raw.append_audit(self.record(written))
        if self.on_commit is not None and written:
            self.on_commit(len(written))
