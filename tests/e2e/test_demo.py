"""`cms demo --no-serve` builds the simulated week up to now with every asset and check, its "Where to look"
commands work as printed, and a second run is a no-op."""

import datetime as dt
import os
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(cms_home: Path) -> dict[str, str]:
    return {**os.environ, "CMS_HOME": str(cms_home), "DAGSTER_HOME": str(cms_home / "dagster"), "DO_NOT_TRACK": "1"}


def _recent_weekday() -> str:
    """A weekday (the estate's jobs run Monday to Friday) at least a day before today, so the day simulated has
    batch runs; the demo builds every hour from it up to now (a few days at most, whatever the date)."""
    day = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day.isoformat()


START = _recent_weekday()


def _demo(cms_home: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "cms"
    return subprocess.run(
        [str(exe), "demo", "--no-serve", "--days", "1", "--start", START, *args],
        cwd=ROOT, env=_env(cms_home), capture_output=True, text=True, timeout=1500,
    )


def _printed_commands(stdout: str) -> list[str]:
    """The command column of the "Commands" block of "Where to look"."""
    block = stdout.split("\nCommands", 1)[1].split("\n\n", 1)[0]
    return [line[20:] for line in block.splitlines()[1:] if line.strip()]


@pytest.mark.slow
def test_demo_builds_the_window_with_its_checks_and_every_printed_command_works(cms_home: Path) -> None:
    first = _demo(cms_home)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    state = orjson.loads((cms_home / "demo-state.json").read_bytes())
    assert state["complete"] and all(p["success"] for p in state["phases"].values())
    # every hour from the start up to the hour in progress
    hourly = next(p for label, p in state["phases"].items() if label.startswith("hourly"))
    start = dt.datetime.fromisoformat(START).replace(tzinfo=dt.timezone.utc)
    hours = (dt.datetime.now(dt.timezone.utc) - start) // dt.timedelta(hours=1) + 1
    assert hours - 1 <= hourly["partitions"] <= hours
    assert "Where to look" in first.stdout and "http://127.0.0.1:3000" in first.stdout
    assert "Lineage" in first.stdout and "duckdb " not in first.stdout.replace("import duckdb", "")
    assert "dbt" not in first.stdout.split("Where to look")[0].replace("dbt manifest (dbt parse)", "")  # logs in the file
    assert (cms_home / "logs" / "demo.log").stat().st_size > 0

    con = duckdb.connect(str(cms_home / "warehouse.duckdb"), read_only=True)
    try:
        points = con.execute("select count(*), count(distinct point_id) from raw.metric_points").fetchone()
        tables = {r[0] for r in con.execute("select table_schema || '.' || table_name from information_schema.tables").fetchall()}
        sdk_runs = con.execute("select count(*) from raw.metric_points where metric_name = 'cms.batch.run.finished' and asset_class = 'fx' and raw_key like '%-ingest-%'").fetchone()[0]
    finally:
        con.close()
    assert points[0] == points[1] > 100_000
    assert {"marts.fct_batch_runs", "marts.mart_sla_compliance", "intelligence.anomalies"} <= tables
    assert sdk_runs > 0  # fx runs went through the SDK and the receiver

    import dagster as dg

    with dg.DagsterInstance.get() as instance:  # the demo's: the cms_home fixture sets DAGSTER_HOME
        quarantine = dg.AssetCheckKey(dg.AssetKey(["processed", "points"]), "nothing_in_quarantine")
        assert instance.event_log_storage.get_latest_asset_check_execution_by_key([quarantine])[quarantine] is not None
        assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "cloudwatch"])) is None
        assert instance.get_latest_materialization_event(dg.AssetKey(["intelligence", "anomalies"])) is not None

    for command in _printed_commands(first.stdout):
        ran = subprocess.run(shlex.split(command), cwd=ROOT, env=_env(cms_home), capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, f"{command}\n{ran.stdout[-2000:]}{ran.stderr[-2000:]}"
        assert ran.stdout.strip(), command
    alarms = subprocess.run(shlex.split(_printed_commands(first.stdout)[1]), cwd=ROOT, env=_env(cms_home), capture_output=True, text=True, timeout=300)
    assert not alarms.stdout.startswith("0 confirmed")  # the window is the week up to now

    again = _demo(cms_home)
    assert again.returncode == 0 and "already built" in again.stdout

