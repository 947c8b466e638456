"""dbt in Dagster: the models are assets in one lineage with the loading asset, partitioned like it, every
dbt test is an asset check, and materializing a partition loads that hour and builds its window on DuckDB."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from warehouse_helpers import ScenarioLake, dagster_dbt_target_cleanup, query

from cms_dagster import settings
from cms_dagster.defs.partitions import hourly_partitions
from cms_dagster.defs.warehouse import dbt_assets as defs_dbt
from cms_dagster.warehouse import dbt as warehouse_dbt

PARTITION = "2026-11-16-06:00"


def _resources() -> dict:
    from dagster_dbt import DbtCliResource

    from cms_dagster.resources import build_resources

    project = str(warehouse_dbt.dbt_project_dir())
    return {
        **build_resources(),
        "dbt": DbtCliResource(project_dir=project, profiles_dir=project, dbt_executable=str(warehouse_dbt.dbt_executable())),
    }


ALL_DBT = (defs_dbt.dbt_reference_assets, defs_dbt.dbt_event_assets, defs_dbt.dbt_observed_dimensions)


def test_dbt_nodes_are_assets_with_stable_keys_groups_and_partitions() -> None:
    ref, events, observed = ALL_DBT
    keys = {k.to_user_string() for a in ALL_DBT for k in a.keys}
    for name in ["dim_asset_class", "dim_job", "dim_stage", "dim_feed", "dim_resource", "dim_date", "fct_batch_runs",
                 "fct_stage_runs", "fct_feed_status", "fct_infra_metrics", "mart_sla_compliance", "mart_feed_availability",
                 "mart_batch_performance", "mart_stage_bottlenecks", "mart_stage_dependencies", "mart_metric_baselines"]:
        assert f"dbt/{name}" in keys
    groups = {**ref.group_names_by_key, **events.group_names_by_key, **observed.group_names_by_key}
    assert groups[dg.AssetKey(["dbt", "stg_cms__batch_run_events"])] == "staging"
    assert groups[dg.AssetKey(["dbt", "int_batch_runs_pivoted"])] == "intermediate"
    assert groups[dg.AssetKey(["dbt", "mart_sla_compliance"])] == "marts"
    assert groups[dg.AssetKey(["dbt", "jobs"])] == "seeds"
    assert groups[dg.AssetKey(["dbt", "dim_job"])] == "marts"
    assert events.partitions_def == hourly_partitions and ref.partitions_def is None
    # dimensions are not partitioned: the ontology's with the reference data, dim_resource on its own
    dims = {k.path[-1] for a in ALL_DBT for k in a.keys if k.path[-1].startswith("dim_")}
    assert dims == {"dim_asset_class", "dim_job", "dim_stage", "dim_feed", "dim_resource", "dim_date"}
    assert not any(k.path[-1].startswith("dim_") for k in events.keys)
    assert {k.path[-1] for k in observed.keys} == {"dim_resource"} and observed.partitions_def is None
    staging = dg.AssetKey(["dbt", "stg_cms__feed_heartbeats"])
    assert defs_dbt.SOURCE_KEY in events.asset_deps[staging]  # the loading asset feeds the staging views


def test_every_dbt_test_is_an_asset_check_on_its_model() -> None:
    manifest = json.loads(defs_dbt.MANIFEST.read_text())
    tests = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "test"}
    checks = {c.name: c.asset_key for a in ALL_DBT for c in a.check_specs}
    assert set(checks) == set(tests)
    assert checks["unique_fct_batch_runs_run_id"] == dg.AssetKey(["dbt", "fct_batch_runs"])
    assert checks["source_unique_cms_metric_points_point_id"] == defs_dbt.SOURCE_KEY
    # a fact's relationship to a dimension is checked with the fact; the observed dimension checks itself
    assert checks["relationships_fct_batch_runs_job_key__job_key__ref_dim_job_"] == dg.AssetKey(["dbt", "fct_batch_runs"])
    covers = next(n for n in checks if n.startswith("contains_every_dim_resource"))
    assert checks[covers] == dg.AssetKey(["dbt", "dim_resource"])


def test_a_partition_becomes_the_dbt_window() -> None:
    window = hourly_partitions.time_window_for_partition_key(PARTITION)
    assert defs_dbt.window_vars(window) == {"window_start": "2026-11-16T06:00:00", "window_end": "2026-11-16T07:00:00"}
    assert defs_dbt.window_vars(None) == {}


def _import_dbt_assets(project: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "DAGSTER_IS_DEV_CLI"}
    full.update(CMS_DBT_PROJECT_DIR=str(project), **env)
    return subprocess.run(
        [sys.executable, "-c", "import cms_dagster.defs.warehouse.dbt_assets"], env=full, capture_output=True, text=True
    )


@pytest.mark.slow
def test_the_code_location_fails_clearly_without_a_manifest(tmp_path: Path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(warehouse_dbt.dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    proc = _import_dbt_assets(project)
    assert proc.returncode != 0
    assert "cms dbt prepare" in proc.stderr and str(project / "target" / "manifest.json") in proc.stderr


@pytest.mark.slow
def test_dagster_dev_prepares_the_manifest_when_it_loads(tmp_path: Path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(warehouse_dbt.dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    venv_bin = str(Path(sys.executable).parent)  # as `cms demo` runs `dagster dev`: dbt on PATH
    proc = _import_dbt_assets(
        project,
        DAGSTER_IS_DEV_CLI="1",
        CMS_DUCKDB_PATH=str(tmp_path / "w.duckdb"),
        PATH=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "model.cms.mart_sla_compliance" in json.loads((project / "target" / "manifest.json").read_text())["nodes"]


@pytest.mark.slow
def test_prepare_parses_the_project_into_a_manifest(tmp_path: Path) -> None:
    copy = tmp_path / "dbt_project"
    shutil.copytree(warehouse_dbt.dbt_project_dir(), copy, ignore=shutil.ignore_patterns("target", "logs"))
    env = {**os.environ, "CMS_DBT_PROJECT_DIR": str(copy), "CMS_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    path = warehouse_dbt.prepare(env)
    assert path == copy / "target" / "manifest.json"
    assert "model.cms.mart_sla_compliance" in json.loads(path.read_text())["nodes"]


@pytest.mark.slow
def test_materializing_a_partition_loads_the_hour_and_passes_every_check(
    tmp_path: Path, scenario_lake: ScenarioLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cms_dagster.defs.warehouse.points import metric_points

    db = tmp_path / "warehouse.duckdb"
    for k in [k for k in os.environ if k.startswith(("DBT_", "SNOWFLAKE_"))]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("CMS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CMS_PROCESSED_URL", str(scenario_lake.processed))
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(db))
    monkeypatch.setenv("CMS_WAREHOUSE", "duckdb")
    resources = _resources()

    with dagster_dbt_target_cleanup():
        reference = dg.materialize([defs_dbt.dbt_reference_assets], resources=resources)
        result = dg.materialize([metric_points, defs_dbt.dbt_event_assets], partition_key=PARTITION, resources=resources)
        observed = dg.materialize([defs_dbt.dbt_observed_dimensions], resources=resources)
    assert reference.success and result.success and observed.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) >= 100
    assert [e.check_name for e in evaluations if not e.passed] == []
    # the facts' relationships to the reference dimensions ran with the facts
    assert "relationships_fct_batch_runs_job_key__job_key__ref_dim_job_" in {e.check_name for e in evaluations}
    assert [e.check_name for e in observed.get_asset_check_evaluations() if not e.passed] == []
    materialized = {e.asset_key: e.materialization for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["dbt", "mart_sla_compliance"]) in materialized and defs_dbt.SOURCE_KEY in materialized
    # column schemas and row counts, as the Dagster UI shows them
    runs = materialized[dg.AssetKey(["dbt", "fct_batch_runs"])].metadata
    columns = {c.name: c.type for c in runs["dagster/column_schema"].value.columns}
    assert "run_id" in columns and columns["run_id"].lower() in ("varchar", "text", "string")
    assert runs["dagster/row_count"].value == 1
    # only the partition's hour was loaded, and its failed run is in the marts
    assert query(db, "select min(ts) >= '2026-11-16 06:00:00', max(ts) <= '2026-11-16 07:00:00' from raw.metric_points") == [(True, True)]
    assert query(db, "select run_id, status, is_sla_breached from marts.fct_batch_runs") == [
        ("equities.corporate_actions.2026-11-16T06:00", "failed", True)
    ]
    assert query(db, "select feed_id, outage_start_ts is not null from marts.fct_feed_outages") == [("cme-mdp", True)]


def test_the_dbt_target_follows_dbt_target_then_cms_warehouse() -> None:
    def target(**env: str) -> str:
        return warehouse_dbt.dbt_target(settings.load(env))

    assert target(CMS_WAREHOUSE="snowflake") == "snowflake"
    assert target(CMS_WAREHOUSE="snowflake", DBT_TARGET="duckdb") == "duckdb"
    assert target() == "duckdb"
    with pytest.raises(ValueError, match="DBT_TARGET='bigquery'"):
        target(DBT_TARGET="bigquery")
    project = warehouse_dbt.dbt_project(settings.load({"CMS_WAREHOUSE": "snowflake"}))
    assert project.target == "snowflake" and Path(project.project_dir) == warehouse_dbt.dbt_project_dir()
    assert warehouse_dbt.dbt_executable() == Path(sys.executable).parent / "dbt"


@pytest.mark.slow
def test_a_window_reaches_dbt_at_run_time_and_keeps_the_prepared_parse(tmp_path: Path) -> None:
    copy = tmp_path / "dbt_project"
    shutil.copytree(warehouse_dbt.dbt_project_dir(), copy, ignore=shutil.ignore_patterns("target", "logs"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "SNOWFLAKE_", "CMS_DBT_WINDOW"))}
    env.update(CMS_DBT_PROJECT_DIR=str(copy), CMS_DUCKDB_PATH=str(tmp_path / "w.duckdb"), CMS_WAREHOUSE="duckdb")
    warehouse_dbt.prepare(env)
    profile_vars = json.dumps(warehouse_dbt.profile_vars(settings.load(env)))  # what every build passes
    compiled = copy / "target" / "compiled" / "cms" / "models" / "marts" / "core" / "fct_infra_metrics.sql"
    window = {settings.DBT_WINDOW_VARIABLES["window_start"]: "2026-11-16T06:00:00", settings.DBT_WINDOW_VARIABLES["window_end"]: "2026-11-16T07:00:00"}
    for extra, in_sql in (({}, False), (window, True), ({}, False)):
        proc = warehouse_dbt.run_dbt(["compile", "--select", "fct_infra_metrics", "--vars", profile_vars], {**env, **extra})
        assert "Unable to do partial parsing" not in proc.stdout + proc.stderr
        assert ("2026-11-16 07:00:00" in compiled.read_text()) is in_sql


@pytest.mark.slow  # runs `dbt --version`
def test_the_dbt_version_is_the_one_dbt_reports_without_asking_it_each_run() -> None:
    from dagster_dbt import DbtCliResource

    project = str(warehouse_dbt.dbt_project_dir())
    exe = str(warehouse_dbt.dbt_executable())
    reported = DbtCliResource(project_dir=project, dbt_executable=exe)._cli_version  # dagster-dbt: `dbt --version`
    ours = defs_dbt.CmsDbtCliResource(project_dir=project, dbt_executable=exe)
    assert ours._cli_version == reported
    assert defs_dbt._dbt_version(exe) is defs_dbt._dbt_version(exe)  # found once per process
