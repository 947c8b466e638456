"""Faults injected at every PetShop component: does `cms rca rank` find causes anywhere in the graph?

    .venv/bin/python benchmarks/petshop_inject.py                      # data in $CMS_PETSHOP_DIR or ../shared/petshop
    .venv/bin/python benchmarks/petshop_inject.py --scenario low_traffic --nodes 5   # a quick run

The 20 incidents of PetShop's train split all have the same root-cause service, so `benchmarks/petshop.py`
cannot tell a ranking that finds causes from one that prefers that service's place in the graph. This
benchmark takes the scenario's normal-operation recording (only the rows before the first incident's start,
no fault in them) and, for every component the front end depends on that reports latency, injects a fault
into a random 3-point window (the incident length of the real cases) under a deliberately simple model:

- latency: +0.5 s on the component's latency p90/p95/p99 and +0.25 s on its average; every component that
  depends on it, transitively (its callers up to the front end), gets +0.5 s on its p90/p95/p99 and +0.1 s on
  its average;
- availability: -3 points on the component's availability, -1.5 on every component that depends on it.

Nothing else moves (real faults also change the load on what the component calls, which this model leaves
out), so the figures say whether the ranking can name a cause at any place in the graph, not how well it does
on real incidents. Each case is ranked with `rank` (what `cms rca rank --target` runs) beside max-|z| and
random on the same frame; prints AC@1, AC@3 and Avg@5 per scenario and fault type.

Then the null windows (``--null N`` per scenario, 12 by default, 0 to skip): 3 points of the same normal
recording, nothing injected, ranked as an incident once with the full history before them and once with only
2 points of history (as the temporal_traffic scenarios have). A ranking with a structural preference names
the train split's root-cause service (read from the scenario's first issue) first there; the line also says
how many nodes `rank` called anomalous in a window where nothing happened (median and maximum).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from petshop import KS, Case, dataset_root, default_petshop_dir, hits, load_cases, max_z_ranking  # noqa: E402

from cms_dagster.domain.graph import dependency_closure  # noqa: E402
from cms_dagster.rca import rank  # noqa: E402
from cms_dagster.rca.validate import RcaWarning  # noqa: E402

SCENARIOS = ("low_traffic", "high_traffic")  # the two with a normal-operation recording
FAULTS = ("latency", "availability")
STEP_S = 300
WINDOW = 3  # incident points, as in the real cases (rows 2-4 of 5)


def callers_of(edges: list[tuple[str, str]], node: str) -> set[str]:
    """Everything that depends on ``node``, transitively (edges are "source depends on target")."""
    up: dict[str, list[str]] = {}
    for source, target in edges:
        up.setdefault(target, []).append(source)
    seen: set[str] = set()
    stack = list(up.get(node, ()))
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(up.get(n, ()))
    return seen


def inject(frame: pd.DataFrame, node: str, above: set[str], fault: str, start: int) -> pd.DataFrame:
    """The frame with the fault model of the module docstring applied from ``start`` (epoch s) on."""
    out = frame.copy()
    during = out["time"] >= start
    metric = out["metric"]
    tails = metric.isin(["latency_p90", "latency_p95", "latency_p99"])
    here, there = during & (out["node"] == node), during & out["node"].isin(above)
    if fault == "latency":
        out.loc[here & tails, "value"] += 0.5
        out.loc[here & (metric == "latency_Average"), "value"] += 0.25
        out.loc[there & tails, "value"] += 0.5
        out.loc[there & (metric == "latency_Average"), "value"] += 0.1
    else:
        out.loc[here & (metric == "availability_Average"), "value"] -= 3.0
        out.loc[there & (metric == "availability_Average"), "value"] -= 1.5
    return out


def summary(ranks: list[int | None]) -> str:
    ac = {k: float(np.mean([r is not None and r <= k for r in ranks])) for k in KS}
    return f"{ac[1]:.2f} {ac[3]:.2f} {np.mean(list(ac.values())):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--petshop-dir", type=Path, default=None,
                        help="PetShop directory (with dataset/ or the scenarios; default $CMS_PETSHOP_DIR or "
                        "../shared/petshop)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="only this scenario (repeatable)")
    parser.add_argument("--nodes", type=int, default=None, metavar="N", help="only the first N components")
    parser.add_argument("--seed", type=int, default=3, help="seed of the window draws (default 3)")
    parser.add_argument("--null", type=int, default=12, metavar="N",
                        help="null windows per scenario, each with full and with 2-point history (default 12)")
    args = parser.parse_args(argv)

    root = dataset_root((args.petshop_dir or default_petshop_dir()).resolve())
    scenarios = args.scenario or list(SCENARIOS)
    if not any((root / sc / "noissue" / "metrics.csv").is_file() for sc in scenarios):
        print(f"no PetShop normal-operation recording under {root}; set CMS_PETSHOP_DIR to the dataset's "
              "directory (low_traffic/noissue/metrics.csv, ...)", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    null_rng = random.Random(args.seed + 1)
    rows = []
    nulls = []
    began = time.perf_counter()
    for sc in scenarios:
        cases = load_cases(root, [sc], 1)
        if not cases:
            continue
        base = cases[0]
        times = np.sort(base.metrics["time"].unique())
        normal_times = times[times < base.start - 2 * STEP_S][:-1]  # the recording, before the case's own rows
        normal = base.metrics[base.metrics["time"] <= normal_times[-1]]
        reach = dependency_closure(base.edges, base.target)
        with_latency = normal.loc[normal["metric"].str.startswith("latency_"), "node"]
        nodes = sorted(set(with_latency) & reach)[: args.nodes]
        print(f"{sc}: {len(normal_times)} normal points, {len(nodes)} components x {len(FAULTS)} faults", flush=True)
        for node in nodes:
            above = callers_of(base.edges, node)
            for fault in FAULTS:
                k = rng.randrange(len(normal_times) // 2, len(normal_times) - WINDOW)
                start, end = int(normal_times[k]), int(normal_times[k + WINDOW - 1])
                frame = inject(normal[normal["time"] <= end], node, above, fault, start)
                stamped = frame.assign(time=pd.to_datetime(frame["time"], unit="s", utc=True))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RcaWarning)
                    ranking = [c.node for c in rank(stamped, base.edges, pd.Timestamp(start, unit="s", tz="UTC"),
                                                     target=base.target)]
                case = Case(name=f"{sc}/{node}/{fault}", scenario=sc, target=base.target, target_metric=fault,
                            root_cause=node, start=start, metrics=frame, edges=base.edges)
                n = frame["node"].nunique()
                rows.append({
                    "scenario": sc, "fault": fault, "node": node, "n": n,
                    "cms": hits(ranking, node)[1], "max|z|": hits(max_z_ranking(case), node)[1],
                })
        for _ in range(max(args.null, 0)):
            k = null_rng.randrange(max(len(normal_times) // 2, 2), len(normal_times) - WINDOW)
            start, end = int(normal_times[k]), int(normal_times[k + WINDOW - 1])
            for history in ("full", "2 points"):
                first = int(normal_times[0]) if history == "full" else int(normal_times[k - 2])
                frame = normal[(normal["time"] >= first) & (normal["time"] <= end)]
                stamped = frame.assign(time=pd.to_datetime(frame["time"], unit="s", utc=True))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RcaWarning)
                    ranked = rank(stamped, base.edges, pd.Timestamp(start, unit="s", tz="UTC"), target=base.target)
                case = Case(name=f"{sc}/null/{k}", scenario=sc, target=base.target, target_metric="none",
                            root_cause=base.root_cause, start=start, metrics=frame, edges=base.edges)
                nulls.append({
                    "scenario": sc, "history": history, "train_root": base.root_cause,
                    "cms": bool(ranked) and ranked[0].node == base.root_cause,
                    "max|z|": max_z_ranking(case)[:1] == [base.root_cause],
                    "anomalous": sum(c.anomalous for c in ranked),
                })
    print(f"\n{len(rows)} injected faults in {time.perf_counter() - began:.0f} s\n")
    print(f"{'':28s} {'n':>4s}  cms AC@1 AC@3 Avg@5 | max|z| | random")
    groups = [(f"{sc} {f}", [r for r in rows if r["scenario"] == sc and r["fault"] == f])
              for sc in scenarios for f in FAULTS] + [("all", rows)]
    for label, sel in groups:
        if not sel:
            continue
        rand = {k: float(np.mean([min(k, r["n"]) / r["n"] for r in sel])) for k in KS}
        rand_s = f"{rand[1]:.2f} {rand[3]:.2f} {np.mean(list(rand.values())):.2f}"
        print(f"{label:28s} {len(sel):4d}  cms {summary([r['cms'] for r in sel])} | "
              f"max|z| {summary([r['max|z|'] for r in sel])} | random {rand_s}")
    if nulls:
        print("\nnull windows (nothing injected): the train root cause ranked first, and nodes cms called anomalous")
        for sc in scenarios:
            for history in ("full", "2 points"):
                sel = [r for r in nulls if r["scenario"] == sc and r["history"] == history]
                if sel:
                    counts = [r["anomalous"] for r in sel]
                    print(f"{sc + ', ' + history + ' of history':36s} {len(sel):3d}  "
                          f"{sel[0]['train_root'][:28]} first: cms {sum(r['cms'] for r in sel)}, "
                          f"max|z| {sum(r['max|z|'] for r in sel)}; anomalous nodes median "
                          f"{np.median(counts):.0f}, max {max(counts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
