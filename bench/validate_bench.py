"""Time structure validation of every official R4 example.

    .venv/bin/python bench/validate_bench.py [--shared ../shared] [--repeat 200]

Prints the median µs per resource by type, the overall median and the Patient median.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

from fhir_server.fhir import jsonio
from fhir_server.fhir.structure import validate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    files = sorted((args.shared / "fhir-r4-examples").glob("*.json"))
    resources = [jsonio.loads(f.read_bytes()) for f in files if not f.name.startswith("_")]
    validate(resources[0])  # load the tables outside the timing
    by_type: dict[str, list[float]] = defaultdict(list)
    all_medians: list[float] = []
    for res in resources:
        assert not validate(res), res.get("id")
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter_ns()
            validate(res)
            times.append(time.perf_counter_ns() - t0)
        med = statistics.median(times) / 1000
        by_type[res["resourceType"]].append(med)
        all_medians.append(med)
    print(f"{'type':<20}{'n':>4}{'median µs':>12}{'max µs':>10}")
    for rtype, meds in sorted(by_type.items()):
        print(f"{rtype:<20}{len(meds):>4}{statistics.median(meds):>12.1f}{max(meds):>10.1f}")
    overall = statistics.median(all_medians)
    print(f"overall median: {overall:.1f} µs over {len(all_medians)} resources")
    print(f"Patient median: {statistics.median(by_type['Patient']):.1f} µs")


if __name__ == "__main__":
    main()
