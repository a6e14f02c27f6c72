"""Issue 5: many clients create the same resident (same health card) at the same moment, through
gunicorn with several worker processes: exactly one Patient exists afterwards. Plain creates that
lose get 409 naming the winner; conditional creates (If-None-Exist) get the winner back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.server import Server

pytestmark = pytest.mark.e2e

EHC = "https://fhir.demo-city.health.cn/sid/ehc-id"
HEADERS = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "fhir.db", workers=3,
                 env={"FHIR_ENFORCE_PROFILES": "off"}).start()  # uniqueness, not profiles, here
    yield srv
    srv.stop()


def _patient(card: str, n: int) -> dict[str, object]:
    return {"resourceType": "Patient", "gender": "male", "birthDate": "1988-02-03",
            "name": [{"text": f"王{n}"}], "identifier": [{"system": EHC, "value": card}]}


@pytest.mark.parametrize("conditional", [False, True])
def test_racing_creates_of_one_resident_make_one_patient(server: Server, conditional: bool) -> None:
    for round_ in range(3):
        card = f"{round_:X}{int(conditional)}".ljust(64, "C")
        clients = 12
        barrier = threading.Barrier(clients)

        def create(n: int, card: str = card, barrier: threading.Barrier = barrier) -> tuple[int, str]:
            headers = dict(HEADERS)
            if conditional:
                headers["If-None-Exist"] = f"identifier={EHC}|{card}"
            session = requests.Session()
            session.get(f"{server.root}/healthz", timeout=10)  # connect before the race
            barrier.wait(timeout=30)
            response = session.post(f"{server.base}/Patient", json=_patient(card, n),
                                    headers=headers, timeout=60)
            body = response.json()
            return response.status_code, body.get("id") or body["issue"][0]["diagnostics"]

        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(create, range(clients)))
        found = requests.get(f"{server.base}/Patient", params={"identifier": f"{EHC}|{card}"},
                             timeout=30).json()
        assert found["total"] == 1, (results, server.log.read_text()[-6000:])
        winner = found["entry"][0]["resource"]["id"]
        statuses = sorted(status for status, _ in results)
        assert statuses.count(201) == 1, (results, server.log.read_text()[-6000:])
        if conditional:  # the others were given the existing Patient
            assert statuses.count(200) == clients - 1, results
            assert {text for _, text in results} == {winner}
        else:  # the others were told who holds the card
            assert statuses.count(409) == clients - 1, results
            assert all(f"Patient/{winner}" in text for status, text in results if status == 409)
