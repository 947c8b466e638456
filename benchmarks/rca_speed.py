"""Seconds to rank one incident over 1,000 series (synthetic), for the generic RCA engine.

A random service dependency graph of 200 nodes with 5 metrics each (1,000 series x 2,000 one-minute points =
2 million rows); one node is faulted at minute 1,800 and the fault spreads, a minute per hop and with a
random gain, to everything that depends on it. Prints the median wall time of ``cms_dagster.rca.rank`` over a
few incidents (input already in a DataFrame with datetime times, as the warehouse returns it), the same
through the CSV path of ``cms rca rank``, and whether the faulted node ranked first.

    .venv/bin/python benchmarks/rca_speed.py [--nodes 200] [--metrics 5] [--points 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cms_dagster.rca import rank
from cms_dagster.rca.cli import load_metrics


def make_incident(
    nodes: int, metrics: int, points: int, seed: int
) -> tuple[pd.DataFrame, list, pd.Timestamp, str]:
    rng = np.random.default_rng(seed)
    names = [f"svc-{i:03d}" for i in range(nodes)]
    # a random DAG: node i depends on up to 3 nodes with a larger index
    edges = []
    for i in range(nodes - 1):
        for j in rng.choice(np.arange(i + 1, nodes), size=min(3, nodes - i - 1), replace=False):
            if rng.random() < 0.6:
                edges.append((names[i], names[int(j)]))
    dependents: dict[str, list[str]] = {}
    for s, t in edges:
        dependents.setdefault(t, []).append(s)
    root = names[int(rng.integers(nodes // 3, nodes))]
    k0 = int(points * 0.9)
    # breadth-first spread of the fault to dependents, one minute per hop
    hop = {root: 0}
    queue = [root]
    while queue:
        n = queue.pop(0)
        for d in dependents.get(n, []):
            if d not in hop:
                hop[d] = hop[n] + 1
                queue.append(d)
    times = pd.date_range("2026-11-20T00:00Z", periods=points, freq="min")
    level = rng.uniform(10, 1000, size=(nodes, metrics))
    values = level[:, :, None] * (1 + 0.05 * rng.standard_normal((nodes, metrics, points)))
    for n, h in hop.items():
        i = names.index(n)
        gain = (
            8.0 if n == root else float(rng.uniform(0.5, 3.0)) * 8.0
        )  # dependents may move more than the root
        m = int(rng.integers(metrics))
        values[i, m, k0 + h :] *= 1 + 0.05 * gain
        if n == root:
            values[i, (m + 1) % metrics, k0:] *= 1.4
    frame = pd.DataFrame(
        {
            "time": np.tile(times.to_numpy(), nodes * metrics),
            "node": np.repeat(names, metrics * points),
            "metric": np.tile(np.repeat([f"m{k}" for k in range(metrics)], points), nodes),
            "value": values.reshape(-1),
        }
    )
    return frame, edges, times[k0 - 5], root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--metrics", type=int, default=5)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    in_memory, via_csv, hits = [], [], 0
    for seed in range(args.repeats):
        frame, edges, start, root = make_incident(args.nodes, args.metrics, args.points, seed)
        t0 = time.perf_counter()
        candidates = rank(frame, edges, start)
        in_memory.append(time.perf_counter() - t0)
        hits += candidates[0].node == root
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "metrics.csv"
            frame.assign(time=frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)
            t0 = time.perf_counter()
            rank(load_metrics(path), edges, start, where="line")
            via_csv.append(time.perf_counter() - t0)
    series = args.nodes * args.metrics
    print(f"series: {series}, points per series: {args.points}, rows: {series * args.points:,}")
    print(
        f"rank one incident (DataFrame in memory): median {statistics.median(in_memory):.2f} s "
        f"(runs: {', '.join(f'{x:.2f}' for x in in_memory)})"
    )
    print(f"rank one incident (CSV read + parse + rank): median {statistics.median(via_csv):.2f} s")
    print(f"faulted node ranked first: {hits}/{args.repeats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
