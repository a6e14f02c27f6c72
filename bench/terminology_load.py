"""How long the terminology service takes to load, and a cached ``validate_code``.

    .venv/bin/python bench/terminology_load.py [--rounds 9]

Loading (``Terminology.load()``: the CodeSystems, ValueSets and ConceptMaps of ``terminology/``,
JSON parsed, nothing indexed yet) happens once per worker process; ``validate_code`` against an
already expanded ValueSet is a dict lookup. Medians (and minima) over ``--rounds`` fresh loads.
"""

from __future__ import annotations

import argparse
import statistics
import time

from fhir_server.fhir.identifiers import DEFAULT_CANONICAL_BASE
from fhir_server.terminology import Terminology

SEX_VS = f"{DEFAULT_CANONICAL_BASE}/ValueSet/gbt-2261-1-sex"
SEX = "urn:oid:2.16.156.10011.2.3.3.4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    loads, lookups = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        term = Terminology.load()
        loads.append(time.perf_counter() - start)
        term.validate_code(SEX_VS, SEX, "1")  # expands the ValueSet once
        start = time.perf_counter()
        for _ in range(10_000):
            term.validate_code(SEX_VS, SEX, "1")
        lookups.append((time.perf_counter() - start) / 10_000)
    print(f"load: median {statistics.median(loads) * 1e3:.0f} ms (min {min(loads) * 1e3:.0f} ms);"
          f" cached validate_code: median {statistics.median(lookups) * 1e6:.2f} µs"
          f" (min {min(lookups) * 1e6:.2f} µs); {args.rounds} rounds")


if __name__ == "__main__":
    main()
