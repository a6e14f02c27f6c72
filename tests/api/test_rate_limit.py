"""The clients' rate limits (SECURITY.md "Trust model": a registration holds rate limits), enforced
on every authenticated FHIR request: 429 with Retry-After and an OperationOutcome over the limit,
counted for the whole server (two apps on two handles of one database stand for two workers).

Real tokens from the real token endpoint, a real SQLite store, HTTP through Flask's test client.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhir_server import cli
from fhir_server.app import create_app
from fhir_server.auth import audit
from fhir_server.auth.clients import ClientError, ClientRegistry
from fhir_server.auth.rate_limit import LIMIT_S, estimate, retry_after
from fhir_server.config import Settings
from fhir_server.store.sqlite import SqliteStore
from tests.oauth import ec_key, get_token, register

FHIR_JSON = "application/fhir+json"
KEY = ec_key("k-1")
LIMIT = 3


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return replace(settings, auth=True)


@pytest.fixture
def app(auth_settings: Settings, store: SqliteStore) -> Flask:
    register(store, "limited", "hospital", KEY, organization="Organization/h1", rate_limit=LIMIT)
    register(store, "other", "hospital", KEY, organization="Organization/h1", rate_limit=LIMIT)
    register(store, "free", "hospital", KEY, organization="Organization/h1")
    register(store, "auditor", "hospital", KEY, organization="Organization/audit",
             scope="system/AuditEvent.rs")
    return create_app(auth_settings, store)


@pytest.fixture
def tokens(client: FlaskClient) -> dict[str, str]:
    out = {name: get_token(client, KEY, name, "system/*.cruds")
           for name in ("limited", "other", "free")}
    out["auditor"] = get_token(client, KEY, "auditor", "system/AuditEvent.rs")
    return out


def _h(token: str) -> dict[str, str]:
    return {"Content-Type": FHIR_JSON, "Authorization": f"Bearer {token}"}


def _search(client: FlaskClient, token: str) -> Any:
    return client.get("/fhir/Patient?_count=1", headers=_h(token))


def _throttled(response: Any, client_id: str, limit: int, per: str = "minute") -> int:
    """Checks a 429 and returns its Retry-After (seconds)."""
    assert response.status_code == 429, response.get_json()
    retry = int(response.headers["Retry-After"])
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "throttled")
    assert f"Client {client_id!r} is over its rate limit of {limit} requests per {per}" \
        in issue["diagnostics"]
    assert f"retry after {retry} s" in issue["diagnostics"]
    return retry


def _patients(client: FlaskClient, token: str) -> int:
    response = client.get("/fhir/Patient?_summary=count", headers=_h(token))
    assert response.status_code == 200, response.get_json()
    total: int = response.get_json()["total"]
    return total


def _until(condition: Any, timeout: float = 15.0) -> Any:
    """Polls ``condition`` (a limit change reaches the server's processes within LIMIT_S)."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# -- the limit ------------------------------------------------------------------------------------
def test_the_request_over_the_limit_is_429_and_does_nothing(client: FlaskClient,
                                                            tokens: dict[str, str]) -> None:
    for _ in range(LIMIT):
        assert _search(client, tokens["limited"]).status_code == 200
    retry = _throttled(_search(client, tokens["limited"]), "limited", LIMIT)
    assert 1 <= retry <= 120  # (at most two windows: this one, and the next for it to age out)
    # a write over the limit writes nothing
    created = client.post("/fhir/Patient", json={"resourceType": "Patient"},
                          headers=_h(tokens["limited"]))
    _throttled(created, "limited", LIMIT)
    assert "Location" not in created.headers
    assert _patients(client, tokens["free"]) == 0
    # refused requests are not counted, and the limit holds whatever the request
    assert client.get("/fhir/Patient/nope", headers=_h(tokens["limited"])).status_code == 429
    assert client.post("/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": []},
                       headers=_h(tokens["limited"])).status_code == 429
    # another client with the same limit has its own count
    for _ in range(LIMIT):
        assert _search(client, tokens["other"]).status_code == 200
    assert _search(client, tokens["other"]).status_code == 429
    # the public CapabilityStatement is not limited (nor counted)
    assert client.get("/fhir/metadata", headers=_h(tokens["limited"])).status_code == 200


def test_a_client_without_a_limit_is_never_throttled(client: FlaskClient,
                                                     tokens: dict[str, str]) -> None:
    for _ in range(40):
        assert _search(client, tokens["free"]).status_code == 200
    for _ in range(LIMIT):
        assert _search(client, tokens["limited"]).status_code == 200
    assert _search(client, tokens["limited"]).status_code == 429
    assert _search(client, tokens["free"]).status_code == 200


def test_every_token_of_a_client_shares_its_count(client: FlaskClient, tokens: dict[str, str]) -> None:
    second = get_token(client, KEY, "limited", "system/Patient.rs")
    assert _search(client, tokens["limited"]).status_code == 200
    assert _search(client, second).status_code == 200
    assert _search(client, tokens["limited"]).status_code == 200
    _throttled(_search(client, second), "limited", LIMIT)


def test_the_429_is_audited_as_the_clients_refused_request(client: FlaskClient,
                                                          tokens: dict[str, str]) -> None:
    for _ in range(LIMIT):
        assert _search(client, tokens["limited"]).status_code == 200
    refused = _search(client, tokens["limited"])
    assert refused.status_code == 429
    assert audit.flush()
    found = client.get(f"/fhir/AuditEvent?entity:identifier={refused.headers['X-Request-Id']}",
                       headers=_h(tokens["auditor"]))
    assert found.status_code == 200, found.get_json()
    [event] = [e["resource"] for e in found.get_json()["entry"]]
    assert event["outcome"] == "4"
    assert "over its rate limit of 3 requests per minute" in event["outcomeDesc"]
    [requestor] = [a for a in event["agent"] if a["requestor"]]
    assert requestor["who"]["identifier"]["value"] == "limited"
    assert [c["code"] for c in event["subtype"]] == ["search-type"]


# -- windows and changes --------------------------------------------------------------------------
@pytest.fixture
def short(auth_settings: Settings, store: SqliteStore) -> Iterator[FlaskClient]:
    """An app whose rate-limit window is 2 s instead of a minute."""
    yield create_app(replace(auth_settings, rate_limit_window_s=2.0), store).test_client()


def _window_start(window: float) -> None:
    """Sleeps to just after the start of the next window (so a few requests fall in one)."""
    time.sleep(window - time.time() % window + 0.02)


def test_the_count_starts_over_as_the_window_moves_on(short: FlaskClient,
                                                      tokens: dict[str, str]) -> None:
    _window_start(2.0)
    for _ in range(LIMIT):
        assert _search(short, tokens["limited"]).status_code == 200
    retry = _throttled(_search(short, tokens["limited"]), "limited", LIMIT, per="2 s")
    assert 1 <= retry <= 4  # the current window, and enough of the next for the count to age out
    time.sleep(retry)
    assert _search(short, tokens["limited"]).status_code == 200  # Retry-After was enough


def test_a_limit_change_applies_within_seconds(client: FlaskClient, tokens: dict[str, str],
                                               auth_settings: Settings, store: SqliteStore) -> None:
    for _ in range(5):
        assert _search(client, tokens["free"]).status_code == 200
    assert cli.main(["clients", "set-rate-limit", "free", "--per-minute", "2",
                     "--store", auth_settings.store_url]) == 0
    assert ClientRegistry(store).require("free").rate_limit == 2
    started = time.monotonic()
    refused = _until(lambda: _search(client, tokens["free"]).status_code == 429)
    assert refused, "the new limit was never applied"
    assert time.monotonic() - started < LIMIT_S + 10  # (generous: a loaded machine)
    assert cli.main(["clients", "set-rate-limit", "free", "--none",
                     "--store", auth_settings.store_url]) == 0
    assert ClientRegistry(store).require("free").rate_limit is None
    assert _until(lambda: _search(client, tokens["free"]).status_code == 200)
    for _ in range(10):
        assert _search(client, tokens["free"]).status_code == 200


def test_set_rate_limit_refuses_bad_input(store: SqliteStore, auth_settings: Settings,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    register(store, "c1", "mch", KEY)
    url = auth_settings.store_url
    assert cli.main(["clients", "set-rate-limit", "c1", "--per-minute", "0", "--store", url]) == 2
    assert "positive whole number of requests per minute" in capsys.readouterr().err
    assert cli.main(["clients", "set-rate-limit", "nobody", "--none", "--store", url]) == 2
    assert "no client 'nobody'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one of --per-minute N or --none is required
        cli.main(["clients", "set-rate-limit", "c1", "--store", url])
    with pytest.raises(SystemExit):
        cli.main(["clients", "set-rate-limit", "c1", "--per-minute", "5", "--none", "--store", url])
    capsys.readouterr()
    assert cli.main(["clients", "set-rate-limit", "c1", "--per-minute", "120", "--store", url]) == 0
    assert "120 requests per minute" in capsys.readouterr().out
    assert cli.main(["clients", "list", "--store", url]) == 0
    assert "rate limit: 120/min" in capsys.readouterr().out
    with pytest.raises(ClientError, match="positive whole number"):
        ClientRegistry(store).set_rate_limit("c1", -1)
    assert ClientRegistry(store).require("c1").rate_limit == 120


# -- across workers -------------------------------------------------------------------------------
def test_two_workers_share_one_count(auth_settings: Settings, store: SqliteStore,
                                     tokens: dict[str, str]) -> None:
    """Two apps, each with its own store handle (so its own limiter, as a gunicorn worker has),
    take turns: together they let in about the limit, not the limit each."""
    limit = 6
    ClientRegistry(store).set_rate_limit("other", limit)
    handles = [SqliteStore.from_url(auth_settings.store_url) for _ in range(2)]
    try:
        workers = [create_app(auth_settings, h).test_client() for h in handles]
        statuses: list[list[int]] = [[], []]
        for n in range(4 * limit):
            statuses[n % 2].append(_search(workers[n % 2], tokens["other"]).status_code)
        admitted = [s.count(200) for s in statuses]
        assert all(set(s) == {200, 429} for s in statuses), statuses
        # limits under 20 per window sync on every request: at most about workers + 1 over
        assert limit <= sum(admitted) <= limit + 3 < 2 * limit, statuses
    finally:
        for h in handles:
            h.close()


# -- the arithmetic -------------------------------------------------------------------------------
def test_the_sliding_estimate_weights_the_previous_window() -> None:
    assert estimate(10, 2, 0.0, 60) == 12
    assert estimate(10, 2, 30.0, 60) == 7
    assert estimate(10, 2, 60.0, 60) == 2
    assert estimate(10, 2, 90.0, 60) == 2  # (a window late: the previous one no longer counts)


@pytest.mark.parametrize(("limit", "previous", "current", "elapsed"), [
    (3, 0, 3, 0.1), (3, 0, 3, 1.9), (3, 5, 0, 0.5), (3, 4, 1, 0.0), (10, 30, 10, 1.0),
    (1, 0, 1, 0.0), (1, 1, 0, 1.0),
])
def test_retry_after_is_when_one_more_request_fits(limit: int, previous: int, current: int,
                                                   elapsed: float) -> None:
    window = 2.0
    assert estimate(previous, current, elapsed, window) + 1 > limit  # throttled now
    wait = retry_after(limit, previous, current, elapsed, window)
    assert wait > 0

    def fits(after: float) -> bool:
        at = elapsed + after
        rolled = at >= window  # in the next window the current count becomes the previous one
        prev, cur = (current, 0) if rolled else (previous, current)
        return estimate(prev, cur, at - window if rolled else at, window) + 1 <= limit + 1e-9

    assert fits(wait)
    assert not fits(wait - 0.01)
    assert math.ceil(wait) <= 2 * window  # a Retry-After never longer than two windows
