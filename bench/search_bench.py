"""Search benchmark: latency and throughput of the search scenarios of issue 3 on a seeded database.

    .venv/bin/python bench/search_bench.py --patients 10000 [--db /tmp/search-bench/p10000-s1.db]
        [--seed 1] [--duration 10] [--repeat 3] [--connections 12] [--sequential 500]
        [--scenarios identifier,name,birthdate,chain,include,revinclude,has] [--no-explain]
        [--warm-cache]
        [--out bench/results/search-10000.json]

1. Seeds ``--db`` with ``fhir-server seed --patients N --seed S`` unless the file exists (a seeded
   database is reused between runs; the seeding time and rate are kept next to it in
   ``<db>.seed.json``). Databases belong under /tmp, never in the repository.
2. Picks query values from the database itself (read-only, deterministic ``random.Random(7)``):
   EHC identifiers, family names, birth dates, patient ids with Encounters / Immunizations, vaccine
   codes; writes one file of ready URLs per scenario.
3. Starts ``fhir-server serve`` on the database (``FHIR_ACCESS_LOG=0``, gthread, 2 workers x 4
   threads, 127.0.0.1, a free port) and per scenario:
   - sequential: one keep-alive connection, ``--sequential`` requests through the URL list; p50/p95
     of the client round trip and of the server's ``Server-Timing: app;dur=`` (no queueing);
   - wrk: ``--connections`` keep-alive connections cycling through the URLs at random
     (``wrk_scripts.RANDOM_GET``) for ``--duration`` s after a warm-up, ``--repeat`` times; medians.
4. ``EXPLAIN QUERY PLAN`` of the SQL each scenario runs (captured in process by wrapping the SQLite
   store's query method around one request per scenario; the server itself is not touched).

Markdown table on stdout, progress on stderr, JSON summary in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import wrk_scripts  # noqa: E402

VENV_BIN = Path(sys.executable).parent
#: ``--src``: run the server (and seeding, and the in-process EXPLAIN) from this source tree instead of
#: the working tree, e.g. a ``git archive`` of a commit while the working tree is being edited
SRC: Path | None = None
EHC = "https://fhir.demo-city.health.cn/sid/ehc-id"
VACCINE_SYSTEM = "https://fhir.demo-city.health.cn/CodeSystem/cn-nip-vaccine"
SCENARIOS = ["identifier", "name", "birthdate", "birthdate10", "birthyear", "chain", "include",
             "revinclude", "has"]
REQUEST = {
    "identifier": "Patient?identifier={ehc-system}|{ehc}",
    "name": "Patient?name={family}",
    "birthdate": "Patient?birthdate=ge{from}&birthdate=lt{to}",
    # the same month, pages of 10: most months fill a page at 10k patients too
    "birthdate10": "Patient?birthdate=ge{from}&birthdate=lt{to}&_count=10",
    # a year of births: a full page at 10k patients too (one month is ~12 matches at 10k, 50+
    # at 100k, so that scenario's pages differ in size between the two databases)
    "birthyear": "Patient?birthdate=ge{year}-01-01&birthdate=lt{year+1}-01-01",
    "chain": "Encounter?subject:Patient.identifier={ehc-system}|{ehc}",
    "include": "Encounter?subject=Patient/{id}&_include=Encounter:subject",
    "revinclude": "Patient?_id={id}&_revinclude=Immunization:patient",
    "has": "Patient?_has:Immunization:patient:vaccine-code={code}&_count=10",
}
#: scenarios whose result size does not grow with the database (the "indexed" ones of the target)
SELECTIVE = {"identifier", "chain", "include", "revinclude"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fhir_server_cmd() -> list[str]:
    return [sys.executable, "-m", "fhir_server"]


def src_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    if SRC is not None:
        env["PYTHONPATH"] = str(SRC)
    return env


# -- seeding ---------------------------------------------------------------------------------------
def seed(db: Path, patients: int, seed_no: int) -> dict[str, Any]:
    meta_file = db.with_name(db.name + ".seed.json")
    if db.exists():
        log(f"reusing {db}")
        return json.loads(meta_file.read_text()) if meta_file.exists() else {"reused": True}
    db.parent.mkdir(parents=True, exist_ok=True)
    log(f"seeding {patients} patients into {db} ...")
    t0 = time.perf_counter()
    subprocess.run([*fhir_server_cmd(), "seed", "--patients", str(patients), "--seed",
                    str(seed_no), "--store", f"sqlite:///{db}"], check=True,
                   stderr=subprocess.DEVNULL, cwd=SRC or ROOT, env=src_env())
    seconds = time.perf_counter() - t0
    with sqlite3.connect(db) as conn:
        resources = conn.execute("SELECT COUNT(*) FROM resources").fetchone()[0]
    meta = {"patients": patients, "seed": seed_no, "resources": resources, "seconds": round(seconds, 1),
            "resources_per_s": round(resources / seconds, 1), "db_bytes": db.stat().st_size}
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    log(f"seeded {resources} resources in {seconds:.0f} s = {resources / seconds:.0f} resources/s")
    return meta


def warm(db: Path) -> None:
    t0 = time.perf_counter()
    with db.open("rb") as f:
        while f.read(1 << 24):
            pass
    log(f"read {db.stat().st_size >> 20} MB into the page cache in {time.perf_counter() - t0:.1f} s")


# -- query values ----------------------------------------------------------------------------------
def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def pick_values(db: Path, n: int) -> dict[str, list[str]]:
    """``n`` URLs per scenario, from values that exist in the database."""
    rng = random.Random(7)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(resources)")}
    # schema 0/1: the body is in ``resources``; schema 2+: ``resources.hid`` points into ``history``
    body_sql = ("SELECT body FROM resources WHERE type = 'Patient' AND id = ?" if "body" in columns else
                "SELECT h.body FROM resources r JOIN history h ON h.hid = r.hid"
                " WHERE r.type = 'Patient' AND r.id = ?")
    ids = [r[0] for r in conn.execute("SELECT id FROM resources WHERE type = 'Patient' ORDER BY id")]
    sample = rng.sample(ids, min(n, len(ids)))
    ehc, family, births = [], [], []
    for pid in sample:
        body = json.loads(conn.execute(body_sql, (pid,)).fetchone()[0])
        ehc += [i["value"] for i in body.get("identifier", []) if i.get("system") == EHC]
        family += [nm["family"] for nm in body.get("name", []) if nm.get("family")][:1]
        if "birthDate" in body:
            births.append(body["birthDate"])

    def referenced(rtype: str, param: str) -> list[str]:
        rows = conn.execute("SELECT DISTINCT id FROM idx_reference WHERE rtype = ? AND param = ?"
                            " AND type = 'Patient'", (rtype, param)).fetchall()
        pool = sorted(r[0] for r in rows)
        return rng.sample(pool, min(n, len(pool)))

    with_encounters = referenced("Encounter", "subject")
    with_immunizations = referenced("Immunization", "patient")
    enc_ehc = []
    for pid in with_encounters:
        body = json.loads(conn.execute(body_sql, (pid,)).fetchone()[0])
        enc_ehc += [i["value"] for i in body.get("identifier", []) if i.get("system") == EHC]
    codes = sorted({r[0] for r in conn.execute(
        "SELECT DISTINCT code FROM idx_token WHERE rtype = 'Immunization' AND param = 'vaccine-code'"
        " AND system = ?", (VACCINE_SYSTEM,))})
    conn.close()

    def month_after(day: str) -> str:
        y, m, d = (int(x) for x in day[:10].split("-"))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return f"{y:04d}-{m:02d}-{min(d, 28):02d}"

    sys_q = q(EHC)
    urls = {
        "identifier": [f"/fhir/Patient?identifier={sys_q}%7C{q(v)}" for v in ehc],
        "name": [f"/fhir/Patient?name={q(f)}" for f in family],
        "birthdate": [f"/fhir/Patient?birthdate=ge{b[:10]}&birthdate=lt{month_after(b)}" for b in births],
        "birthdate10": [f"/fhir/Patient?birthdate=ge{b[:10]}&birthdate=lt{month_after(b)}&_count=10"
                        for b in births],
        "birthyear": [f"/fhir/Patient?birthdate=ge{b[:4]}-01-01&birthdate=lt{int(b[:4]) + 1:04d}-01-01"
                      for b in births],
        "chain": [f"/fhir/Encounter?subject:Patient.identifier={sys_q}%7C{q(v)}" for v in enc_ehc],
        "include": [f"/fhir/Encounter?subject=Patient/{q(p)}&_include=Encounter:subject"
                    for p in with_encounters],
        "revinclude": [f"/fhir/Patient?_id={q(p)}&_revinclude=Immunization:patient"
                       for p in with_immunizations],
        "has": [f"/fhir/Patient?_has:Immunization:patient:vaccine-code={q(c)}&_count=10"
                for c in codes],
    }
    return urls


# -- the server --------------------------------------------------------------------------------
class DbServer(load.Server):
    """``load.Server`` on an existing database file (instead of ``workdir/fhir.db``)."""

    db: Path

    def start(self, timeout: float = 60) -> None:
        env = src_env(FHIR_ACCESS_LOG="0", FHIR_AUTH="off")
        cmd = [*fhir_server_cmd(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", str(self.workers), "--threads", str(self.threads),
               "--worker-class", self.worker_class, "--store", f"sqlite:///{self.db}"]
        logf = open(self.workdir / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env, cwd=self.workdir,
                                     start_new_session=True)
        logf.close()
        load.wait_healthy(self.proc, self.port, timeout, f"see {self.workdir}", self.stop)


def sequential(port: int, urls: list[str], n: int, max_seconds: float) -> dict[str, Any]:
    """One keep-alive connection, ``n`` requests in a row (fewer if ``max_seconds`` run out, at least
    20): client and server time percentiles, plus the result sizes seen."""
    client = load.Client(port)
    rng = random.Random(11)
    order = [urls[rng.randrange(len(urls))] for _ in range(n)]
    for url in order[:5]:  # warm-up (connection, page cache)
        client.call("GET", url)
    rtt: list[float] = []
    app: list[float] = []
    totals: list[int] = []
    entries: list[int] = []
    sizes: list[int] = []
    deadline = time.monotonic() + max_seconds
    try:
        for url in order:
            if len(rtt) >= 20 and time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            status, headers, data = client.call("GET", url)
            rtt.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"{url}: {status} {data[:300]!r}")
            app.append(load.server_ms(headers))
            sizes.append(len(data))
            if len(totals) < 100:
                bundle = json.loads(data)
                totals.append(bundle.get("total", -1))
                entries.append(len(bundle.get("entry", [])))
    finally:
        client.close()
    return {"client": load.percentiles(rtt), "server": load.percentiles(app),
            "total_median": statistics.median(totals), "total_max": max(totals),
            "entries_median": statistics.median(entries), "bytes_median": statistics.median(sizes)}


# -- EXPLAIN QUERY PLAN ------------------------------------------------------------------------
def explain(db: Path, urls: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """Run one request per scenario in process and EXPLAIN QUERY PLAN every SQL statement it ran."""
    if SRC is not None:
        sys.path.insert(0, str(SRC))
    from fhir_server.app import create_app
    from fhir_server.store.sqlite import store as sqlite_store

    captured: list[tuple[str, list[Any]]] = []
    original = sqlite_store._Reads._query

    def spy(self: Any, sql: str, args: Any) -> list[Any]:
        captured.append((sql, list(args)))
        return original(self, sql, args)

    sqlite_store._Reads._query = spy  # type: ignore[method-assign]
    os.environ["FHIR_ACCESS_LOG"] = "0"
    os.environ.setdefault("FHIR_AUTH", "off")
    try:
        store = sqlite_store.SqliteStore.from_url(f"sqlite:///{db}")
        app = create_app(store=store)
        client = app.test_client()
        out: dict[str, list[dict[str, Any]]] = {}
        for name, lst in urls.items():
            captured.clear()
            resp = client.get(lst[0], headers={"Accept": "application/fhir+json"})
            assert resp.status_code == 200, resp.data[:300]
            statements: list[dict[str, Any]] = []
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            for sql, args in captured:
                plan = conn.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
                statements.append({"sql": sql, "args": [a if not isinstance(a, bytes) else repr(a)
                                                        for a in args],
                                   "plan": [f"{'  ' * _depth(plan, r)}{r[3]}" for r in plan]})
                # time the statement alone (median of 5), to attribute the request time
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    conn.execute(sql, args).fetchall()
                    times.append((time.perf_counter() - t0) * 1000)
                statements[-1]["ms"] = round(statistics.median(times), 3)
            conn.close()
            out[name] = statements
        return out
    finally:
        sqlite_store._Reads._query = original  # type: ignore[method-assign]


def _depth(plan: list[tuple[Any, ...]], row: tuple[Any, ...]) -> int:
    parents = {r[0]: r[1] for r in plan}
    depth, parent = 0, row[1]
    while parent in parents:
        depth += 1
        parent = parents[parent]
    return depth


# -- main --------------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    lines = [
        "| scenario | request | result total (median) | seq n | seq p50 ms | seq p95 ms | server p50 ms |"
        " server p95 ms | wrk req/s | wrk p50 ms | wrk p95 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        s, w = r["sequential"], r.get("wrk")
        m = w["median"] if w else {}
        wcols = (f"{m['rps']:.0f} | {m['p50']:.2f} | {m['p95']:.2f} | "
                 f"{sum(x['errors'] for x in w['runs'])}") if w else "– | – | – | –"
        request = REQUEST[name].replace("|", "\\|")  # a pipe inside a table cell
        lines.append(f"| {name} | `{request}` | {s['total_median']:g} | {s['client']['n']} | "
                     f"{s['client']['p50']:.2f} | {s['client']['p95']:.2f} | "
                     f"{s['server']['p50']:.2f} | {s['server']['p95']:.2f} | "
                     f"{wcols} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", type=Path, help="default /tmp/search-bench/p<N>-s<seed>.db")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--connections", type=int, default=12)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--sequential", type=int, default=500)
    ap.add_argument("--sequential-seconds", type=float, default=30,
                    help="stop the sequential requests of a scenario after this long (at least 20)")
    ap.add_argument("--urls", type=int, default=1000, help="URLs prepared per scenario")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--no-wrk", action="store_true")
    ap.add_argument("--no-explain", action="store_true")
    ap.add_argument("--warm-cache", action="store_true",
                    help="read the database file once first, so that it starts in the OS page cache"
                         " as a database in service is (a freshly seeded 100k database was mostly not)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--src", type=Path, help="source tree to run (default: the installed working tree)")
    opts = ap.parse_args()
    global SRC
    SRC = opts.src.resolve() if opts.src else None
    names = [s for s in opts.scenarios.split(",") if s]
    for s in names:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}")
    db = (opts.db or Path(f"/tmp/search-bench/p{opts.patients}-s{opts.seed}.db")).resolve()
    if ROOT in db.parents:
        ap.error("keep the database out of the repository (use /tmp)")
    seeding = seed(db, opts.patients, opts.seed)
    if opts.warm_cache:
        warm(db)
    urls = {k: v for k, v in pick_values(db, opts.urls).items() if k in names}
    for k, v in urls.items():
        log(f"{k}: {len(v)} URLs, e.g. {urllib.parse.unquote(v[0])}")
    workdir = Path(tempfile.mkdtemp(prefix="search-bench-"))
    for k, v in urls.items():
        (workdir / f"{k}.txt").write_text("\n".join(v) + "\n")

    results: dict[str, Any] = {}
    server = DbServer("ours", "gthread", opts.workers, opts.threads, workdir)
    server.db = db
    with load.running(server) as srv:
        for name in names:
            log(f"{name}: sequential x {opts.sequential}")
            results[name] = {"request": REQUEST[name], "sequential": sequential(srv.port, urls[name],
                                                                                 opts.sequential,
                                                                                 opts.sequential_seconds)}
            seq = results[name]["sequential"]
            log(f"  p50 {seq['client']['p50']:.2f} ms (server {seq['server']['p50']:.2f}), "
                f"p95 {seq['client']['p95']:.2f} ms, n {seq['client']['n']}, total {seq['total_median']}")
        if not opts.no_wrk:
            for name in names:
                job = load.WrkJob(f"search-{name}", wrk_scripts.RANDOM_GET, "/",
                                  [str(workdir / f"{name}.txt"), "", ""])
                results[name]["wrk"] = load.measure(srv, job, workdir, opts)
    plans = {} if opts.no_explain else explain(db, urls)
    for name, statements in plans.items():
        results[name]["sql"] = statements
    print(f"\n{opts.patients} patients, {seeding.get('resources', '?')} resources "
          f"(seeding: {seeding.get('resources_per_s', '?')} resources/s)\n")
    print(table(results))
    for name, statements in plans.items():
        print(f"\n### {name}\n")
        for st in statements:
            print(f"- {st['ms']} ms: `{st['sql'][:160]}{'…' if len(st['sql']) > 160 else ''}`")
            for line in st["plan"]:
                print(f"      {line}")
    out = opts.out or ROOT / "bench" / "results" / f"search-{opts.patients}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"patients": opts.patients, "seed": opts.seed, "db": str(db),
                               "seeding": seeding, "src": str(SRC or ROOT),
                               "options": {k: str(v) for k, v in vars(opts).items()},
                               "machine": load.machine(), "results": results},
                              indent=1, ensure_ascii=False) + "\n")
    log(f"summary: {out}")


if __name__ == "__main__":
    main()
