"""The one decision point: a view of the store through a client's :class:`~.policy.Access`.

Every interaction, operation, include, chain, ``_has``, history page, conditional interaction and
batch or transaction entry reaches data through ``Services.store``; for an authenticated request
that is a :class:`GuardedStore`, so none of them can forget the check:

* searches and counts get the client's filter ANDed into the query the store compiles (per type for
  system searches); chains and ``_has`` get the filter of the type they reach, and need search
  permission on it (else 403), so they cannot be used as existence oracles;
* ``read``/``vread``/instance history find an instance only if it matches the filter (a search by
  ``_id`` AND the filter): outside the policy is exactly "never existed" (the same 404);
* type and system history keep the versions of the resources the client can see now;
* a write (``Tx.put``) needs the c/u/d scope, the current version (update, delete) and the new one
  must match the client's write filter, checked inside the transaction, which a failure rolls back;
  the platform stamps the ``record-owner`` tag of the client's organisation, and ``meta.security``
  labels cannot be changed by clients;
* what a role may not see (an insurer: clinical detail) is removed from every body returned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from fhir_server.auth.policy import NOTHING, Access
from fhir_server.errors import Forbidden
from fhir_server.fhir import jsonio
from fhir_server.fhir.audit_record import AuditRecord
from fhir_server.search import index, ir
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

_HISTORY_ROUNDS = 20  # inner pages read to fill one filtered history page


class _GuardedReads:
    inner: Reader
    access: Access

    # -- search -----------------------------------------------------------------------------------
    def _restrict(self, node: ir.Node) -> ir.Node:
        """``node`` with every chain and ``_has`` limited to what the client may search."""
        if isinstance(node, ir.Chain | ir.Has):
            rtype = node.target if isinstance(node, ir.Chain) else node.type
            self.access.require(rtype, "s")
            inner = self._restrict(node.query)
            visible = self.access.visible(rtype)
            query = inner if visible is None else ir.all_of((inner, visible))
            return replace(node, query=query)
        if isinstance(node, ir.And | ir.Or):
            return type(node)(tuple(self._restrict(item) for item in node.items))
        if isinstance(node, ir.Not):
            return ir.Not(self._restrict(node.item))
        return node

    def _where(self, types: tuple[str, ...], where: ir.Node) -> tuple[tuple[str, ...], ir.Node]:
        where = self._restrict(where)
        kept = tuple(t for t in types if self.access.visible(t) != NOTHING)
        filters = {t: self.access.visible(t) for t in kept}
        if all(f is None for f in filters.values()):
            return kept, where
        if len(kept) == 1:
            f = filters[kept[0]]
            assert f is not None
            return kept, ir.all_of((f, where))
        per_type = ir.any_of(ir.TypeIs((t,)) if f is None else ir.all_of((ir.TypeIs((t,)), f))
                             for t, f in filters.items())
        return kept, ir.all_of((per_type, where))

    def search(self, query: SearchQuery) -> SearchPage:
        types, where = self._where(query.types, query.where)
        if not types:
            return SearchPage([], [])
        page = self.inner.search(replace(query, types=types, where=where))
        return SearchPage([self._mask(r) for r in page.rows], page.keys)

    def count(self, types: tuple[str, ...], where: ir.Node) -> int:
        kept, condition = self._where(types, where)
        return self.inner.count(kept, condition) if kept else 0

    # -- by id ------------------------------------------------------------------------------------
    def _visible_row(self, type: str, id: str) -> StoredResource | None:
        visible = self.access.visible(type)
        if visible == NOTHING:
            return None
        if visible is None:
            return self.inner.read(type, id)
        rows = self.inner.search(SearchQuery((type,), ir.all_of((ir.IdIn((id,)), visible)),
                                             limit=1)).rows
        return rows[0] if rows else None

    def read(self, type: str, id: str) -> StoredResource | None:
        row = self._visible_row(type, id)
        return None if row is None else self._mask(row)

    def vread(self, type: str, id: str, version: int) -> StoredResource | None:
        if self.access.visible(type) is not None and self._visible_row(type, id) is None:
            return None
        row = self.inner.vread(type, id, version)
        return None if row is None else self._mask(row)

    def history(self, query: HistoryQuery) -> list[StoredResource]:
        if query.type is not None and query.id is not None:
            if self.access.visible(query.type) is not None and \
                    self._visible_row(query.type, query.id) is None:
                return []
            return [self._mask(r) for r in self.inner.history(query)]
        out: list[StoredResource] = []
        for _ in range(_HISTORY_ROUNDS):
            page = self.inner.history(query)
            out += self._visible_versions(page)
            if len(out) >= query.limit or len(page) < query.limit:
                break
            last = page[-1]
            query = replace(query, after=(last.ts, last.type, last.id, last.version))
        return [self._mask(r) for r in out[: query.limit]]

    def _visible_versions(self, rows: list[StoredResource]) -> list[StoredResource]:
        """The versions of resources the client can see now (deleted ones: not at all)."""
        ids: dict[str, set[str]] = {}
        for row in rows:
            ids.setdefault(row.type, set()).add(row.id)
        seen: set[tuple[str, str]] = set()
        for rtype, rids in ids.items():
            visible = self.access.visible(rtype)
            if visible == NOTHING:
                continue
            where = ir.all_of((ir.IdIn(tuple(sorted(rids))), visible)) if visible is not None \
                else ir.IdIn(tuple(sorted(rids)))
            found = self.inner.search(SearchQuery((rtype,), where, limit=len(rids))).rows
            seen.update((r.type, r.id) for r in found)
        return [r for r in rows if (r.type, r.id) in seen]

    def _mask(self, row: StoredResource) -> StoredResource:
        mask = self.access.masker
        if mask is None or row.body is None:
            return row
        masked = mask(row.type, jsonio.loads_trusted(row.body))
        return row if masked is None else replace(row, body=jsonio.dumps(masked))


class GuardedTx(_GuardedReads):
    def __init__(self, inner: Tx, access: Access) -> None:
        self.inner = self.tx = inner
        self.access = access

    def put(self, new: NewVersion, expected_version: int) -> NewVersion:
        letter = "d" if new.body is None else ("c" if expected_version == 0 else "u")
        self.access.require(new.type, letter)
        writable = self.access.writable(new.type, letter)
        if writable == NOTHING:
            raise Forbidden(f"Your data policy does not allow writing {new.type} resources")
        current = self.tx.read(new.type, new.id) if expected_version else None
        if expected_version and writable is not None and not self._matches(new, writable):
            raise Forbidden(f"{new.type}/{new.id} is not among the records your organisation"
                            " may change")
        if new.body is not None:
            new = self._stamped(new, current)
        self.tx.put(new, expected_version)
        if new.body is not None and writable is not None and not self._matches(new, writable):
            raise Forbidden(f"This {new.type} would fall outside the records your organisation"
                            " may write (data policy)")
        return new

    def append_audit(self, records: Sequence[AuditRecord]) -> None:
        raise Forbidden("AuditEvents are written by the server, not by clients")

    def _matches(self, new: NewVersion, where: ir.Node) -> bool:
        query = SearchQuery((new.type,), ir.all_of((ir.IdIn((new.id,)), where)), limit=1)
        return bool(self.tx.search(query).rows)

    def _stamped(self, new: NewVersion, current: StoredResource | None) -> NewVersion:
        """The version as the platform writes it: the organisation's ``record-owner`` tag (any
        other client's tag of that system removed) and ``meta.security`` unchanged."""
        assert new.body is not None
        doc: dict[str, Any] = jsonio.loads_trusted(new.body)
        meta = dict(doc.get("meta") or {})
        old_meta = (jsonio.loads_trusted(current.body).get("meta") or {}) \
            if current is not None and current.body is not None else {}
        if "security" not in meta and old_meta.get("security"):
            meta["security"] = old_meta["security"]  # omitted by the client: kept
        elif meta.get("security") != old_meta.get("security"):
            raise Forbidden("meta.security labels are set by the platform, not by clients",
                            expression=f"{new.type}.meta.security")
        owner = self.access.owner_tag
        if owner is None:
            return replace(new, body=jsonio.dumps(doc | {"meta": meta})) if meta else new
        # ownership is the creator's: an update keeps the current owner (a referral partner
        # updating a referral does not take it from the hospital that wrote it)
        kept = [t for t in old_meta.get("tag", []) if isinstance(t, dict)
                and t.get("system") == owner["system"]]
        tags = [t for t in meta.get("tag", []) if not (isinstance(t, dict)
                                                        and t.get("system") == owner["system"])]
        meta["tag"] = [*tags, *(kept or [owner])]
        doc["meta"] = meta
        return replace(new, body=jsonio.dumps(doc), index=tuple(index.extract(doc)))


class GuardedStore(_GuardedReads, StoreView):
    """``store`` as the holder of ``access`` sees it (see the module docstring)."""

    def __init__(self, inner: Store, access: Access) -> None:
        super().__init__(inner)
        self.inner = inner
        self.access = access

    @contextmanager
    def transaction(self) -> Iterator[GuardedTx]:
        with self.store.transaction() as tx:
            yield GuardedTx(tx, self.access)
