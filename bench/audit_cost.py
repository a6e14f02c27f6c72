"""In-process cost of auth and audit per read: Flask's test client, one process, one SQLite file.

    .venv/bin/python bench/audit_cost.py [--reads 1500] [--rounds 8]

Three configurations, each on its own fresh database with the same 200 Patients, run in
alternation (ABCABC...) so that load on a shared machine hits them alike. Reported per read: the
wall time (best round: the least disturbed, and the median), and the **CPU time of the whole
process** (every thread: the request's, the audit writer's, the WAL checkpointer's; median over the
rounds), split into the request thread and the background threads. On two cores shared with other
work, CPU per read is what throughput follows, and it is far less disturbed by other processes than
wall time; the throughput cost is computed from it (1 - off / config):

* ``off``: ``FHIR_AUTH=off`` (no token, no audit);
* ``auth``: ``FHIR_AUTH=on`` with the audit's queue disabled (token lookup, access decision, guard,
  the request-side audit bookkeeping): what authentication and enforcement cost;
* ``audit``: ``FHIR_AUTH=on`` with the audit as it runs (one AuditEvent per read, written by the
  background writer). The clock stops after the writer has written every event of the round, so
  the writer's work (build, append, one transaction per ~100 ms) is counted in full.

The same from the least disturbed round of each configuration (the lowest CPU per read: load from
other processes only ever adds to it) is printed too. Also reported: the writer's own cost per
event (build the record + append, in batches of 100).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.oauth: real keys and tokens

from fhir_server.app import create_app
from fhir_server.auth import audit, audit_events
from fhir_server.auth.audit_writer import AuditWriter, write, writer
from fhir_server.config import Settings
from fhir_server.fhir.instants import now_us
from fhir_server.store.sqlite import SqliteStore
from tests.oauth import ec_key, get_token, register

PATIENTS = 200
#: the SQLite checkpointer runs 0.2 s after a commit: without a pause, an audited round's checkpoint
#: would be counted in the next round (another configuration's)
SETTLE_S = 0.5


def _setup(directory: Path, name: str, auth: bool) -> tuple[FlaskClient, dict[str, str], list[str]]:
    settings = Settings(store_url=f"sqlite:///{directory / name}.db", access_log=False, auth=auth,
                        enforce_profiles="off")
    store = SqliteStore.from_url(settings.store_url)
    app = create_app(settings, store)
    client = app.test_client()
    headers = {"Content-Type": "application/fhir+json"}
    if auth:
        key = ec_key("bench-1")
        register(store, "bench", "hospital", key, organization="Organization/bench")
        headers["Authorization"] = f"Bearer {get_token(client, key, 'bench', 'system/*.cruds')}"
    ids = []
    for i in range(PATIENTS):
        body = {"resourceType": "Patient", "name": [{"family": f"F{i}"}], "gender": "female"}
        response = client.post("/fhir/Patient", json=body, headers=headers)
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["id"])
    audit.flush()
    return client, headers, ids


def _round(client: FlaskClient, headers: dict[str, str], ids: list[str], reads: int
           ) -> tuple[float, float, float]:
    """µs per read: wall, CPU of the process (all threads), CPU of this (the request) thread."""
    start, cpu, mine = time.perf_counter(), time.process_time(), time.thread_time()
    for i in range(reads):
        response = client.get(f"/fhir/Patient/{ids[i % len(ids)]}", headers=headers)
        assert response.status_code == 200
    assert audit.flush(60)
    out = ((time.perf_counter() - start) / reads * 1e6,
           (time.process_time() - cpu) / reads * 1e6, (time.thread_time() - mine) / reads * 1e6)
    time.sleep(SETTLE_S)  # the WAL checkpoint of this round's commits, before the next round
    return out


class _Discard(AuditWriter):
    def submit(self, store: Any, job: Any, *args: Any) -> bool:
        return True


def _writer_cost(directory: Path, events: int = 3000) -> float:
    """The writer's work per event: build the records of a read of one of 200 Patients (each
    request its own request id) and append them, 100 per transaction."""
    store = SqliteStore(directory / "writer.db")
    caller = audit_events.Caller("127.0.0.1", "bench", "Organization/bench", "hospital", "ab" * 32)
    server = audit_events.Server("http://localhost/fhir", "https://example.org")
    start = time.perf_counter()
    build = getattr(audit_events, "rest_records", None)
    for batch in range(events // 100):
        records: list[Any] = []
        for i in range(100):
            n = batch * 100 + i
            patient = f"Patient/p{n * 7919 % PATIENTS}"
            event = audit_events.Rest("read", now_us(), 200, caller, server, f"bench-{n}",
                                      (patient,))
            if build is not None:
                records += build(event, [patient], now_us())
            else:  # before the audit log (commit cfa957f and earlier): resources + index rows
                records += [audit_events.new_version(d, event.recorded, now_us())  # type: ignore[attr-defined]
                            for d in audit_events.rest_events(event, [patient])]
        write(store, records)
    store.close()
    return (time.perf_counter() - start) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        setups = {name: _setup(directory, name, name != "off") for name in ("off", "auth", "audit")}
        real = writer()
        discard = _Discard()
        times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in setups}
        for _ in range(args.rounds):
            for name, (client, headers, ids) in setups.items():
                audit.writer = (lambda: discard) if name == "auth" else (lambda: real)  # type: ignore[assignment]
                times[name].append(_round(client, headers, ids, args.reads))
        audit.writer = lambda: real  # type: ignore[assignment]

        def median(name: str, i: int) -> float:
            return statistics.median(t[i] for t in times[name])

        def best(name: str) -> float:
            return min(t[1] for t in times[name])

        print(f"reads per round: {args.reads}, rounds: {args.rounds}; µs per read: wall best /"
              " median; CPU median: process = request thread + background threads; CPU best:"
              " the least disturbed round")
        off = median("off", 1)
        for name, values in times.items():
            cpu, mine = median(name, 1), median(name, 1) - median(name, 2)
            extra = "" if name == "off" else f"  (+{cpu - off:.0f} µs, +{(cpu - off) / off * 100:.0f}%)"
            print(f"  {name:6} wall {min(t[0] for t in values):7.1f} / {median(name, 0):7.1f}"
                  f"   CPU {cpu:7.1f} = {median(name, 2):7.1f} + {mine:5.1f}{extra}"
                  f"   CPU best {best(name):7.1f}")
        print(f"  throughput cost of auth+audit (CPU): {(1 - off / median('audit', 1)) * 100:.0f}%"
              f" (auth alone: {(1 - off / median('auth', 1)) * 100:.0f}%); from the best rounds:"
              f" {(1 - best('off') / best('audit')) * 100:.0f}%"
              f" (auth alone: {(1 - best('off') / best('auth')) * 100:.0f}%)")
        print(f"writer: {_writer_cost(directory):.1f} µs per AuditEvent (build the record, append)")


if __name__ == "__main__":
    main()
