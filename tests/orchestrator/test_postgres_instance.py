"""Dagster on PostgreSQL, as production runs it: the instance written from the settings stores runs,
events and schedules in PostgreSQL; the daemon ticks sensors and schedules, the run queue honours the
per-tag limits, and a daemon restarted mid-way carries on from its cursors with nothing run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus  # not exported at the top level

from cms_dagster import settings as settings_mod
from cms_dagster.infra import dagster_instance
from cms_harness.postgres import PostgresServer
from tests.orchestrator import location

HERE = Path(__file__).resolve().parent


def _write_home(tmp_path: Path, postgres: PostgresServer, db: str, **extra: str) -> tuple[Path, dict[str, str]]:
    env = {
        "CMS_DAGSTER_STORAGE": "postgres",
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_DB": db,
        "CMS_DAGSTER_MAX_COLLECTION_RUNS": "1",
        **extra,
    }
    o = settings_mod.load_orchestrator(env)
    home = tmp_path / "dagster_home"
    dagster_instance.write(o, home)
    assert "cms-test-password" not in (home / "dagster.yaml").read_text()  # the secret stays in the environment
    return home, {**env, "DAGSTER_PG_PASSWORD": postgres.password, "DAGSTER_HOME": str(home)}


@pytest.fixture
def pg_instance(tmp_path: Path, postgres: PostgresServer, pg_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    home, env = _write_home(tmp_path, postgres, pg_db)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres.password)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.mark.slow
def test_partitions_materialized_on_postgres_are_kept_in_postgres(pg_instance: dg.DagsterInstance, postgres: PostgresServer, pg_db: str) -> None:
    hours = ["2026-01-05-00:00", "2026-01-05-01:00", "2026-01-05-02:00"]
    for hour in hours:
        result = dg.materialize([location.points, location.loaded], instance=pg_instance, partition_key=hour)
        assert result.success
    assert type(pg_instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(pg_instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    done = pg_instance.get_materialized_partitions(dg.AssetKey("loaded"))
    assert done == set(hours)
    # what the instance reports is what PostgreSQL holds
    assert int(postgres.psql("select count(*) from runs", db=pg_db)) == 3
    stored = postgres.psql("select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'", db=pg_db)
    assert int(stored) == 6


def _daemon(home: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "dagster-daemon"
    workspace = home / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_file:\n      relative_path: {HERE / 'location.py'}\n      working_directory: {HERE.parents[1]}\n      location_name: orchestrator_test\n")
    full = {**os.environ, **env, "DO_NOT_TRACK": "1", "PYTHONPATH": str(HERE.parents[1])}
    return subprocess.Popen([str(exe), "run", "-w", str(workspace)], env=full, cwd=home, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait(pred, stall: float, what: str, log: Path, progress) -> None:
    """Wait until ``pred()``; fail when ``progress()`` (finished runs) has not moved for ``stall`` seconds.
    Runs are processes: on a busy machine they are slow, but a stuck queue makes no progress at all."""
    last, since = progress(), time.monotonic()
    while not pred():
        now = progress()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > stall:
            raise AssertionError(f"no progress for {stall:.0f} s waiting for {what}; daemon log:\n{log.read_text()[-3000:]}")
        time.sleep(1)


def _collection_runs(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    return list(instance.get_run_records(dg.RunsFilter(job_name="collection")))


def _sensor_cursor(instance: dg.DagsterInstance) -> int:
    states = [s for s in instance.all_instigator_state() if s.name == "new_files"]
    data = states[0].instigator_data if states else None
    return int(getattr(data, "cursor", None) or 0)


@pytest.mark.slow
def test_daemon_ticks_queues_within_limits_and_resumes_from_its_cursor_after_a_restart(
    tmp_path: Path, postgres: PostgresServer, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, env = _write_home(tmp_path, postgres, pg_db)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres.password)
    arrived = tmp_path / "arrived"
    arrived.write_text("2")  # two files at first; the rest arrive while the daemon is down
    env["CMS_TEST_ARRIVED_FILE"] = str(arrived)
    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        collected = lambda: sum(  # noqa: E731
            1 for r in _collection_runs(instance) if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        )
        daemon = _daemon(home, env, log)
        try:
            _wait(lambda: collected() >= 2, 300, "the first 2 files collected", log, collected)
        finally:
            _stop(daemon)
        cursor_before = _sensor_cursor(instance)
        keys_before = {r.dagster_run.tags.get("dagster/run_key") for r in _collection_runs(instance)}
        assert cursor_before == 2 and keys_before == {"file-0", "file-1"}

        arrived.write_text(str(location.FILES))
        daemon = _daemon(home, env, log)
        try:
            _wait(lambda: collected() >= location.FILES, 300, "every file collected", log, collected)
            scheduled = lambda: sum(  # noqa: E731
                1 for r in instance.get_run_records(dg.RunsFilter(job_name="scheduled"))
                if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            )
            _wait(lambda: scheduled() >= 1, 300, "a scheduled run", log, scheduled)
        finally:
            _stop(daemon)

        runs = _collection_runs(instance)
        keys = [r.dagster_run.tags.get("dagster/run_key") for r in runs]
        # nothing run twice: every file once, across the restart
        assert sorted(keys) == sorted(f"file-{i}" for i in range(location.FILES))
        assert keys_before <= set(keys)
        # the queue let at most one collection run at a time (CMS_DAGSTER_MAX_COLLECTION_RUNS=1)
        spans = sorted((r.start_time, r.end_time) for r in runs)
        assert all(s is not None and e is not None for s, e in spans)
        assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), spans
        assert all(r.dagster_run.tags.get("cms/pool") == "cloudwatch" for r in runs)
        ticks = instance.get_ticks(
            next(s for s in instance.all_instigator_state() if s.name == "minutely").instigator_origin_id,
            next(s for s in instance.all_instigator_state() if s.name == "minutely").selector_id,
        )
        assert any(t.status == TickStatus.SUCCESS for t in ticks)


def test_the_instance_in_use_is_what_the_settings_say(tmp_path: Path) -> None:
    embedded = settings_mod.load_orchestrator({})
    assert not embedded.production and dagster_instance.describe(embedded).startswith("embedded")
    assert "storage" not in dagster_instance.instance_config(embedded)
    prod = settings_mod.load_orchestrator(
        {"CMS_DAGSTER_STORAGE": "postgres", "DAGSTER_PG_HOST": "db", "CMS_DAGSTER_COMPUTE_LOGS_URL": "s3://logs/cms"}
    )
    cfg = dagster_instance.instance_config(prod)
    assert cfg["compute_logs"]["config"] == {"bucket": "logs", "prefix": "cms", "upload_interval": 30}
    assert cfg["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert {"key": "cms/pool", "value": "dbt", "limit": 1} in cfg["concurrency"]["runs"]["tag_concurrency_limits"]
    assert "PostgreSQL storage" in dagster_instance.describe(prod)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"CMS_DAGSTER_STORAGE": "mysql"}, r"use 'sqlite' \(embedded\) or 'postgres'"),
        ({"CMS_DAGSTER_STORAGE": "postgres"}, "needs DAGSTER_PG_HOST"),
        ({"CMS_DAGSTER_RUN_LAUNCHER": "ecs"}, "use 'local' or 'k8s'"),
        ({"CMS_DAGSTER_MAX_CONCURRENT_RUNS": "many"}, "give a positive whole number"),
        ({"CMS_DAGSTER_MAX_COLLECTION_RUNS": "0"}, "give a positive whole number"),
    ],
)
def test_wrong_orchestrator_settings_are_refused_with_what_to_do(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_mod.load_orchestrator(env)


def test_compute_logs_url_must_name_an_s3_bucket() -> None:
    o = settings_mod.load_orchestrator({"CMS_DAGSTER_COMPUTE_LOGS_URL": "/var/log/dagster"})
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        dagster_instance.instance_config(o)
