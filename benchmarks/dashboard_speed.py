"""How fast the dashboard's pages are at 30 simulated days of the default estate.

Builds (or reuses, with --keep) a warehouse of 30 days of the default estate (its 17 resources, feeds and
batch runs, loaded straight into raw.metric_points as benchmarks/dbt_scale.py does, then the dbt models),
writes detector-style alarms at the simulated incidents so the incidents page has episodes to rank, then
renders every page in Streamlit's AppTest, in process, the way a user's first visit would: imports warm
(one page rendered and thrown away first), query cache empty. For each page and time range it prints

  * queries: the time spent inside Warehouse.query during the render (every query the page ran),
  * first render: the wall time of the whole script run (queries, shaping, figures),
  * cpu: the processor time the process spent on it (the render's own cost: on a machine shared with other
    work, wall time grows with the load average while this does not; DuckDB's threads count in it too).

The process keeps the published warehouse snapshot open between renders, as a running dashboard does until
the next publication; --cold reopens it before every render (the first visit after a dbt build).

Aims: each page's queries < 1 s, first render < 2 s.

    .venv/bin/python benchmarks/dashboard_speed.py [--days 30] [--keep DIR] [--ranges 24h,7d,30d] [--cold] [--profile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dbt_scale  # noqa: E402 - the 30-day estate loader

from cms_dagster.domain import load_ontology  # noqa: E402
from cms_dagster.simulate.run import build_incidents  # noqa: E402
from cms_dagster.warehouse import snapshot  # noqa: E402

PAGES = ["overview", "feeds", "batches", "stages", "incidents", "ask"]
APP = Path(__file__).resolve().parents[1] / "cms_dagster" / "dashboard" / "app.py"


def build(work: Path, days: int) -> Path:
    """30 days of the default estate's marts in work/warehouse.duckdb (kept when already there)."""
    db = work / "warehouse.duckdb"
    if (work / "built").exists() and db.exists():
        print(f"reusing {db}")
        return db
    db.unlink(missing_ok=True)
    ont = load_ontology()
    t = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(dbt_scale.RAW_DDL)
    con.register("series", dbt_scale.infra_series(ont, 0))
    con.register("config", dbt_scale.config_series(ont, 0))
    estate = dbt_scale.Estate(ont, days)
    for d in range(days):
        day = dbt_scale.START + dt.timedelta(days=d)
        estate.load(con, day, day + dt.timedelta(days=1))
        print(f"  loaded day {d + 1}/{days}", flush=True)
    rows = con.execute("select count(*) from raw.metric_points").fetchone()[0]
    con.close()
    print(f"data: {days} days, {len(estate.runs):,} batch runs, {rows:,} points ({time.perf_counter() - t:.0f} s)")

    os.environ.update(DO_NOT_TRACK="1", DBT_TARGET="duckdb", CMS_DUCKDB_PATH=str(db),
                      DBT_TARGET_PATH=str(work / "target"), DBT_LOG_PATH=str(work / "logs"))
    from dbt.cli.main import dbtRunner

    project = str(dbt_scale.warehouse_dbt.dbt_project_dir())
    t = time.perf_counter()
    res = dbtRunner().invoke(["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test",
                              "--project-dir", project, "--profiles-dir", project, "--quiet"])
    if not res.success:
        sys.exit(f"dbt build failed: {res.exception}")
    print(f"dbt models built in {time.perf_counter() - t:.0f} s")
    write_alarms(db, ont, days)
    (work / "built").touch()
    return db


def write_alarms(db: Path, ont, days: int) -> None:
    """Alarms on each simulated incident's entity and a job that depends on it, as the detector writes them."""
    edges = ont.dependency_edges()
    rows = []
    for inc in build_incidents(ont, dbt_scale.START, None, True):
        start = pd.Timestamp(inc.start).tz_convert(None) if pd.Timestamp(inc.start).tzinfo else pd.Timestamp(inc.start)
        if start >= pd.Timestamp(dbt_scale.START.replace(tzinfo=None)) + pd.Timedelta(days=days):
            continue
        root = inc.root_cause
        dependents = [s for s, t in edges if t == root][:1]
        for i, ent in enumerate([root, *dependents]):
            rows.append({"ts": start + pd.Timedelta(minutes=2 + 3 * i), "entity_id": ent, "series": f"{ent}|signal",
                         "metric": "signal", "score": 0.97, "is_alarm": True, "source": "benchmark"})
    con = duckdb.connect(str(db))
    con.execute("create schema if not exists intelligence")
    con.register("incoming", pd.DataFrame(rows))
    con.execute("create or replace table intelligence.anomalies as select * from incoming")
    snapshot.publish(con, db)  # as every CMS writer does: the dashboard reads the published snapshot
    con.close()
    print(f"alarms: {len(rows)} at {len(rows) // 2 or len(rows)} simulated incidents")


def _sql_name(sql: str) -> str:
    """A query's short name: the marts it reads (``from x.<table>``)."""
    import re

    tables = re.findall(r"\bfrom\s+(?:\w+\.)?(\w+)", sql, flags=re.I)
    return ",".join(dict.fromkeys(tables)) or sql.split()[0]


def _time_functions(parts: list[tuple[str, float]]) -> None:
    """Record the time of every figure (charts.*), shaping step (transform.*) and st.plotly_chart call."""
    import functools
    import inspect

    import streamlit as st

    from cms_dagster.dashboard import charts, transform

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                parts.append((name, time.perf_counter() - t))
        return wrapper

    for mod, prefix in ((charts, "figure"), (transform, "shape")):
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ == mod.__name__ and not name.startswith("_"):
                setattr(mod, name, timed(f"{prefix} {name}", fn))
    st.plotly_chart = timed("st.plotly_chart (serialise)", st.plotly_chart)


def _print_profile(label: str, wall: float, parts: list[tuple[str, float]]) -> None:
    agg: dict[str, list[float]] = {}
    for what, s in parts:
        agg.setdefault(what, []).append(s)
    rows = sorted(agg.items(), key=lambda kv: -sum(kv[1]))
    accounted = sum(sum(v) for v in agg.values())
    print(f"  profile {label}: {wall:.2f} s wall, {accounted:.2f} s in queries/figures/shaping")
    for what, ss in rows[:12]:
        print(f"    {sum(ss):6.3f} s  x{len(ss):<3d} {what}")


def measure(db: Path, ranges: list[str], profile: bool = False, cold: bool = False) -> list[tuple[str, str, float, int, float, float]]:
    os.environ["CMS_DUCKDB_PATH"] = str(db)
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from cms_dagster import settings
    from cms_dagster.dashboard import ui
    from cms_dagster.warehouse.client import Warehouse

    spent = {"s": 0.0, "n": 0}
    parts: list[tuple[str, float]] = []  # (what, seconds) of the render being measured, for --profile

    class TimedWarehouse(Warehouse):
        def query(self, sql, params=None):  # type: ignore[override]
            t = time.perf_counter()
            try:
                return super().query(sql, params)
            finally:
                took = time.perf_counter() - t
                spent["s"] += took
                spent["n"] += 1
                parts.append(("sql " + _sql_name(sql), took))

    if profile:
        _time_functions(parts)

    def render(page: str, rng: str, warm: bool = False, **params: str) -> tuple[float, float, int]:
        st.cache_data.clear()
        if cold and not warm:
            snapshot._SNAPSHOTS.clear()  # reopen the snapshot: the first visit after a new publication
        s = settings.load()
        ui._WAREHOUSES[f"{s.warehouse}:{s.duckdb_path}"] = TimedWarehouse(s)
        at = AppTest.from_file(str(APP), default_timeout=300)
        at.query_params["range"] = rng
        if page == "ask":
            at.query_params["q"] = "failure rate by asset class this week"
        for k, v in params.items():
            at.query_params[k] = v
        if page != "overview":
            at.switch_page(f"views/{page}.py")
        spent.update(s=0.0, n=0)
        parts.clear()
        t, c = time.perf_counter(), time.process_time()
        at.run()
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if profile and not warm:
            _print_profile(f"{page} {rng}", wall, parts)
        bad = [e.value for e in at.exception] + [e.value for e in at.error]
        if bad:
            print(f"  {page} {rng}: {bad[0][:200]}")
        return wall, spent["s"], spent["n"], cpu

    for page in PAGES:  # warm the imports and Plotly's first figure (a running server has them loaded)
        render(page, "24h", warm=True)
    parts.clear()
    out = []
    for rng in ranges:
        for page in PAGES:
            wall, q, n, cpu = render(page, rng)
            out.append((page, rng, q, n, wall, cpu))
    # an alert's deep link to an incident ranks its causes at once (the page itself waits for a click)
    ep = _latest_episode_start(db)
    if ep is not None:
        wall, q, n, cpu = render("incidents", "30d", at=ep)
        out.append(("incidents, deep link ranking", "30d", q, n, wall, cpu))
    return out


def _latest_episode_start(db: Path) -> str | None:
    from cms_dagster import settings
    from cms_dagster.detect.episodes import episodes_between
    from cms_dagster.domain import load_ontology
    from cms_dagster.warehouse.client import Warehouse

    wh = Warehouse(settings.load())
    eps = [e for e in episodes_between(wh.query, pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"),
                                       load_ontology().dependency_edges()) if e.confirmed]
    return eps[-1].start.strftime("%Y-%m-%dT%H:%MZ") if eps else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=30, help="simulated days (default 30)")
    ap.add_argument("--keep", help="build (or reuse) the warehouse in this folder")
    ap.add_argument("--ranges", default="24h,7d,30d", help="time ranges to render each page with")
    ap.add_argument("--cold", action="store_true",
                    help="reopen the warehouse snapshot before each render (a running server keeps it open until "
                         "the next publication)")
    ap.add_argument("--profile", action="store_true",
                    help="also print, per page and range, the time of each query, figure and shaping step")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cms-dashboard-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    if not ((work / "built").exists() and (work / "warehouse.duckdb").exists()):
        build(work, args.days)
        # measure in a fresh process: dbt's in-process DuckDB connection would stay open beside the app's
        return subprocess.call([sys.executable, __file__, "--keep", str(work), "--ranges", args.ranges,
                                *(["--profile"] if args.profile else []), *(["--cold"] if args.cold else [])])
    db = build(work, args.days)
    results = measure(db, [r.strip() for r in args.ranges.split(",") if r.strip()], args.profile, args.cold)
    print(f"\n{'page':<30} {'range':>5} {'queries':>9} {'(n)':>5} {'first render':>13} {'cpu':>7}   aims: queries < 1 s, render < 2 s")
    for page, rng, q, n, wall, cpu in results:
        flag = "" if q < 1 and wall < 2 else "   <- over"
        print(f"{page:<30} {rng:>5} {q:8.2f}s {n:5d} {wall:12.2f}s {cpu:6.2f}s{flag}")
    worst_q = max(r[2] for r in results)
    worst_w = max(r[4] for r in results)
    print(f"\nslowest: queries {worst_q:.2f} s, first render {worst_w:.2f} s; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
