"""Which profiles a written resource must conform to, and the check on every write.

A resource is validated against the profiles it declares in ``meta.profile`` that the server knows
(an unknown one is a warning) and against the profiles enforced for its type by
``FHIR_ENFORCE_PROFILES`` (:attr:`Settings.enforce_profiles`):

* unset: :data:`DEFAULT_PROFILES` (the four local profiles);
* ``off``: none;
* otherwise a comma-separated list of canonical URLs or short names (``rhip-patient``).

Errors block the write (422 with an OperationOutcome holding every issue); warnings do not, and
are returned when the client asks for ``Prefer: return=OperationOutcome``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from functools import cache, cached_property
from typing import Any

from fhir_server.config import Settings
from fhir_server.errors import Issue, Unprocessable
from fhir_server.profiles.catalog import Resolver
from fhir_server.profiles.loader import Registry, registry
from fhir_server.profiles.validator import Validator

DEFAULT_PROFILES = ("rhip-patient", "rhip-encounter", "rhip-immunization", "rhip-referral")
_OFF = frozenset({"off", "none", "false", "0", "no"})


def _names(setting: str | None) -> tuple[str, ...]:
    if setting is None:
        return DEFAULT_PROFILES
    if setting.strip().lower() in _OFF:
        return ()
    return tuple(n.strip() for n in setting.split(",") if n.strip())


class Enforcement:
    """The profile rules of one configuration (profiles loaded on first need)."""

    def __init__(self, enforce: str | None, conformance_dir: str | None, base: str) -> None:
        self.names = _names(enforce)
        self.conformance_dir = conformance_dir
        self.base = base
        self._lock = threading.Lock()

    @cached_property
    def registry(self) -> Registry:
        return registry(self.conformance_dir, self.base)

    @cached_property
    def validator(self) -> Validator:
        from fhir_server.terminology.service import terminology

        return Validator(self.registry, terminology(self.conformance_dir))

    @cached_property
    def by_type(self) -> Mapping[str, tuple[str, ...]]:
        """Enforced profile URLs per resource type; ValueError for an unknown profile name."""
        out: dict[str, list[str]] = {}
        for name in self.names:
            url = self.registry.resolve_name(name)
            rtype = self.registry.type_of(url) if url else None
            if url is None or rtype is None:
                raise ValueError(f"FHIR_ENFORCE_PROFILES names {name!r}, which is not a profile "
                                 f"this server knows (known: {', '.join(sorted(self.registry.profiles))})")
            out.setdefault(rtype, []).append(url)
        return {t: tuple(urls) for t, urls in out.items()}

    def load(self) -> None:
        """Load and compile now (at start-up) when profiles are enforced."""
        if self.names:
            with self._lock:
                self.by_type  # noqa: B018
                self.validator  # noqa: B018

    def profiles_for(self, resource: Mapping[str, Any]) -> list[str]:
        declared: Iterable[Any] = ()
        meta = resource.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("profile"), list):
            declared = meta["profile"]
        urls = [p for p in declared if isinstance(p, str)]
        if self.names:
            urls.extend(self.by_type.get(str(resource.get("resourceType")), ()))
        return urls

    def check(self, resource: dict[str, Any], resolver: Resolver | None = None,
              extra: Iterable[str] = ()) -> list[Issue]:
        """Every issue of ``resource`` against its declared and enforced profiles ([] when no
        profile applies: no base-rule walk either)."""
        urls = [*self.profiles_for(resource), *extra]
        if not urls:
            return []
        return self.validator.validate(resource, urls, resolver=resolver)

    def enforce(self, resource: dict[str, Any], resolver: Resolver | None = None) -> list[Issue]:
        """Raise 422 when an error is found; return the warnings otherwise."""
        issues = self.check(resource, resolver)
        errors = [i for i in issues if i.severity in ("error", "fatal")]
        if errors:
            raise Unprocessable(f"The {resource.get('resourceType')} does not conform to its "
                                f"profiles: {errors[0].diagnostics}", issues=errors + [
                                    i for i in issues if i not in errors])
        return issues


@cache
def _enforcement(enforce: str | None, conformance_dir: str | None, base: str) -> Enforcement:
    return Enforcement(enforce, conformance_dir, base)


def enforcement(settings: Settings) -> Enforcement:
    """The (shared, cached) enforcement of a configuration."""
    return _enforcement(settings.enforce_profiles, settings.conformance_dir,
                        settings.canonical_base.rstrip("/"))


def write_warnings(settings: Settings, body: bytes | None) -> list[Issue]:
    """The warnings a stored resource (its JSON) has against its profiles, for
    ``Prefer: return=OperationOutcome`` (computed again: only asked for by such clients)."""
    if not body:
        return []
    from fhir_server.fhir import jsonio

    resource = jsonio.loads_trusted(body)
    return [i for i in enforcement(settings).check(resource) if i.severity == "warning"]
