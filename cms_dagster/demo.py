"""`cms demo`: set up the embedded default, simulate a week with incidents, materialize every asset, then
serve the Dagster UI (webserver + daemon). Running it again is safe and fast: finished steps are skipped
unless their inputs changed (or --force)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from cms_dagster import settings as settings_mod

STATE_FILE = "demo-state.json"
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _say(msg: str) -> None:
    print(f"[cms demo] {msg}", flush=True)


def prepare_dagster_home(s: settings_mod.Settings, project_dir: Path) -> Path:
    """DAGSTER_HOME with the project's dagster.yaml (SQLite storage under it)."""
    home = s.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    src = project_dir / "dagster.yaml"
    if not src.exists():
        raise FileNotFoundError(
            f"{src} not found: run `cms demo` from the repository root (where dagster.yaml is)"
        )
    dst = home / "dagster.yaml"
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        shutil.copyfile(src, dst)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _prepare_dbt(say: Callable[[str], None]) -> None:
    try:
        from cms_dagster.warehouse import dbt as dbt_mod
    except ImportError:
        return
    prep = getattr(dbt_mod, "prepare", None)
    if prep:
        say("preparing the dbt manifest (dbt parse)")
        prep()


def materialize_all(
    start: str, end: str, simulation: dict[str, Any] | None = None, say: Callable[[str], None] = _say
) -> dict[str, Any]:
    """Materialize every asset of the code location into the current Dagster instance: unpartitioned
    upstream assets, then every hourly asset over [start, end) in one single-run back-fill, then the rest."""
    import dagster as dg

    from cms_dagster.definitions import defs as build_defs
    from cms_dagster.defs.partitions import hourly_partitions

    defs = build_defs()
    graph = defs.resolve_asset_graph()
    instance = dg.DagsterInstance.get()
    all_keys = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    hourly = {k for k in all_keys if graph.get(k).partitions_def == hourly_partitions}
    other_partitioned = {k for k in all_keys - hourly if graph.get(k).partitions_def is not None}
    unpart = all_keys - hourly - other_partitioned
    up = {k for k in unpart if k in _ancestors(graph, hourly)}
    down = unpart - up
    assets = list(defs.assets or [])
    resources = dict(defs.resources or {})
    keys = hourly_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(start, hourly_partitions.get_last_partition_key() if end is None else end)
    )
    sim_key = dg.AssetKey(["raw", "simulation"])
    sim_config = (
        {"ops": {"raw__simulation": {"config": simulation}}} if simulation and sim_key in up else None
    )
    phases = [
        ("sources", up, {}),
        (
            f"hourly assets over {len(keys)} partitions ({keys[0]} .. {keys[-1]}) in one run",
            hourly,
            {
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        ),
        ("downstream assets", down, {}),
    ]
    out: dict[str, Any] = {}
    for label, sel, tags in phases:
        if not sel:
            continue
        t = time.time()
        say(f"materializing {label}: {', '.join(sorted(k.to_user_string() for k in sel))}")
        res = dg.materialize(
            assets,
            instance=instance,
            resources=resources,
            selection=list(sel),
            tags=tags,
            run_config={**(sim_config if label == "sources" and sim_config else {}), **QUIET},
        )
        out[label] = {"success": res.success, "seconds": round(time.time() - t, 1)}
        say(f"  done in {time.time() - t:.0f} s")
    skipped = sorted(k.to_user_string() for k in other_partitioned)
    if skipped:
        say(f"left for their schedules (other partitioning): {', '.join(skipped)}")
    return out


def _ancestors(graph: Any, keys: set) -> set:
    seen: set = set()
    stack = list(keys)
    while stack:
        k = stack.pop()
        for p in graph.get(k).parent_keys:
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def run_demo(args: argparse.Namespace) -> int:
    project_dir = Path.cwd()
    s = settings_mod.load()
    if not s.is_embedded:
        print(
            "cms demo runs on the embedded default (local lake, DuckDB). Unset CMS_LAKE_URL/CMS_RAW_URL (s3://) "
            "and CMS_WAREHOUSE=snowflake, or use a separate CMS_HOME.",
            file=sys.stderr,
        )
        return 2
    s.home.mkdir(parents=True, exist_ok=True)
    prepare_dagster_home(s, project_dir)
    state_path = s.home / STATE_FILE
    wanted = {
        "days": args.days,
        "seed": args.seed,
        "start": args.start,
        "via_sdk": args.via_sdk,
        "version": 2,
    }
    state = orjson.loads(state_path.read_bytes()) if state_path.exists() else {}
    t0 = time.time()
    built_now = False
    if state.get("inputs") == wanted and state.get("complete") and not args.force:
        _say(f"already built for {wanted} ({state_path}); use --force to rebuild")
    else:
        built_now = True
        _prepare_dbt(_say)
        from cms_dagster.simulate.incidents import parse_time

        start = parse_time(args.start)
        # through the hour in progress: SDK traffic lands in the raw zone at its receipt hour (now)
        last_hour = max(start + dt.timedelta(days=args.days), dt.datetime.now(dt.timezone.utc)).replace(
            minute=0, second=0, microsecond=0
        )
        _say(f"CMS_HOME={s.home}  DAGSTER_HOME={s.dagster_home}")
        _say(
            f"simulating {args.days} days from {start:%Y-%m-%d} (seed {args.seed}) and materializing every asset"
        )
        phases = materialize_all(
            f"{start:%Y-%m-%d-%H:%M}",
            f"{last_hour:%Y-%m-%d-%H:%M}",
            simulation={
                "days": args.days,
                "seed": args.seed,
                "start": args.start,
                "via_sdk": [args.via_sdk] if args.via_sdk else [],
            },
        )
        ok = all(p["success"] for p in phases.values())
        state_path.write_bytes(
            orjson.dumps({"inputs": wanted, "complete": ok, "phases": phases}, option=orjson.OPT_INDENT_2)
        )
        if not ok:
            print("cms demo: a materialization failed; see the log above", file=sys.stderr)
            return 1
        _say(f"built in {time.time() - t0:.0f} s")
    show_incidents_and_alerts(s, build=built_now)
    print_where_to_look(s, args)
    if args.no_serve:
        return 0
    return serve(args, project_dir)


# --- incidents and alerts: the end of the story (the sensors do the same as data arrives) -----------------


def show_incidents_and_alerts(
    s: settings_mod.Settings, say: Callable[[str], None] = _say, *, build: bool = True
) -> dict[str, int]:
    """Write the week's incident reports and route its alerts (as `cms incidents build` and `cms alerts
    evaluate` do; ``build=False``: only read what an earlier run wrote), then list the incidents and the
    alerts in the outbox."""
    import pandas as pd

    from cms_dagster.alerts.channels import OutboxChannel, channels_from_settings
    from cms_dagster.alerts.router import AlertStore
    from cms_dagster.alerts.rules import load_rules
    from cms_dagster.alerts.run import data_until, evaluate_alerts
    from cms_dagster.domain import load_ontology
    from cms_dagster.incidents.report import scored_until
    from cms_dagster.incidents.run import update_reports
    from cms_dagster.incidents.store import NoIncidentsTable, list_reports
    from cms_dagster.lake import Lake
    from cms_dagster.llm import from_settings as llm_from_settings
    from cms_dagster.warehouse.client import from_settings

    wh = from_settings(s)
    archive = Lake.from_settings(s).archive
    ont = load_ontology()
    until = scored_until(wh.query)
    if until is None:
        say("no alarms scored: no incident reports")
        return {"incidents": 0, "messages": 0}
    inhibited = sum(1 for st in AlertStore(archive).all() if (st.get("muted") or "").startswith("inhibited"))
    if build:
        t = time.time()
        say("writing the incident reports of every confirmed alarm episode")
        reports = update_reports(
            wh, archive, ont, llm_from_settings(s), (until - pd.Timedelta(days=8)).to_pydatetime(), until,
            progress=lambda m: None,
        )
        say(f"  {len(reports)} report(s) in {time.time() - t:.0f} s")
        data_end = data_until(wh.query, wh.marts) or until
        rep = evaluate_alerts(
            wh.query, ont, load_rules(s.alert_rules_file or None), AlertStore(archive),
            channels_from_settings(s, archive), (data_end - pd.Timedelta(days=8)).to_pydatetime(), data_end,
            marts_schema=wh.marts, dagster_url=s.dagster_url,
        )
        inhibited = len(rep.inhibited)
    else:
        try:
            reports = list_reports(wh.query)
        except NoIncidentsTable:
            reports = []
    messages = OutboxChannel(archive).read()
    print(f"\nThe week's incidents ({len(reports)}; cms incidents show ID for a report)", flush=True)
    for r in sorted(reports, key=lambda r: r["start"]):
        top = r["root_cause"]
        print(f"  {r['id']}  {r['status']:6}  {top['entity']} ({top['kind']})", flush=True)
    pages = [m for m in messages if m["page"] and m["status"] == "firing"]
    print(
        f"\nAlerts in the outbox: {len(messages)} message(s), {len(pages)} page(s), "
        f"{inhibited} muted by inhibition ({archive.uri('alerts/outbox/')}; cms alerts list)",
        flush=True,
    )
    for m in messages[-10:]:
        print(f"  {m['at']}  {m['title'][:100]}", flush=True)
    return {"incidents": len(reports), "messages": len(messages)}


def print_where_to_look(s: settings_mod.Settings, args: argparse.Namespace) -> None:
    print(
        f"""
Where to look
  Dagster UI        http://{args.host}:{args.port}   (lineage: Assets > View global asset lineage)
  dashboard         http://{args.host}:{args.dashboard_port}   (feeds, batches, sub-stages, incidents, ask; cms dashboard)
  raw zone          {s.raw_url}/otel/metrics/
  quarantine        {s.raw_url}/quarantine/
  processed zone    {s.processed_url}/points/
  warehouse         {s.duckdb_path}   (duckdb {s.duckdb_path} -c "select count(*) from raw.metric_points")
  ground truth      {s.archive_url}/simulations/seed-{args.seed}/labels.json
  what is wrong     cms detect alarms --since 7d   (the detector's alarms, grouped into episodes)
  and why           cms rca incident --latest      (ranked causes with their evidence)
  incidents         cms incidents list             (one report per confirmed episode; Dagster: intelligence/incident_report)
  alerts            cms alerts list                (pages on symptoms; the outbox is {s.archive_url}/alerts/outbox/)
  settings          cms config
""",
        flush=True,
    )


def start_dashboard(args: argparse.Namespace) -> subprocess.Popen:
    """The operations dashboard (`cms dashboard`) beside the Dagster UI, on --dashboard-port."""
    from cms_dagster.dashboard.cli import streamlit_command

    cmd = streamlit_command(args.host, args.dashboard_port)
    _say(f"serving the dashboard on http://{args.host}:{args.dashboard_port}")
    return subprocess.Popen(cmd, env={**os.environ}, stdout=subprocess.DEVNULL)


def serve(args: argparse.Namespace, project_dir: Path) -> int:
    exe = Path(sys.executable).parent / "dagster"
    cmd = [str(exe), "dev", "-w", str(project_dir / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    dashboard = start_dashboard(args)
    _say(f"serving the Dagster UI and daemon: {' '.join(cmd)}  (Ctrl-C to stop)")
    try:
        return subprocess.call(cmd, env={**os.environ, "DO_NOT_TRACK": "1"})
    except KeyboardInterrupt:
        return 0
    finally:
        dashboard.terminate()
        try:
            dashboard.wait(timeout=10)
        except subprocess.TimeoutExpired:
            dashboard.kill()


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole product on the embedded default and serve the Dagster UI and the dashboard",
        description="Set up the embedded default (local lake, DuckDB, offline engines), simulate days of data with "
        "incidents, materialize every asset (hourly assets in one back-fill run), then serve the Dagster UI and the dashboard "
        "(webserver + daemon, so schedules and sensors run). A second run skips what is already built.",
        epilog="examples:\n  cms demo                 build if needed, then serve the Dagster UI on 127.0.0.1:3000 and the dashboard on :8501\n"
        "  cms demo --no-serve      build only (for scripts and CI)\n  cms demo --force --days 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--no-serve", action="store_true", help="build everything, then exit instead of serving")
    p.add_argument("--days", type=int, default=7, help="days to simulate (default 7)")
    p.add_argument("--seed", type=int, default=42, help="simulation seed (default 42)")
    p.add_argument("--start", default="2026-11-16", help="simulation start date (default 2026-11-16)")
    p.add_argument(
        "--via-sdk",
        default="fx",
        metavar="ASSET_CLASS",
        help="send this asset class's batch runs through the Python SDK and the ingest receiver (default fx; '' for none)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--dashboard-port", type=int, default=8501, help="port of the dashboard (default 8501)")
    p.add_argument("--force", action="store_true", help="rebuild even if the same demo was built before")
    p.set_defaults(func=run_demo)
