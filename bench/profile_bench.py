"""Cost of profile validation: per resource, and added to a create.

    .venv/bin/python bench/profile_bench.py [--repeat 2000] [--creates 1500]

1. The validator alone on seed resources (Patient, Immunization, Encounter, ServiceRequest):
   p50/p95 µs of ``Validator.validate`` against the resource's profile (R4 base rules included),
   with the R4 structure check beside it for scale.
2. ``POST /fhir/Patient`` and ``POST /fhir/Immunization`` through the Flask test client on a
   fresh SQLite database, profiles enforced (the default) and off (``FHIR_ENFORCE_PROFILES=off``),
   interleaved in blocks so both see the same machine; the difference of the p50s is what
   enforcement adds to a create.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_server.app import create_app  # noqa: E402
from fhir_server.config import Settings  # noqa: E402
from fhir_server.fhir import structure  # noqa: E402
from fhir_server.profiles import Validator, registry  # noqa: E402
from fhir_server.terminology.service import terminology  # noqa: E402
from seed import generate  # noqa: E402

SD = "https://fhir.demo-city.health.cn/StructureDefinition/"
PROFILE = {"Patient": "rhip-patient", "Immunization": "rhip-immunization",
           "Encounter": "rhip-encounter", "ServiceRequest": "rhip-referral"}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def validator_costs(resources: list[dict[str, Any]], repeat: int) -> None:
    v = Validator(registry(), terminology())
    print(f"{'resource':<16}{'profile p50 µs':>16}{'p95':>8}{'structure p50 µs':>18}")
    for rtype, name in PROFILE.items():
        sample = [r for r in resources if r["resourceType"] == rtype][:50]
        urls = [SD + name]
        assert all(v.validate(r, urls) == [] for r in sample), rtype
        per_resource = [statistics.median(timed(lambda r=r, u=urls: v.validate(r, u),
                                                repeat // 10)) for r in sample]
        structural = [statistics.median(timed(lambda r=r, t=rtype: structure.validate(r, t),
                                              repeat // 10)) for r in sample]
        print(f"{rtype:<16}{statistics.median(per_resource):>16.1f}"
              f"{pct(per_resource, 0.95):>8.1f}{statistics.median(structural):>18.1f}")


def create_costs(resources: list[dict[str, Any]], creates: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="profile-bench-"))
    apps = {}
    for mode in ("on", "off"):
        settings = Settings(store_url=f"sqlite:///{folder / mode}.db", access_log=False,
                            auth=False, enforce_profiles=None if mode == "on" else "off")
        apps[mode] = create_app(settings).test_client()
    headers = {"Content-Type": "application/fhir+json"}
    print(f"\n{'create':<16}{'enforced p50 ms':>17}{'off p50 ms':>12}{'added p50 µs':>14}")
    for rtype in ("Patient", "Immunization"):
        bodies = [{k: v for k, v in r.items() if k != "id"} for r in resources
                  if r["resourceType"] == rtype][:creates]
        times: dict[str, list[float]] = {"on": [], "off": []}
        block = 50
        for start in range(0, len(bodies), block):
            for mode in ("on", "off"):  # interleaved blocks: both see the same machine load
                client = apps[mode]
                for body in bodies[start:start + block]:
                    t0 = time.perf_counter_ns()
                    response = client.post(f"/fhir/{rtype}", json=body, headers=headers)
                    times[mode].append((time.perf_counter_ns() - t0) / 1e6)
                    assert response.status_code == 201, response.get_json()
        on, off = statistics.median(times["on"]), statistics.median(times["off"])
        print(f"{rtype:<16}{on:>17.3f}{off:>12.3f}{(on - off) * 1000:>14.0f}   "
              f"(n={len(times['on'])} each)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--creates", type=int, default=1500)
    args = parser.parse_args()
    t0 = time.perf_counter()
    registry()
    print(f"profiles loaded and compiled in {time.perf_counter() - t0:.2f} s")
    resources = list(generate(max(400, args.creates // 2), seed=7))
    validator_costs(resources, args.repeat)
    create_costs(resources, args.creates)


if __name__ == "__main__":
    main()
