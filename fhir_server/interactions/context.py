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
        view = Services(self.settings, GuardedStore(raw, access) if access.restricted else raw,
                        access, raw)
        view.__dict__["cursor_key"] = self.cursor_key  # share the cached values
        view.__dict__["terminology"] = self.terminology
        return view

    @cached_property
    def cursor_key(self) -> bytes:
        return self.store.secret("cursor")

    @cached_property
    def terminology(self) -> Terminology:
        """The terminology service of the conformance directory (loaded once per process)."""
        return terminology(self.settings.conformance_dir, self.settings.canonical_base)
