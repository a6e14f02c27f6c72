"""Median µs to extract every index entry of the official Patient examples: the compiled FHIRPath
subset against fhirpathpy for every expression.  Run: .venv/bin/python bench/index_bench.py"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fhirpathpy
from fhirpathpy.models import models

from fhir_server.search import index
from fhir_server.search.fhirpath import CompiledPath
from fhir_server.search.params import registry
from tests.shared_data import examples


def _median_us(fn: Any, resources: list[dict[str, Any]], rounds: int = 30) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for res in resources:
            fn(res)
        samples.append((time.perf_counter() - start) / len(resources) * 1e6)
    return statistics.median(samples)


def main() -> None:
    logging.disable(logging.WARNING)  # fhirpathpy cannot run resolve(): those yield nothing
    patients = [r for _, r in examples() if r.get("resourceType") == "Patient"]
    native = _median_us(index.extract, patients)
    # fhirpathpy-only: swap every compiled path of the Patient plan for a fhirpathpy one
    plans = index._plans(registry(), "Patient")
    for plan in plans:
        slow = CompiledPath(plan.path.expression, None,
                            fhirpathpy.compile(plan.path.expression, models["r4"]))
        object.__setattr__(plan, "path", slow)
    slow_us = _median_us(index.extract, patients, rounds=5)
    print(f"{len(patients)} Patient examples, {len(plans)} parameters")
    print(f"compiled subset : {native:8.1f} µs per Patient")
    print(f"fhirpathpy only : {slow_us:8.1f} µs per Patient")


if __name__ == "__main__":
    main()
