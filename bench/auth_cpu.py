"""Server CPU per read with OAuth + audit on vs off, under wrk, the two servers alternating.

    PYTHONPATH=<source tree> .venv/bin/python bench/auth_cpu.py [--pairs 8] [--duration 6]
        [--connections 16] [--together] [--min-conns 2] [--max-steal 0.1] [--workers 2]
        [--threads 4]
        [--out bench/results/auth-cpu.json]

Issue 6's target is the cost of auth plus audit as a share of read throughput. Throughput under
wrk is a poor witness on a shared 2-core machine: gthread keeps a connection in the worker that
accepted it, and in a third of the runs one worker accepts all of wrk's connections and the other
idles (halving that run whatever the configuration), and other work on the machine changes from
one run to the next. The CPU the server spends per request does not depend on how the
connections fell, and is what throughput is bound by when the server has the machine:
``throughput(on) / throughput(off) = cpu_per_read(off) / cpu_per_read(on)``.

Two servers run at once, as ``bench/load.py`` starts them (2 gthread workers x 4 threads, pool of
1,000 Patients): ``FHIR_AUTH=off``, and ``FHIR_AUTH=on`` with a hospital client registered with
the CLI (every request with a bearer token: authentication, the access decision, the scope check
and the read's AuditEvent, written by the audit writer thread). Then ``--pairs`` times: wrk
(``--duration`` s, after a 1 s warm-up) on one, then on the other, alternating which goes first;
for each run the CPU time (user + system) of the server's whole process group (master, workers and
their threads, from /proc) and the requests wrk completed; a run in which a worker held fewer than
``--min-conns`` (2) of the 16 connections is done again: the other worker's four threads then
serve 15 or 16 connections on one GIL, and its CPU per read grows by up to twice (a [15, 1] run is
nearly a [16, 0] one; 4 is stricter, and on a busy machine takes several tries per run). Per
pair: cost = 1 - off / on of the CPU per read; the median of the pairs is the figure.

``--together``: each pair is one round in which both servers are loaded at once, each by its own
wrk: whatever else the machine does meanwhile weighs on both alike (the servers then share the
two cores, so the CPU per read of both is higher than alone; the ratio is what is compared).
Steal: a run (or round) during which the hypervisor took more than ``--max-steal`` of the
machine's time (``/proc/stat``) is done again; on a crowded host the CPU a request needs grows
with the steal, whatever the configuration, and unevenly between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import wrk_scripts  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(steal, all) clock ticks of the machine so far (/proc/stat): the share of time the
    hypervisor gave the vCPUs to someone else."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[7], sum(fields[:8])


def steal_since(before: tuple[int, int]) -> float:
    steal, total = machine_ticks()
    return (steal - before[0]) / max(1, total - before[1])


def accepted(conns: list[int] | None, steal: float, opts: argparse.Namespace) -> bool:
    """Whether a run counts: every worker held ``--min-conns`` connections, the hypervisor took
    at most ``--max-steal`` of the machine."""
    return bool(conns) and min(conns or [0]) >= opts.min_conns and steal <= opts.max_steal


def measured(result: dict[str, Any], cpu: float, steal: float) -> dict[str, Any]:
    return {"requests": result["requests"], "rps": result["rps"], "cpu_s": cpu,
            "cpu_us_per_read": cpu / result["requests"] * 1e6, "steal": round(steal, 3),
            "conns_per_worker": result["conns_per_worker"]}


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of every live process of process group ``pgid``."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def run(server: load.Server, job: load.WrkJob, workdir: Path, opts: argparse.Namespace) -> dict[str, Any]:
    """One measured wrk run in which both workers held connections (a run where one worker got
    them all is done again: that worker's four threads then contend for its one GIL and its CPU
    per read nearly doubles, whatever the configuration)."""
    assert server.proc is not None
    for _ in range(opts.retries):
        load.run_wrk(server.base, job, workdir, 1, opts.connections, 1)  # warm-up
        before, ticks = group_cpu(server.proc.pid), machine_ticks()
        result = load.run_wrk(server.base, job, workdir, opts.duration, opts.connections, 1, server)
        cpu = group_cpu(server.proc.pid) - before
        steal = steal_since(ticks)
        if result["errors"]:
            raise RuntimeError(f"wrk saw errors: {result}")
        if accepted(result["conns_per_worker"], steal, opts):
            return measured(result, cpu, steal)
        print(f"  {job.name}: connections {result['conns_per_worker']}, steal {steal:.0%}, again",
              file=sys.stderr)
    raise RuntimeError(f"{opts.retries} runs in a row left a worker with too few connections"
                       " or had too much steal")


def _pid(server: load.Server) -> int:
    assert server.proc is not None
    return server.proc.pid


def run_together(servers: list[tuple[load.Server, load.WrkJob, Path]],
                 opts: argparse.Namespace) -> list[dict[str, Any]]:
    """One measured round of wrk on every server at once (each its own wrk, same duration): what
    the machine does meanwhile (other work, the hypervisor) weighs on all of them alike."""
    for _ in range(opts.retries):
        results: list[dict[str, Any] | None] = [None] * len(servers)

        def go(i: int, duration: float, record: bool, results: list[dict[str, Any] | None]) -> None:
            srv, job, workdir = servers[i]
            found = load.run_wrk(srv.base, job, workdir, duration, opts.connections, 1,
                                 srv if record else None)
            if record:
                results[i] = found

        for duration, record in ((1, False), (opts.duration, True)):  # warm-up, then measured
            before = [group_cpu(_pid(srv)) for srv, _, _ in servers]
            ticks = machine_ticks()
            threads = [threading.Thread(target=go, args=(i, duration, record, results))
                       for i in range(len(servers))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        cpu = [group_cpu(_pid(srv)) - b for (srv, _, _), b in zip(servers, before, strict=True)]
        steal = steal_since(ticks)
        done = [r for r in results if r is not None]
        if len(done) != len(servers) or any(r["errors"] for r in done):
            raise RuntimeError(f"wrk failed or saw errors: {results}")
        if all(accepted(r["conns_per_worker"], steal, opts) for r in done):
            return [measured(r, c, steal) for r, c in zip(done, cpu, strict=True)]
        print(f"  connections {[r['conns_per_worker'] for r in done]}, steal {steal:.0%}, again",
              file=sys.stderr)
    raise RuntimeError(f"{opts.retries} rounds in a row left a worker with too few connections"
                       " or had too much steal")


def add_run_options(ap: argparse.ArgumentParser) -> None:
    """The options of a measured run (:func:`run`), shared with ``auth_ab.py``."""
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--retries", type=int, default=30, help="runs tried to get an accepted one")
    ap.add_argument("--min-conns", type=int, default=2,
                    help="a run in which a worker held fewer of wrk's connections is done again")
    ap.add_argument("--max-steal", type=float, default=0.1,
                    help="a run during which the hypervisor took more than this share of the"
                         " machine's time (/proc/stat steal) is done again")


def read_job(server: load.Server, workdir: Path, pool: int, key: Path | None = None,
             name: str = "read") -> load.WrkJob:
    """Create ``pool`` Patients on ``server`` and the wrk job reading them at random; with
    ``key``, as the registered ``bench-hospital`` client (a fresh token for every run)."""
    if key is None:
        ids, _ = load.create_pool(server.port, pool)
        return load.WrkJob(name, wrk_scripts.RANDOM_GET, "/",
                           [load.write_ids(workdir, ids), "/fhir/Patient/", ""])
    ids, _ = load.create_pool(server.port, pool, token=load.fetch_token(
        server.base, "bench-hospital", key, "system/Patient.cruds"))
    ids_file = load.write_ids(workdir, ids)
    return load.WrkJob(name, wrk_scripts.RANDOM_GET, "/", [], refresh=lambda: [
        ids_file, "/fhir/Patient/", "",
        load.fetch_token(server.base, "bench-hospital", key, "system/Patient.rs")])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--together", action="store_true",
                    help="each round: wrk on both servers at once (not one after the other)")
    add_run_options(ap)
    ap.add_argument("--out", type=Path, default=load.ROOT / "bench" / "results" / "auth-cpu.json")
    opts = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auth-cpu-"))
    off_dir, on_dir = tmp / "off", tmp / "on"
    off_dir.mkdir()
    on_dir.mkdir()
    key = load.register_client(on_dir, "bench-hospital", "hospital")
    off = load.Server("ours", "gthread", opts.workers, opts.threads, off_dir)
    on = load.Server("ours", "gthread", opts.workers, opts.threads, on_dir, auth=True)
    pairs: list[dict[str, Any]] = []
    with load.running(off) as off_srv, load.running(on) as on_srv:
        off_job = read_job(off_srv, off_dir, opts.pool, name="off")
        on_job = read_job(on_srv, on_dir, opts.pool, key, name="on")
        for i in range(opts.pairs):
            order = [("off", off_srv, off_job, off_dir), ("on", on_srv, on_job, on_dir)]
            found: dict[str, Any] = {}
            if opts.together:
                found["off"], found["on"] = run_together(
                    [(off_srv, off_job, off_dir), (on_srv, on_job, on_dir)], opts)
            else:
                for name, srv, job, workdir in order if i % 2 == 0 else order[::-1]:
                    found[name] = run(srv, job, workdir, opts)
            found["cost"] = 1 - found["off"]["cpu_us_per_read"] / found["on"]["cpu_us_per_read"]
            pairs.append(found)
            print(f"pair {i + 1}: off {found['off']['cpu_us_per_read']:.0f} µs/read "
                  f"({found['off']['rps']:.0f} req/s, conns {found['off']['conns_per_worker']}), "
                  f"on {found['on']['cpu_us_per_read']:.0f} µs/read ({found['on']['rps']:.0f} req/s,"
                  f" conns {found['on']['conns_per_worker']}): cost {found['cost']:.1%}"
                  f" (steal {found['off']['steal']:.0%} / {found['on']['steal']:.0%})",
                  file=sys.stderr, flush=True)
    summary = {
        "cost_median": statistics.median(p["cost"] for p in pairs),
        "cost_runs": sorted(round(p["cost"], 3) for p in pairs),
        "cpu_us_per_read_off_median": statistics.median(p["off"]["cpu_us_per_read"] for p in pairs),
        "cpu_us_per_read_on_median": statistics.median(p["on"]["cpu_us_per_read"] for p in pairs),
        "steal_max": max(max(p["off"]["steal"], p["on"]["steal"]) for p in pairs),
    }
    print(json.dumps(summary, indent=1))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps({"machine": load.machine(),
                                    "options": {k: str(v) for k, v in vars(opts).items()},
                                    "summary": summary, "pairs": pairs}, indent=1) + "\n")
    print(f"summary: {opts.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
