"""PetShop figure: `cms rca rank` on the PetShop root-cause dataset's train split, beside max-|z| and random.

    .venv/bin/python benchmarks/petshop.py                         # data in $CMS_PETSHOP_DIR or ../shared/petshop
    .venv/bin/python benchmarks/petshop.py --scenario low_traffic  # one scenario
    .venv/bin/python benchmarks/petshop.py --cases-per-scenario 1  # a quick smoke run (4 cases)

PetShop (Hardt et al., "The PetShop Dataset - Finding Causes of Performance Issues across Microservices",
CLeaR 2024) injects performance issues into a real AWS microservice application and records 5-minute
CloudWatch-style metrics (latency, requests, availability with their statistics) of its 40-odd components.
Only the train split is read here; the test split is for judging, not for developing.

Each case is laid out as `cms rca rank` reads it:
- metrics: long format `time,node,metric,value`, metric = "<metric>_<statistic>" (latency_p90); the scenario's
  normal-operation recording (noissue/, recorded months later) is shifted in time to end one step before the
  incident's first row; the scenarios without one (temporal_traffic*) have only their own rows before start;
- graph: `source,target` = "source calls (depends on) target", from graph.csv's rows (caller) and columns;
- start: the first incident row at or after the target's timestamp (rows before it join the history);
- target: the symptom node (PetSite), so candidates are it and everything it depends on.

Every case then goes through the CLI's own function (`cms rca rank --metrics --graph --start --target --json`,
in process, from the CSV files). The baselines see the same inputs:
- max|z|: a node scores the largest |x - mean| / sd of any of its series over the incident rows, mean and sd
  (ddof=1) from the rows before start, sd floored at 1e-9; nodes without history come last;
- random: the expected AC@k of a random order, min(k, N) / N.

Prints one line per case (rank of the root cause by each method), then AC@1, AC@3 and Avg@5 (mean of
AC@1..AC@5) per scenario, per target metric and overall.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cms_dagster.cli import main as cms_main  # noqa: E402

SCENARIOS = ("low_traffic", "high_traffic", "temporal_traffic1", "temporal_traffic2")
KS = (1, 2, 3, 4, 5)
METHODS = ("cms", "max|z|", "random")


def default_petshop_dir() -> Path:
    env = os.environ.get("CMS_PETSHOP_DIR")
    return Path(env) if env else (REPO / ".." / "shared" / "petshop").resolve()


def dataset_root(path: Path) -> Path:
    """The folder holding the scenarios: the given one or its dataset/ subfolder."""
    return path / "dataset" if (path / "dataset").is_dir() else path


# ------------------------------------------------------------------------------------------------ input


def read_wide(path: Path) -> pd.DataFrame:
    """A PetShop metrics.csv (header rows component / metric / statistic, then one row per unix time) as a long
    frame time (epoch s), node, metric ("<metric>_<statistic>"), value; empty cells left out."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    nodes, metrics, stats = rows[0][1:], rows[1][1:], rows[2][1:]
    names = [f"{m}_{s}" for m, s in zip(metrics, stats, strict=True)]
    out = []
    for r in rows[3:]:
        try:
            t = int(round(float(r[0])))
        except ValueError:
            continue  # the index-name row ("unix_timestamp")
        for node, metric, cell in zip(nodes, names, r[1:], strict=False):
            if cell != "":
                out.append((t, node, metric, float(cell)))
    frame = pd.DataFrame(out, columns=["time", "node", "metric", "value"])
    return frame.dropna(subset=["value"])


def read_graph(path: Path) -> list[tuple[str, str]]:
    """graph.csv, a square 0/1 matrix: [row r, column c] = 1 means r calls (depends on) c."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0][1:]
    return [
        (r[0], dst)
        for r in rows[1:]
        for dst, cell in zip(header, r[1:], strict=False)
        if cell.strip() and float(cell) != 0.0
    ]


@dataclass
class Case:
    name: str
    scenario: str
    target: str
    target_metric: str
    root_cause: str
    start: int  # epoch seconds
    metrics: pd.DataFrame  # long, time in epoch seconds
    edges: list[tuple[str, str]]


def load_cases(root: Path, scenarios: list[str], per_scenario: int | None = None) -> list[Case]:
    cases = []
    for sc in scenarios:
        sdir = root / sc
        if not sdir.is_dir():
            continue
        edges = read_graph(sdir / "graph.csv")
        normal_path = sdir / "noissue" / "metrics.csv"
        normal = read_wide(normal_path) if normal_path.is_file() else None
        issues = sorted((d for d in (sdir / "train").iterdir() if d.name.startswith("issue_")),
                        key=lambda d: int(d.name.split("_")[1]))
        for d in issues[:per_scenario]:
            target = json.loads((d / "target.json").read_text())
            rows = read_wide(d / "metrics.csv")
            times = np.sort(rows["time"].unique())
            after = times[times >= int(target["target"]["timestamp"])]
            start = int(after[0]) if len(after) else int(times[-1])
            frame = rows
            if normal is not None:
                steps = np.diff(np.sort(normal["time"].unique()))
                step = int(np.median(steps)) if len(steps) else 300
                shifted = normal.assign(time=normal["time"] + (int(times[0]) - step - int(normal["time"].max())))
                frame = pd.concat([shifted, rows], ignore_index=True)
            frame = frame.sort_values(["time", "node", "metric"], kind="stable").reset_index(drop=True)
            cases.append(
                Case(
                    name=f"{sc}/train/{d.name}",
                    scenario=sc,
                    target=target["target"]["node"],
                    target_metric=f"{target['target']['metric']}_{target['target']['agg']}",
                    root_cause=target["root_cause"]["node"],
                    start=start,
                    metrics=frame,
                    edges=edges,
                )
            )
    return cases


def iso(t: int) -> str:
    return pd.Timestamp(t, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------------ rankings


def cms_ranking(case: Case, workdir: Path) -> tuple[list[str], float, str | None]:
    """`cms rca rank ... --json` through the CLI's entry point, from CSV files as a user would give them."""
    d = workdir / case.name
    d.mkdir(parents=True, exist_ok=True)
    metrics_path, graph_path = d / "metrics.csv", d / "edges.csv"
    stamps = pd.to_datetime(case.metrics["time"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    case.metrics.assign(time=stamps).to_csv(metrics_path, index=False)
    pd.DataFrame(case.edges, columns=["source", "target"]).to_csv(graph_path, index=False)
    argv = ["rca", "rank", "--metrics", str(metrics_path), "--graph", str(graph_path),
            "--start", iso(case.start), "--target", case.target, "--json"]
    out, err = io.StringIO(), io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cms_main(argv)
    seconds = time.perf_counter() - began
    if code != 0:
        return [], seconds, f"exit {code}: {err.getvalue().strip().splitlines()[-1:]}"
    answer = json.loads(out.getvalue())
    candidates = answer["candidates"] if isinstance(answer, dict) else answer
    return [str(c["node"]) for c in candidates], seconds, None


def max_z_ranking(case: Case) -> list[str]:
    m = case.metrics
    hist, inc = m[m["time"] < case.start], m[m["time"] >= case.start]
    base = hist.groupby(["node", "metric"])["value"].agg(["mean", "std", "count"])
    base["std"] = np.where(base["count"] >= 2, base["std"].fillna(0.0), 0.0)
    base["std"] = np.maximum(base["std"], 1e-9)
    joined = inc.join(base, on=["node", "metric"], how="inner")
    joined["z"] = (joined["value"] - joined["mean"]).abs() / joined["std"]
    best = joined.groupby("node")["z"].max()
    scored = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
    rest = sorted(set(m["node"]) - set(best.index))
    return [n for n, _ in scored] + rest


def hits(ranking: list[str], root: str) -> tuple[dict[int, float], int | None]:
    rank = ranking.index(root) + 1 if root in ranking else None
    return {k: float(rank is not None and rank <= k) for k in KS}, rank


def evaluate_case(job: tuple[Case, str]) -> dict:
    case, workdir = job
    ranking, seconds, error = cms_ranking(case, Path(workdir))
    n = case.metrics["node"].nunique()
    cms_hits, cms_rank = hits(ranking, case.root_cause)
    z_hits, z_rank = hits(max_z_ranking(case), case.root_cause)
    return {
        "case": case.name, "scenario": case.scenario, "target_metric": case.target_metric,
        "root_cause": case.root_cause, "nodes": n, "seconds": seconds, "error": error,
        "top3": ranking[:3], "rank": {"cms": cms_rank, "max|z|": z_rank},
        "hits": {"cms": cms_hits, "max|z|": z_hits, "random": {k: min(k, n) / n for k in KS}},
    }


def summary(rows: list[dict], method: str) -> dict[str, float]:
    ac = {k: float(np.mean([r["hits"][method][k] for r in rows])) for k in KS}
    return {"AC@1": ac[1], "AC@3": ac[3], "Avg@5": float(np.mean(list(ac.values())))}


def line(label: str, rows: list[dict]) -> str:
    parts = []
    for m in METHODS:
        s = summary(rows, m)
        parts.append(f"{m} {s['AC@1']:.2f} {s['AC@3']:.2f} {s['Avg@5']:.2f}")
    return f"{label:30s} n={len(rows):3d}  " + " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--petshop-dir", type=Path, default=None,
                        help="PetShop directory (with dataset/ or the scenarios; default $CMS_PETSHOP_DIR or "
                        "../shared/petshop)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="only this scenario (repeatable)")
    parser.add_argument("--cases-per-scenario", type=int, default=None, metavar="N",
                        help="only the first N issues of each scenario (a smoke run)")
    parser.add_argument("--jobs", type=int, default=2, help="cases ranked in parallel (default 2)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the case files here (default: a temp dir)")
    parser.add_argument("--json-out", type=Path, help="write the per-case results here")
    parser.add_argument("--quiet", action="store_true", help="print only the summary, not the per-case lines")
    args = parser.parse_args(argv)

    root = dataset_root((args.petshop_dir or default_petshop_dir()).resolve())
    scenarios = args.scenario or list(SCENARIOS)
    if not any((root / sc / "train").is_dir() for sc in scenarios):
        print(f"no PetShop train split under {root}; set CMS_PETSHOP_DIR to the dataset's directory "
              "(low_traffic/train/issue_0/metrics.csv, ...)", file=sys.stderr)
        return 1
    cases = load_cases(root, scenarios, args.cases_per_scenario)
    print(f"PetShop train split: {root} ({len(cases)} cases in "
          f"{len({c.scenario for c in cases})} scenarios)", flush=True)

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cms-petshop-")))
        jobs = [(c, str(workdir)) for c in cases]
        wall = time.perf_counter()
        if args.jobs > 1:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                rows = list(pool.map(evaluate_case, jobs))
        else:
            rows = [evaluate_case(j) for j in jobs]
        wall = time.perf_counter() - wall

    if not args.quiet:
        print(f"\n{'case':34s} {'root cause':30s} {'cms':>4s} {'max|z|':>6s}  cms top 3")
        for r in rows:
            ranks = [str(r["rank"][m]) if r["rank"][m] is not None else "-" for m in ("cms", "max|z|")]
            top = ", ".join(n[:24] for n in r["top3"])
            print(f"{r['case']:34s} {r['root_cause'][:30]:30s} {ranks[0]:>4s} {ranks[1]:>6s}  {top}"
                  + (f"  [{r['error']}]" if r["error"] else ""))
    print(f"\n{'':30s} {'':5s}  {'method AC@1 AC@3 Avg@5':s}")
    for sc in SCENARIOS:
        sel = [r for r in rows if r["scenario"] == sc]
        if sel:
            print(line(sc, sel))
    for tm in sorted({r["target_metric"] for r in rows}):
        print(line(f"target {tm}", [r for r in rows if r["target_metric"] == tm]))
    print(line("all", rows))
    failures = [r for r in rows if r["error"]]
    if failures:
        print(f"{len(failures)} cases where cms rca rank failed (counted as misses)")
    secs = [r["seconds"] for r in rows]
    print(f"cms rca rank per case: median {np.median(secs):.2f} s, max {max(secs):.2f} s "
          f"(CSV read included); wall {wall:.1f} s with {args.jobs} job(s)")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1, default=str))
    return 0 if not failures or len(failures) < len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
