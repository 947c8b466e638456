"""`cms demo` before it builds anything: the window it simulates, a busy port, a second demo, shutdown."""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from cms_dagster import demo
from cms_dagster.simulate.incidents import default_incidents

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc


def _cms(cms_home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CMS_HOME": str(cms_home), "DAGSTER_HOME": str(cms_home / "dagster")}
    exe = Path(sys.executable).parent / "cms"
    return subprocess.run([str(exe), "demo", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_simulated_week_ends_at_the_current_hour_whatever_the_date() -> None:
    for now in (dt.datetime(2026, 12, 6, 14, 37, tzinfo=UTC), dt.datetime(2027, 3, 2, 0, 5, tzinfo=UTC)):
        start, end = demo.simulation_window(7, None, now)
        assert end == now.replace(minute=0) and end - start == dt.timedelta(days=7)


def test_a_window_built_before_is_kept_until_forced_and_a_given_start_wins() -> None:
    now = dt.datetime(2026, 12, 20, 9, 30, tzinfo=UTC)
    kept = demo.simulation_window(7, None, now, {"window_start": "2026-12-10T09:00:00Z"})
    assert kept[0] == dt.datetime(2026, 12, 10, 9, tzinfo=UTC)
    given = demo.simulation_window(3, "2026-11-20", now, {"window_start": "2026-12-10T09:00:00Z"})
    assert given == (dt.datetime(2026, 11, 20, tzinfo=UTC), dt.datetime(2026, 11, 23, tzinfo=UTC))
    with pytest.raises(ValueError, match="before the hourly partitions begin"):
        demo.simulation_window(7, "2026-01-01", now)


def test_default_incidents_keep_their_weekday_and_time_of_day_from_any_start() -> None:
    monday = dt.datetime(2026, 11, 16, tzinfo=UTC)
    reference = {(k, e): (monday + off).strftime("%a %H:%M") for k, e, off, _ in default_incidents(monday)}
    thursday_afternoon = dt.datetime(2026, 12, 3, 15, tzinfo=UTC)
    for kind, entity, off, _ in default_incidents(thursday_afternoon):
        assert dt.timedelta(0) <= off < dt.timedelta(days=7)
        assert (thursday_afternoon + off).strftime("%a %H:%M") == reference[(kind, entity)]


def test_hourly_partitions_are_built_in_even_runs() -> None:
    assert [len(c) for c in demo.chunks([str(i) for i in range(169)], 72)] == [56, 57, 56]
    assert [len(c) for c in demo.chunks(["a"] * 25, 72)] == [25]


@pytest.mark.slow
def test_a_busy_port_is_refused_before_building_with_the_option_to_use(cms_home: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        ran = _cms(cms_home, "--port", str(port))
    assert ran.returncode == 2
    assert f"port {port}" in ran.stderr and f"--port {port + 1}" in ran.stderr and "Traceback" not in ran.stderr
    assert not (cms_home / "demo-state.json").exists() and not (cms_home / demo.PID_FILE).exists()


@pytest.mark.slow
def test_a_second_demo_from_the_same_home_is_refused_and_names_the_first(cms_home: Path) -> None:
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (cms_home / demo.PID_FILE).write_bytes(orjson.dumps({"pid": first.pid, "url": "http://127.0.0.1:3999"}))
        ran = _cms(cms_home, "--no-serve")
    finally:
        first.kill()
        first.wait()
    assert ran.returncode == 2
    assert f"pid {first.pid}" in ran.stderr and "http://127.0.0.1:3999" in ran.stderr
    assert not (cms_home / "demo-state.json").exists()


def test_a_stale_pid_file_does_not_block_a_demo(cms_home: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (cms_home / demo.PID_FILE).write_bytes(orjson.dumps({"pid": gone.pid, "url": None}))
    assert demo.running_demo(cms_home) is None


def test_stopping_the_server_stops_its_whole_process_group() -> None:
    # a stand-in for `dagster dev`: a parent that starts children and ignores nothing
    proc = subprocess.Popen(
        ["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True
    )
    pgid = os.getpgid(proc.pid)

    def children() -> list[int]:
        found = []
        for p in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = p.read_text().rsplit(")", 1)[1].split()
            except OSError:  # a process that ended while listed
                continue
            if fields[2] == str(pgid) and int(p.parent.name) != proc.pid:
                found.append(int(p.parent.name))
        return found

    deadline = time.monotonic() + 30  # a loaded machine may take a while to start both
    while len(children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = children()
    assert len(started) == 2 and demo._group_alive(pgid)
    demo._stop_group(proc, grace=5)
    assert proc.returncode == -signal.SIGTERM  # stopped by the SIGTERM, not the SIGKILL after the grace
    for pid in started:  # gone, or exited and waiting to be reaped by init (a zombie runs nothing)
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert not demo._group_alive(pgid)


def test_where_to_look_names_the_lineage_view_and_no_missing_tool(cms_home: Path) -> None:
    import argparse

    from cms_dagster import settings

    args = argparse.Namespace(host="127.0.0.1", port=3001, dashboard_port=8502, seed=42)
    lines = demo.where_to_look(settings.load(), args, ".venv/bin/cms")
    text = "\n".join(lines)
    assert "http://127.0.0.1:3001" in text and "Lineage" in text and "http://127.0.0.1:8502" in text
    assert ".venv/bin/cms detect alarms --since 7d" in text and ".venv/bin/python -c" in text
    assert "duckdb " not in text.replace("import duckdb", "")


def test_every_check_is_evaluated_in_one_phase_and_the_ingest_runs_start_no_dbt_build() -> None:
    import dagster as dg

    from cms_dagster.definitions import defs as build_defs
    from cms_dagster.defs.partitions import hourly_partitions

    defs = build_defs()
    graph = defs.resolve_asset_graph()
    definitions = [*(defs.assets or []), *(defs.asset_checks or [])]
    up, hourly, down, _ = demo.plan_phases(graph, hourly_partitions)
    ingest = {k for k in hourly if tuple(k.path) in demo.INGEST_KEYS}
    marts = hourly - ingest
    selected = [demo.checks_run_with(p, definitions) for p in (up, ingest, marts, down)]
    points = dg.AssetKey(["warehouse", "metric_points"])
    dbt_events = next(d for d in definitions if isinstance(d, dg.AssetsDefinition) and d.node_def.name == "dbt_events")
    source_tests = {c for c in dbt_events.check_keys if c.asset_key == points}
    assert source_tests  # dbt's tests of the source raw.metric_points ...
    assert not source_tests & selected[1]  # ... are not in the ingest runs, which would start dbt for them
    assert not source_tests & selected[2]  # nor selected in the marts' build, which dagster-dbt would then run whole
    # ... but run in it: dagster-dbt adds the tests of the sources upstream of the models a build selects
    upstream = dbt_events.get_checks_targeting_keys(frozenset(dbt_events.get_upstream_input_keys(frozenset(marts & set(dbt_events.keys)))))
    assert upstream == source_tests
    evaluated = [*selected, upstream]
    assert set().union(*evaluated) == set(graph.asset_check_keys)
    assert sum(len(e) for e in evaluated) == len(graph.asset_check_keys)  # none twice
    assert dg.AssetCheckKey(dg.AssetKey(["processed", "points"]), "nothing_in_quarantine") in selected[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_phase_is_one_progress_line_on_a_terminal_and_a_line_per_update_elsewhere() -> None:
    term = _Terminal()
    progress = demo.Progress(term, "hourly ingest", 169)
    progress.update(56)
    progress.update(169)
    shown = term.getvalue()
    assert shown.count("\n") == 1 and shown.count("\r\033[K") == 3  # rewritten in place, one line at the end
    last = shown.rsplit("\r\033[K", 1)[1]
    assert last.startswith("[cms demo] hourly ingest: 169/169 partitions,") and last.rstrip().endswith("elapsed, done")
    assert "56/169 partitions" in shown and "left" in shown  # partitions done of total and an estimate

    piped = io.StringIO()
    progress = demo.Progress(piped, "hourly ingest", 169)
    progress.update(169)
    assert [line.split(":", 1)[1].split(",")[0] for line in piped.getvalue().splitlines()] == [" 0/169 partitions", " 169/169 partitions"]


def test_what_the_demo_starts_stops_on_sigterm_even_when_the_demo_was_started_with_signals_ignored() -> None:
    # `cms demo &` inherits SIGINT ignored, and an ignored signal stays ignored across exec; `dagster dev`
    # copies SIGINT's disposition to SIGTERM. Started from such a parent, a child must still stop on both.
    report = "import re; m = int(re.search(r'SigIgn:\\s*(\\S+)', open('/proc/self/status').read()).group(1), 16); print(m)"
    parent = (
        "import signal, subprocess, sys\n"
        "from cms_dagster.demo.serve import spawn\n"
        "for sig in (signal.SIGINT, signal.SIGTERM): signal.signal(sig, signal.SIG_IGN)\n"
        f"cmd = [sys.executable, '-c', {report!r}]\n"
        "plain = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True).stdout.strip()\n"
        "p = spawn(cmd, stdout=subprocess.PIPE, text=True)\n"
        "print(plain, p.communicate()[0].strip())\n"
    )
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, check=True).stdout.split()
    plain, spawned = (int(x) for x in out)
    bits = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    assert plain & bits == bits  # what a plain subprocess inherits
    assert spawned & bits == 0
