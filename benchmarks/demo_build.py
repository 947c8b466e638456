"""How long `cms demo --no-serve` takes to build from nothing: the simulated days up to now, every asset.

Runs the demo in a fresh temporary CMS_HOME (the dbt manifest must be prepared: `make prepare`) and prints
the wall-clock time of the whole build, the time of each phase and step (from the demo's state file: the dbt
parse, the materialization phases, the incident reports and alerts), the CPU time
the build used (this process's children: the demo, dbt, the ingest receiver) and the machine's load
average before and after, because on a shared machine wall-clock time mostly measures the others.

Aim: under 5 minutes on 2 cores for the default 7 days; the figure must not grow with the date (the demo
simulates the days up to now, so the partition count is constant: days x 24 + the hour in progress).

    .venv/bin/python benchmarks/demo_build.py [--days 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=7, help="days to simulate (default 7, as `make demo`)")
    ap.add_argument("--keep", help="build into this CMS_HOME and keep it (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    home = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cms-demo-bench-"))
    env = {**os.environ, "CMS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "DO_NOT_TRACK": "1"}
    cms = Path(sys.executable).parent / "cms"
    load_before = os.getloadavg()
    t0 = time.time()
    try:
        ran = subprocess.run(
            [str(cms), "demo", "--no-serve", "--force", "--days", str(args.days)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.time() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if ran.returncode != 0:
            print(ran.stdout[-3000:], ran.stderr[-3000:], sep="\n", file=sys.stderr)
            print(f"the demo failed (exit {ran.returncode})", file=sys.stderr)
            return 1
        state = orjson.loads((home / "demo-state.json").read_bytes())
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    print(f"cms demo --no-serve --days {args.days}: built in {int(wall // 60)} min {wall % 60:.0f} s (wall clock)")
    steps = state.get("steps", {})
    timed = sum(p["seconds"] for p in state["phases"].values()) + sum(steps.values())
    if "dbt parse" in steps:
        print(f"  dbt parse: {steps['dbt parse']:.0f} s")
    for label, phase in state["phases"].items():
        print(f"  {label}: {phase['seconds']:.0f} s, {phase['partitions']} partition(s)")
    if "incident reports and alerts" in steps:
        print(f"  incident reports and alerts: {steps['incident reports and alerts']:.0f} s")
    print(f"  the rest (start-up, loading the definitions): {wall - timed:.0f} s")
    print(f"  window {state['window_start']} .. {state['window_end']}")
    print(f"CPU time of the build: {usage.ru_utime + usage.ru_stime:.0f} s (user {usage.ru_utime:.0f} s, system {usage.ru_stime:.0f} s)")
    print(f"load average (1 min) before / after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
