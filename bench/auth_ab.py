"""Two versions of the server's auth + audit, compared by CPU per read under wrk.

    .venv/bin/python bench/auth_ab.py --a <source tree A> --b <source tree B> [--rounds 12]
        [--duration 5] [--min-conns 2] [--max-steal 0.1] [--out bench/results/auth-ab.json]

Three servers run at once, as ``bench/auth_cpu.py`` starts them: ``FHIR_AUTH=off`` (tree A), and
``FHIR_AUTH=on`` with a hospital token, one from tree A and one from tree B (``git archive`` of
two commits; each server gets its tree as ``PYTHONPATH``). Each round loads the three in turn
(wrk, ``--duration`` s after a 1 s warm-up; the order rotates), with ``auth_cpu.run``'s rules
(a run with a worker holding fewer than ``--min-conns`` of the connections, or with more than
``--max-steal`` of the machine stolen by the hypervisor, is done again). Per round: the CPU per
read of each server, the cost of auth + audit of A and of B (``1 - off / on``), and **B / A** of
the CPU per read with auth on:
measured seconds apart, it is far steadier than either cost on a machine whose speed drifts by
tens of per cent from one minute to the next. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import auth_cpu  # noqa: E402
import load  # noqa: E402

NAMES = ("off", "on A", "on B")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="source tree A (also the auth-off server)")
    ap.add_argument("--b", required=True, help="source tree B")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--duration", type=float, default=5)
    auth_cpu.add_run_options(ap)
    ap.add_argument("--out", type=Path, default=load.ROOT / "bench" / "results" / "auth-ab.json")
    opts = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auth-ab-"))
    trees = {"off": opts.a, "on A": opts.a, "on B": opts.b}
    dirs = {name: tmp / name.replace(" ", "-") for name in NAMES}
    for d in dirs.values():
        d.mkdir()
    keys = {name: load.register_client(dirs[name], "bench-hospital", "hospital",
                                       pythonpath=trees[name]) for name in NAMES[1:]}
    servers = {name: load.Server("ours", "gthread", 2, 4, dirs[name], auth=name != "off",
                                 pythonpath=trees[name]) for name in NAMES}
    rounds: list[dict[str, Any]] = []
    with load.running(servers["off"]) as off, load.running(servers["on A"]) as on_a, \
            load.running(servers["on B"]) as on_b:
        running = {"off": off, "on A": on_a, "on B": on_b}
        jobs = {name: auth_cpu.read_job(running[name], dirs[name], opts.pool, keys.get(name),
                                        name=name.replace(" ", "-")) for name in NAMES}
        for i in range(opts.rounds):
            order = NAMES[i % 3:] + NAMES[:i % 3]
            found = {n: auth_cpu.run(running[n], jobs[n], dirs[n], opts) for n in order}
            cpu = {n: found[n]["cpu_us_per_read"] for n in NAMES}
            row = {"cpu_us_per_read": cpu, "cost_a": 1 - cpu["off"] / cpu["on A"],
                   "cost_b": 1 - cpu["off"] / cpu["on B"], "b_over_a": cpu["on B"] / cpu["on A"],
                   "runs": found}
            rounds.append(row)
            print(f"round {i + 1}: off {cpu['off']:.0f}, on A {cpu['on A']:.0f}, on B"
                  f" {cpu['on B']:.0f} µs/read; cost A {row['cost_a']:.1%}, B {row['cost_b']:.1%};"
                  f" B/A {row['b_over_a']:.3f}", file=sys.stderr, flush=True)
    summary = {k: statistics.median(r[k] for r in rounds) for k in ("cost_a", "cost_b", "b_over_a")}
    summary |= {f"cpu_us_per_read_{n.replace(' ', '_')}": statistics.median(
        r["cpu_us_per_read"][n] for r in rounds) for n in NAMES}
    print(json.dumps(summary, indent=1))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps({"machine": load.machine(), "a": opts.a, "b": opts.b,
                                    "summary": summary, "rounds": rounds}, indent=1) + "\n")
    print(f"summary: {opts.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
