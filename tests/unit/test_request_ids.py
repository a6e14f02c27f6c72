"""Request ids: one prefix per process shared by all its threads, unique ids, a new prefix in a
forked child (each gunicorn worker is told apart by it)."""

from __future__ import annotations

import os
import threading

from fhir_server.api.observability import _RequestIds


def test_threads_share_one_prefix_and_never_repeat_an_id() -> None:
    ids = _RequestIds()
    got: list[str] = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        got.extend(ids.next() for _ in range(500))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(got)) == len(got) == 4000
    assert len({i.split("-")[0] for i in got}) == 1


def test_a_forked_child_draws_a_new_prefix() -> None:
    ids = _RequestIds()
    parent = ids.next().split("-")[0]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its first id and leave at once
        os.write(write, ids.next().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert child.endswith("-1") and child.split("-")[0] != parent
    assert ids.next().split("-")[0] == parent
