"""End to end: ``fhir-server serve`` under gunicorn with several worker processes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.server import Server

pytestmark = pytest.mark.e2e

HEADERS = {"Content-Type": "application/fhir+json"}
PATIENT = {"resourceType": "Patient", "gender": "female", "birthDate": "1990-03-04",
           "name": [{"text": "李娜", "family": "李", "given": ["娜"]}]}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "fhir.db", workers=3).start()
    yield srv
    srv.stop()


def test_interactions_over_real_http(server: Server) -> None:
    s = requests.Session()
    meta = s.get(f"{server.base}/metadata")
    assert meta.status_code == 200
    assert meta.json()["fhirVersion"] == "4.0.1"
    created = s.post(f"{server.base}/Patient", json=PATIENT, headers=HEADERS)
    assert created.status_code == 201
    assert created.headers["Location"].startswith(f"{server.base}/Patient/")
    rid = created.json()["id"]
    read = s.get(f"{server.base}/Patient/{rid}")
    assert read.json() == created.json()
    assert read.headers["X-Request-Id"]
    echoed = s.get(f"{server.base}/Patient/{rid}", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"
    assert s.delete(f"{server.base}/Patient/{rid}").status_code == 204
    assert s.get(f"{server.base}/Patient/{rid}").status_code == 410
    assert s.get(f"{server.root}/healthz").json() == {"status": "ok"}
    # the harness runs with FHIR_AUTH=off: the server says so loudly at start
    assert "WARNING: FHIR_AUTH=off" in server.log.read_text()
    log_lines = [json.loads(line) for line in server.log.read_text().splitlines()
                 if line.startswith("{")]
    echoed_lines = [line for line in log_lines if line["request_id"] == "abc-123"]
    assert echoed_lines and echoed_lines[0]["status"] == 200
    assert {"method", "path", "status", "duration_ms"} <= set(echoed_lines[0])


def test_racing_if_match_updates_exactly_one_wins(server: Server) -> None:
    rid = requests.post(f"{server.base}/Patient", json=PATIENT, headers=HEADERS).json()["id"]
    for round_ in range(1, 6):
        barrier = threading.Barrier(8)

        def attempt(_: int, round_: int = round_, barrier: threading.Barrier = barrier) -> int:
            body = {**PATIENT, "id": rid, "gender": "male" if round_ % 2 else "female"}
            barrier.wait()
            return requests.put(f"{server.base}/Patient/{rid}", json=body, timeout=30,
                                headers={**HEADERS, "If-Match": f'W/"{round_}"'}).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = sorted(pool.map(attempt, range(8)))
        assert statuses == [200] + [412] * 7, statuses
    assert requests.get(f"{server.base}/Patient/{rid}").json()["meta"]["versionId"] == "6"


def test_concurrent_updates_never_lose_a_version(server: Server) -> None:
    rid = requests.post(f"{server.base}/Patient", json=PATIENT, headers=HEADERS).json()["id"]

    def writer(n: int) -> list[str]:
        s = requests.Session()
        versions = []
        for i in range(10):
            body = {**PATIENT, "id": rid, "birthDate": f"19{10 + n:02d}-01-{1 + i:02d}"}
            r = s.put(f"{server.base}/Patient/{rid}", json=body, headers=HEADERS, timeout=30)
            assert r.status_code == 200, r.text
            versions.append(r.json()["meta"]["versionId"])
        return versions

    with ThreadPoolExecutor(12) as pool:
        acknowledged = [v for vs in pool.map(writer, range(12)) for v in vs]
    assert sorted(map(int, acknowledged)) == list(range(2, 122))
    history = requests.get(f"{server.base}/Patient/{rid}/_history?_count=500").json()
    versions = [int(e["response"]["etag"][3:-1]) for e in history["entry"]]
    assert versions == list(range(121, 0, -1))


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "fhir.db"
    server = Server(db, workers=2).start()
    acknowledged: dict[str, Any] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer() -> None:
        s = requests.Session()
        while not stop.is_set():
            try:
                r = s.post(f"{server.base}/Patient", json=PATIENT, headers=HEADERS, timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 201:
                with lock:
                    acknowledged[r.json()["id"]] = r.json()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    while True:  # kill while writes are in flight, once enough have been acknowledged
        with lock:
            if len(acknowledged) >= 200:
                break
        threading.Event().wait(0.01)
    server.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=10)

    restarted = Server(db, workers=2).start()
    try:
        s = requests.Session()
        for rid, body in acknowledged.items():
            r = s.get(f"{restarted.base}/Patient/{rid}")
            assert r.status_code == 200, rid
            assert r.json() == body
    finally:
        restarted.stop()
