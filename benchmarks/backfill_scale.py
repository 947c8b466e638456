"""Back-fill the hourly processing and loading job (raw -> processed -> raw.metric_points) over simulated
days on two Dagster instances: production's (PostgreSQL storage, queued run coordinator, written by
`cms infra instance`) and the embedded default (SQLite). Prints runs per minute and the daemon's lag (how
long a queued run waited before the daemon launched it, and from the back-fill's request to its first run).

    .venv/bin/python benchmarks/backfill_scale.py                 # 30 days = 720 hourly runs per instance
    .venv/bin/python benchmarks/backfill_scale.py --days 1 --hours 6 --concurrency 2

The same simulated lake feeds both instances (each gets its own warehouse file). A run is a process with its
own Dagster start-up, so on a 2-core machine runs per minute are bound by the CPU, not by the instance: the
figure to compare is the lag beside them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

START = dt.datetime(2026, 11, 16, tzinfo=dt.timezone.utc)  # the partitions' first hour


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(cmd: list[str], env: dict[str, str]) -> None:
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def _instance_yaml(kind: str, concurrency: int, pg_port: int | None, db: str | None) -> str:
    from cms_dagster import settings as settings_mod
    from cms_dagster.infra import dagster_instance

    if kind == "postgres":
        o = settings_mod.load_orchestrator({
            "CMS_DAGSTER_STORAGE": "postgres", "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(pg_port),
            "DAGSTER_PG_USER": "cms", "DAGSTER_PG_DB": db or "dagster", "CMS_DAGSTER_MAX_CONCURRENT_RUNS": str(concurrency),
        })
    else:
        o = settings_mod.load_orchestrator({"CMS_DAGSTER_MAX_CONCURRENT_RUNS": str(concurrency)})
    return dagster_instance.render(o)


def measure(kind: str, base_env: dict[str, str], work: Path, hours: int, concurrency: int, pg=None) -> dict[str, float]:
    import dagster as dg

    home = work / f"dagster-{kind}"
    home.mkdir()
    db = pg.create_database(f"bench_{int(time.time())}") if pg else None
    (home / "dagster.yaml").write_text(_instance_yaml(kind, concurrency, pg.port if pg else None, db))
    env = {**base_env, "DAGSTER_HOME": str(home), "CMS_DUCKDB_PATH": str(work / f"{kind}.duckdb")}
    if pg:
        env["DAGSTER_PG_PASSWORD"] = pg.password
        os.environ["DAGSTER_PG_PASSWORD"] = pg.password
    first = START.strftime("%Y-%m-%d-%H:%M")
    last = (START + dt.timedelta(hours=hours - 1)).strftime("%Y-%m-%d-%H:%M")
    # create the instance's storage once, before two processes (the daemon and the back-fill command) open
    # it at the same moment: on SQLite both would create the tables and stamp the schema version, leaving
    # two heads in alembic_version, and the second command fails
    dg.DagsterInstance.from_config(str(home)).dispose()
    log = (work / f"daemon-{kind}.log").open("wb")
    daemon = subprocess.Popen([_bin("dagster-daemon"), "run", "-m", "cms_dagster.definitions"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        requested = time.time()
        _run([_bin("dagster"), "job", "backfill", "-m", "cms_dagster.definitions", "-j", "hourly_ingest", "--from", first, "--to", last, "--noprompt"], env)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            done = 0
            while True:
                records = list(instance.get_run_records(dg.RunsFilter(job_name="hourly_ingest")))
                finished = [r for r in records if r.dagster_run.is_finished]
                if len(finished) != done:
                    done = len(finished)
                    print(f"  {kind}: {done}/{hours} runs finished, {time.time() - requested:.0f} s", flush=True)
                if done >= hours:
                    break
                if daemon.poll() is not None:
                    raise SystemExit(f"the daemon stopped; see {log.name}")
                time.sleep(2)
            failed = [r for r in finished if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
            end = max(r.end_time for r in finished)
            waits = [r.start_time - r.create_timestamp.timestamp() for r in finished if r.start_time]
            first_create = min(r.create_timestamp.timestamp() for r in finished)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    elapsed = end - requested
    return {
        "runs": hours, "failed": len(failed), "elapsed_s": elapsed, "runs_per_min": hours / elapsed * 60,
        "wait_median_s": statistics.median(waits), "wait_p95_s": sorted(waits)[int(0.95 * (len(waits) - 1))],
        "request_to_first_run_s": first_create - requested,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--days", type=int, default=30, help="simulated days to back-fill (default 30 = 720 runs)")
    parser.add_argument("--hours", type=int, default=None, help="back-fill only the first N hours of the simulated days")
    parser.add_argument("--concurrency", type=int, default=4, help="max concurrent runs of both instances (default 4)")
    parser.add_argument("--only", choices=["postgres", "sqlite"], help="measure one instance only")
    args = parser.parse_args()
    from cms_harness import postgres

    work = Path(tempfile.mkdtemp(prefix="cms-backfill-"))
    os.chmod(work, 0o755)
    base = {**os.environ, "CMS_HOME": str(work / "cms"), "DO_NOT_TRACK": "1"}
    print(f"simulating {args.days} day(s) into {work / 'cms'} ...", flush=True)
    _run([_bin("cms"), "simulate", "--days", str(args.days), "--start", START.date().isoformat(), "--no-incidents"], base)
    hours = min(args.hours, args.days * 24) if args.hours else args.days * 24
    results = {}
    pg = None
    try:
        if args.only in (None, "postgres"):
            pg = postgres.start(work / "pg")
            results["PostgreSQL + queued coordinator"] = measure("postgres", base, work, hours, args.concurrency, pg)
        if args.only in (None, "sqlite"):
            results["SQLite (embedded)"] = measure("sqlite", base, work, hours, args.concurrency)
    finally:
        if pg:
            postgres.stop(pg)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nback-fill of hourly_ingest, {hours} hourly partitions, at most {args.concurrency} runs at once")
    print(f"{'instance':<34} {'runs/min':>9} {'failed':>7} {'queue wait median / p95 (s)':>29} {'request -> first run (s)':>25}")
    for name, r in results.items():
        print(f"{name:<34} {r['runs_per_min']:>9.1f} {r['failed']:>7} {r['wait_median_s']:>14.1f} / {r['wait_p95_s']:<12.1f} {r['request_to_first_run_s']:>25.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
