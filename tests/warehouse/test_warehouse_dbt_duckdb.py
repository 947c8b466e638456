"""The dbt project on DuckDB over the hand-made scenario: every dbt test passes, the star schema and the
marts say what the scenario did, building hour by hour equals building at once, and re-running a
partition changes nothing.

One module-scoped build serves every test: day 1 is loaded and built, then day 2 is loaded and built
incrementally (``dbt build``: models, data tests and unit tests); a second warehouse is built from all
the data at once; two partitions are then re-run on the first.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from warehouse_helpers import (
    ScenarioLake,
    day_keys,
    dbt_env,
    load_duckdb,
    query,
    query_dicts,
    run_dbt,
    snapshot,
)

from cms_dagster.warehouse import dbt as warehouse_dbt

pytestmark = pytest.mark.slow  # full dbt builds (module fixtures)

# seeds and models, no tests (the tests run once, in the incremental `dbt build`)
NO_TESTS = ["build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
RERUN_WINDOWS = [
    {"window_start": "2026-11-17T10:00:00", "window_end": "2026-11-17T11:00:00"},  # mid-outage of bloomberg
    {"window_start": "2026-11-18T00:00:00", "window_end": "2026-11-18T01:00:00"},  # a late run's last events
]


class Built:
    def __init__(self, incremental: Path, full: Path, build_results: dict, before_rerun: dict, after_reruns: list[dict], full_snapshot: dict):
        self.db = incremental
        self.full_db = full
        self.build_results = build_results
        self.before_rerun = before_rerun
        self.after_reruns = after_reruns
        self.full_snapshot = full_snapshot


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, scenario_lake: ScenarioLake) -> Built:
    work = tmp_path_factory.mktemp("dbt_duckdb")
    inc_db, full_db = work / "incremental.duckdb", work / "full.duckdb"
    inc_env = dbt_env(work / "inc", CMS_DUCKDB_PATH=str(inc_db))
    full_env = dbt_env(work / "full", CMS_DUCKDB_PATH=str(full_db))

    # the all-at-once warehouse builds in another process meanwhile (separate DuckDB file)
    load_duckdb(full_db, scenario_lake, scenario_lake.keys)
    project = warehouse_dbt.dbt_project_dir()
    full_proc = subprocess.Popen(
        [str(warehouse_dbt.dbt_executable()), *NO_TESTS, "--project-dir", str(project), "--profiles-dir", str(project), "--target", "duckdb"],
        cwd=project,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    day1 = day_keys(scenario_lake.keys, "2026-11-16")
    load_duckdb(inc_db, scenario_lake, day1)
    run_dbt(NO_TESTS, inc_env)
    load_duckdb(inc_db, scenario_lake, [k for k in scenario_lake.keys if k not in day1])
    results = run_dbt(["build"], inc_env)
    out, _ = full_proc.communicate(timeout=600)
    assert full_proc.returncode == 0, out[-3000:]

    before = snapshot(inc_db)
    after = []
    for window in RERUN_WINDOWS:
        run_dbt(["run", "--vars", json.dumps(window)], inc_env)
        after.append(snapshot(inc_db))
    return Built(inc_db, full_db, results, before, after, snapshot(full_db))


def test_every_dbt_test_and_unit_test_passes(built: Built) -> None:
    results = built.build_results["results"]
    kinds: dict[str, int] = {}
    for r in results:
        kind = r["unique_id"].split(".")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    failed = [r["unique_id"] for r in results if r["status"] not in ("success", "pass")]
    assert failed == []
    assert kinds.get("test", 0) >= 150
    assert kinds.get("unit_test", 0) >= 5
    assert kinds.get("model", 0) >= 30


def test_batch_runs_say_what_each_run_did(built: Built, scenario_lake: ScenarioLake, ontology) -> None:
    truth = scenario_lake.scenario.truth_runs(ontology)
    rows = {r["run_id"]: r for r in query_dicts(built.db, "select * from marts.fct_batch_runs")}
    assert set(rows) == set(truth)
    for run_id, t in truth.items():
        row = rows[run_id]
        assert row["status"] == t["status"], run_id
        assert row["is_sla_breached"] == t["breached"], run_id
        assert row["is_on_time"] == t["on_time"], run_id
        assert row["sla_deadline_ts"] == t["deadline"].replace(tzinfo=None), run_id
    late = rows["derivatives.eod_valuation.2026-11-17T22:00"]
    assert late["actual_end_ts"] == dt.datetime(2026, 11, 18, 0, 8) and late["duration_s"] == pytest.approx(7620)
    failed = rows["equities.corporate_actions.2026-11-16T06:00"]
    assert failed["error_type"] == "DataQualityError" and failed["records"] == 0
    delayed = rows["equities.corporate_actions.2026-11-17T06:00"]
    assert delayed["start_delay_s"] == pytest.approx(540)
    assert delayed["records_per_minute"] == pytest.approx(40_000 / 31)


def test_stage_attempts_keep_retries_and_final_attempts(built: Built, scenario_lake: ScenarioLake) -> None:
    expected = sum(len(r.attempts) for r in scenario_lake.scenario.runs)
    rows = query_dicts(built.db, "select * from marts.fct_stage_runs")
    assert len(rows) == expected
    enrichment = sorted(
        (r for r in rows if r["run_id"] == "equities.corporate_actions.2026-11-16T06:00" and r["stage_id"] == "enrichment"),
        key=lambda r: r["attempt"],
    )
    assert [(r["attempt"], r["retries"], r["status"], r["is_final_attempt"]) for r in enrichment] == [
        (1, 0, "failed", False),
        (2, 1, "failed", False),
        (3, 2, "failed", True),
    ]
    running = [r for r in rows if r["status"] == "running"]
    assert [(r["run_id"], r["stage_id"]) for r in running] == [("fx.spot_rates_snapshot.2026-11-17T14:05", "publication")]


def test_a_dependency_the_ontology_does_not_know_is_flagged(built: Built) -> None:
    flagged = query(
        built.db,
        "select stage_key from marts.fct_stage_runs where not depends_on_matches_ontology",
    )
    assert flagged == [("equities.intraday_risk.publication",)]
    edges = query(
        built.db,
        "select stage_key, depends_on_stage_id, agreement from marts.mart_stage_dependencies "
        "where agreement = 'undeclared_in_ontology'",
    )
    assert edges == [("equities.intraday_risk.publication", "transformation", "undeclared_in_ontology")]
    confirmed = query(
        built.db,
        "select count(*) from marts.mart_stage_dependencies where job_key = 'derivatives.eod_valuation' and agreement = 'confirmed'",
    )
    assert confirmed == [(7,)]  # the seven edges of its stage DAG, all declared by the emitter


def test_feed_outages_match_the_scenario(built: Built, scenario_lake: ScenarioLake) -> None:
    rows = query(
        built.db,
        "select feed_id, outage_start_ts, outage_end_ts, duration_minutes, is_ongoing from marts.fct_feed_outages order by 2",
    )
    expected = [
        (f, a.replace(tzinfo=None), b.replace(tzinfo=None), int((b - a).total_seconds() // 60))
        for f, a, b in sorted(scenario_lake.scenario.outages, key=lambda o: o[1])
    ]
    assert [r[:4] for r in rows] == expected
    assert [r[4] for r in rows] == [False, False, True]  # the last one is still down at the latest heartbeat


def test_feed_availability_splits_an_outage_across_hours(built: Built) -> None:
    rows = query_dicts(
        built.db,
        "select * from marts.mart_feed_availability where feed_id = 'bloomberg-bpipe' "
        "and hour_ts in ('2026-11-17 10:00:00', '2026-11-17 11:00:00') order by hour_ts",
    )
    assert [(r["minutes_up"], r["minutes_down"], r["outages"]) for r in rows] == [(50, 10, 1), (50, 10, 1)]
    assert rows[0]["availability_pct"] == pytest.approx(100 * 50 / 60)
    assert rows[0]["first_outage_start_ts"] == dt.datetime(2026, 11, 17, 10, 50)
    assert rows[1]["last_outage_end_ts"] == dt.datetime(2026, 11, 17, 11, 10)
    assert rows[0]["longest_outage_minutes"] == 20
    assert rows[0]["latency_p50_ms"] is not None and rows[0]["latency_p99_ms"] >= rows[0]["latency_p50_ms"]
    quiet = query(
        built.db,
        "select count(*), min(availability_pct) from marts.mart_feed_availability "
        "where feed_id = 'bloomberg-bpipe' and outages = 0",
    )
    assert quiet == [(46, 100.0)]


def test_sla_compliance_counts_runs_breaches_and_on_time(built: Built) -> None:
    rows = {
        (str(r["run_date"]), r["job_key"]): r
        for r in query_dicts(built.db, "select * from marts.mart_sla_compliance")
    }
    assert len(rows) == 6
    tue = rows[("2026-11-17", "derivatives.eod_valuation")]
    assert (tue["runs"], tue["breaches"], tue["on_time_runs"], tue["on_time_pct"]) == (1, 1, 0, 0.0)
    assert (tue["baseline_7d_runs"], tue["baseline_7d_on_time_pct"]) == (1, 100.0)
    assert tue["baseline_7d_p50_duration_s"] == pytest.approx(4500)  # Monday's run, 22:01 -> 23:16
    mon = rows[("2026-11-16", "equities.corporate_actions")]
    assert (mon["runs"], mon["failed_runs"], mon["breaches"], mon["on_time_pct"]) == (1, 1, 1, 0.0)
    fx = rows[("2026-11-17", "fx.spot_rates_snapshot")]
    assert (fx["running_runs"], fx["breaches"]) == (1, 1)


def test_batch_performance_rates_by_asset_class(built: Built) -> None:
    rows = {
        (str(r["run_date"]), r["asset_class_id"]): r
        for r in query_dicts(built.db, "select * from marts.mart_batch_performance")
    }
    mon_eq = rows[("2026-11-16", "equities")]
    assert (mon_eq["runs"], mon_eq["successful_runs"], mon_eq["failed_runs"]) == (2, 1, 1)
    assert mon_eq["failure_rate_pct"] == pytest.approx(50.0)
    assert mon_eq["records_per_minute"] == pytest.approx(350_000 / 13.5)  # the successful run took 13.5 min
    tue_der = rows[("2026-11-17", "derivatives")]
    assert tue_der["duration_index"] == pytest.approx(7620 / 4500)  # against Monday's run of the same job


def test_critical_path_goes_through_the_stage_that_finished_last(built: Built) -> None:
    rows = query_dicts(
        built.db,
        "select * from marts.mart_stage_bottlenecks where run_id = 'derivatives.eod_valuation.2026-11-16T22:00' order by stage_id",
    )
    by_stage = {r["stage_id"]: r for r in rows}
    assert by_stage["publication"]["critical_path"] == "ingest > validation > enrichment > valuation > loading > publication"
    assert not by_stage["aggregation"]["is_on_critical_path"]
    assert by_stage["valuation"]["critical_path_position"] == 4
    assert sum(r["share_of_critical_path_pct"] or 0 for r in rows) == pytest.approx(100.0)
    retried = query_dicts(
        built.db,
        "select * from marts.mart_stage_bottlenecks where run_id = 'derivatives.eod_valuation.2026-11-17T22:00' and stage_id = 'valuation'",
    )[0]
    assert retried["attempts"] == 2 and retried["is_slower_than_baseline"]  # 84 min against Monday's 35
    assert retried["baseline_samples"] == 1


def test_infra_metrics_keep_the_latest_delivery_and_unknown_resources(built: Built, scenario_lake: ScenarioLake) -> None:
    dup = scenario_lake.scenario.duplicate_point
    rows = query(
        built.db,
        "select avg_value, sample_count from marts.fct_infra_metrics "
        "where entity_id = 'rds:positions-db' and metric = 'CPUUtilization' and minute_ts = '2026-11-16 00:00:00'",
    )
    assert rows == [(dup["avg"], 1.0)]
    p99 = query(built.db, "select count(*), min(p99_value) > 0 from marts.fct_infra_metrics where metric = 'Duration'")
    assert p99 == [(2880, True)]
    res = query_dicts(built.db, "select * from marts.dim_resource where resource_id in ('rds:positions-db', 'sqs:audit-trail') order by 1")
    assert res[0]["configured_max_connections"] == 800 and res[0]["in_ontology"]
    assert res[1]["resource_kind"] == "sqs" and not res[1]["in_ontology"]


def test_baselines_have_median_and_mad_per_hour_of_week(built: Built) -> None:
    rows = query_dicts(
        built.db,
        "select * from marts.mart_metric_baselines where entity_id = 'lambda:publication-notifier' and hour_of_week = 10",
    )
    assert len(rows) == 1
    row = rows[0]
    assert row["samples"] == 60 and row["iso_day_of_week"] == 1 and row["hour_of_day"] == 10
    # minute values 20 + (i % 10): median 24.5, absolute deviations 0.5..4.5 -> MAD 2.5
    assert row["median_value"] == pytest.approx(24.5) and row["mad_value"] == pytest.approx(2.5)
    kinds = {r[0] for r in query(built.db, "select distinct split_part(entity_id, ':', 1) from marts.mart_metric_baselines")}
    assert kinds == {"rds", "lambda", "sqs", "feed", "job", "stage"}


def test_building_hour_by_hour_equals_building_at_once(built: Built) -> None:
    for table, rows in built.full_snapshot.items():
        assert built.before_rerun[table] == rows, f"{table}: incremental build differs from the full build"


@pytest.mark.parametrize("i", range(len(RERUN_WINDOWS)))
def test_rerunning_a_partition_changes_nothing(built: Built, i: int) -> None:
    for table, rows in built.before_rerun.items():
        assert built.after_reruns[i][table] == rows, f"{table} changed when {RERUN_WINDOWS[i]} was re-run"
