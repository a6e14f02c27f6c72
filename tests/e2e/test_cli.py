"""The ``fhir-server`` command line: seed into a store, then serve what was seeded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from fhir_server.store import HistoryQuery
from fhir_server.store.base import iter_history
from fhir_server.store.sqlite import SqliteStore
from tests.e2e.server import Server, fhir_server_command

pytestmark = pytest.mark.e2e


def _seed(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*fhir_server_command(), "seed", "--patients", "30", "--seed", "7",
         "--store", f"sqlite:///{db}", *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )


def _contents(db: Path) -> dict[tuple[str, str], bytes]:
    store = SqliteStore(db)
    rows = {(r.type, r.id): r.body or b"" for r in iter_history(store, HistoryQuery(limit=500))}
    store.close()
    return rows


def test_seed_is_deterministic_and_served(tmp_path: Path) -> None:
    first = _seed(tmp_path / "a.db")
    assert first.returncode == 0, first.stderr
    assert "Seeded" in first.stderr and "100%" in first.stderr
    assert _seed(tmp_path / "b.db").returncode == 0

    def normalised(db: Path) -> dict[tuple[str, str], bytes]:  # lastUpdated differs, nothing else
        import re

        return {k: re.sub(rb'"lastUpdated":"[^"]+"', b"", v) for k, v in _contents(db).items()}

    a, b = normalised(tmp_path / "a.db"), normalised(tmp_path / "b.db")
    assert a == b
    types = {t for t, _ in a}
    assert {"Patient", "Organization", "Encounter", "Immunization", "ServiceRequest"} <= types
    assert sum(1 for t, _ in a if t == "Patient") == 30

    again = _seed(tmp_path / "a.db", "--if-empty")
    assert again.returncode == 0 and "not seeding" in again.stderr

    server = Server(tmp_path / "a.db").start()
    try:
        patient_id = next(i for t, i in a if t == "Patient")
        patient = requests.get(f"{server.base}/Patient/{patient_id}").json()
        assert patient["resourceType"] == "Patient"
        systems = {i["system"] for i in patient["identifier"]}
        assert any(s.endswith("/sid/ehc-id") for s in systems)
    finally:
        server.stop()


def test_bad_store_url_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run([*fhir_server_command(), "serve", "--store", "postgres://x"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "unsupported store URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_of_an_older_schema_is_a_message(tmp_path: Path) -> None:
    import sqlite3

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE resources (x)")
    result = _seed(old)
    assert result.returncode == 2
    assert "older ehc-fhir" in result.stderr and "Traceback" not in result.stderr
