"""The clients' rate limits counted across processes on every store: each :class:`RateLimiter`
on its own store handle stands for one worker process (it is what each gunicorn worker has)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_server.auth.clients import ClientRegistry
from fhir_server.auth.rate_limit import SHARE, RateLimiter, Throttled
from fhir_server.store import Store
from tests.contract.conftest import NamedFactory
from tests.oauth import ec_key, register

KEY = ec_key("k-1")


def _admitted(limiters: list[RateLimiter], client_id: str, requests: int) -> list[int]:
    """Requests spread in turn over the limiters; how many each let in."""
    admitted = [0] * len(limiters)
    for n in range(requests):
        try:
            limiters[n % len(limiters)].check(client_id)
        except Throttled:
            continue
        admitted[n % len(limiters)] += 1
    return admitted


@pytest.fixture
def handles(store_factory: NamedFactory) -> Iterator[list[Store]]:
    opened = [store_factory() for _ in range(3)]
    yield opened
    for handle in opened:
        handle.close()


@pytest.mark.parametrize("limit", [10, 200])
def test_processes_share_one_count(handles: list[Store], limit: int) -> None:
    register(handles[0], "c1", "hospital", KEY, rate_limit=limit)
    register(handles[0], "c2", "hospital", KEY, rate_limit=limit)
    workers = [RateLimiter(handles[0]), RateLimiter(handles[1])]
    admitted = _admitted(workers, "c1", 3 * limit)
    share = max(1, limit // SHARE)
    # the documented bound: at most (processes + 1) sync shares over the limit
    assert limit <= sum(admitted) <= limit + 3 * share, admitted
    assert all(admitted), admitted
    # a process that comes later sees the count; another client has its own
    with pytest.raises(Throttled, match=f"rate limit of {limit} requests per minute"):
        RateLimiter(handles[2]).check("c1")
    assert _admitted(workers, "c2", limit) == [limit // 2, limit - limit // 2]


def test_a_limit_set_in_the_store_is_read(handles: list[Store]) -> None:
    register(handles[0], "c1", "hospital", KEY)
    worker = RateLimiter(handles[1])
    assert _admitted([worker], "c1", 50) == [50]
    ClientRegistry(handles[0]).set_rate_limit("c1", 5)
    fresh = RateLimiter(handles[2])  # (the first one re-reads it within LIMIT_S)
    assert _admitted([fresh], "c1", 20) == [5]
