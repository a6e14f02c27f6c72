"""bench/auth_pool.py: the pooled estimate recovers a known cost from drifting, uneven runs."""

from __future__ import annotations

import importlib.util
import json
import math
import random
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "auth_pool.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("auth_pool", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(cpu: float, busiest: int) -> dict[str, object]:
    return {"cpu_us_per_read": cpu, "conns_per_worker": [busiest, 16 - busiest]}


def test_a_known_cost_is_recovered_whatever_the_machine_speed_and_connections(
        tmp_path: Path) -> None:
    rng = random.Random(7)
    pairs, rounds = [], []
    for _ in range(40):  # the machine's speed drifts by up to 2x between groups
        speed = rng.uniform(300, 600)
        # the on runs happened to fall more unevenly: without the connections term, their cost
        # would come out higher than it is
        off_conns, on_conns = rng.randint(8, 12), rng.randint(12, 16)
        noise = lambda: math.exp(rng.gauss(0, 0.03))  # noqa: E731
        pairs.append({"off": _run(speed * (1 + 0.3 * off_conns / 16) * noise(), off_conns),
                      "on": _run(speed * (1 + 0.3 * on_conns / 16) / 0.8 * noise(), on_conns)})
    for _ in range(20):
        speed = rng.uniform(300, 600)
        rounds.append({"runs": {"off": _run(speed, 8), "on A": _run(speed / 0.6, 8),
                                "on B": _run(speed / 0.8, 8)}})
    (tmp_path / "cpu.json").write_text(json.dumps({"pairs": pairs}))
    (tmp_path / "ab.json").write_text(json.dumps({"rounds": rounds}))
    pool = _module()
    groups = pool.runs_of(tmp_path / "cpu.json", {}) + \
        pool.runs_of(tmp_path / "ab.json", {"on A": "old"})
    result = pool.estimate(groups)["labels"]
    assert result["on"]["cost"] == pytest.approx(0.2, abs=0.02)  # 1 - 0.8
    assert result["old"]["cost"] == pytest.approx(0.4, abs=0.02)
    lo, hi = result["on"]["cost_95"]
    assert lo < 0.2 < hi


def test_a_label_measured_without_the_baseline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ab.json").write_text(json.dumps({"rounds": [
        {"runs": {"on A": _run(500, 8), "on B": _run(600, 9)}}] * 3}))
    pool = _module()
    with pytest.raises(SystemExit):
        pool.estimate(pool.runs_of(tmp_path / "ab.json", {"on A": "x", "on B": "y"}))
