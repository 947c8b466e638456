"""Small fact marts for the RCA and incident tests: a daily job with one stage, written next to given minute
tables, and the minutes of a feed outage."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

DAYS = pd.date_range("2026-11-16 21:00", periods=10, freq="D")  # equities.eod_pricing runs at 21:00
OUTAGE = dt.datetime(2026, 11, 25, 20, 0, tzinfo=dt.timezone.utc)  # a Wednesday


def outage_minutes(feed_name: str = "cme-mdp") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ten days of minutes for a database and a feed with a daily busy hour (the same every day); the feed
    drops at OUTAGE for 40 minutes. (fct_infra_metrics rows, fct_feed_status rows)."""
    minutes = pd.date_range("2026-11-16", "2026-11-26", freq="min", inclusive="left")
    rng = np.random.default_rng(7)
    busy = np.where((minutes.hour >= 19) & (minutes.hour < 22), 2.0, 1.0)
    t0 = pd.Timestamp(OUTAGE).tz_localize(None)
    down = np.asarray((minutes >= t0) & (minutes < t0 + pd.Timedelta("40min")))
    infra = pd.DataFrame(
        {
            "entity_id": "rds:orders-db",
            "metric": "CPUUtilization",
            "namespace": "AWS/RDS",
            "minute_ts": minutes,
            "avg_value": 20 * busy + rng.normal(0, 1, len(minutes)),
        }
    )
    feed = pd.DataFrame(
        {
            "feed_id": feed_name,
            "minute_ts": minutes,
            "is_up": ~down,
            "latency_ms": 12.0 * rng.lognormal(0, 0.05, len(minutes)),
            "staleness_s": np.where(down, 600.0, 1.0),
            "messages": np.where(down, 0.0, 5000.0 * busy * rng.lognormal(0, 0.05, len(minutes))),
            "missing_fields": 0,
            "invalid_values": 0,
        }
    )
    return infra, feed


def daily_runs() -> pd.DataFrame:
    """Ten successful daily runs of equities.eod_pricing (fct_batch_runs rows)."""
    return pd.DataFrame(
        {
            "job_key": "equities.eod_pricing",
            "status": "success",
            "actual_start_ts": DAYS,
            "actual_end_ts": DAYS + pd.Timedelta(minutes=40),
            "duration_s": 2400.0,
            "start_delay_s": 30.0,
            "records": 1000,
        }
    )


def daily_stages(status: list[str] | str = "success") -> pd.DataFrame:
    """Its ingest stage on the same ten days (fct_stage_runs rows)."""
    return pd.DataFrame(
        {
            "stage_key": "equities.eod_pricing.ingest",
            "status": status,
            "finished_ts": DAYS + pd.Timedelta(minutes=9),
            "duration_s": 480.0,
            "retries": 0,
        }
    )


def store_marts(
    con: duckdb.DuckDBPyConnection,
    infra: pd.DataFrame,
    feed: pd.DataFrame,
    stages: pd.DataFrame | None = None,
) -> None:
    """Create marts.fct_infra_metrics, fct_feed_status, fct_batch_runs and fct_stage_runs on ``con``."""
    con.execute("create schema if not exists marts")
    tables = [
        ("fct_infra_metrics", infra),
        ("fct_feed_status", feed),
        ("fct_batch_runs", daily_runs()),
        ("fct_stage_runs", daily_stages() if stages is None else stages),
    ]
    for name, df in tables:
        con.register("df", df)
        con.execute(f"create table marts.{name} as select * from df")
        con.unregister("df")
