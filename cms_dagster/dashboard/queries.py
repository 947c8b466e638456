"""The dashboard's data: parametrised SQL over the marts, one function per view.

Every function takes ``query(sql, params) -> DataFrame`` (``Warehouse.query``, or the dashboard's cached
wrapper of it) and the marts schema, and returns a DataFrame. Values chosen by a user (times, asset class,
job, feed, run) only ever travel as ``?`` parameters; the SQL text is fixed here. The same SQL runs on
DuckDB and Snowflake. Times are naive UTC.

Plain Python (pandas); no Streamlit, no Dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import pandas as pd

QueryFn = Callable[[str, list], pd.DataFrame]

# the marts each page reads (a page with one of these missing says so instead of failing)
PAGE_TABLES: dict[str, tuple[str, ...]] = {
    "feeds": ("fct_feed_status", "mart_feed_availability"),
    "batches": ("fct_batch_runs", "mart_batch_performance", "mart_sla_compliance"),
    "stages": ("fct_batch_runs", "fct_stage_runs", "mart_stage_bottlenecks", "fct_infra_metrics"),
    "incidents": ("fct_infra_metrics", "fct_feed_status", "fct_batch_runs", "fct_stage_runs"),
}

# CloudWatch metrics shown as a stage's resource utilisation, per resource kind (entity id prefix)
RESOURCE_METRICS: dict[str, tuple[str, ...]] = {
    "rds": ("CPUUtilization", "DatabaseConnections", "ReadLatency"),
    "sqs": ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"),
    "lambda": ("Duration", "ConcurrentExecutions", "Errors", "Throttles"),
    "eks": ("pod_cpu_utilization", "pod_memory_utilization", "node_cpu_utilization"),
}


def _naive(t: dt.datetime | pd.Timestamp) -> dt.datetime:
    ts = pd.Timestamp(t)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def _in_list(column: str, values: Sequence[str]) -> tuple[str, list]:
    """``column in (?, ?, ...)`` for a list of values (placeholders only; the values are parameters)."""
    return f"{column} in ({', '.join('?' for _ in values)})", list(values)


def _scope(
    asset_class: str | None = None, job: str | None = None, *, job_column: str = "job_key"
) -> tuple[str, list]:
    """The asset-class / job filter as ``and ...`` clauses with their parameters."""
    sql, params = "", []
    if asset_class:
        sql += " and asset_class_id = ?"
        params.append(asset_class)
    if job:
        sql += f" and {job_column} = ?"
        params.append(job)
    return sql, params


def _feeds(feeds: Sequence[str]) -> tuple[str, list]:
    """The feed filter as an ``and ...`` clause (none for all feeds)."""
    if not feeds:
        return "", []
    clause, params = _in_list("feed_id", feeds)
    return f" and {clause}", params


def _span(
    query: QueryFn,
    table: str,
    columns: Sequence[str],
    column: str,
    bounds: tuple[object, object],
    scope: tuple[str, list],
    order: str,
    *,
    closed: bool = False,
) -> pd.DataFrame:
    """``columns`` of ``table`` with ``column`` in [start, end) (``closed``: [start, end]) and the ``scope``
    clauses, ordered by ``order``."""
    where, params = scope
    return query(
        f"select {', '.join(columns)} from {table} "
        f"where {column} >= ? and {column} {'<=' if closed else '<'} ?{where} order by {order}",
        [*bounds, *params],
    )


def _of_runs(query: QueryFn, table: str, columns: Sequence[str], run_ids: Sequence[str], order: str) -> pd.DataFrame:
    """``columns`` of ``table``'s rows of the given runs (no query, and no rows, for no run)."""
    if not run_ids:
        return pd.DataFrame(columns=list(columns))
    clause, params = _in_list("run_id", run_ids)
    return query(f"select {', '.join(columns)} from {table} where {clause} order by {order}", params)


def missing_tables(query: QueryFn, schema: str, tables: Sequence[str]) -> list[str]:
    """Which of ``tables`` the marts schema lacks (a new estate, or dbt not run yet)."""
    names, params = _in_list("lower(table_name)", [t.lower() for t in tables])
    found = query(
        f"select lower(table_name) as t from information_schema.tables where lower(table_schema) = ? and {names}",
        [schema.lower(), *params],
    )
    have = set(found["t"]) if len(found) else set()
    return [t for t in tables if t.lower() not in have]


def data_extent(query: QueryFn, schema: str) -> dict[str, pd.Timestamp | None]:
    """First and latest times the marts hold (feed minutes and batch events): the dashboard's 'now'."""
    df = query(
        f"""
        select min(t0) as first_ts, max(t1) as latest_ts from (
            select min(minute_ts) as t0, max(minute_ts) as t1 from {schema}.fct_feed_status
            union all
            select min(actual_start_ts), max(last_event_ts) from {schema}.fct_batch_runs
        ) extents
        """,
        [],
    )
    row = df.iloc[0] if len(df) else {}
    first = row.get("first_ts") if len(df) else None
    latest = row.get("latest_ts") if len(df) else None
    return {
        "first": None if first is None or pd.isna(first) else pd.Timestamp(first),
        "latest": None if latest is None or pd.isna(latest) else pd.Timestamp(latest),
    }


# ---------------------------------------------------------------- market data feeds
def feed_minutes(
    query: QueryFn, schema: str, start: dt.datetime, end: dt.datetime, feeds: Sequence[str] = ()
) -> pd.DataFrame:
    """Minute rows of fct_feed_status in [start, end): up/down, latency, staleness, data quality."""
    return _span(query, f"{schema}.fct_feed_status",
                 ("feed_id", "minute_ts", "is_up", "is_stale", "latency_ms", "staleness_s", "messages",
                  "missing_fields", "invalid_values"),
                 "minute_ts", (_naive(start), _naive(end)), _feeds(feeds), "feed_id, minute_ts")


def feed_hours(
    query: QueryFn, schema: str, start: dt.datetime, end: dt.datetime, feeds: Sequence[str] = ()
) -> pd.DataFrame:
    """Hourly rows of mart_feed_availability in [start, end): availability, quality rates, latency, staleness."""
    return _span(query, f"{schema}.mart_feed_availability",
                 ("feed_id", "hour_ts", "minutes_observed", "minutes_up", "minutes_down", "availability_pct",
                  "outages", "messages", "missing_fields", "invalid_values", "missing_field_rate",
                  "invalid_value_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "max_staleness_s",
                  "stale_minutes"),
                 "hour_ts", (_naive(start), _naive(end)), _feeds(feeds), "feed_id, hour_ts")


# ---------------------------------------------------------------- batch processing
def batch_runs(
    query: QueryFn,
    schema: str,
    start: dt.datetime,
    end: dt.datetime,
    asset_class: str | None = None,
    job: str | None = None,
) -> pd.DataFrame:
    """Runs scheduled in [start, end), and any run still running: fct_batch_runs rows."""
    scope, params = _scope(asset_class, job)
    return query(
        f"""
        select run_id, job_key, asset_class_id, job_id, status, error_type, scheduled_start_ts,
               actual_start_ts, actual_end_ts, duration_s, start_delay_s, records, bytes, records_per_minute,
               sla_deadline_ts, is_sla_breached, is_on_time, last_event_ts
        from {schema}.fct_batch_runs
        where ((coalesce(scheduled_start_ts, actual_start_ts) >= ? and coalesce(scheduled_start_ts, actual_start_ts) < ?)
               or (status = 'running' and actual_start_ts < ?)){scope}
        order by actual_start_ts
        """,
        [_naive(start), _naive(end), _naive(end), *params],
    )


def usual_durations(query: QueryFn, schema: str, end: dt.datetime, days: int = 28) -> pd.DataFrame:
    """Per job, the median duration of its successful runs over the ``days`` before ``end`` (the usual)."""
    return query(
        f"""
        select job_key, median(duration_s) as usual_duration_s, count(*) as usual_samples
        from {schema}.fct_batch_runs
        where status = 'success' and actual_start_ts >= ? and actual_start_ts < ?
        group by job_key
        """,
        [_naive(pd.Timestamp(end) - pd.Timedelta(days=days)), _naive(end)],
    )


def batch_performance(
    query: QueryFn, schema: str, start: dt.date, end: dt.date, asset_class: str | None = None
) -> pd.DataFrame:
    """mart_batch_performance rows (per day and asset class) for days in [start, end]."""
    return _span(query, f"{schema}.mart_batch_performance",
                 ("run_date", "asset_class_id", "runs", "successful_runs", "failed_runs", "running_runs", "breaches",
                  "success_rate_pct", "failure_rate_pct", "records", "bytes", "records_per_minute", "avg_duration_s",
                  "p50_duration_s", "duration_index", "duration_index_7d", "failure_rate_7d_pct"),
                 "run_date", (start, end), _scope(asset_class), "run_date, asset_class_id", closed=True)


def sla_compliance(
    query: QueryFn,
    schema: str,
    start: dt.date,
    end: dt.date,
    asset_class: str | None = None,
    job: str | None = None,
) -> pd.DataFrame:
    """mart_sla_compliance rows (per day and job) for days in [start, end]."""
    return _span(query, f"{schema}.mart_sla_compliance",
                 ("run_date", "asset_class_id", "job_key", "runs", "successful_runs", "failed_runs", "running_runs",
                  "on_time_runs", "on_time_pct", "breaches", "p50_duration_s", "p95_duration_s",
                  "baseline_28d_on_time_pct", "baseline_28d_p50_duration_s", "p95_duration_ratio_vs_28d"),
                 "run_date", (start, end), _scope(asset_class, job), "run_date, job_key", closed=True)


# ---------------------------------------------------------------- critical sub-stages
def runs_of_day(query: QueryFn, schema: str, day: dt.date, job: str) -> pd.DataFrame:
    """The runs of ``job`` scheduled on ``day`` (fct_batch_runs rows), latest first."""
    return query(
        f"""
        select run_id, job_key, status, scheduled_start_ts, actual_start_ts, actual_end_ts, duration_s,
               sla_deadline_ts, is_sla_breached, last_event_ts
        from {schema}.fct_batch_runs
        where job_key = ? and run_date = ?
        order by actual_start_ts desc
        """,
        [job, day],
    )


def stage_attempts(query: QueryFn, schema: str, run_ids: Sequence[str]) -> pd.DataFrame:
    """Every stage attempt of the given runs (fct_stage_runs rows)."""
    return _of_runs(query, f"{schema}.fct_stage_runs",
                    ("run_id", "stage_id", "attempt", "status", "started_ts", "finished_ts", "duration_s", "records",
                     "error_type", "is_final_attempt"),
                    run_ids, "run_id, started_ts, attempt")


def stage_bottlenecks(query: QueryFn, schema: str, run_ids: Sequence[str]) -> pd.DataFrame:
    """mart_stage_bottlenecks rows of the given runs: elapsed, critical path, baseline."""
    return _of_runs(query, f"{schema}.mart_stage_bottlenecks",
                    ("run_id", "stage_id", "critical_path", "attempts", "final_status", "stage_started_ts",
                     "stage_finished_ts", "elapsed_s", "is_on_critical_path", "critical_path_position",
                     "share_of_critical_path_pct", "baseline_samples", "baseline_elapsed_s", "elapsed_vs_baseline",
                     "is_slower_than_baseline"),
                    run_ids, "run_id, critical_path_position")


def stage_trends(query: QueryFn, schema: str, job: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Per day and stage of ``job`` in [start, end]: median elapsed, slow runs, attempts beyond the first."""
    return query(
        f"""
        select run_date, stage_id, median(elapsed_s) as median_elapsed_s,
               median(baseline_elapsed_s) as baseline_elapsed_s,
               sum(case when is_slower_than_baseline then 1 else 0 end) as slow_runs,
               sum(attempts - 1) as retries, count(*) as runs
        from {schema}.mart_stage_bottlenecks
        where job_key = ? and run_date >= ? and run_date <= ?
        group by run_date, stage_id
        order by run_date, stage_id
        """,
        [job, start, end],
    )


def resource_series(
    query: QueryFn, schema: str, entities: Sequence[str], start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Minute averages of the utilisation metrics (RESOURCE_METRICS) of ``entities`` in [start, end)."""
    if not entities:
        return pd.DataFrame(columns=["entity_id", "metric", "minute_ts", "avg_value", "unit"])
    metrics = sorted({m for ms in RESOURCE_METRICS.values() for m in ms})
    ent_clause, ent_params = _in_list("entity_id", entities)
    met_clause, met_params = _in_list("metric", metrics)
    return query(
        f"""
        select entity_id, metric, minute_ts, avg_value, unit
        from {schema}.fct_infra_metrics
        where {ent_clause} and {met_clause} and minute_ts >= ? and minute_ts < ?
        order by entity_id, metric, minute_ts
        """,
        [*ent_params, *met_params, _naive(start), _naive(end)],
    )
