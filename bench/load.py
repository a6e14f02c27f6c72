"""Load tests for ehc-fhir with wrk: read, create, update, history; the bare Flask+SQLite baseline;
gthread vs sync workers; the server's own time per create (``Server-Timing``); reads with OAuth on.

    .venv/bin/python bench/load.py [--duration 10] [--repeat 3] [--connections 16]
        [--scenarios read,readauth,readinsurer,create,update,history,bare,sync,accesslog,servertime]
        [--out bench/results/latest.json]

Every scenario gets a freshly started server (``fhir-server serve`` under gunicorn, or
``bench/bare_app.py`` under gunicorn with identical options) on a new SQLite file in a temp
directory, listening on 127.0.0.1 only, with a pool of Patients created first over HTTP. Each
measured run is preceded by a short warm-up; the median over the repeats is reported. Needs ``wrk``
(Debian: ``apt-get install -y wrk``). The access log is off (``FHIR_ACCESS_LOG=0``) except in the
``accesslog`` scenario, where it goes to a file.

Auth is off (``FHIR_AUTH=off``) except in ``readauth`` and ``readinsurer``: there a client is
registered with the CLI before the server starts (``fhir-server keys generate``, ``clients add``),
every request carries ``Authorization: Bearer`` with a token from ``fhir-server token`` (a fresh one
before every wrk run: tokens live 300 s), and the pool is created with that token. ``readauth``
reads as a hospital (no read filter: the cost of authentication, the access decision and audit);
``readinsurer`` as an insurer (its Patients are masked: parsed and re-serialised on every read).
``read`` and the auth scenarios also sample the server's own time per read (``Server-Timing``,
sequential reads on one connection), a figure less noisy than throughput on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import patients  # noqa: E402
import wrk_scripts  # noqa: E402

VENV_BIN = Path(sys.executable).parent
ALL_SCENARIOS = ["read", "readauth", "readinsurer", "bare", "sync", "accesslog", "update", "history",
                 "create", "servertime"]
DEFAULT_SCENARIOS = ALL_SCENARIOS
FHIR_JSON = "application/fhir+json"


# -- servers -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float, where: str,
                 stop: Any) -> None:
    """Wait until the server on ``port`` answers ``/healthz``; stop it and raise if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; {where}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    stop()
    raise RuntimeError(f"server did not answer /healthz within {timeout} s")


@dataclass
class Server:
    kind: str  # "ours" or "bare"
    worker_class: str
    workers: int
    threads: int
    workdir: Path
    access_log: bool = False
    auth: bool = False
    pythonpath: str | None = None  # another source tree for this server (A/B comparisons)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        # profiles off: the load patients (bench/patients.py) and Synthea are not platform data;
        # what enforcement costs is measured by bench/profile_bench.py
        env = dict(os.environ, FHIR_ACCESS_LOG="1" if self.access_log else "0",
                   FHIR_AUTH="on" if self.auth else "off", FHIR_ENFORCE_PROFILES="off")
        if self.pythonpath is not None:
            env["PYTHONPATH"] = self.pythonpath
        if self.kind == "ours":
            db = self.workdir / "fhir.db"
            cmd = [str(VENV_BIN / "fhir-server"), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(self.workers), "--threads", str(self.threads),
                   "--worker-class", self.worker_class, "--store", f"sqlite:///{db}"]
        else:
            env["BARE_DB"] = str(self.workdir / "bare.db")
            # the same options fhir_server/server.py gives gunicorn
            cmd = [str(VENV_BIN / "gunicorn"), "--chdir", str(HERE), "--bind", f"127.0.0.1:{self.port}",
                   "--workers", str(self.workers), "--threads", str(self.threads),
                   "--worker-class", self.worker_class, "--keep-alive", "5", "--timeout", "60",
                   "--graceful-timeout", "10", "--error-logfile", "-", "--no-control-socket",
                   "bare_app:create_app()"]
        log = open(self.workdir / f"{self.kind}-{self.worker_class}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=self.workdir,
                                     start_new_session=True)
        log.close()
        wait_healthy(self.proc, self.port, timeout, f"see {log.name}", self.stop)

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True,
                             text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def connection_spread(self) -> list[int]:
        """How many established client connections each worker holds (sorted, largest first)."""
        pids = self.worker_pids()
        out = subprocess.run(["ss", "-tnpH", "state", "established", f"sport = :{self.port}"],
                             capture_output=True, text=True, check=False).stdout
        return sorted((out.count(f"pid={pid},") for pid in pids), reverse=True)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the gunicorn master stops its workers
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: master and its workers
            self.proc.wait(timeout=5)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- a keep-alive HTTP client for set-up and Server-Timing samples --------------------------------
class Client:
    def __init__(self, port: int, token: str | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.token = token

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": FHIR_JSON}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def close(self) -> None:
        self.conn.close()


def server_ms(headers: dict[str, str]) -> float:
    """``Server-Timing: app;dur=1.234`` -> 1.234"""
    value = headers.get("server-timing", "")
    for part in value.split(";"):
        if part.strip().startswith("dur="):
            return float(part.strip()[4:])
    raise ValueError(f"no Server-Timing dur in {value!r}")


def create_pool(port: int, n: int, seed: int = 1, token: str | None = None) -> tuple[list[str], list[bytes]]:
    """Create ``n`` Patients; returns their ids and stored bodies."""
    rng = random.Random(seed)
    client = Client(port, token)
    ids: list[str] = []
    bodies: list[bytes] = []
    try:
        for i in range(n):
            status, _, data = client.call("POST", "/fhir/Patient", patients.body(rng, f"P{i:06d}"))
            if status != 201:
                raise RuntimeError(f"create failed: {status} {data[:300]!r}")
            ids.append(json.loads(data)["id"])
            bodies.append(data)
    finally:
        client.close()
    return ids, bodies


def percentiles(values: list[float]) -> dict[str, float]:
    s = sorted(values)

    def pick(p: float) -> float:
        return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]

    return {"n": len(s), "p50": pick(50), "p95": pick(95), "p99": pick(99), "mean": statistics.fmean(s)}


def server_read_ms(port: int, ids: list[str], n: int, token: str | None = None) -> dict[str, float]:
    """Server-Timing of ``n`` sequential reads of pool Patients on one keep-alive connection."""
    client = Client(port, token)
    ms = []
    try:
        for j in range(n):
            status, headers, data = client.call("GET", f"/fhir/Patient/{ids[j % len(ids)]}")
            if status != 200:
                raise RuntimeError(f"read failed: {status} {data[:300]!r}")
            ms.append(server_ms(headers))
    finally:
        client.close()
    return percentiles(ms)


# -- OAuth clients (the CLI, as an operator would) -------------------------------------------------
def cli(*args: str, pythonpath: str | None = None) -> str:
    env = None if pythonpath is None else dict(os.environ, PYTHONPATH=pythonpath)
    result = subprocess.run([str(VENV_BIN / "fhir-server"), *args], capture_output=True, text=True,
                            check=False, timeout=120, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"fhir-server {' '.join(args)}: {result.stderr}")
    return result.stdout


def register_client(workdir: Path, client_id: str, role: str,
                    pythonpath: str | None = None) -> Path:
    """Register ``client_id`` in the scenario's database before the server starts; its key file.
    ``pythonpath``: the source tree of the server that will use the database."""
    keys = workdir / "keys"
    cli("keys", "generate", "--out", str(keys), "--client-id", client_id, "--alg", "ES384",
        pythonpath=pythonpath)
    cli("clients", "add", "--client-id", client_id, "--role", role, "--organization",
        f"Organization/{client_id}", "--jwks", str(keys / f"{client_id}.jwks.json"),
        "--store", f"sqlite:///{workdir / 'fhir.db'}", pythonpath=pythonpath)
    return keys / f"{client_id}.key.pem"


def fetch_token(base: str, client_id: str, key: Path, scope: str) -> str:
    return cli("token", "--url", base, "--client-id", client_id, "--key", str(key),
               "--scope", scope).strip()


# -- wrk -----------------------------------------------------------------------------------------
@dataclass
class WrkJob:
    name: str
    script: str
    path: str
    args: list[str]
    refresh: Callable[[], list[str]] | None = None  # fresh args before each run (a new token)


def run_wrk(base: str, job: WrkJob, workdir: Path, duration: float, connections: int, threads: int,
            server: Server | None = None) -> dict[str, Any]:
    script = workdir / f"{job.name}.lua"
    script.write_text(job.script)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
           "--timeout", "10s", "-s", str(script), base + job.path]
    args = job.refresh() if job.refresh is not None else job.args
    if args:
        cmd += ["--", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    spread = None
    if server is not None:
        time.sleep(duration / 2)
        spread = server.connection_spread()
    try:
        stdout, stderr = proc.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    for line in stdout.splitlines():
        if line.startswith("WRKJSON "):
            r: dict[str, Any] = json.loads(line[len("WRKJSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
            r["errors"] = sum(r[k] for k in r if k.startswith("err_"))
            for k in ("p50", "p90", "p95", "p99", "max", "mean"):
                r[k] = r[k] / 1000  # µs -> ms
            r["conns_per_worker"] = spread
            return r
    raise RuntimeError(f"wrk gave no result: {stdout}\n{stderr}")


def measure(server: Server, job: WrkJob, workdir: Path, opts: argparse.Namespace) -> dict[str, Any]:
    runs = []
    base = server.base
    for i in range(opts.repeat):
        run_wrk(base, job, workdir, opts.warmup, opts.connections, opts.wrk_threads)
        r = run_wrk(base, job, workdir, opts.duration, opts.connections, opts.wrk_threads, server)
        runs.append(r)
        print(f"  {job.name} run {i + 1}/{opts.repeat}: {r['rps']:.0f} req/s  p50 {r['p50']:.2f} ms  "
              f"p95 {r['p95']:.2f}  p99 {r['p99']:.2f}  errors {r['errors']}  "
              f"conns/worker {r['conns_per_worker']}", file=sys.stderr, flush=True)
    keys = ("rps", "p50", "p90", "p95", "p99")
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    # gthread keeps a connection in the worker that accepted it: when one worker happens to accept all
    # of wrk's connections the other one idles and throughput halves. Report those runs separately.
    spread = [r for r in runs if r["conns_per_worker"] and min(r["conns_per_worker"]) > 0]
    lopsided = [r for r in runs if r not in spread]
    med_spread = {k: statistics.median(r[k] for r in spread) for k in keys} if spread else None
    med_lopsided = {k: statistics.median(r[k] for r in lopsided) for k in keys} if lopsided else None
    return {"median": med, "median_all_workers_busy": med_spread, "median_one_worker": med_lopsided,
            "one_worker_runs": len(runs) - len(spread),
            "runs": [{k: r[k] for k in ("rps", "p50", "p95", "p99", "errors", "requests", "conns_per_worker")}
                     for r in runs]}


# -- scenarios -----------------------------------------------------------------------------------
def write_ids(workdir: Path, ids: list[str]) -> str:
    path = workdir / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    return str(path)


def read_job(ids_file: str, name: str = "read") -> WrkJob:
    return WrkJob(name, wrk_scripts.RANDOM_GET, "/", [ids_file, "/fhir/Patient/", ""])


def ours(opts: argparse.Namespace, workdir: Path, worker_class: str = "gthread",
         access_log: bool = False) -> Server:
    return Server("ours", worker_class, opts.workers, opts.threads, workdir, access_log=access_log)


def scenario(name: str, opts: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp))
    rng = random.Random(7)
    if name in ("read", "sync", "accesslog", "bare"):
        if name == "bare":
            with running(ours(opts, workdir)) as srv:  # the same stored bytes in both databases
                ids, bodies = create_pool(srv.port, opts.pool)
            server = Server("bare", "gthread", opts.workers, opts.threads, workdir)
        else:
            server = ours(opts, workdir, "sync" if name == "sync" else "gthread", name == "accesslog")
        with running(server) as srv:
            if name == "bare":
                client = Client(srv.port)
                for body in bodies:
                    assert client.call("POST", "/fhir/Patient", body)[0] == 201
                client.close()
            else:
                ids, _ = create_pool(srv.port, opts.pool)
            result = measure(srv, read_job(write_ids(workdir, ids), name), workdir, opts)
            if name == "read":
                result["server_read_ms"] = server_read_ms(srv.port, ids, opts.samples)
    elif name in ("readauth", "readinsurer"):
        writer = register_client(workdir, "bench-hospital", "hospital")
        reader_id, scope = ("bench-hospital", "system/Patient.rs") if name == "readauth" \
            else ("bench-insurer", "system/Patient.rs")
        reader = writer if name == "readauth" else register_client(workdir, reader_id, "insurer")
        server = ours(opts, workdir)
        server.auth = True
        with running(server) as srv:
            ids, _ = create_pool(srv.port, opts.pool, token=fetch_token(
                srv.base, "bench-hospital", writer, "system/Patient.cruds"))
            ids_file = write_ids(workdir, ids)

            def fresh_args() -> list[str]:
                return [ids_file, "/fhir/Patient/", "", fetch_token(srv.base, reader_id, reader, scope)]

            job = WrkJob(name, wrk_scripts.RANDOM_GET, "/", [], refresh=fresh_args)
            result = measure(srv, job, workdir, opts)
            result["server_read_ms"] = server_read_ms(
                srv.port, ids, opts.samples, fetch_token(srv.base, reader_id, reader, scope))
    elif name == "update":
        with running(ours(opts, workdir)) as srv:
            ids, _ = create_pool(srv.port, opts.pool)
            template = workdir / "update.json"
            template.write_bytes(patients.body(rng, "__N__", rid="__ID__"))
            job = WrkJob(name, wrk_scripts.UPDATE, "/", [write_ids(workdir, ids), str(template)])
            result = measure(srv, job, workdir, opts)
    elif name == "create":
        with running(ours(opts, workdir)) as srv:
            create_pool(srv.port, opts.pool)
            template = workdir / "create.json"
            template.write_bytes(patients.body(rng, "__N__"))
            result = measure(srv, WrkJob(name, wrk_scripts.CREATE, "/", [str(template)]), workdir, opts)
            result["body_bytes"] = template.stat().st_size
    elif name == "history":
        with running(ours(opts, workdir)) as srv:
            ids, _ = create_pool(srv.port, opts.pool)
            client = Client(srv.port)  # give every pool Patient a second version
            for rid in ids:
                status, _, data = client.call("PUT", f"/fhir/Patient/{rid}",
                                              patients.body(rng, "H", rid=rid))
                assert status == 200, data[:300]
            client.close()
            ids_file = write_ids(workdir, ids)
            result = {
                "instance": measure(srv, WrkJob("history-instance", wrk_scripts.RANDOM_GET, "/",
                                                     [ids_file, "/fhir/Patient/", "/_history"]),
                                    workdir, opts),
                "system": measure(srv, WrkJob("history-system", wrk_scripts.STATIC_GET,
                                                   "/fhir/_history?_count=50", []), workdir, opts),
            }
    elif name == "servertime":
        result = {"create": [], "read": []}
        with running(ours(opts, workdir)) as srv:
            ids, _ = create_pool(srv.port, 200)
            for i in range(opts.repeat):
                client = Client(srv.port)
                create_ms, create_rt, read_ms = [], [], []
                for j in range(opts.samples):
                    t0 = time.perf_counter()
                    status, headers, _ = client.call("POST", "/fhir/Patient",
                                                     patients.body(rng, f"S{i}{j:06d}"))
                    create_rt.append((time.perf_counter() - t0) * 1000)
                    assert status == 201
                    create_ms.append(server_ms(headers))
                for j in range(opts.samples):
                    status, headers, _ = client.call("GET", f"/fhir/Patient/{ids[j % len(ids)]}")
                    assert status == 200
                    read_ms.append(server_ms(headers))
                client.close()
                c, rt, r = percentiles(create_ms), percentiles(create_rt), percentiles(read_ms)
                print(f"  servertime run {i + 1}/{opts.repeat}: create server p50 {c['p50']:.3f} ms "
                      f"p95 {c['p95']:.3f}  (client round trip p50 {rt['p50']:.3f});  read server p50 "
                      f"{r['p50']:.3f} p95 {r['p95']:.3f}", file=sys.stderr, flush=True)
                result["create"].append({"server": c, "roundtrip": rt})
                result["read"].append({"server": r})
        result["median"] = {
            "create_server_p50": statistics.median(x["server"]["p50"] for x in result["create"]),
            "create_server_p95": statistics.median(x["server"]["p95"] for x in result["create"]),
            "create_server_p99": statistics.median(x["server"]["p99"] for x in result["create"]),
            "create_roundtrip_p50": statistics.median(x["roundtrip"]["p50"] for x in result["create"]),
            "read_server_p50": statistics.median(x["server"]["p50"] for x in result["read"]),
            "read_server_p95": statistics.median(x["server"]["p95"] for x in result["read"]),
        }
    else:
        raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(ALL_SCENARIOS)}")
    return result


# -- report --------------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    rows = [("read", "ours gthread", "GET /fhir/Patient/{id}"),
            ("readauth", "ours gthread, FHIR_AUTH on, hospital token", "GET /fhir/Patient/{id}"),
            ("readinsurer", "ours gthread, FHIR_AUTH on, insurer token (masked)",
             "GET /fhir/Patient/{id}"),
            ("bare", "bare gthread", "GET /fhir/Patient/{id}"),
            ("sync", "ours sync", "GET /fhir/Patient/{id}"),
            ("accesslog", "ours gthread, access log on", "GET /fhir/Patient/{id}"),
            ("update", "ours gthread", "PUT /fhir/Patient/{id}"),
            ("history.instance", "ours gthread", "GET /fhir/Patient/{id}/_history"),
            ("history.system", "ours gthread", "GET /fhir/_history?_count=50"),
            ("create", "ours gthread", "POST /fhir/Patient")]
    out = ["| scenario | server | request | req/s (median) | p50 ms | p95 ms | p99 ms | req/s per run "
           "| one-worker runs | req/s, both workers busy | req/s, one worker | errors |",
           "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    sc = results["scenarios"]
    for key, server, request in rows:
        part = key.split(".")
        r = sc.get(part[0])
        if r is None:
            continue
        if len(part) > 1:
            r = r[part[1]]
        m = r["median"]
        per_run = ", ".join(f"{x['rps']:.0f}" for x in r["runs"])
        errors = sum(x["errors"] for x in r["runs"])
        busy, one = r.get("median_all_workers_busy"), r.get("median_one_worker")
        out.append(f"| {key} | {server} | `{request}` | {m['rps']:.0f} | {m['p50']:.2f} | {m['p95']:.2f} | "
                   f"{m['p99']:.2f} | {per_run} | {r.get('one_worker_runs', 0)} | "
                   f"{busy['rps'] if busy else float('nan'):.0f} | "
                   f"{one['rps'] if one else float('nan'):.0f} | {errors} |")
    for key in ("read", "readauth", "readinsurer"):
        st_ = sc.get(key, {}).get("server_read_ms")
        if st_:
            out.append(f"- Server-Timing per read, {key} ({st_['n']} sequential reads, one connection):"
                       f" p50 {st_['p50']:.3f} ms, p95 {st_['p95']:.3f} ms, mean {st_['mean']:.3f} ms")
    ratios = results.get("ratios", {})
    if ratios:
        out.append("")
        for k, v in ratios.items():
            out.append(f"- {k}: {v:.2f}")
    st = sc.get("servertime")
    if st:
        m = st["median"]
        out.append(f"- Server-Timing per create (single connection, {results['options']['samples']} "
                   f"sequential creates, median of {len(st['create'])} runs): "
                   f"p50 {m['create_server_p50']:.3f} ms, "
                   f"p95 {m['create_server_p95']:.3f} ms, p99 {m['create_server_p99']:.3f} ms "
                   f"(client round trip p50 {m['create_roundtrip_p50']:.3f} ms)")
        out.append(f"- Server-Timing per read (same client): p50 {m['read_server_p50']:.3f} ms, "
                   f"p95 {m['read_server_p95']:.3f} ms")
    return "\n".join(out)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    with contextlib.suppress(Exception):
        info["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True,
                                     check=False).stdout.splitlines()[0]
    with contextlib.suppress(Exception):
        info["git_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True, check=False).stdout.strip()
    with contextlib.suppress(Exception):
        from importlib.metadata import version
        info["gunicorn"] = version("gunicorn")
        info["flask"] = version("flask")
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2, help="seconds of warm-up before every run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--pool", type=int, default=1000, help="Patients created before read/update/history")
    p.add_argument("--samples", type=int, default=2000, help="sequential creates for Server-Timing")
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    p.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    p.add_argument("--keep-temp", action="store_true")
    opts = p.parse_args()
    if shutil.which("wrk") is None and opts.scenarios != "servertime":
        raise SystemExit("wrk not found: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk")
    names = [s.strip() for s in opts.scenarios.split(",") if s.strip()]
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "scenarios": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="fhir-bench-"))
    try:
        for name in names:
            print(f"== {name}", file=sys.stderr, flush=True)
            results["scenarios"][name] = scenario(name, opts, tmp)
    finally:
        if opts.keep_temp:
            print(f"temp files kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sc = results["scenarios"]
    ratios = {}
    if "read" in sc and "bare" in sc:
        ratios["read throughput ours/bare"] = sc["read"]["median"]["rps"] / sc["bare"]["median"]["rps"]
        ratios["read p50 latency ours/bare"] = sc["read"]["median"]["p50"] / sc["bare"]["median"]["p50"]
        a, b = sc["read"]["median_all_workers_busy"], sc["bare"]["median_all_workers_busy"]
        if a and b:
            ratios["read throughput ours/bare, runs with both workers busy"] = a["rps"] / b["rps"]
        a, b = sc["read"].get("median_one_worker"), sc["bare"].get("median_one_worker")
        if a and b:
            ratios["read throughput ours/bare, runs with one worker holding every connection"] = (
                a["rps"] / b["rps"])
    if "read" in sc and "sync" in sc:
        ratios["read throughput sync/gthread"] = sc["sync"]["median"]["rps"] / sc["read"]["median"]["rps"]
    if "read" in sc and "accesslog" in sc:
        ratios["read throughput access-log-on/off"] = (sc["accesslog"]["median"]["rps"]
                                                      / sc["read"]["median"]["rps"])
    for key, label in (("readauth", "auth on (hospital)"), ("readinsurer", "auth on (insurer, masked)")):
        if "read" in sc and key in sc:
            ratios[f"read throughput {label}/off"] = sc[key]["median"]["rps"] / sc["read"]["median"]["rps"]
            a, b = sc[key]["median_all_workers_busy"], sc["read"]["median_all_workers_busy"]
            if a and b:
                ratios[f"read throughput {label}/off, runs with both workers busy"] = a["rps"] / b["rps"]
            on, off = sc[key]["server_read_ms"], sc["read"]["server_read_ms"]
            ratios[f"server time per read p50 {label}/off"] = on["p50"] / off["p50"]
    results["ratios"] = ratios
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"\nresults: {opts.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
