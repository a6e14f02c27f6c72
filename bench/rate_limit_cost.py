"""In-process cost of the rate-limit check per request (``RateLimiter.check``), on a real SQLite
store with a registered client:

    .venv/bin/python bench/rate_limit_cost.py [--calls 200000] [--rounds 5]

* ``request``: what ``api/access.py`` calls per request, :func:`rate_limit.check` (finding the
  process's limiter for the store, then ``limited`` below);
* ``limited``: a client with a limit it never reaches (every call counted; a sync to the store
  every 0.5 s or every limit/20 calls, whichever comes first; the syncs are included);
* ``unlimited``: a client without a limit (its limit re-read every 2 s);
* ``hot path``: ``limited`` again, but between two syncs only (the dict lookup and increment);
* ``sync``: one call that syncs (adds the count to the store's counter and reads it back), what
  one request in every 0.5 s (per client and process) pays.

The best round of each is reported (the least disturbed on a shared machine), with the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.oauth: real registrations

from fhir_server.auth import rate_limit
from fhir_server.auth.rate_limit import RateLimiter
from fhir_server.store.sqlite import SqliteStore
from tests.oauth import ec_key, register


def _round(limiter: RateLimiter, client_id: str, calls: int) -> float:
    check = limiter.check
    start = time.perf_counter()
    for _ in range(calls):
        check(client_id)
    return (time.perf_counter() - start) / calls


def _requests(store: SqliteStore, client_id: str, calls: int) -> float:
    check = rate_limit.check
    start = time.perf_counter()
    for _ in range(calls):
        check(store, 60.0, client_id)
    return (time.perf_counter() - start) / calls


def _syncs(limiter: RateLimiter, client_id: str, calls: int) -> float:
    counter = limiter._counters[client_id]
    total = 0.0
    for _ in range(calls):
        counter.due = 0.0  # due now
        start = time.perf_counter()
        limiter.check(client_id)
        total += time.perf_counter() - start
    return total / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory) / "bench.db")
        key = ec_key("k")
        register(store, "limited", "hospital", key, rate_limit=10**9)
        register(store, "unlimited", "hospital", key)
        limiter = RateLimiter(store)
        limiter.check("limited")
        limiter.check("unlimited")
        results: dict[str, list[float]] = {"request": [], "limited": [], "unlimited": [],
                                           "hot path": [], "sync": []}
        for _ in range(args.rounds):
            results["request"].append(_requests(store, "limited", args.calls))
            results["limited"].append(_round(limiter, "limited", args.calls))
            results["unlimited"].append(_round(limiter, "unlimited", args.calls))
            limiter.check("limited")  # just synced: the next 1000 calls stay between syncs
            results["hot path"].append(_round(limiter, "limited", 1000))
            results["sync"].append(_syncs(limiter, "limited", 200))
        store.close()
    for name, times in results.items():
        print(f"{name:10} best {min(times) * 1e6:6.2f} µs/call   median"
              f" {statistics.median(times) * 1e6:6.2f} µs/call")


if __name__ == "__main__":
    main()
