"""Warehouses for the dashboard tests, built through the product's own path.

``build_scenario_warehouse`` takes the warehouse tests' hand-made estate history (two days: an on-time
run, a late run with a retry, a run failed after retries, a run still running past its deadline, two
feeds with outages, CloudWatch series), flattens it to processed Parquet, loads it with the DuckDB loader
and builds the marts with dbt. ``add_alarms`` writes detector alarms around the first outage, as the
anomaly asset would, so the incidents page has a confirmed episode to rank. ``empty_marts`` gives a
warehouse whose marts exist but hold nothing yet (a new estate).
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "warehouse"))

import warehouse_scenario as scenario  # noqa: E402
from warehouse_helpers import ScenarioLake, dbt_env, load_duckdb, run_dbt  # noqa: E402

from cms_dagster.domain import load_ontology  # noqa: E402

PAGES = ["overview", "feeds", "batches", "stages", "incidents", "ask"]
NO_TESTS = ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
START = scenario.START.replace(tzinfo=None)
OUTAGE = pd.Timestamp(scenario.default_scenario().outages[0][1]).tz_localize(None)  # cme-mdp, day 1 05:45
RUNNING_RUN = "fx.spot_rates_snapshot.2026-11-17T14:05"
FAILED_RUN = "equities.corporate_actions.2026-11-16T06:00"


def build_scenario_warehouse(work: Path) -> Path:
    """The scenario's marts in ``work/warehouse.duckdb`` (dbt models and seeds, no data tests)."""
    work.mkdir(parents=True, exist_ok=True)
    ont = load_ontology()
    sc = scenario.default_scenario()
    processed = work / "processed"
    keys = scenario.write_processed(sc, ont, processed)
    db = work / "warehouse.duckdb"
    load_duckdb(db, ScenarioLake(sc, processed, keys), keys)
    run_dbt(NO_TESTS, dbt_env(work / "dbt", CMS_DUCKDB_PATH=str(db)))
    return db


def add_alarms(db: Path) -> None:
    """Alarms on the cme-mdp feed and the job that needs it, in the first minutes of its outage."""
    rows = pd.DataFrame(
        {
            "ts": [OUTAGE + pd.Timedelta(minutes=m) for m in (1, 2, 6)],
            "entity_id": ["feed:cme-mdp", "feed:cme-mdp", "job:derivatives.eod_valuation"],
            "series": ["feed:cme-mdp|cms.feed.messages", "feed:cme-mdp|cms.feed.staleness",
                       "job:derivatives.eod_valuation|cms.batch.run.start_delay"],
            "metric": ["cms.feed.messages", "cms.feed.staleness", "cms.batch.run.start_delay"],
            "score": [0.97, 0.95, 0.8],
            "kind": ["dip", "spike", "late"],
            "is_alarm": [True, True, True],
            "source": ["fct_feed_status", "fct_feed_status", "fct_batch_runs"],
            "observed": [0.0, 300.0, 900.0],
            "baseline": [3000.0, 1.0, 0.0],
        }
    )
    con = duckdb.connect(str(db))
    try:
        con.execute("create schema if not exists intelligence")
        con.register("incoming", rows)
        con.execute("create or replace table intelligence.anomalies as select * from incoming")
    finally:
        con.close()


def add_incident_reports(db: Path, home: Path) -> list[dict]:
    """Incident reports of the confirmed episodes, written as the incident_report asset does (offline narrative)."""
    from cms_dagster import settings as settings_mod
    from cms_dagster.incidents.run import update_reports
    from cms_dagster.lake import Lake
    from cms_dagster.llm import from_settings as llm_from_settings
    from cms_dagster.warehouse.client import Warehouse

    s = settings_mod.load({"CMS_HOME": str(home), "CMS_DUCKDB_PATH": str(db)})
    until = (OUTAGE + pd.Timedelta(hours=2)).tz_localize("UTC")
    return update_reports(Warehouse(s), Lake.from_settings(s).archive, load_ontology(), llm_from_settings(s),
                          (OUTAGE - pd.Timedelta(hours=1)).tz_localize("UTC").to_pydatetime(), until)


def empty_marts(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose marts and intelligence tables exist with no rows."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(dst))
    try:
        con.execute(f"attach '{src}' as src (read_only)")
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = 'src' and table_schema in ('marts', 'intelligence') and table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, name in tables:
            con.execute(f"create schema if not exists {schema}")
            con.execute(f"create table {schema}.{name} as select * from src.{schema}.{name} limit 0")
        con.execute("detach src")
    finally:
        con.close()
    return dst
