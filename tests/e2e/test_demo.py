"""`cms demo --no-serve` builds the simulated week up to now with every asset and check, its "Where to look"
commands work as printed, a second run is a no-op, `make docs` serves the dbt docs from the build, and a
serving demo refuses a second one, logs no warning of its own setup and stops cleanly on SIGTERM and Ctrl-C."""

import datetime as dt
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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
    for label in state["phases"]:  # a progress line per phase (one per update off a terminal), ending "done"
        lines = [line for line in first.stdout.splitlines() if line.startswith(f"[cms demo] {label}: ")]
        assert lines and lines[-1].endswith(", done") and "partitions" in lines[-1], label

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

    from cms_dagster.definitions import defs as build_defs

    with dg.DagsterInstance.get() as instance:  # the demo's: the cms_home fixture sets DAGSTER_HOME
        quarantine = dg.AssetCheckKey(dg.AssetKey(["processed", "points"]), "nothing_in_quarantine")
        assert instance.event_log_storage.get_latest_asset_check_execution_by_key([quarantine])[quarantine] is not None
        # every check of a built asset was evaluated, dbt's tests of the source raw.metric_points (run by dbt
        # with the marts) included
        checks = [
            k for k in build_defs().resolve_asset_graph().asset_check_keys
            if instance.get_latest_materialization_event(k.asset_key) is not None
        ]
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(checks)
        evaluated = {"SUCCEEDED", "FAILED"}  # passed or not: a check that did not run stays PLANNED
        not_evaluated = [k.to_user_string() for k in checks if latest.get(k) is None or latest[k].status.value not in evaluated]
        assert not not_evaluated, not_evaluated
        assert sum(k.asset_key == dg.AssetKey(["warehouse", "metric_points"]) for k in checks) >= 4
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


    _make_docs_serves_the_build(cms_home)
    for sig in (signal.SIGTERM, signal.SIGINT):
        _a_serving_demo_refuses_a_second_and_stops_cleanly_on(sig, cms_home)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str, within: float, proc: subprocess.Popen) -> bool:
    deadline = time.time() + within
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(2)
    return False


def _descendants(pid: int) -> set[int]:
    """Every process started under ``pid`` (from /proc), whatever its session."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _make_docs_serves_the_build(cms_home: Path) -> None:
    port = _free_port()
    make = subprocess.Popen(
        ["make", "docs", f"DOCS_PORT={port}"], cwd=ROOT, env=_env(cms_home), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        served = _answers(f"http://127.0.0.1:{port}/index.html", 600, make)
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        out = make.communicate(timeout=60)[0]
    assert served, out[-3000:]
    catalog = ROOT / "dbt_project" / "target" / "catalog.json"
    assert "fct_batch_runs" in catalog.read_text()  # documented from the demo's warehouse, not an empty one


def _a_serving_demo_refuses_a_second_and_stops_cleanly_on(sig: signal.Signals, cms_home: Path) -> None:
    port, dashboard = _free_port(), _free_port()
    exe = Path(sys.executable).parent / "cms"
    serving = subprocess.Popen(
        [str(exe), "demo", "--days", "1", "--start", START, "--port", str(port), "--dashboard-port", str(dashboard)],
        cwd=ROOT, env=_env(cms_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        up = _answers(f"http://127.0.0.1:{port}/server_info", 600, serving)
        assert up, "the Dagster UI did not answer"
        second = _demo(cms_home)
        assert second.returncode == 2 and f"pid {serving.pid}" in second.stderr and "Traceback" not in second.stderr
        started = _descendants(serving.pid)
        assert started  # dagster dev, its webserver, daemon and code server, the dashboard
        serving.send_signal(sig)
        out, err = serving.communicate(timeout=120)
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait()
    assert serving.returncode == 0 and "stopped" in out, err[-2000:]
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(p) for p in started):
        time.sleep(0.5)
    assert not [p for p in started if _alive(p)]
    log = (cms_home / "logs" / "dagster.log").read_text(errors="replace")
    for noise in ("The code location name", "BackfillPolicy", "Found a dagster instance configuration"):
        assert noise not in log, noise
