"""The storage port.

Deliberately narrow and free of SQL assumptions: stores keep versions and answer reads; every rule
(versioning, conditional logic, validation, meta) lives above, in ``interactions/``. A write is a
compare-and-set on the current version, so a store needs only an atomic "put if the current version is
still N" to make concurrent updates safe, which SQLite (``BEGIN IMMEDIATE``) and MongoDB (a filter on
the version) both give.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from fhir_server.fhir.audit_record import AuditRecord
from fhir_server.search import ir
from fhir_server.search.index import IndexEntry


class StoreError(Exception):
    """Base class of storage failures (mapped to HTTP statuses by the interactions)."""


class VersionConflict(StoreError):
    """The compare-and-set of a write failed: another writer got there first."""


class UniqueViolation(StoreError):
    """A claimed unique key (such as a health-card identifier) already belongs to another resource."""

    def __init__(self, key: str, owner: str) -> None:
        super().__init__(f"{key} already belongs to {owner}")
        self.key, self.owner = key, owner


class StoreUnavailable(StoreError):
    """The backend cannot be reached or is locked for too long (becomes 503)."""


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One version of a resource as stored. ``body`` is the exact JSON served (None when deleted)."""

    type: str
    id: str
    version: int
    ts: int  # lastUpdated, microseconds since the epoch (UTC)
    method: str  # POST, PUT, PATCH or DELETE: the interaction that made this version
    body: bytes | None

    @property
    def deleted(self) -> bool:
        return self.body is None


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A version the interactions have fully prepared (meta stamped, JSON serialised)."""

    type: str
    id: str
    version: int
    ts: int
    method: str
    body: bytes | None  # None records a deletion
    index: tuple[IndexEntry, ...] = ()  # search index entries of this version (none if deleted)
    #: keys this resource holds exclusively while this version is current (the health-card
    #: identifiers of an active Patient, as "system|value"); the store enforces the uniqueness
    claims: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """History at system (type None), type (id None) or instance level, newest first.

    ``after`` is the keyset cursor: the (ts, type, id, version) of the last entry already returned.
    """

    type: str | None = None
    id: str | None = None
    since: int | None = None  # inclusive lower bound on ts
    before: int | None = None  # exclusive upper bound on ts (``_at``-style snapshot)
    after: tuple[int, str, str, int] | None = None
    limit: int = 50


MATCH_ALL: ir.Node = ir.And()


@dataclass(frozen=True, slots=True)
class SortSpec:
    param: str  # a search parameter code, ``_id`` or ``_lastUpdated``
    param_type: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Current, non-deleted resources of ``types`` matching ``where``, in ``sort`` order with ties
    broken by (type, id); keyset-paged: ``after`` is the key of the last row already returned (the
    first when paging ``backwards``). Without ``sort`` the order is the store's choice, kept by its
    keys: (type, id), or on SQLite possibly a condition's value (store/sqlite/ordered.py)."""

    types: tuple[str, ...]
    where: ir.Node = MATCH_ALL
    sort: tuple[SortSpec, ...] = ()
    after: tuple[Any, ...] | None = None
    backwards: bool = False
    limit: int = 50


@dataclass(frozen=True, slots=True)
class SearchPage:
    rows: list[StoredResource]
    keys: list[tuple[Any, ...]]  # each row's keyset key (sort values, type, id), JSON-serialisable


class Reader(Protocol):
    def read(self, type: str, id: str) -> StoredResource | None:
        """The current version (a deletion marker if deleted), or None if never created."""

    def vread(self, type: str, id: str, version: int) -> StoredResource | None: ...

    def history(self, query: HistoryQuery) -> list[StoredResource]: ...

    def search(self, query: SearchQuery) -> SearchPage:
        """Compile ``query.where`` for this backend and return one page."""

    def count(self, types: tuple[str, ...], where: ir.Node) -> int: ...


class Tx(Reader, Protocol):
    """A write transaction. Everything put inside commits together or not at all."""

    def put(self, new: NewVersion, expected_version: int) -> NewVersion | None:
        """Write ``new`` if the current version is ``expected_version`` (0: must not exist).

        Raises :class:`VersionConflict` otherwise, and :class:`UniqueViolation` when one of
        ``new.claims`` belongs to another resource. The resource's previous claims are released.
        Returns the version as written when it differs from ``new`` (a guarded transaction stamps
        the writer's ownership, :mod:`fhir_server.auth.guard`), else None.
        """

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append AuditEvents to the audit log (append-only; every id new, else
        :class:`VersionConflict`). Read back as AuditEvent resources, version 1; a ``put`` of an
        AuditEvent's JSON appends it too (parsed back into a record)."""


class Store(Reader, Protocol):
    """A FHIR resource store. Implementations: ``store.sqlite.SqliteStore`` (and MongoDB)."""

    name: str
    capabilities: frozenset[str]

    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction; leaving the block by an exception rolls it back."""

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the backend answers."""

    def secret(self, name: str, length: int = 32) -> bytes:
        """A random secret shared by every process using this store, created on first use."""

    # -- registry: small key-value state shared by all processes (OAuth clients, tokens, jti) --
    def registry_get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The value under (kind, key), or None if absent or expired."""

    def registry_put(self, kind: str, key: str, value: dict[str, Any],
                     expires: int | None = None) -> None:
        """Insert or replace; ``expires``: unix seconds after which the entry is gone."""

    def registry_add(self, kind: str, key: str, value: dict[str, Any],
                     expires: int | None = None) -> bool:
        """Insert only if absent (or expired), atomically across processes; False if present."""

    def registry_delete(self, kind: str, key: str) -> bool:
        """Remove the entry; True if there was one."""

    def registry_list(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """The unexpired entries of ``kind`` as (key, value), by key."""

    def registry_incr(self, kind: str, key: str, amount: int, expires: int | None = None) -> int:
        """Add ``amount`` to the counter under (kind, key) atomically across processes, creating
        it (with ``expires``) if absent or expired; the new count. Reads as ``{"count": n}``."""

    def close(self) -> None: ...


def iter_history(reader: Reader, query: HistoryQuery) -> Iterator[StoredResource]:
    """Walk a whole history by pages (used by tools and tests, not by the HTTP API)."""
    while True:
        page = reader.history(query)
        yield from page
        if len(page) < query.limit:
            return
        last = page[-1]
        query = HistoryQuery(
            query.type, query.id, query.since, query.before,
            (last.ts, last.type, last.id, last.version), query.limit,
        )
