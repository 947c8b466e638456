"""How long the demo's last step takes: the incident reports of the simulated days and their alerts.

Runs ``cms_dagster.demo.show_incidents_and_alerts`` (what `cms demo` runs once the assets are built) on a
kept build: a CMS_HOME with a warehouse in which the detector has run (`cms demo --no-serve`, or
`benchmarks/incidents_eval.py --keep DIR`). The warehouse file is copied into a fresh home first, so the
build's own reports and alerts are left as they were. Prints the reports written, the wall-clock time,
the CPU time of this process and of its workers, and the load average, because on a shared machine
wall-clock time mostly measures the others.

    .venv/bin/python benchmarks/incidents_step.py --home /tmp/inc-month            # 8 days, one worker per core
    .venv/bin/python benchmarks/incidents_step.py --home /tmp/inc-month --days 2 --workers 1
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rca_eval import environment  # noqa: E402 (a CMS_HOME's settings, as the evaluations build them)

from cms_dagster import settings as settings_mod  # noqa: E402
from cms_dagster.demo import show_incidents_and_alerts  # noqa: E402


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", type=Path, required=True, help="a kept build (its warehouse.duckdb is copied, not changed)")
    p.add_argument("--days", type=int, default=8, help="days of incidents up to the latest scored time (the demo: 8)")
    p.add_argument("--workers", type=int, default=None, help="report processes (default: one per core, up to 4)")
    args = p.parse_args(argv)
    source = args.home / "warehouse.duckdb"
    if not source.is_file():
        print(f"error: {source} does not exist: pass the CMS_HOME of a kept build (cms demo or incidents_eval --keep)", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="cms-incidents-step-"))
    try:
        shutil.copy2(source, home / "warehouse.duckdb")
        s = settings_mod.load(environment(home))
        load = os.getloadavg()
        cpu0, t0 = _cpu(), time.perf_counter()
        out = show_incidents_and_alerts(s, days=args.days, workers=args.workers)
        wall = time.perf_counter() - t0
        cpu1 = _cpu()
        print(
            f"\nincident + alert step: {out['incidents']} report(s), {out['messages']} alert message(s) over {args.days} days "
            f"in {wall:.0f} s wall; CPU {cpu1[0] - cpu0[0]:.0f} s here + {cpu1[1] - cpu0[1]:.0f} s in workers; "
            f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after ({os.cpu_count()} cores)",
            flush=True,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
