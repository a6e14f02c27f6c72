"""The 100k/10k latency ratio of the search scenarios, measured side by side (issue 3's target).

    .venv/bin/python bench/search_ratio.py --small /tmp/sb3/p10000.db --large /tmp/sb3/p100000.db
        [--src /tmp/snap] [--scenarios name,birthdate,...] [--requests 400] [--rounds 3]
        [--warm-cache] [--out bench/results/search-ratio.json]

``search_bench.py`` measures one database at a time, and on a machine shared with other work the
load changes between the two runs: the same code gave ratios from 0.6 to 1.7 for one scenario.
Here both servers run at once (one per seeded database, ``fhir-server serve``, 2 gthread workers x 4
threads each, from ``--src``) and the requests alternate between them, one to the small database
then one to the large, on one keep-alive connection each, so that both see the same load. Per
scenario: the server's own time (``Server-Timing``) p50 on each side and their ratio, per round
and the median of the rounds, and the entries per page on each side (a scenario whose page is
larger at 100k than at 10k measures the response's size as well as the index).

Markdown table on stdout, progress on stderr, JSON in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import search_bench as sb  # noqa: E402


def _server(db: Path) -> sb.DbServer:
    server = sb.DbServer("ours", "gthread", 2, 4, Path(tempfile.mkdtemp(prefix="search-ratio-")))
    server.db = db
    return server


def _call(client: load.Client, url: str) -> tuple[float, int]:
    status, headers, data = client.call("GET", url)
    if status != 200:
        raise RuntimeError(f"{url}: {status} {data[:300]!r}")
    return load.server_ms(headers), len(json.loads(data).get("entry", []))


def paired(small: load.Client, large: load.Client, urls: tuple[list[str], list[str]],
           n: int, seed: int) -> dict[str, Any]:
    """``n`` requests to each side, alternating: server ms and entries per page of each."""
    rng = random.Random(seed)
    order = [(rng.choice(urls[0]), rng.choice(urls[1])) for _ in range(n)]
    for a, b in order[:5]:  # warm-up
        _call(small, a)
        _call(large, b)
    times: tuple[list[float], list[float]] = ([], [])
    entries: tuple[list[int], list[int]] = ([], [])
    for i, (a, b) in enumerate(order):
        # alternate which side goes first, so neither always follows the other
        for side, client, url in ((0, small, a), (1, large, b))[:: 1 if i % 2 else -1]:
            ms, count = _call(client, url)
            times[side].append(ms)
            entries[side].append(count)
    p50 = [statistics.median(t) for t in times]
    return {"small_p50": p50[0], "large_p50": p50[1], "ratio": p50[1] / p50[0],
            "small_p95": load.percentiles(times[0])["p95"],
            "large_p95": load.percentiles(times[1])["p95"],
            "small_entries": statistics.median(entries[0]),
            "large_entries": statistics.median(entries[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=Path, required=True, help="the 10k-patient database")
    ap.add_argument("--large", type=Path, required=True, help="the 100k-patient database")
    ap.add_argument("--src", type=Path, help="source tree to run (default: the working tree)")
    ap.add_argument("--scenarios", default=",".join(sb.SCENARIOS))
    ap.add_argument("--requests", type=int, default=400, help="per side, scenario and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warm-cache", action="store_true")
    ap.add_argument("--out", type=Path)
    opts = ap.parse_args()
    sb.SRC = opts.src.resolve() if opts.src else None
    names = [s for s in opts.scenarios.split(",") if s]
    dbs = (opts.small.resolve(), opts.large.resolve())
    for db in dbs:
        if not db.exists():
            ap.error(f"{db} does not exist: seed it with search_bench.py first")
        if opts.warm_cache:
            sb.warm(db)
    urls = [sb.pick_values(db, 1000) for db in dbs]
    results: dict[str, Any] = {name: {"request": sb.REQUEST[name], "rounds": []} for name in names}
    servers = [_server(db) for db in dbs]
    with load.running(servers[0]) as small_srv, load.running(servers[1]) as large_srv:
        small, large = load.Client(small_srv.port), load.Client(large_srv.port)
        try:
            for r in range(opts.rounds):
                for name in names:
                    found = paired(small, large, (urls[0][name], urls[1][name]), opts.requests,
                                   seed=r * 100 + names.index(name))
                    results[name]["rounds"].append(found)
                    sb.log(f"round {r + 1} {name}: {found['small_p50']:.2f} / "
                           f"{found['large_p50']:.2f} ms = {found['ratio']:.2f}")
        finally:
            small.close()
            large.close()
    lines = ["| scenario | request | server p50 ms 10k | server p50 ms 100k | entries 10k / 100k |"
             " 100k/10k per round | **100k/10k (median)** |", "|---|---|---:|---:|---:|---|---:|"]
    for name in names:
        rounds = results[name]["rounds"]
        ratio = statistics.median(x["ratio"] for x in rounds)
        results[name]["ratio"] = ratio
        request = sb.REQUEST[name].replace("|", "\\|")
        per_round = ", ".join(f"{x['ratio']:.2f}" for x in rounds)
        lines.append(
            f"| {name} | `{request}` | {statistics.median(x['small_p50'] for x in rounds):.2f} |"
            f" {statistics.median(x['large_p50'] for x in rounds):.2f} |"
            f" {rounds[0]['small_entries']:g} / {rounds[0]['large_entries']:g} |"
            f" {per_round} | **{ratio:.2f}** |")
    print("\n".join(lines))
    out = opts.out or sb.ROOT / "bench" / "results" / "search-ratio.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"dbs": [str(d) for d in dbs], "src": str(sb.SRC or sb.ROOT),
                               "options": {k: str(v) for k, v in vars(opts).items()},
                               "machine": load.machine(), "results": results},
                              indent=1, ensure_ascii=False) + "\n")
    sb.log(f"summary: {out}")


if __name__ == "__main__":
    main()
