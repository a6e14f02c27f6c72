"""What every interaction needs: the store, the settings, and the request's base URL."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from fhir_server.config import Settings
from fhir_server.store import Store
from fhir_server.terminology import Terminology, terminology


@dataclass
class Services:
    settings: Settings
    store: Store

    def __post_init__(self) -> None:
        from fhir_server.interactions.resources import use_canonical_base

        use_canonical_base(self.settings.canonical_base)

    @cached_property
    def cursor_key(self) -> bytes:
        return self.store.secret("cursor")

    @cached_property
    def terminology(self) -> Terminology:
        """The terminology service of the conformance directory (loaded once per process)."""
        return terminology(self.settings.conformance_dir, self.settings.canonical_base)
