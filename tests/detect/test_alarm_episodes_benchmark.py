"""benchmarks/alarm_episodes.py runs end to end on a small kept build made here (a warehouse file with a few
alarms and the simulator's labels), the layout benchmarks/rca_eval.py --keep leaves."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.benchmark_modules import benchmark_module

T0 = pd.Timestamp("2026-11-16T00:00:00")  # naive UTC, as the warehouse stores it


@pytest.fixture
def bench():
    with benchmark_module("alarm_episodes") as module:
        yield module


def make_build(home: Path, extra: list[dict] | None = None, job_starts: list[tuple] | None = None) -> None:
    """96 hours of data; one incident on a stage at hour 10 with alarms on the stage and its job (related in
    the ontology: a confirmed episode), one lone weak alarm at hour 30 (not confirmed), and a confirmed
    episode every evening at 20:00 (the schedule from the third evening on)."""
    rows = [
        (T0 + pd.Timedelta(hours=10, minutes=2), "stage_duration", "stage:equities.eod_pricing.ingest", 0.7),
        (T0 + pd.Timedelta(hours=10, minutes=9), "job_duration", "job:equities.eod_pricing", 0.8),
        (T0 + pd.Timedelta(hours=30), "feed_latency", "feed:nyse-pillar", 0.6),
    ]
    for day in range(4):  # a batch window: the db and a stage using it alarm together every day at 20:00
        at = T0 + pd.Timedelta(days=day, hours=20)
        rows += [
            (at, "cpu", "rds:positions-db", 0.7),
            (at + pd.Timedelta(minutes=4), "stage_duration", "stage:equities.eod_pricing.loading", 0.7),
        ]
    alarms = pd.DataFrame(rows, columns=["ts", "series", "entity_id", "score"]).assign(
        kind="spike", is_alarm=True, observed=1.0, baseline=0.0
    )
    alarms["metric"] = alarms["series"]
    minutes = pd.DataFrame({"minute_ts": [T0, T0 + pd.Timedelta(hours=96)]})
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("create schema intelligence; create schema marts")
    con.register("a", alarms)
    con.register("m", minutes)
    con.execute("create table intelligence.anomalies as select * from a")
    con.execute("create table marts.fct_infra_metrics as select * from m")
    if job_starts is not None:
        con.register("r", pd.DataFrame(job_starts, columns=["job_key", "actual_start_ts"]))
        con.execute("create table marts.fct_batch_runs as select * from r")
    con.close()
    labels = {
        "incidents": [
            {
                "start": (T0 + pd.Timedelta(hours=10)).isoformat() + "Z",
                "end": (T0 + pd.Timedelta(hours=10, minutes=30)).isoformat() + "Z",
                "kind": "job_failure",
                "root_cause": "stage:equities.eod_pricing.ingest",
                "affected_jobs": ["job:equities.eod_pricing"],
                "affected_stages": [],
                "affected_resources": [],
                "affected_feeds": [],
            },
            *(extra or []),
        ]
    }
    sim = home / "lake" / "archive" / "simulations" / "s1"
    sim.mkdir(parents=True)
    (sim / "labels.json").write_text(json.dumps(labels))


def test_benchmark_counts_alarms_episodes_and_found_incidents(bench, tmp_path, capsys) -> None:
    make_build(tmp_path)
    assert bench.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(1 incidents, 96 hours of data)" in out
    assert "whole month: 11 alarms" in out and "6 episodes, 5 confirmed" in out
    assert "incidents with a confirmed episode in their window: 1/1" in out
    assert "includes the root or an affected entity: 1/1" in out
    outside = out.split("outside the incidents' windows")[1]
    assert outside.split("alarms")[0].strip().endswith("9")  # the lone alarm and the eight evening ones
    assert "4 confirmed episodes" in outside
    # without the schedule the third and fourth evenings drop out: 2 of 4 outside
    assert "without the schedule" in out and "3 confirmed; outside the incidents' windows 2 = " in out
    assert "incidents with one in their window: 1/1" in out
    headline = out.split("headline")[1]
    assert "confirmed episodes per day: 0.8" in headline  # 3 in 4 days
    assert "injected incidents detected: 1/1 (100%); job failures 1/1" in headline
    assert "false episodes per day (outside every incident's window): 0.5" in headline  # 2 in ~95.6 h


def test_benchmark_explains_a_directory_that_is_not_a_kept_build(bench, tmp_path, capsys) -> None:
    assert bench.main([str(tmp_path)]) == 2
    assert "is not a kept rca_eval build" in capsys.readouterr().err


def test_benchmark_describes_an_incident_it_missed(bench, tmp_path, capsys) -> None:
    """A volume spike on a feed with only the lone weak alarm at hour 30 is missed: the line says how high its
    own entities scored, and how many runs of the jobs that read the feed began while it lasted."""
    surge = {
        "id": "inc-002",
        "start": (T0 + pd.Timedelta(hours=29, minutes=55)).isoformat() + "Z",
        "end": (T0 + pd.Timedelta(hours=31, minutes=55)).isoformat() + "Z",
        "kind": "volume_spike",
        "root_cause": "feed:nyse-pillar",
        "affected_jobs": [],
        "affected_stages": [],
        "affected_resources": [],
        "affected_feeds": [],
    }
    starts = [
        ("equities.eod_pricing", T0 + pd.Timedelta(hours=31)),  # reads nyse-pillar, began during the surge
        ("equities.eod_pricing", T0 + pd.Timedelta(hours=33)),  # began after it
        ("fx.spot_rates_snapshot", T0 + pd.Timedelta(hours=30)),  # does not read it
    ]
    make_build(tmp_path, extra=[surge], job_starts=starts)
    assert bench.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "by an episode on the root or an affected entity 1/2" in out
    missed = [line for line in out.splitlines() if "missed:" in line]
    assert len(missed) == 1
    assert "inc-002 volume_spike on feed:nyse-pillar at 2026-11-17 05:55" in missed[0]
    assert "highest score 0.60 (feed_latency, +5 min)" in missed[0]
    assert missed[0].endswith("that read it begun during it: 1")
