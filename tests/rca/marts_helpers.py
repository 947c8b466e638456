"""Small fact marts for the RCA tests: a daily job with one stage, written next to given minute tables."""

from __future__ import annotations

import duckdb
import pandas as pd

DAYS = pd.date_range("2026-11-16 21:00", periods=10, freq="D")  # equities.eod_pricing runs at 21:00


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
