"""How long the developer loop takes: `make test-fast` (every test not marked slow).

Runs pytest on the tests that are not marked slow, as `make test-fast` does, and prints the wall-clock time,
the CPU time the run used, how many tests ran, the machine's load average before and after (the machine is
shared: a figure taken while others work says so), and the slowest tests, which are the candidates for the
`slow` marker (CONTRIBUTING.md: a test over about 2 s gets it).

Aim: under 3 minutes on 2 cores.

    .venv/bin/python benchmarks/fast_loop.py [--slowest 10]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slowest", type=int, default=10, help="how many of the slowest tests to list (default 10)")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    t0 = time.time()
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
         f"--durations={args.slowest}"],
        cwd=ROOT, capture_output=True, text=True,
    )
    wall = time.time() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = next((line for line in reversed(ran.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)), "")
    if ran.returncode != 0:
        print(ran.stdout[-3000:], ran.stderr[-2000:], sep="\n", file=sys.stderr)
        print(f"the fast tests failed (exit {ran.returncode}): {summary}", file=sys.stderr)
        return 1
    slowest = ran.stdout.split("slowest", 1)[1].splitlines()[1:args.slowest + 1] if "slowest" in ran.stdout else []
    print(f"make test-fast: {summary.strip('= ')}")
    print(f"wall clock {wall / 60:.0f} min {wall % 60:.0f} s, CPU {usage.ru_utime + usage.ru_stime:.0f} s (aim: under 3 min)")
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} (2 cores)")
    if slowest:
        print("slowest:")
        print("\n".join(f"  {line}" for line in slowest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
