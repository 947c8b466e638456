"""Build a warehouse from the simulator for the question-answering evaluation: simulate -> raw zone ->
processed Parquet -> DuckDB raw.metric_points -> dbt (models and seeds, no data tests). The simulator's
ground truth (truth/*.csv) stays in the archive zone for the gold answers.

    .venv/bin/python benchmarks/nlq_build.py --home /tmp/nlq-week --days 8 [--seed 20261116]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

from cms_dagster import settings as settings_mod
from cms_dagster.domain import load_ontology
from cms_dagster.lake import Lake

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
SEED = 20261116


def environment(home: Path) -> dict[str, str]:
    """The caller's environment without CMS_* settings, pointed at ``home`` (lake + DuckDB file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "SNOWFLAKE_", "DBT_TARGET"))}
    env.update(
        CMS_HOME=str(home),
        CMS_WAREHOUSE="duckdb",
        CMS_DUCKDB_PATH=str(home / "warehouse.duckdb"),
        DAGSTER_HOME=str(home / "dagster"),
        DO_NOT_TRACK="1",
    )
    return env


def truth_dir(home: Path, seed: int = SEED) -> Path:
    return home / "lake" / "archive" / "simulations" / f"seed-{seed}" / "truth"


def build(home: Path, days: int, seed: int = SEED, start: dt.datetime = START, say=print) -> Path:
    """Build (or reuse, when already built) the warehouse under ``home``; returns the DuckDB path."""
    from cms_dagster.lake.processing import process_hour
    from cms_dagster.simulate.run import simulate
    from cms_dagster.warehouse import duckdb_load
    from cms_dagster.warehouse.dbt import run_dbt

    env = environment(home)
    cfg = settings_mod.load(env)
    done = home / "built.txt"
    if done.exists() and done.read_text().strip() == f"{days} {seed} {start.isoformat()}":
        say(f"reusing the warehouse in {home}")
        return cfg.duckdb_path
    lake = Lake.from_settings(cfg)
    t = time.perf_counter()
    res = simulate(load_ontology(), lake, days=days, seed=seed, start=start)
    say(f"  simulate: {days} days, {res.points:,} points, {len(res.incidents)} incidents ({time.perf_counter() - t:.0f} s)")
    hours = sorted({(dt.date.fromisoformat(k.split("dt=")[1][:10]), int(k.split("hour=")[1][:2])) for k in res.raw_keys})
    t = time.perf_counter()
    for day, hour in hours:
        process_hour(lake, day, hour)
    con = duckdb_load.connect(cfg.duckdb_path)
    try:
        for day, hour in hours:
            duckdb_load.load_hour(con, lake.processed, day, hour)
    finally:
        con.close()
    say(f"  process + load: {len(hours)} hours ({time.perf_counter() - t:.0f} s)")
    t = time.perf_counter()
    paths = ["--target-path", str(home / "dbt-target"), "--log-path", str(home / "dbt-logs")]
    run_dbt(["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test", *paths], environ=env, check=True)
    say(f"  dbt: {time.perf_counter() - t:.0f} s")
    done.write_text(f"{days} {seed} {start.isoformat()}")
    return cfg.duckdb_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", required=True, type=Path, help="where the lake and DuckDB file go")
    p.add_argument("--days", type=int, default=8)
    p.add_argument("--seed", type=int, default=SEED)
    a = p.parse_args(argv)
    print(build(a.home.resolve(), a.days, a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
