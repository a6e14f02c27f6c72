"""Settings, read once from the environment (or given explicitly by tests and the CLI)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fhir_server.fhir.identifiers import DEFAULT_CANONICAL_BASE

DEFAULT_DATA_DIR = "data"


def default_store_url(data_dir: str | os.PathLike[str] | None = None) -> str:
    directory = Path(data_dir or os.environ.get("FHIR_DATA_DIR") or DEFAULT_DATA_DIR)
    return f"sqlite:///{directory / 'fhir.db'}"


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _int(value: str | None, default: int) -> int:
    return default if value is None or value == "" else int(value)


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Environment variable names are given beside each field."""

    store_url: str = field(default_factory=default_store_url)  # FHIR_STORE
    base_url: str | None = None  # FHIR_BASE_URL: public FHIR base when behind a proxy
    canonical_base: str = DEFAULT_CANONICAL_BASE  # FHIR_CANONICAL_BASE: identifier/profile URIs
    allow_update_create: bool = False  # FHIR_ALLOW_UPDATE_CREATE: PUT to an unknown id creates
    conditional_delete_multiple: bool = False  # FHIR_CONDITIONAL_DELETE_MULTIPLE: delete all matches
    max_body_bytes: int = 16 * 1024 * 1024  # FHIR_MAX_BODY_BYTES
    max_json_depth: int = 64  # FHIR_MAX_JSON_DEPTH
    max_bundle_entries: int = 10000  # FHIR_MAX_BUNDLE_ENTRIES: larger batches/transactions get 413
    default_count: int = 50  # FHIR_DEFAULT_COUNT
    max_count: int = 1000  # FHIR_MAX_COUNT
    sqlite_synchronous: str = "NORMAL"  # FHIR_SQLITE_SYNCHRONOUS: NORMAL survives kill -9; FULL power loss
    sqlite_busy_timeout_ms: int = 15000  # FHIR_SQLITE_BUSY_TIMEOUT_MS
    #: FHIR_SQLITE_MMAP_MB: bytes of the database file each connection reads through a memory map
    #: instead of read() calls (0: none; SQLite caps it, at 2 GB in most builds)
    sqlite_mmap_mb: int = 2048
    access_log: bool = True  # FHIR_ACCESS_LOG: one JSON line per request
    auth: bool = True  # FHIR_AUTH=off: no OAuth at all (local development only; a warning at start)
    token_lifetime_s: int = 300  # FHIR_TOKEN_LIFETIME: access-token lifetime in seconds (at most 300)
    jwks_allow_private: bool = False  # FHIR_JWKS_ALLOW_PRIVATE: fetch JWKS from private/loopback hosts
    #: FHIR_RATE_LIMIT_WINDOW_S: the clients' rate-limit window (default 60: a client's limit is
    #: its number of requests per minute; tests shorten it)
    rate_limit_window_s: float = 60.0
    #: FHIR_AUDIT_INTERVAL_MS: how often each process's audit writer writes the read audits it has
    #: queued, in one transaction (write audits are in the data's own transaction). A process
    #: killed outright (SIGKILL, OOM, power) loses the read audits of its last interval or so; a
    #: graceful stop writes them. Shorter: a smaller window, more commits (docs/PERFORMANCE.md)
    audit_interval_ms: int = 1000
    #: FHIR_ENFORCE_PROFILES: "off", or a comma-separated list of profile canonical URLs (or short
    #: names such as rhip-patient) every resource of their type must conform to; None: the defaults
    enforce_profiles: str | None = None
    #: FHIR_CONFORMANCE_DIR: the directory holding profiles/ and terminology/ (default: the source tree)
    conformance_dir: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.rate_limit_window_s < float("inf"):
            raise ValueError("FHIR_RATE_LIMIT_WINDOW_S must be a positive number of seconds")
        if not 1 <= self.audit_interval_ms <= 10_000:
            raise ValueError("FHIR_AUDIT_INTERVAL_MS must be from 1 to 10000 (milliseconds)")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        e = dict(os.environ if env is None else env)
        base = cls()
        settings = cls(
            store_url=e.get("FHIR_STORE") or default_store_url(e.get("FHIR_DATA_DIR")),
            base_url=(e.get("FHIR_BASE_URL") or "").rstrip("/") or None,
            canonical_base=(e.get("FHIR_CANONICAL_BASE") or base.canonical_base).rstrip("/"),
            allow_update_create=_bool(e.get("FHIR_ALLOW_UPDATE_CREATE"), base.allow_update_create),
            conditional_delete_multiple=_bool(e.get("FHIR_CONDITIONAL_DELETE_MULTIPLE"),
                                              base.conditional_delete_multiple),
            max_body_bytes=_int(e.get("FHIR_MAX_BODY_BYTES"), base.max_body_bytes),
            max_json_depth=_int(e.get("FHIR_MAX_JSON_DEPTH"), base.max_json_depth),
            max_bundle_entries=_int(e.get("FHIR_MAX_BUNDLE_ENTRIES"), base.max_bundle_entries),
            default_count=_int(e.get("FHIR_DEFAULT_COUNT"), base.default_count),
            max_count=_int(e.get("FHIR_MAX_COUNT"), base.max_count),
            sqlite_synchronous=(e.get("FHIR_SQLITE_SYNCHRONOUS") or base.sqlite_synchronous).upper(),
            sqlite_busy_timeout_ms=_int(
                e.get("FHIR_SQLITE_BUSY_TIMEOUT_MS"), base.sqlite_busy_timeout_ms
            ),
            sqlite_mmap_mb=_int(e.get("FHIR_SQLITE_MMAP_MB"), base.sqlite_mmap_mb),
            access_log=_bool(e.get("FHIR_ACCESS_LOG"), base.access_log),
            auth=_bool(e.get("FHIR_AUTH"), base.auth),
            token_lifetime_s=min(300, _int(e.get("FHIR_TOKEN_LIFETIME"), base.token_lifetime_s)),
            jwks_allow_private=_bool(e.get("FHIR_JWKS_ALLOW_PRIVATE"), base.jwks_allow_private),
            rate_limit_window_s=float(e.get("FHIR_RATE_LIMIT_WINDOW_S") or base.rate_limit_window_s),
            audit_interval_ms=_int(e.get("FHIR_AUDIT_INTERVAL_MS"), base.audit_interval_ms),
            enforce_profiles=e.get("FHIR_ENFORCE_PROFILES") or None,
            conformance_dir=e.get("FHIR_CONFORMANCE_DIR") or None,
        )
        return replace(settings, **overrides) if overrides else settings
