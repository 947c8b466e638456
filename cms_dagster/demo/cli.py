"""`cms demo`: the command, its arguments, and the order of things (refuse a second demo or a busy port,
build, show the incidents and alerts, serve)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from cms_dagster import settings as settings_mod
from cms_dagster.demo.build import (
    STATE_FILE,
    STATE_VERSION,
    _fmt_seconds,
    _prepare_dbt,
    _say,
    fast_event_log,
    materialize_all,
    output_to,
    prepare_dagster_home,
    simulation_window,
)
from cms_dagster.demo.report import _cms_command, show_incidents_and_alerts, where_to_look
from cms_dagster.demo.serve import PID_FILE, _tail, port_in_use, running_demo, serve


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
    other = running_demo(s.home)
    if other:
        print(
            f"cms demo: another cms demo is already running from {s.home} (pid {other['pid']}"
            f"{', serving ' + other['url'] if other.get('url') else ''}): use it, stop it (Ctrl-C in its "
            f"terminal, or kill {other['pid']}), or start this one with another CMS_HOME",
            file=sys.stderr,
        )
        return 2
    for option, port in (("--port", args.port), ("--dashboard-port", args.dashboard_port)):
        if not args.no_serve and port_in_use(args.host, port):
            make = f" (`make demo PORT={port + 1}`)" if option == "--port" else ""
            print(
                f"cms demo: port {port} on {args.host} is already in use: stop what listens there, or pick "
                f"another port with `cms demo {option} {port + 1}`{make}",
                file=sys.stderr,
            )
            return 2
    pid_path = s.home / PID_FILE
    url = None if args.no_serve else f"http://{args.host}:{args.port}"
    pid_path.write_bytes(orjson.dumps({"pid": os.getpid(), "url": url}))
    try:
        return _build_and_serve(args, s, project_dir)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if orjson.loads(pid_path.read_bytes()).get("pid") == os.getpid():
                pid_path.unlink()


def _build_and_serve(args: argparse.Namespace, s: settings_mod.Settings, project_dir: Path) -> int:
    prepare_dagster_home(s, project_dir)
    state_path = s.home / STATE_FILE
    wanted = {
        "days": args.days,
        "seed": args.seed,
        "start": args.start,
        "via_sdk": args.via_sdk,
        "version": STATE_VERSION,
    }
    state = orjson.loads(state_path.read_bytes()) if state_path.exists() else {}
    same = state.get("inputs") == wanted and state.get("complete")
    try:
        first, end = simulation_window(
            args.days, args.start, dt.datetime.now(dt.timezone.utc), state if same and not args.force else None
        )
    except ValueError as e:
        print(f"cms demo: {e}", file=sys.stderr)
        return 2
    log_path = s.home / "logs" / "demo.log"
    t0 = time.time()
    built_now = not (same and not args.force)
    if same and not args.force:
        _say(
            f"already built: {args.days} day(s) from {first:%Y-%m-%d %H:%M} UTC ({state_path}); "
            "`cms demo --force` rebuilds up to now"
        )
    else:
        t_parse = time.time()
        _prepare_dbt(_say)
        steps = {"dbt parse": round(time.time() - t_parse, 1)}
        # through the hour in progress: SDK traffic lands in the raw zone at its receipt hour (now)
        now_hour = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
        last_hour = max(end - dt.timedelta(hours=1), now_hour)
        _say(f"CMS_HOME={s.home}  DAGSTER_HOME={s.dagster_home}")
        _say(
            f"simulating {args.days} day(s), {first:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC "
            f"(seed {args.seed}), and materializing every asset of that window; tool logs in {log_path}"
        )
        with output_to(log_path) as terminal, fast_event_log():
            phases = materialize_all(
                f"{first:%Y-%m-%d-%H:%M}",
                f"{last_hour:%Y-%m-%d-%H:%M}",
                simulation={
                    "days": args.days,
                    "seed": args.seed,
                    "start": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "via_sdk": [args.via_sdk] if args.via_sdk else [],
                },
                out=terminal,
            )
        ok = bool(phases) and all(p["success"] for p in phases.values())
        state_path.write_bytes(
            orjson.dumps(
                {
                    "inputs": wanted,
                    "complete": ok,
                    "window_start": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "window_end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "phases": phases,
                    # seconds of the steps around the materialization (benchmarks/demo_build.py prints them)
                    "steps": steps,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
        if not ok:
            print(f"cms demo: a materialization failed; the end of {log_path}:", file=sys.stderr)
            print(_tail(log_path, 30), file=sys.stderr)
            return 1
        _say(f"built in {_fmt_seconds(time.time() - t0)}")
    t_reports = time.time()
    show_incidents_and_alerts(s, build=built_now)
    if built_now:
        state = orjson.loads(state_path.read_bytes())
        state["steps"]["incident reports and alerts"] = round(time.time() - t_reports, 1)
        state_path.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
    for line in where_to_look(s, args, _cms_command()):
        print(line, flush=True)
    if args.no_serve:
        return 0
    return serve(args, project_dir, s)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole product on the embedded default and serve the Dagster UI and the dashboard",
        description="Set up the embedded default (local lake, DuckDB), simulate the days up to now with incidents, "
        "materialize every asset of that window with its checks, then serve the Dagster UI (webserver + daemon, "
        "so schedules and the automation sensor keep the graph current as time passes) and the dashboard. A second run skips "
        "what is already built; a second demo from the same CMS_HOME, or a busy port, is refused with the reason.",
        epilog="examples:\n  cms demo                 build if needed, then serve the Dagster UI on 127.0.0.1:3000 and the dashboard on :8501\n"
        "  cms demo --port 3001     serve on another port (make demo PORT=3001)\n"
        "  cms demo --no-serve      build only (for scripts and CI)\n  cms demo --force --days 3\n\n"
        "logs: $CMS_HOME/logs/demo.log (the build), $CMS_HOME/logs/dagster.log (the UI and daemon),\n"
        "      $CMS_HOME/logs/dashboard.log",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--no-serve", action="store_true", help="build everything, then exit instead of serving")
    p.add_argument("--days", type=int, default=7, help="days to simulate, up to the current hour (default 7)")
    p.add_argument("--seed", type=int, default=42, help="simulation seed (default 42)")
    p.add_argument(
        "--start",
        default=None,
        metavar="TIME",
        help="simulate from this UTC date or time instead (for example 2026-11-16); the build then covers "
        "every hour from it up to now",
    )
    p.add_argument(
        "--via-sdk",
        default="fx",
        metavar="ASSET_CLASS",
        help="send this asset class's batch runs through the Python SDK and the ingest receiver (default fx; '' for none)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the Dagster UI listens on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default 3000)")
    p.add_argument("--dashboard-port", type=int, default=8501, help="port of the dashboard (default 8501)")
    p.add_argument("--force", action="store_true", help="rebuild, simulating the days up to now again")
    p.set_defaults(func=run_demo)
