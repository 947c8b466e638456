"""A small warehouse with an injected feed outage and the detector's alarms on it, for the incident tests.

Times are fixed in the past (the data is history; nothing here reads the clock)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from cms_dagster.domain import load_ontology
from tests.rca.marts_helpers import DAYS, OUTAGE, outage_minutes


def write_marts(path: Path, feed_name: str = "cme-mdp") -> None:
    """Ten days of minutes for a database and a feed with a daily busy hour; the feed drops at OUTAGE for
    40 minutes; daily runs of equities.eod_pricing."""
    con = duckdb.connect(str(path))
    con.execute("set TimeZone='UTC'")
    infra, feed = outage_minutes(feed_name)
    runs = pd.DataFrame(
        {
            "job_key": "commodities.eod_settlement_prices",
            "run_id": [f"run-{d:%m%d}" for d in DAYS],
            "status": "success",
            "scheduled_start_ts": DAYS - pd.Timedelta(minutes=30),
            "actual_start_ts": DAYS - pd.Timedelta(minutes=30),
            "actual_end_ts": DAYS,
            "sla_deadline_ts": DAYS + pd.Timedelta(minutes=30),
            "is_sla_breached": False,
            "duration_s": 1800.0,
            "start_delay_s": 30.0,
            "records": 1000,
        }
    )
    # the incident's day: its run started late and is still running past its deadline
    runs.loc[runs.index[-1], ["status", "actual_end_ts"]] = ["running", pd.NaT]
    runs.loc[runs.index[-1], "actual_start_ts"] = pd.Timestamp("2026-11-25 21:10")
    stages = pd.DataFrame(
        {
            "stage_key": "equities.eod_pricing.ingest",
            "status": "success",
            "finished_ts": DAYS + pd.Timedelta(minutes=9),
            "duration_s": 480.0,
            "retries": 0,
        }
    )
    con.execute("create schema if not exists marts")
    for name, df in [("fct_infra_metrics", infra), ("fct_feed_status", feed), ("fct_batch_runs", runs), ("fct_stage_runs", stages)]:
        con.register("df", df)
        con.execute(f"create table marts.{name} as select * from df")
        con.unregister("df")
    con.close()


def write_alarms(path: Path, extra: list[tuple] = ()) -> None:
    """The detector's alarms: the outage (feed, then a job that needs it, then later more of the feed) and a
    lone database alarm five hours later; ``extra`` adds (ts, entity, metric, score) rows, or (ts, entity,
    metric, score, observed - baseline); a row without one is above its baseline."""
    ont = load_ontology()
    job = next(j for j in ont.jobs.values() if "cme-mdp" in j.feeds)
    t0 = pd.Timestamp(OUTAGE).tz_localize(None)
    rows = [
        (t0, "feed:cme-mdp", "up", 0.8, -1.0),
        (t0 + pd.Timedelta("6min"), job.entity_id, "start_delay_s", 0.7),
        (t0 + pd.Timedelta("5h"), "rds:orders-db", "CPUUtilization", 0.6),
        (t0 + pd.Timedelta("10h"), "rds:orders-db", "CPUUtilization", 0.3),  # scored, not an alarm
        *extra,
    ]
    df = pd.DataFrame(
        {
            "ts": [pd.Timestamp(r[0]).tz_localize(None) if pd.Timestamp(r[0]).tzinfo else r[0] for r in rows],
            "series": [f"{r[1]}|{r[2]}" for r in rows],
            "entity_id": [r[1] for r in rows],
            "metric": [r[2] for r in rows],
            "score": [r[3] for r in rows],
            "kind": "spike",
            "is_alarm": [r[3] >= 0.5 for r in rows],
            "observed": [r[4] if len(r) > 4 else 1.0 for r in rows],
            "baseline": 0.0,
        }
    )
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists intelligence")
    con.execute("drop table if exists intelligence.anomalies")
    con.register("df", df)
    con.execute("create table intelligence.anomalies as select * from df")
    con.close()


def outage_every_evening(days: tuple[int, ...] = (1, 2, 3)) -> list[tuple[pd.Timestamp, str, str, float]]:
    """Alarm rows (for ``write_alarms(extra=...)``): the outage's feed and job alarming together at the
    outage's minute on each of ``days`` days before it, as a nightly window would (confirmed each time)."""
    job = next(j for j in load_ontology().jobs.values() if "cme-mdp" in j.feeds)
    t0 = pd.Timestamp(OUTAGE).tz_localize(None)
    return [
        row
        for k in days
        for row in (
            (t0 - pd.Timedelta(days=k), "feed:cme-mdp", "up", 0.8),
            (t0 - pd.Timedelta(days=k, minutes=-6), job.entity_id, "start_delay_s", 0.7),
        )
    ]
