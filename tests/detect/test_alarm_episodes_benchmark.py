"""benchmarks/alarm_episodes.py runs end to end on a small kept build made here (a warehouse file with a few
alarms and the simulator's labels), the layout benchmarks/rca_eval.py --keep leaves."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
T0 = pd.Timestamp("2026-11-16T00:00:00")  # naive UTC, as the warehouse stores it


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("alarm_episodes_benchmark", REPO / "benchmarks" / "alarm_episodes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def make_build(home: Path) -> None:
    """48 hours of data; one incident on a stage at hour 10 with alarms on the stage and its job (related in
    the ontology: a confirmed episode), and one lone weak alarm at hour 30 (not confirmed)."""
    rows = [
        (T0 + pd.Timedelta(hours=10, minutes=2), "stage_duration", "stage:equities.eod_pricing.ingest", 0.7),
        (T0 + pd.Timedelta(hours=10, minutes=9), "job_duration", "job:equities.eod_pricing", 0.8),
        (T0 + pd.Timedelta(hours=30), "feed_latency", "feed:nyse-pillar", 0.6),
    ]
    alarms = pd.DataFrame(rows, columns=["ts", "series", "entity_id", "score"]).assign(is_alarm=True)
    minutes = pd.DataFrame({"minute_ts": [T0, T0 + pd.Timedelta(hours=48)]})
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("create schema intelligence; create schema marts")
    con.register("a", alarms)
    con.register("m", minutes)
    con.execute("create table intelligence.anomalies as select * from a")
    con.execute("create table marts.fct_infra_metrics as select * from m")
    con.close()
    labels = {
        "incidents": [
            {
                "start": (T0 + pd.Timedelta(hours=10)).isoformat() + "Z",
                "end": (T0 + pd.Timedelta(hours=10, minutes=30)).isoformat() + "Z",
                "root_cause": "stage:equities.eod_pricing.ingest",
                "affected_jobs": ["job:equities.eod_pricing"],
                "affected_stages": [],
                "affected_resources": [],
                "affected_feeds": [],
            }
        ]
    }
    sim = home / "lake" / "archive" / "simulations" / "s1"
    sim.mkdir(parents=True)
    (sim / "labels.json").write_text(json.dumps(labels))


def test_benchmark_counts_alarms_episodes_and_found_incidents(bench, tmp_path, capsys) -> None:
    make_build(tmp_path)
    assert bench.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(1 incidents, 48 hours of data)" in out
    assert "whole month: 3 alarms" in out and "2 episodes, 1 confirmed" in out
    assert "incidents with a confirmed episode in their window: 1/1" in out
    assert "includes the root or an affected entity: 1/1" in out
    # outside the incident's window only the lone alarm, which is not confirmed
    assert "1 alarms" in out.split("outside the incidents' windows")[1] and " 0 confirmed episodes" in out


def test_benchmark_explains_a_directory_that_is_not_a_kept_build(bench, tmp_path, capsys) -> None:
    assert bench.main([str(tmp_path)]) == 2
    assert "is not a kept rca_eval build" in capsys.readouterr().err
