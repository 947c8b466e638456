"""The marts against the simulator's ground truth: one simulated day with a feed outage, a stage that
fails on every retry and an exhausted connection pool goes raw zone -> processed Parquet -> DuckDB ->
dbt build, and the runs, failures, SLA breaches, stage attempts and outages in the marts equal the
simulator's truth CSVs exactly."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from warehouse_helpers import dbt_env, query, query_dicts, run_dbt

from cms_dagster import lake as lake_mod
from cms_dagster.domain import Ontology
from cms_dagster.lake import Lake, Zone
from cms_dagster.lake.processing import process_hour
from cms_dagster.simulate.incidents import Incident
from cms_dagster.simulate.run import simulate
from cms_dagster.warehouse import duckdb_load

pytestmark = pytest.mark.slow  # full dbt builds (module fixtures)

START = dt.datetime(2026, 11, 16, tzinfo=dt.timezone.utc)  # a Monday


def _incidents() -> list[Incident]:
    m = dt.timedelta(minutes=1)
    return [
        Incident("feed_outage", "feed:cme-mdp", START + 345 * m, START + 385 * m),
        Incident("job_failure", "stage:equities.corporate_actions.enrichment", START + 355 * m, START + 400 * m),
        Incident("connection_pool_exhaustion", "rds:positions-db", START + 1275 * m, START + 1335 * m),
    ]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _ts(s: str) -> dt.datetime:
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")


def _second(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t.replace(microsecond=0)


class Simulated:
    def __init__(self, db: Path, truth: Path, results: dict) -> None:
        self.db = db
        self.runs = _read_csv(truth / "batch_runs.csv")
        self.stages = _read_csv(truth / "stage_runs.csv")
        self.outages = _read_csv(truth / "feed_outages.csv")
        self.results = results


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory, ontology: Ontology) -> Simulated:
    root = tmp_path_factory.mktemp("simulated")
    lake = Lake(Zone(str(root / "raw")), Zone(str(root / "processed")), Zone(str(root / "archive")))
    res = simulate(ontology, lake, days=1, seed=7, start=START, incidents=_incidents())
    hours = sorted({(p["dt"], p["hour"]) for p in map(lake_mod.parse_raw_key, res.raw_keys)})
    db = root / "warehouse.duckdb"
    con = duckdb_load.connect(db)
    try:
        for day, hour in hours:
            process_hour(lake, day, hour)
            duckdb_load.load_hour(con, lake.processed, day, hour)
    finally:
        con.close()
    results = run_dbt(["build"], dbt_env(root / "dbt", CMS_DUCKDB_PATH=str(db)))
    return Simulated(db, root / "archive" / "simulations" / f"seed-{7}" / "truth", results)


def test_the_build_passes_every_dbt_test(simulated: Simulated) -> None:
    assert [r["unique_id"] for r in simulated.results["results"] if r["status"] not in ("success", "pass")] == []


def test_runs_failures_and_breaches_equal_the_truth(simulated: Simulated) -> None:
    truth = {r["run_id"]: r for r in simulated.runs}
    rows = {r["run_id"]: r for r in query_dicts(simulated.db, "select * from marts.fct_batch_runs")}
    assert set(rows) == set(truth)
    assert sum(r["status"] == "failed" for r in rows.values()) == sum(t["status"] == "failed" for t in truth.values()) > 0
    assert sum(r["is_sla_breached"] for r in rows.values()) == sum(t["sla_breached"] == "true" for t in truth.values()) > 0
    for run_id, t in truth.items():
        r = rows[run_id]
        assert r["status"] == t["status"], run_id
        assert (r["error_type"] or "") == t["error_type"], run_id
        assert r["is_sla_breached"] == (t["sla_breached"] == "true"), run_id
        assert r["scheduled_start_ts"] == _ts(t["scheduled_start"]), run_id
        assert _second(r["actual_start_ts"]) == _ts(t["start"]), run_id
        assert _second(r["actual_end_ts"]) == _ts(t["end"]), run_id
        assert r["sla_deadline_ts"] == _ts(t["sla_deadline"]), run_id
        assert r["records"] == int(t["records"]) and r["bytes"] == int(t["bytes"]), run_id


def test_sla_compliance_totals_equal_the_truth(simulated: Simulated) -> None:
    truth_runs = Counter((r["scheduled_start"][:10], f"{r['asset_class']}.{r['job']}") for r in simulated.runs)
    truth_breaches = Counter(
        (r["scheduled_start"][:10], f"{r['asset_class']}.{r['job']}") for r in simulated.runs if r["sla_breached"] == "true"
    )
    rows = query(simulated.db, "select cast(run_date as varchar), job_key, runs, breaches, failed_runs from marts.mart_sla_compliance")
    assert {(d, j): n for d, j, n, _, _ in rows} == dict(truth_runs)
    assert {(d, j): b for d, j, _, b, _ in rows if b} == dict(truth_breaches)
    assert sum(f for *_, f in rows) == sum(r["status"] == "failed" for r in simulated.runs)


def test_stage_attempts_equal_the_truth(simulated: Simulated) -> None:
    truth = {(r["run_id"], r["stage"], int(r["attempt"])): r for r in simulated.stages}
    rows = {
        (r["run_id"], r["stage_id"], r["attempt"]): r
        for r in query_dicts(simulated.db, "select * from marts.fct_stage_runs")
    }
    assert set(rows) == set(truth)
    for key, t in truth.items():
        r = rows[key]
        assert (r["status"], r["error_type"] or "", r["records"]) == (t["status"], t["error_type"], int(t["records"])), key
        assert _second(r["started_ts"]) == _ts(t["start"]) and _second(r["finished_ts"]) == _ts(t["end"]), key
    retried = [k for k in truth if k[2] > 1]
    assert retried, "the scenario should include retries"


def test_feed_outages_equal_the_truth(simulated: Simulated) -> None:
    rows = query(
        simulated.db,
        "select feed_id, outage_start_ts, outage_end_ts, duration_minutes from marts.fct_feed_outages order by 1, 2",
    )
    expected = sorted((o["feed"], _ts(o["start"]), _ts(o["end"]), int(o["minutes"])) for o in simulated.outages)
    assert rows == expected and len(rows) == 1
    down = query(
        simulated.db,
        "select sum(minutes_down) from marts.mart_feed_availability where feed_id = 'cme-mdp'",
    )
    assert down == [(40,)]
