"""Building the demo: the simulated window, its Dagster home, and every asset of it materialized in phases
with one progress line each (tool logs go to $CMS_HOME/logs/demo.log)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from cms_dagster import settings as settings_mod

STATE_FILE = "demo-state.json"
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
