"""The OAuth command line (``keys generate``, ``clients ...``, ``token``) against a real server, and
jti replay across two gunicorn workers."""

from __future__ import annotations

import json
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from fhir_server.auth.clients import ClientRegistry
from fhir_server.auth.grants import TOKEN_KIND, token_hash
from fhir_server.auth.keys import load_private_key, sign_assertion
from fhir_server.store.sqlite import SqliteStore
from tests.e2e.server import Server, fhir_server_command
from tests.oauth import ASSERTION_TYPE

pytestmark = pytest.mark.e2e


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*fhir_server_command(), *args], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "fhir.db"


def _keys(tmp_path: Path, client_id: str, alg: str = "ES384") -> tuple[Path, Path]:
    result = cli("keys", "generate", "--out", str(tmp_path / "keys"), "--client-id", client_id,
                 "--alg", alg)
    assert result.returncode == 0, result.stderr
    return tmp_path / "keys" / f"{client_id}.key.pem", tmp_path / "keys" / f"{client_id}.jwks.json"


def _add(db: Path, client_id: str, role: str, jwks: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("clients", "add", "--client-id", client_id, "--role", role, "--organization",
               f"Organization/{client_id}-org", "--jwks", str(jwks), "--store", f"sqlite:///{db}",
               *extra)


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_keys_generate(tmp_path: Path, alg: str) -> None:
    private, public = _keys(tmp_path, "h1", alg)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    jwks = json.loads(public.read_text())
    [key] = jwks["keys"]
    assert key["alg"] == alg and key["use"] == "sig"
    assert "d" not in key and "p" not in key
    assert load_private_key(private).kid == key["kid"]
    again = cli("keys", "generate", "--out", str(tmp_path / "keys"), "--client-id", "h1")
    assert again.returncode == 2 and "--force" in again.stderr


def test_clients_commands(tmp_path: Path, db: Path) -> None:
    _, jwks = _keys(tmp_path, "ins-1")
    store = f"sqlite:///{db}"
    added = _add(db, "ins-1", "insurer", jwks)
    assert added.returncode == 0, added.stderr
    assert "system/Encounter.rs" in added.stdout
    custom = _add(db, "hosp-1", "hospital", jwks, "--scope", "system/Patient.rs system/Encounter.cruds",
                  "--policy", "Encounter?service-provider={organization}", "--policy",
                  "write:*?_tag={record-owner}")
    assert custom.returncode == 0, custom.stderr

    listed = cli("clients", "list", "--store", store)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["hosp-1", "ins-1"]
    shown = json.loads(cli("clients", "show", "hosp-1", "--store", store).stdout)
    assert shown["scope"] == "system/Patient.rs system/Encounter.cruds"
    assert shown["policy"] == ["Encounter?service-provider={organization}",
                               "write:*?_tag={record-owner}"]
    assert shown["organization"] == "Organization/hosp-1-org" and shown["status"] == "active"

    assert cli("clients", "suspend", "ins-1", "--store", store).returncode == 0
    assert json.loads(cli("clients", "show", "ins-1", "--store", store).stdout)["status"] == "suspended"
    assert cli("clients", "activate", "ins-1", "--store", store).returncode == 0
    assert cli("clients", "remove", "ins-1", "--store", store).returncode == 0
    missing = cli("clients", "show", "ins-1", "--store", store)
    assert missing.returncode == 2 and "no client 'ins-1'" in missing.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--organization", "hospital-7"], "Organization/<id>"),
    (["--scope", "system/Patient.sr"], "not a SMART resource scope"),
    (["--scope", "patient/Patient.rs"], "system/ scopes only"),
    (["--policy", "Encounter"], "not of the form"),
    (["--policy", "compartment:Encounter?status=finished"], "compartment:Patient"),
    (["--policy", "Foo?x=1"], "not an R4 resource type"),
    (["--rate-limit", "0"], "rate limit"),
])
def test_clients_add_rejects_bad_input(tmp_path: Path, db: Path, args: list[str], message: str) -> None:
    _, jwks = _keys(tmp_path, "c")
    base = ["clients", "add", "--client-id", "c", "--role", "mch", "--jwks", str(jwks),
            "--store", f"sqlite:///{db}"]
    if "--organization" not in args:
        base += ["--organization", "Organization/o"]
    result = cli(*base, *args)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_clients_add_rejects_bad_keys(tmp_path: Path, db: Path) -> None:
    private, jwks = _keys(tmp_path, "c")
    store = ["--store", f"sqlite:///{db}", "--role", "mch", "--organization", "Organization/o"]
    secret = tmp_path / "private.jwks.json"
    secret.write_text(json.dumps({"keys": [load_private_key(private).as_dict(private=True)]}))
    cases = [
        (["--jwks", str(secret)], "private or secret key material"),
        (["--jwks", str(tmp_path / "none.json")], "cannot read the JWKS file"),
        (["--jwks", str(private)], "not JSON"),
        (["--jwks-url", "http://keys.example.org/jwks.json"], "https"),
        (["--jwks", str(jwks), "--jwks-url", "https://keys.example.org/jwks.json"], "not allowed with"),
    ]
    for args, message in cases:
        result = cli("clients", "add", "--client-id", "c", *store, *args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    assert _add(db, "c", "mch", jwks).returncode == 0
    again = _add(db, "c", "mch", jwks)
    assert again.returncode == 2 and "registered already" in again.stderr


@pytest.fixture
def served(tmp_path: Path, db: Path) -> Iterator[Server]:
    SqliteStore(db).close()
    srv = Server(db, workers=2).start()
    yield srv
    srv.stop()


def test_token_command_against_a_running_server(tmp_path: Path, db: Path, served: Server) -> None:
    private, jwks = _keys(tmp_path, "mch-1")
    assert _add(db, "mch-1", "mch", jwks).returncode == 0
    result = cli("token", "--client-id", "mch-1", "--key", str(private), "--scope",
                 "system/Immunization.cruds system/Claim.rs", "--url", served.root)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert "system/Immunization.cruds" in result.stderr and "Claim" not in result.stderr
    store = SqliteStore(db)
    try:
        record = store.registry_get(TOKEN_KIND, token_hash(token))
        assert record is not None and record["client_id"] == "mch-1"
        ClientRegistry(store).suspend("mch-1")
    finally:
        store.close()
    refused = cli("token", "--client-id", "mch-1", "--key", str(private), "--url", served.base)
    assert refused.returncode == 1 and "invalid_client" in refused.stderr
    nothing = cli("token", "--client-id", "nobody", "--key", str(private), "--url", served.root)
    assert nothing.returncode == 1 and "invalid_client" in nothing.stderr


def test_jti_replay_across_two_workers(tmp_path: Path, db: Path, served: Server) -> None:
    """The same assertion posted twice at the same moment, on separate connections, many times:
    exactly one of each pair gets a token, with both workers answering."""
    private, jwks = _keys(tmp_path, "hosp-1")
    assert _add(db, "hosp-1", "hospital", jwks).returncode == 0
    key = load_private_key(private)
    token_url = f"{served.root}/auth/token"
    workers: set[str] = set()
    cross_worker_pairs = 0
    for _ in range(40):
        form = {"grant_type": "client_credentials", "scope": "system/Patient.rs",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": sign_assertion(key, "hosp-1", token_url)}
        results: list[tuple[int, str, str]] = []
        barrier = threading.Barrier(2)

        def post(form: dict[str, str] = form, results: list[tuple[int, str, str]] = results,
                 barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            response = requests.post(token_url, data=form, timeout=30,
                                     headers={"Connection": "close"})
            results.append((response.status_code, response.headers["X-Request-Id"].split("-")[0],
                            response.text[:200]))  # the body: why a request was refused

        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(status for status, _, _ in results) == [200, 400], results
        pair = {worker for _, worker, _ in results}
        workers |= pair
        cross_worker_pairs += len(pair) == 2
        if cross_worker_pairs >= 5:
            break
    assert len(workers) == 2, "only one worker answered"
    assert cross_worker_pairs >= 1
