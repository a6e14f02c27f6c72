"""What every interaction needs: the store, the settings, the caller's access, and shared services."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from fhir_server.auth.policy import Access
from fhir_server.config import Settings
from fhir_server.store import Store
from fhir_server.terminology import Terminology, terminology


@dataclass
class Services:
    """``store`` is what interactions read and write through: for an authenticated request a
    :class:`~fhir_server.auth.guard.GuardedStore` (see :meth:`for_access`); ``raw_store`` is the
    store itself (audit records, start-up work)."""

    settings: Settings
    store: Store
    access: Access = field(default_factory=lambda: Access(None, ""))
    raw_store: Store | None = None

    def __post_init__(self) -> None:
        from fhir_server.interactions.resources import use_canonical_base, use_profiles

        use_canonical_base(self.settings.canonical_base)
        use_profiles(self.settings)
        if self.raw_store is None:
            self.raw_store = self.store

    def for_access(self, access: Access) -> Services:
        """These services as seen by the holder of ``access`` (its store guarded)."""
        from fhir_server.auth.guard import GuardedStore

        raw = self.raw_store or self.store
        return self.view(GuardedStore(raw, access) if access.restricted else raw, access)

    def view(self, store: Store, access: Access | None = None) -> Services:
        """A copy of these services with another ``store`` (and ``access``), sharing the settings
        and the cached values (cursor key, terminology). Built without ``__post_init__``: the
        canonical base and profiles were applied when these services were made, and this runs
        for every request (a new dataclass instance re-applying them cost ~10 µs)."""
        shared = self.__dict__
        if "cursor_key" not in shared:
            self.cursor_key  # noqa: B018  (computed once, then shared by every view)
        if "terminology" not in shared:
            self.terminology  # noqa: B018
        view: Services = object.__new__(Services)
        view.__dict__.update(shared)
        view.store = store
        if access is not None:
            view.access = access
        view.raw_store = self.raw_store or self.store
        return view

    @cached_property
    def cursor_key(self) -> bytes:
        return self.store.secret("cursor")

    @cached_property
    def terminology(self) -> Terminology:
        """The terminology service of the conformance directory (loaded once per process)."""
        return terminology(self.settings.conformance_dir, self.settings.canonical_base)
