"""Bundle ingest rate (issue 5): the 100 Synthea transaction Bundles through ``POST /fhir``.

    .venv/bin/python bench/ingest_bench.py [--repeat 3] [--clients 1,2] [--workers 2]

Each run starts a fresh ``fhir-server serve`` (gunicorn, gthread, ``FHIR_ACCESS_LOG=0``) on a new
SQLite file (``bench/load.py``'s ``Server``), then posts every bundle of ``../shared/synthea`` as
is (``Prefer: return=minimal``) from N concurrent clients (threads, one keep-alive connection
each, bundles dealt round-robin). Reported: resources per second (entries of all bundles / wall
time of the whole ingest), median over the repeats.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from load import Server, running  # noqa: E402

SYNTHEA = HERE.parent.parent / "shared" / "synthea"


def _bundles() -> list[tuple[bytes, int]]:
    out = []
    for path in sorted(SYNTHEA.glob("*.json")):
        if path.name.startswith("_"):
            continue
        raw = path.read_bytes()
        out.append((raw, len(json.loads(raw)["entry"])))
    return out


def _ingest(port: int, bundles: list[tuple[bytes, int]], clients: int) -> float:
    errors: list[str] = []

    def worker(part: list[tuple[bytes, int]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            for raw, _ in part:
                conn.request("POST", "/fhir", body=raw, headers={
                    "Content-Type": "application/fhir+json", "Prefer": "return=minimal"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    errors.append(f"{resp.status} {data[:300]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(bundles[i::clients],)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} bundles failed, first: {errors[0]}")
    return sum(n for _, n in bundles) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", default="1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    bundles = _bundles()
    total = sum(n for _, n in bundles)
    print(f"{len(bundles)} bundles, {total} resources")
    results = {}
    for clients in (int(c) for c in args.clients.split(",")):
        rates = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp, running(
                    Server("ours", "gthread", args.workers, args.threads, Path(tmp))) as server:
                rates.append(_ingest(server.port, bundles, clients))
            print(f"  {clients} client(s): {rates[-1]:.0f} resources/s", flush=True)
        results[clients] = {"median": statistics.median(rates), "runs": rates}
        print(f"{clients} client(s): median {statistics.median(rates):.0f} resources/s "
              f"(runs: {', '.join(f'{r:.0f}' for r in rates)})", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
