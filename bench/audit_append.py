"""What each index of the SQLite audit log costs an appended event, and its WAL checkpoint.

    .venv/bin/python bench/audit_append.py [--patients 1000000] [--prefill 300000] [--rounds 30]

For each configuration a fresh database gets the audit log table (``audit_log.SCHEMA``) with all
its indexes, none, or one at a time; ``--prefill`` events, then ``--rounds`` rounds of 150 events
(what one worker's audit writer appends per 100 ms round at ~1,500 reads/s), each round one
transaction as the writer commits it, every 3 rounds a checkpoint (``wal_checkpoint(TRUNCATE)``:
the copy into the database file that the checkpoint thread does). Events are Patient reads by one
client, each of a Patient drawn at random from ``--patients`` (``what`` is the Patient itself) and
with ``--other-reads`` the share of reads of another resource of that Patient (``what`` is then
an Observation with a random id). Reported per event: the CPU time (this thread) of the append and
of the checkpoint, and the bytes written to the WAL (median of the rounds).

Indexes whose key grows (ids, times, request ids, one client) take their rows at the right edge of
their B-tree; ``patient`` and ``what`` take them at random places, about one page per event.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_server.auth.audit_events import AuditRecord, Caller, Rest, Server, rest_records
from fhir_server.store.sqlite import audit_log

CALLER = Caller("127.0.0.1", "bench-hospital", "Organization/bench", "hospital", "ab" * 32)
SERVER = Server("http://127.0.0.1:8080/fhir", "https://ehc.example.cn")
ROUND = 150
INDEXES = ("audit_by_id", "audit_by_recorded", "audit_by_ts", "audit_by_patient",
           "audit_by_client", "audit_by_request", "audit_by_what")


class Events:
    def __init__(self, patients: int, other: float, seed: int = 1) -> None:
        self.patients, self.other, self.n = patients, other, 0
        self.random = random.Random(seed)

    def batch(self, count: int) -> list[AuditRecord]:
        out: list[AuditRecord] = []
        for _ in range(count):
            self.n += 1
            patient = f"Patient/p{self.random.randrange(self.patients)}"
            what = f"Observation/o{self.random.getrandbits(48):x}" \
                if self.random.random() < self.other else patient
            event = Rest("read", 1_700_000_000_000_000 + self.n * 400, 200, CALLER, SERVER,
                         f"0123456789ab-{self.n}", (what,))
            out += rest_records(event, [patient])
        return out


def measure(keep: tuple[str, ...], opts: argparse.Namespace, directory: Path) -> dict[str, float]:
    path = directory / f"append-{len(keep)}-{'-'.join(k[9:] for k in keep)}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "wal_autocheckpoint = 0",
                   "cache_size = -65536"):
        conn.execute(f"PRAGMA {pragma}")
    for statement in audit_log.SCHEMA:
        if "INDEX" not in statement or any(f" {name} " in statement for name in keep):
            conn.execute(statement)
    events = Events(opts.patients, opts.other_reads)
    conn.execute("BEGIN")
    audit_log.append(conn, events.batch(opts.prefill))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    appends, checkpoints, wal = [], [], []
    for i in range(opts.rounds):
        rows = events.batch(ROUND)
        start = time.thread_time()
        conn.execute("BEGIN IMMEDIATE")
        audit_log.append(conn, rows)
        conn.execute("COMMIT")
        appends.append((time.thread_time() - start) / ROUND * 1e6)
        if i % 3 == 2:
            wal.append(os.path.getsize(f"{path}-wal") / (3 * ROUND))
            start = time.thread_time()
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            checkpoints.append((time.thread_time() - start) / (3 * ROUND) * 1e6)
    conn.close()
    return {"append_us": statistics.median(appends), "checkpoint_us": statistics.median(checkpoints),
            "wal_bytes": statistics.median(wal)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--prefill", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--other-reads", type=float, default=0.0,
                    help="share of reads whose resource is not the Patient itself")
    opts = ap.parse_args()
    configs = [INDEXES, (), *((name,) for name in INDEXES)]
    print(f"{opts.patients} patients, {opts.prefill} events before, rounds of {ROUND};"
          f" other reads {opts.other_reads:.0%}; per event: append CPU, checkpoint CPU, WAL bytes")
    with tempfile.TemporaryDirectory() as tmp:
        for keep in configs:
            found = measure(keep, opts, Path(tmp))
            name = "all indexes" if keep == INDEXES else \
                ("table only" if not keep else "table + " + keep[0].removeprefix("audit_by_"))
            print(f"  {name:22s} {found['append_us']:6.1f} µs {found['checkpoint_us']:6.1f} µs"
                  f" {found['wal_bytes']:8.0f} B", flush=True)


if __name__ == "__main__":
    main()
