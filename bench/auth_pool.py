"""One estimate of the cost of auth + audit from many runs of ``auth_cpu.py`` and ``auth_ab.py``.

    .venv/bin/python bench/auth_pool.py RESULT.json[:SERVER=LABEL,...] ...

A single pair or round of those benchmarks ranges from about 0 to 50 % on the 2-core machine (its
speed drifts by tens of per cent from one minute to the next, and gthread workers take uneven
shares of wrk's connections), so the median of one 12-pair run moves by several points from one
half hour to the next. This pools every run of every file given into one fixed-effects regression:

    log(CPU per read) = round + sum(label's effect) + b * (busiest worker's connections / 16)

``round``: one constant per pair (``auth_cpu.py``) or round (``auth_ab.py``), which absorbs the
machine's speed in those seconds; the busiest worker's share of the connections absorbs how they
fell. Each label's cost is ``1 - exp(-effect)`` (``1 - off / on`` of the CPU per read, as the two
benchmarks report it), with a 95 % interval from the regression's standard error.

Servers are labelled by their name in the file: ``off`` is the baseline, ``on``, ``on A`` and ``on
B`` are labelled ``on`` unless the argument says otherwise, e.g. ``ab.json:on A=old`` to keep an
older version of the code apart (a server labelled ``off`` is the baseline; ``-`` leaves it out).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

DEFAULT_LABELS = {"off": "off", "on": "on", "on A": "on", "on B": "on"}


def runs_of(path: Path, labels: dict[str, str]) -> list[list[tuple[str, dict[str, Any]]]]:
    """The groups (pairs or rounds) of one result file: [(label, run)] each."""
    data = json.loads(path.read_text())
    if "pairs" in data:  # auth_cpu.py
        groups = [{"off": p["off"], "on": p["on"]} for p in data["pairs"]]
    elif "rounds" in data:  # auth_ab.py
        groups = [r["runs"] for r in data["rounds"]]
    else:
        raise SystemExit(f"{path}: neither auth_cpu.py's nor auth_ab.py's output")
    out = []
    for group in groups:
        kept = [(labels.get(name, DEFAULT_LABELS.get(name, name)), run)
                for name, run in group.items()]
        out.append([(label, run) for label, run in kept if label != "-"])
    return out


def inverse(matrix: list[list[float]]) -> list[list[float]]:
    """The inverse of a small symmetric positive-definite matrix (Gauss-Jordan)."""
    n = len(matrix)
    a = [row[:] + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-12:
            raise SystemExit("the runs cannot separate the labels (a label never measured"
                             " beside the baseline?)")
        a[col], a[pivot] = a[pivot], a[col]
        p = a[col][col]
        a[col] = [x / p for x in a[col]]
        for r in range(n):
            if r != col and a[r][col]:
                f = a[r][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
    return [row[n:] for row in a]


def estimate(groups: list[list[tuple[str, dict[str, Any]]]]) -> dict[str, Any]:
    """Fixed-effects least squares (within each group: values minus the group's mean)."""
    labels = sorted({label for g in groups for label, _ in g} - {"off"})
    names = [*labels, "imbalance"]
    xs: list[list[float]] = []
    ys: list[float] = []
    used = 0
    for group in groups:
        if len(group) < 2:
            continue
        used += 1
        rows = [([1.0 if label == k else 0.0 for k in labels]
                 + [max(run["conns_per_worker"]) / 16], math.log(run["cpu_us_per_read"]))
                for label, run in group]
        mean_x = [sum(r[0][i] for r in rows) / len(rows) for i in range(len(names))]
        mean_y = sum(r[1] for r in rows) / len(rows)
        for x, y in rows:
            xs.append([v - m for v, m in zip(x, mean_x, strict=True)])
            ys.append(y - mean_y)
    k = len(names)
    xtx = [[sum(x[i] * x[j] for x in xs) for j in range(k)] for i in range(k)]
    xty = [sum(x[i] * y for x, y in zip(xs, ys, strict=True)) for i in range(k)]
    inv = inverse(xtx)
    beta = [sum(inv[i][j] * xty[j] for j in range(k)) for i in range(k)]
    resid = [y - sum(b * v for b, v in zip(beta, x, strict=True)) for x, y in zip(xs, ys, strict=True)]
    dof = len(ys) - used - k
    s2 = sum(r * r for r in resid) / max(1, dof)
    out: dict[str, Any] = {"runs": len(ys), "groups": used, "residual_sd": math.sqrt(s2),
                           "labels": {}}
    for i, name in enumerate(names):
        se = math.sqrt(s2 * inv[i][i])
        entry: dict[str, Any] = {"effect": beta[i], "se": se}
        if name != "imbalance":
            entry |= {"cost": 1 - math.exp(-beta[i]),
                      "cost_95": [1 - math.exp(-(beta[i] - 1.96 * se)),
                                  1 - math.exp(-(beta[i] + 1.96 * se))],
                      "runs": sum(1 for g in groups for label, _ in g if label == name)}
        out["labels"][name] = entry
    return out


def parse(arg: str) -> tuple[Path, dict[str, str]]:
    path, _, spec = arg.partition(":")
    labels = {}
    for item in filter(None, spec.split(",")):
        server, _, label = item.partition("=")
        labels[server.strip()] = label.strip()
    return Path(path), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="RESULT.json[:SERVER=LABEL,...]")
    args = ap.parse_args()
    groups = [group for arg in args.results for group in runs_of(*parse(arg))]
    result = estimate(groups)
    print(f"{result['runs']} runs in {result['groups']} pairs/rounds from {len(args.results)} files;"
          f" residual sd {result['residual_sd']:.3f} (log CPU per read)")
    for name, e in result["labels"].items():
        if name == "imbalance":
            print(f"  busiest worker's share of the connections: effect {e['effect']:+.3f}"
                  f" (se {e['se']:.3f})")
        else:
            lo, hi = e["cost_95"]
            print(f"  {name:10} cost {e['cost'] * 100:5.1f} %  (95 % interval {lo * 100:.1f}"
                  f" to {hi * 100:.1f} %; {e['runs']} runs)")


if __name__ == "__main__":
    main()
