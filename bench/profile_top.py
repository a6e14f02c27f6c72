"""Profile the server's workers with py-spy under a wrk load and print the top functions.

    .venv/bin/pip install py-spy          # not a project dependency
    .venv/bin/python bench/profile_top.py --scenario read [--seconds 15] [--top 25]

Starts ``fhir-server serve`` (gthread, 2 workers x 4 threads, access log off) on a temp SQLite file,
creates a pool of Patients, runs wrk (read: random GETs; create: POSTs) while ``py-spy record
--subprocesses --format raw`` samples the workers, then prints, per function, the share of samples in
which it is on the stack (inclusive) and on top of the stack (self). Idle samples (threads waiting in
the poller, on a lock, or in accept) are excluded with ``--idle`` off, py-spy's default.
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import patients  # noqa: E402
import wrk_scripts  # noqa: E402

_LINE = re.compile(r"\(([^()]*):\d+\)$")  # "f (x.py:12)" -> "f (x.py)": one row per function


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scenario", choices=["read", "create"], default="read")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--rate", type=int, default=250)
    opts = p.parse_args()
    py_spy = shutil.which("py-spy", path=str(load.VENV_BIN)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    tmp = Path(tempfile.mkdtemp(prefix="fhir-profile-"))
    server = load.Server("ours", "gthread", 2, 4, tmp)
    try:
        with load.running(server):
            ids, _ = load.create_pool(server.port, 500)
            if opts.scenario == "read":
                job = load.read_job(load.write_ids(tmp, ids))
            else:
                template = tmp / "create.json"
                template.write_bytes(patients.body(random.Random(3), "__N__"))
                job = load.WrkJob("create", wrk_scripts.CREATE, "/", [str(template)])
            raw = tmp / "profile.txt"
            assert server.proc is not None
            spy = subprocess.Popen([py_spy, "record", "--pid", str(server.proc.pid), "--subprocesses",
                                    "--rate", str(opts.rate), "--duration", str(opts.seconds),
                                    "--format", "raw", "--output", str(raw)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r = load.run_wrk(server.base, job, tmp, opts.seconds, 16, 1, server)
            spy.wait(timeout=opts.seconds + 60)
        print(f"wrk under py-spy: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, "
              f"conns/worker {r['conns_per_worker']}")
        inclusive: collections.Counter[str] = collections.Counter()
        own: collections.Counter[str] = collections.Counter()
        total = 0
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            n = int(count)
            frames = [_LINE.sub(r"(\1)", f) for f in stack.split(";")
                      if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            total += n
            for f in set(frames):
                inclusive[f] += n
            own[frames[-1]] += n
        print(f"\n{total} active samples\n\nTop by self time:")
        for f, n in own.most_common(opts.top):
            print(f"{100 * n / total:6.1f}%  {f}")
        print("\nTop by inclusive time:")
        for f, n in inclusive.most_common(opts.top * 2):
            print(f"{100 * n / total:6.1f}%  {f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
