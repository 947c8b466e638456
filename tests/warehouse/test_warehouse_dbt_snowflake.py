"""The Dagster + dbt code path on the Snowflake target, through fakesnow (server mode, HTTP) as far as it
goes: the setup SQL that fakesnow accepts, the loading asset (PUT, COPY INTO a transient table, QUALIFY,
MERGE), the dbt seeds and models with every data test as a passing asset check, and an incremental
re-run of the same partitions (MERGE into existing tables) that changes nothing.

Not covered here, because fakesnow cannot: COPY from S3, warehouses, roles and grants (see
test_warehouse_snowflake_setup.py), dbt unit tests (temporary tables in a database; they run on DuckDB) and
column comments (persist_docs is off on a local stand-in)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
import snowflake.connector
from warehouse_helpers import ScenarioLake, apply_fakesnow_subset, dagster_dbt_target_cleanup

from cms_dagster.defs.warehouse import dbt_assets as defs_dbt
from cms_dagster.warehouse import dbt as warehouse_dbt
from cms_harness import fakesnow_server

# The module builds the whole dbt project on fakesnow once (minutes): every test here is slow.
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.slow]

RANGE = ("2026-11-16-05:00", "2026-11-16-07:00")  # the cme-mdp outage and the failed corporate-actions run
MARTS = ["FCT_BATCH_RUNS", "FCT_STAGE_RUNS", "FCT_FEED_STATUS", "FCT_FEED_OUTAGES", "FCT_INFRA_METRICS", "MART_SLA_COMPLIANCE",
         "MART_FEED_AVAILABILITY", "MART_STAGE_BOTTLENECKS", "MART_METRIC_BASELINES"]


class OnSnowflake:
    def __init__(self, conn: Any, runs: list[dg.ExecuteInProcessResult], before: dict, after: dict) -> None:
        self.conn = conn
        self.runs = runs
        self.before = before
        self.after = after

    def rows(self, sql: str) -> list[tuple]:
        cur = self.conn.cursor()
        cur.execute(sql)
        return cur.fetchall()


def _snapshot(conn: Any) -> dict[str, list]:
    cur = conn.cursor()
    out = {}
    for t in MARTS:
        cur.execute(f"select * from CMS.MARTS.{t}")
        cols = [d[0].upper() for d in cur.description]
        keep = [i for i, c in enumerate(cols) if c != "WATERMARK_TS"]
        out[t] = sorted((tuple(r[i] for i in keep) for r in cur.fetchall()), key=repr)
    return out


@pytest.fixture(scope="module")
def on_snowflake(scenario_lake: ScenarioLake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnSnowflake]:
    from dagster_dbt import DbtCliResource

    from cms_dagster.defs.warehouse.points import metric_points
    from cms_dagster.resources import build_resources

    with fakesnow_server.server() as params, pytest.MonkeyPatch.context() as mp, dagster_dbt_target_cleanup():
        env = {
            "SNOWFLAKE_ACCOUNT": params["account"],
            "SNOWFLAKE_USER": params["user"],
            "SNOWFLAKE_PASSWORD": params["password"],
            "SNOWFLAKE_HOST": params["host"],
            "SNOWFLAKE_PORT": str(params["port"]),
            "SNOWFLAKE_PROTOCOL": params["protocol"],
            "SNOWFLAKE_DATABASE": "CMS",
            "CMS_WAREHOUSE": "snowflake",
            "CMS_HOME": str(tmp_path_factory.mktemp("home")),
            "CMS_PROCESSED_URL": str(scenario_lake.processed),
            "DO_NOT_TRACK": "1",
        }
        mp.delenv("DBT_TARGET", raising=False)
        for k, v in env.items():
            mp.setenv(k, v)
        conn = snowflake.connector.connect(**{k: v for k, v in params.items() if k != "session_parameters"}, database="CMS")
        apply_fakesnow_subset(conn)
        project = str(warehouse_dbt.dbt_project_dir())
        resources = {
            **build_resources(),
            "dbt": DbtCliResource(project_dir=project, profiles_dir=project, dbt_executable=str(warehouse_dbt.dbt_executable())),
        }
        tags = {"dagster/asset_partition_range_start": RANGE[0], "dagster/asset_partition_range_end": RANGE[1]}
        runs = [dg.materialize([defs_dbt.dbt_reference_assets], resources=resources)]
        runs.append(dg.materialize([metric_points, defs_dbt.dbt_event_assets], resources=resources, tags=tags))
        before = _snapshot(conn)
        runs.append(dg.materialize([metric_points, defs_dbt.dbt_event_assets], resources=resources, tags=tags))
        runs.append(dg.materialize([defs_dbt.dbt_observed_dimensions], resources=resources))
        yield OnSnowflake(conn, runs, before, _snapshot(conn))
        conn.close()


def test_every_run_succeeds_and_every_check_passes(on_snowflake: OnSnowflake) -> None:
    assert [r.success for r in on_snowflake.runs] == [True, True, True, True]
    evaluations = [e for r in on_snowflake.runs for e in r.get_asset_check_evaluations()]
    assert len(evaluations) >= 150
    assert [e.check_name for e in evaluations if not e.passed] == []


def test_the_loading_asset_merged_three_hours_once(on_snowflake: OnSnowflake) -> None:
    rows = on_snowflake.rows(
        "select count(*), count(distinct point_id), min(dt || ' ' || hour), max(dt || ' ' || hour) from CMS.RAW.METRIC_POINTS"
    )
    total, distinct, first, last = rows[0]
    assert total == distinct > 0
    assert (first, last) == ("2026-11-16 5", "2026-11-16 7")


def test_the_marts_on_snowflake_say_what_happened(on_snowflake: OnSnowflake) -> None:
    assert on_snowflake.rows("select run_id, status, is_sla_breached, error_type from CMS.MARTS.FCT_BATCH_RUNS") == [
        ("equities.corporate_actions.2026-11-16T06:00", "failed", True, "DataQualityError")
    ]
    outage = on_snowflake.rows("select feed_id, outage_start_ts, outage_end_ts, duration_minutes from CMS.MARTS.FCT_FEED_OUTAGES")
    assert [(f, str(a), str(b), m) for f, a, b, m in outage] == [("cme-mdp", "2026-11-16 05:45:00", "2026-11-16 06:25:00", 40)]
    compliance = on_snowflake.rows("select job_key, runs, breaches, on_time_pct from CMS.MARTS.MART_SLA_COMPLIANCE")
    assert compliance == [("equities.corporate_actions", 1, 1, 0.0)]


def test_rerunning_the_partitions_changes_nothing(on_snowflake: OnSnowflake) -> None:
    for table, rows in on_snowflake.before.items():
        assert rows, f"{table} is empty"
        assert on_snowflake.after[table] == rows, f"{table} changed on re-run"
