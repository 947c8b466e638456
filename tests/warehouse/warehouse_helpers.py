"""Helpers of the warehouse tests: DuckDB loading (through the product's loader), dbt invocations isolated in
a temporary target and log folder, mart snapshots, and the Snowflake setup statements fakesnow accepts."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import warehouse_scenario as scenario

from cms_dagster import lake as lake_mod
from cms_dagster.warehouse import dbt as warehouse_dbt
from cms_dagster.warehouse import duckdb_load
from cms_dagster.warehouse.loading import LoadReport

MART_TABLES = [
    "fct_batch_runs",
    "fct_stage_runs",
    "fct_feed_status",
    "fct_feed_outages",
    "fct_infra_metrics",
    "dim_resource",
    "dim_job",
    "dim_stage",
    "mart_sla_compliance",
    "mart_feed_availability",
    "mart_batch_performance",
    "mart_stage_bottlenecks",
    "mart_stage_dependencies",
    "mart_metric_baselines",
]
# bookkeeping columns that record when a row was computed, not what it says
VOLATILE_COLUMNS = {"watermark_ts"}


@dataclass
class ScenarioLake:
    scenario: scenario.Scenario
    processed: Path
    keys: list[str]

    @property
    def zone(self) -> lake_mod.Zone:
        return lake_mod.Zone(str(self.processed))


def dbt_env(work: Path, **extra: str) -> dict[str, str]:
    """Environment of a dbt run writing its target/ and logs/ under ``work`` (not into the project)."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("SNOWFLAKE_", "DBT_")) or k in ("CMS_WAREHOUSE", "CMS_DUCKDB_PATH"):
            env.pop(k)
    env.update(
        DO_NOT_TRACK="1",
        DBT_TARGET_PATH=str(work / "target"),
        DBT_LOG_PATH=str(work / "logs"),
        DBT_TARGET="duckdb",
    )
    env.update(extra)
    return env


def run_dbt(args: list[str], env: dict[str, str], expect_success: bool = True) -> dict[str, Any]:
    """Run dbt and return its run_results.json; fail the test with dbt's own messages when it fails."""
    proc = warehouse_dbt.run_dbt(args, env, check=False)
    results_path = Path(env["DBT_TARGET_PATH"]) / "run_results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"results": []}
    if expect_success and proc.returncode != 0:
        bad = [
            f"{r['unique_id']}: {r['status']} {str(r.get('message') or '')[:300]}"
            for r in results["results"]
            if r["status"] not in ("success", "pass")
        ]
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        pytest.fail(f"dbt {' '.join(args)} failed:\n" + "\n".join(bad[:20]) + f"\n--- output ---\n{tail}")
    return results


def load_duckdb(db: Path, lake: ScenarioLake, keys: list[str]) -> LoadReport:
    con = duckdb_load.connect(db)
    try:
        return duckdb_load.load_keys(con, lake.zone, keys)
    finally:
        con.close()


def query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def query_dicts(db: Path, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row, strict=False)) for row in cur.fetchall()]
    finally:
        con.close()


def snapshot(db: Path, tables: list[str] = MART_TABLES) -> dict[str, list[tuple]]:
    """Every row of the marts (volatile bookkeeping columns left out), sorted, per table."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for t in tables:
            cols = [r[0] for r in con.execute(f"describe marts.{t}").fetchall() if r[0] not in VOLATILE_COLUMNS]
            rows = con.execute(f"select {', '.join(cols)} from marts.{t}").fetchall()
            out[t] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


def day_keys(keys: list[str], day: str) -> list[str]:
    return [k for k in keys if f"/dt={day}/" in k]


# ---- Snowflake setup statements that fakesnow accepts -----------------------------------------------
SETUP_VARIABLES = {
    "DATABASE": "CMS",
    "RAW_URL": "s3://acme-cms-raw/",
    "PROCESSED_URL": "s3://acme-cms-processed/",
    "S3_ROLE_ARN": "arn:aws:iam::123456789012:role/cms-snowflake",
}
FAKESNOW_FILES = ("10_database.sql", "30_file_formats.sql", "40_stages.sql", "50_tables.sql")


def apply_fakesnow_subset(conn: Any) -> int:
    """Run the setup statements fakesnow accepts (database, schemas, formats, stages, tables)."""
    from cms_dagster.warehouse import snowflake_setup

    n = 0
    cur = conn.cursor()
    for st in snowflake_setup.load_statements(SETUP_VARIABLES):
        if st.file in FAKESNOW_FILES and not st.sql.upper().startswith("USE ROLE"):
            cur.execute(st.sql)
            n += 1
    return n


@contextmanager
def dagster_dbt_target_cleanup() -> Iterator[None]:
    """Remove the per-invocation folders dagster-dbt leaves in dbt_project/target/ during a test."""
    target = warehouse_dbt.dbt_project_dir() / "target"
    before = set(target.iterdir()) if target.exists() else set()
    try:
        yield
    finally:
        for p in (set(target.iterdir()) if target.exists() else set()) - before:
            if p.is_dir() and p.name.startswith(("dbt_events-", "dbt_reference-")):
                shutil.rmtree(p, ignore_errors=True)
