"""`cms demo`: set up the embedded default, simulate the week up to now with incidents, materialize every
asset of that window, then serve the Dagster UI (webserver + daemon, so schedules and the automation sensor
keep the graph current). Running it again is safe and fast: finished steps are skipped unless their inputs
changed (or --force)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson

from cms_dagster import settings as settings_mod
from cms_dagster.lake.layout import OUTBOX_PREFIX

STATE_FILE = "demo-state.json"
PID_FILE = "demo.pid"
STATE_VERSION = 3
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
# the hourly ingest (raw -> processed -> points) runs in runs of at most this many partitions, so progress
# shows between runs (it has no fixed cost per run); dbt and the detector cover the whole window in one
# run each (dbt's start-up, its tests and the detector's history reads are paid once)
CHUNK_HOURS = 72
# Dagster's switch for one planned event per asset and run, with the run's partitions as a subset
PLANNED_AS_SUBSET = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
INGEST_KEYS = (("raw", "otel_metrics"), ("processed", "points"), ("warehouse", "metric_points"))


def _say(msg: str) -> None:
    print(f"[cms demo] {msg}", flush=True)


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """One line per phase: partitions done of total, elapsed time and an estimate of what is left.

    On a terminal the line is rewritten in place; otherwise (CI, a pipe) each update is its own line."""

    def __init__(self, out: TextIO, label: str, total: int) -> None:
        self.out, self.label, self.total = out, label, total
        self.t0 = time.time()
        self.tty = out.isatty()
        self.update(0)

    def line(self, done: int) -> str:
        elapsed = time.time() - self.t0
        text = f"[cms demo] {self.label}: {done}/{self.total} partitions, {_fmt_seconds(elapsed)} elapsed"
        if 0 < done < self.total:
            text += f", about {_fmt_seconds(elapsed / done * (self.total - done))} left"
        elif done == self.total:
            text += ", done"
        return text

    def update(self, done: int) -> None:
        if self.tty:
            self.out.write("\r\033[K" + self.line(done))
            if done == self.total:
                self.out.write("\n")
        else:
            self.out.write(self.line(done) + "\n")
        self.out.flush()


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[TextIO]:
    """Send everything written to stdout/stderr (Dagster's and dbt's logs, subprocesses included) to
    ``log_path`` for the duration; yield a stream to the original stdout for the progress lines."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.close()


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
    settings_mod.export_dagster_home(home)
    return home


def _prepare_dbt(say: Callable[[str], None]) -> None:
    from cms_dagster.warehouse import dbt as dbt_mod

    say("preparing the dbt manifest (dbt parse)")
    dbt_mod.prepare(settings_mod.process_environment())


def chunks(keys: list[str], size: int) -> list[list[str]]:
    """Consecutive runs of at most ``size`` partition keys, as even as can be (169 by 72: 57, 56, 56)."""
    if not keys:
        return []
    n = -(-len(keys) // size)
    bounds = [round(i * len(keys) / n) for i in range(n + 1)]
    return [keys[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@contextlib.contextmanager
def fast_event_log() -> Iterator[None]:
    """While the demo builds, the Dagster instance's SQLite files skip fsync (``PRAGMA synchronous=OFF``)
    and a run's planned materializations are one event per asset, not one per partition.

    A week of hourly partitions is some 15,000 events (each asset's planned and done materialization per
    partition); each is its own SQLite commit, and on a busy disk the fsyncs were most of the build. A
    crash of the process loses nothing committed; a crash of the machine mid-build may leave the instance
    unreadable: `cms demo --force` after removing $CMS_HOME/dagster builds it again. The served instance
    (`dagster dev`) keeps SQLite's defaults."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def no_fsync(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous=OFF")

    event.listen(Engine, "connect", no_fsync)
    # one "materialization planned" event per asset and run instead of one per partition (half of the
    # events of a week); what it gives up: a failed run does not mark its partitions failed, and the
    # demo stops with the failure and its log instead
    try:
        with settings_mod.dagster_variable(PLANNED_AS_SUBSET, "1"):
            yield
    finally:
        event.remove(Engine, "connect", no_fsync)


def plan_phases(graph: Any, hourly_def: Any) -> tuple[set, set, set, set]:
    """Split the materializable assets: unpartitioned ones that read nothing hourly (sources, reference
    data), the hourly ones, unpartitioned ones built from hourly ones, and those with another partitioning
    (left to their schedules)."""
    all_keys = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    hourly = {k for k in all_keys if graph.get(k).partitions_def == hourly_def}
    other_partitioned = {k for k in all_keys - hourly if graph.get(k).partitions_def is not None}
    unpart = all_keys - hourly - other_partitioned
    down = {k for k in unpart if _ancestors(graph, {k}) & hourly}
    return unpart - down, hourly, down, other_partitioned


def materialize_all(
    start: str,
    end: str,
    simulation: dict[str, Any] | None = None,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Materialize every asset of the code location into the current Dagster instance, with their checks:
    unpartitioned upstream assets, then the hourly assets over [start, end] (a day of partitions per run),
    then the rest. Progress lines go to ``out``."""
    import dagster as dg

    from cms_dagster.definitions import defs as build_defs
    from cms_dagster.defs.partitions import hourly_partitions

    out = out or sys.stdout
    defs = build_defs()
    graph = defs.resolve_asset_graph()
    instance = dg.DagsterInstance.get()
    up, hourly, down, other_partitioned = plan_phases(graph, hourly_partitions)
    # collectors with nothing configured have nothing to collect (the simulator stands in for them)
    idle = idle_collectors(settings_mod.load())
    up, hourly, down = up - idle, hourly - idle, down - idle
    assets = list(defs.assets or [])
    checks = list(defs.asset_checks or [])
    resources = dict(defs.resources or {})
    keys = hourly_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))
    sim_key = dg.AssetKey(["raw", "simulation"])
    sim_config = (
        {"ops": {"raw__simulation": {"config": simulation}}} if simulation and sim_key in up else {}
    )

    def run(selection: set, tags: dict[str, str], run_config: dict[str, Any]) -> bool:
        res = dg.materialize(
            [*assets, *checks],
            instance=instance,
            resources=resources,
            # the assets and the checks their run evaluates; every check of the graph is in one phase's run
            selection=dg.AssetSelection.assets(*selection).without_checks()
            | dg.AssetSelection.checks(*checks_run_with(selection, [*assets, *checks])),
            tags=tags,
            run_config={**run_config, **QUIET},
            raise_on_error=False,
        )
        return res.success

    ingest = {k for k in hourly if tuple(k.path) in INGEST_KEYS}
    result: dict[str, Any] = {}
    span = f"{keys[0]} .. {keys[-1]}"
    for label, sel, total, parts in (
        ("sources and reference data", up, 1, [None]),
        (f"hourly ingest {span}", ingest, len(keys), chunks(keys, CHUNK_HOURS)),
        (f"hourly marts and anomalies {span}", hourly - ingest, len(keys), [keys]),
        ("downstream assets", down, 1, [None]),
    ):
        if not sel:
            continue
        t = time.time()
        progress = Progress(out, label, total)
        done, ok = 0, True
        for part in parts:
            if part is None:
                ok = run(sel, {}, sim_config if label.startswith("sources") else {})
                done = 1
            else:
                tags = {"dagster/asset_partition_range_start": part[0], "dagster/asset_partition_range_end": part[-1]}
                ok = run(sel, tags, {})
                done += len(part)
            if not ok:
                break
            progress.update(done)
        result[label] = {"success": ok, "seconds": round(time.time() - t, 1), "partitions": done}
        if not ok:
            out.write(f"\n[cms demo] {label}: a run failed after {done}/{total} partitions\n")
            break
    skipped = sorted(k.to_user_string() for k in other_partitioned)
    if skipped:
        out.write(f"[cms demo] left for their schedules (other partitioning): {', '.join(skipped)}\n")
    return result


def checks_run_with(selection: set, definitions: list) -> set:
    """The asset checks to select with a run of the assets ``selection``: the checks on those assets that the
    run's own definitions evaluate (a dbt build runs its models' tests) and the stand-alone checks on them.

    Not the checks another definition evaluates: dbt's tests of the source ``raw.metric_points`` are checks
    of the points asset but run by dbt, so an ingest run that selected them would start dbt for them
    alone. dagster-dbt runs them in the marts' dbt build instead, as the tests of a source upstream of the
    models it builds (selecting them there as well would make that build look whole to dagster-dbt, whose
    default dbt selection leaves source tests out)."""
    import dagster as dg

    out = set()
    for d in definitions:
        if not isinstance(d, dg.AssetsDefinition):
            continue
        own = set(d.keys)
        for check in d.check_keys:
            if check.asset_key in selection and (not own or own & selection):
                out.add(check)
    return out


def idle_collectors(s: settings_mod.Settings) -> set:
    """Collection assets that have no source configured (no AWS account or endpoint, no Metric Streams URL)."""
    import dagster as dg

    idle = set()
    if not s.aws_configured:
        idle.add(dg.AssetKey(["raw", "cloudwatch"]))
    if not s.metric_streams_url:
        idle.add(dg.AssetKey(["raw", "metric_stream"]))
    return idle


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


def simulation_window(
    days: int, start: str | None, now: dt.datetime, previous: dict[str, Any] | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the simulated data: the ``days`` days up to the current hour unless a start is given
    (a window built before and not rebuilt is kept: the state file remembers it)."""
    from cms_dagster.simulate.incidents import parse_time

    if start:
        first = parse_time(start).astimezone(dt.timezone.utc)
    elif previous and previous.get("window_start"):
        first = parse_time(previous["window_start"]).astimezone(dt.timezone.utc)
    else:
        hour = now.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
        first = hour - dt.timedelta(days=days)
    first = first.replace(minute=0, second=0, microsecond=0)
    from cms_dagster.defs.partitions import PARTITIONS_START

    origin = dt.datetime.strptime(PARTITIONS_START, "%Y-%m-%d-%H:%M").replace(tzinfo=dt.timezone.utc)
    if first < origin:
        raise ValueError(
            f"the simulation would start at {first:%Y-%m-%d %H:%M} UTC, before the hourly partitions begin "
            f"({origin:%Y-%m-%d %H:%M} UTC): pass a later --start, or fewer --days"
        )
    return first, first + dt.timedelta(days=days)


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_demo(home: Path) -> dict[str, Any] | None:
    """The demo already running from this CMS_HOME (pid, url), if any; a stale pid file is ignored."""
    path = home / PID_FILE
    if not path.exists():
        return None
    try:
        info = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    if info.get("pid") and info["pid"] != os.getpid() and _pid_alive(int(info["pid"])):
        return info
    return None


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
        _prepare_dbt(_say)
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
                },
                option=orjson.OPT_INDENT_2,
            )
        )
        if not ok:
            print(f"cms demo: a materialization failed; the end of {log_path}:", file=sys.stderr)
            print(_tail(log_path, 30), file=sys.stderr)
            return 1
        _say(f"built in {_fmt_seconds(time.time() - t0)}")
    show_incidents_and_alerts(s, build=built_now)
    for line in where_to_look(s, args, _cms_command()):
        print(line, flush=True)
    if args.no_serve:
        return 0
    return serve(args, project_dir, s)


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return ""


def _cms_command() -> str:
    """How the user calls cms: `cms` when that is on PATH and the one running, else its path."""
    exe = Path(sys.executable).parent / "cms"
    on_path = shutil.which("cms")
    if on_path and Path(on_path).resolve() == exe.resolve():
        return "cms"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


# --- incidents and alerts: the end of the story (the sensors do the same as data arrives) -----------------


def show_incidents_and_alerts(
    s: settings_mod.Settings,
    say: Callable[[str], None] = _say,
    *,
    build: bool = True,
    days: int = 8,
    workers: int | None = None,
) -> dict[str, int]:
    """Write the incident reports of the ``days`` up to the detector's latest scored time and route their
    alerts (as `cms incidents build` and `cms alerts evaluate` do, with ``workers`` processes for the
    reports, one per core up to 4 by default; ``build=False``: only read what an earlier run wrote), then
    list the incidents and the alerts in the outbox. benchmarks/incidents_step.py times it."""
    import pandas as pd

    from cms_dagster.alerts.channels import OutboxChannel, channels_from_settings
    from cms_dagster.alerts.router import AlertStore
    from cms_dagster.alerts.rules import load_rules
    from cms_dagster.alerts.run import data_until, evaluate_alerts
    from cms_dagster.domain import load_ontology
    from cms_dagster.incidents.report import scored_until
    from cms_dagster.incidents.run import update_reports_in_parallel
    from cms_dagster.incidents.store import NoIncidentsTable, list_reports
    from cms_dagster.lake import Lake
    from cms_dagster.warehouse.client import from_settings

    wh = from_settings(s)
    archive = Lake.from_settings(s).archive
    ont = load_ontology(s.domain_file or None)
    until = scored_until(wh.query)
    if until is None:
        say("no alarms scored: no incident reports")
        return {"incidents": 0, "messages": 0}
    inhibited = sum(1 for st in AlertStore(archive).all() if (st.get("muted") or "").startswith("inhibited"))
    if build:
        t = time.time()
        say("writing the incident reports of every incident (confirmed alarm episodes grouped)")
        # one process per core: ranking the causes of a week's incidents is most of this step
        reports = update_reports_in_parallel(
            s, (until - pd.Timedelta(days=days)).to_pydatetime(), until, workers=workers or min(4, os.cpu_count() or 1)
        )
        say(f"  {len(reports)} report(s) in {time.time() - t:.0f} s")
        data_end = data_until(wh.query, wh.marts) or until
        rep = evaluate_alerts(
            wh.query, ont, load_rules(s.alert_rules_file or None), AlertStore(archive),
            channels_from_settings(s, archive), (data_end - pd.Timedelta(days=days)).to_pydatetime(), data_end,
            marts_schema=wh.marts, dagster_url=s.dagster_url,
        )
        inhibited = len(rep.inhibited)
    else:
        try:
            reports = list_reports(wh.query, since=(until - pd.Timedelta(days=days)).to_pydatetime())
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
        f"{inhibited} muted by inhibition ({archive.uri(OUTBOX_PREFIX)}; cms alerts list)",
        flush=True,
    )
    for m in messages[-10:]:
        print(f"  {m['at']}  {m['title'][:100]}", flush=True)
    return {"incidents": len(reports), "messages": len(messages)}


def where_to_look(s: settings_mod.Settings, args: argparse.Namespace, cms: str = "cms") -> list[str]:
    """The "Where to look" block: places, and commands that work as printed (from the repository root)."""
    py = str(Path(cms).parent / "python") if "/" in cms else "python"
    query = (
        f"{py} -c \"import duckdb; print(duckdb.connect('{s.duckdb_path}', read_only=True)"
        ".sql('select count(*) as points from raw.metric_points'))\""
    )
    return [
        "",
        "Where to look",
        f"  Dagster UI        http://{args.host}:{args.port}   (the graph: Lineage, in the top bar)",
        f"  dashboard         http://{args.host}:{args.dashboard_port}   (feeds, batches, sub-stages, incidents, ask)",
        f"  raw zone          {s.raw_url}/otel/metrics/",
        f"  quarantine        {s.raw_url}/quarantine/",
        f"  processed zone    {s.processed_url}/points/",
        f"  warehouse         {s.duckdb_path}",
        f"  ground truth      {s.archive_url}/simulations/seed-{args.seed}/labels.json",
        f"  alert outbox      {s.archive_url}/{OUTBOX_PREFIX}",
        "",
        "Commands (from this directory; while the demo serves, its runs may hold the warehouse for a moment)",
        f"  points loaded     {query}",
        f"  what is wrong     {cms} detect alarms --since 7d",
        f"  and why           {cms} rca incident --latest",
        f"  incidents         {cms} incidents list",
        f"  alerts            {cms} alerts list",
        f"  settings          {cms} config",
        "",
    ]


def serve(args: argparse.Namespace, project_dir: Path, s: settings_mod.Settings) -> int:
    """Run `dagster dev` (webserver + daemon) in its own process group until Ctrl-C or SIGTERM, then stop
    the whole group. Its logs go to $CMS_HOME/logs/dagster.log."""
    exe = Path(sys.executable).parent / "dagster"
    cmd = [str(exe), "dev", "-w", str(project_dir / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    log_path = s.home / "logs" / "dagster.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://{args.host}:{args.port}"
    from cms_dagster.dashboard.cli import streamlit_command

    with open(log_path, "ab") as log, open(s.home / "logs" / "dashboard.log", "ab") as dash_log:
        # cwd: DAGSTER_HOME, so no dagster.yaml is found in the working directory beside the instance's own
        proc = subprocess.Popen(
            cmd,
            cwd=s.dagster_home,
            # dbt on PATH: `dagster dev` prepares the dbt project with it when the code location loads
            env=settings_mod.process_environment({"DO_NOT_TRACK": "1"}, path_first=str(exe.parent)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        dashboard = subprocess.Popen(
            streamlit_command(args.host, args.dashboard_port),
            env=settings_mod.process_environment(),
            stdout=dash_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stopping = {"signal": None}

    def stop(signum: int, _frame: Any) -> None:
        stopping["signal"] = signum
        _stop_group(dashboard, grace=5)
        _stop_group(proc)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    _say(f"serving the Dagster UI on {url} (webserver + daemon: schedules and automation run); logs in {log_path}")
    _say(f"serving the dashboard on http://{args.host}:{args.dashboard_port}")
    _say("Ctrl-C to stop")
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(dashboard, grace=5)
        _stop_group(proc)
    if stopping["signal"] is not None:
        _say("stopped")
        return 0
    print(f"cms demo: dagster dev exited with {code}; the end of {log_path}:", file=sys.stderr)
    print(_tail(log_path, 20), file=sys.stderr)
    return 1


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. An exited child that nobody has reaped yet (a zombie:
    its parent is gone and the init process has not collected it) runs nothing, but still answers
    ``killpg(pgid, 0)``; on Linux /proc tells them apart."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM to `dagster dev` and everything it started (webserver, daemon, code server), SIGKILL after
    ``grace`` seconds."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline:
        proc.poll()
        if not _group_alive(pgid):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


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
