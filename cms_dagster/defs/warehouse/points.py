"""Raw zone → processed Parquet points → ``raw.metric_points``: the first chain of the warehouse.

The ``hourly_ingest`` schedule loads each hour once it is over; the ``late_raw_hours`` sensor loads an hour
again when raw batches arrive for it after it was processed (a late delivery, a re-collected CloudWatch
hour), and declarative automation then rebuilds that hour down the graph (cms_dagster/defs/automation.py).
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from cms_dagster.defs.automation import LATE_DAYS
from cms_dagster.defs.partitions import hourly_partitions, hours_of
from cms_dagster.lake import Lake
from cms_dagster.lake.processing import process_hours, quarantine_summary, unprocessed_batches
from cms_dagster.resources import LakeResource, WarehouseResource
from cms_dagster.warehouse.loading import load_points

RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@dg.asset(
    key=["processed", "points"],
    group_name="warehouse",
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey(["raw", "otel_metrics"])],
    retry_policy=RETRY,
    kinds={"parquet"},
    description="Flattened data points (one row per point, deterministic point id) as Parquet in the processed "
    "zone: points/dt=YYYY-MM-DD/hour=HH/<source>--<batch>.parquet. Malformed input goes to the raw zone's "
    "quarantine/ with its reason; the rest still loads.",
)
def processed_points(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    totals = process_hours(lake.lake(), hours_of(context))
    quarantine = totals.quarantine_keys
    if quarantine:
        context.log.warning(
            f"quarantined input: {totals.quarantined_files} unreadable file(s), {totals.rejected_lines} bad line(s), "
            f"{totals.rejected_points} rejected point(s); see the .reason.json beside each in the raw zone: {quarantine[:10]}"
        )
    context.log.info(f"flattened {totals.points:,} point(s) from {totals.raw_files} raw file(s)")
    return dg.MaterializeResult(
        metadata={
            "points": totals.points,
            "raw_files": totals.raw_files,
            "quarantined_files": totals.quarantined_files,
            "rejected_lines": totals.rejected_lines,
            "rejected_points": totals.rejected_points,
            "quarantine_keys": dg.MetadataValue.json(quarantine[:50]),
        }
    )


@dg.asset(
    key=["warehouse", "metric_points"],
    group_name="warehouse",
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[processed_points],
    retry_policy=RETRY,
    kinds={"duckdb", "snowflake"},
    description="raw.metric_points: every data point once, by point id (latest ingested wins). DuckDB reads the "
    "Parquet files; Snowflake loads them through a stage (COPY INTO staging, then MERGE).",
)
def metric_points(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    totals = load_points(warehouse.settings(), lake.lake().processed, hours_of(context), log=context.log.info)
    context.log.info(
        f"loaded {totals.files} file(s): {totals.inserted:,} new, {totals.replaced:,} replaced, "
        f"{totals.unchanged:,} unchanged; {totals.total_rows:,} rows in raw.metric_points"
    )
    return dg.MaterializeResult(
        metadata={
            "files": totals.files,
            "staged_points": totals.staged,
            "inserted": totals.inserted,
            "replaced": totals.replaced,
            "unchanged": totals.unchanged,
            "table_rows": totals.total_rows,
        }
    )


ingest_job = dg.define_asset_job(
    "hourly_ingest",
    selection=dg.AssetSelection.assets(["raw", "otel_metrics"], processed_points, metric_points),
    partitions_def=hourly_partitions,
    description="Take stock of the raw zone, flatten and load one hour.",
)
hourly_ingest_schedule = dg.build_schedule_from_partitioned_job(
    ingest_job, minute_of_hour=10, default_status=dg.DefaultScheduleStatus.RUNNING
)

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"


def late_hour_requests(instance: dg.DagsterInstance, lake: Lake, now: dt.datetime) -> Iterator[dg.RunRequest]:
    """A run of ``hourly_ingest`` for every hour of the last ``LATE_DAYS`` days (the same hours declarative
    automation re-processes) whose points were materialized and whose raw zone has batches processing has
    not seen. The run key names the newest such batch, so each delivery is asked for once."""
    materialized = instance.get_materialized_partitions(processed_points.key)
    hour = now.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    t = hour - dt.timedelta(days=LATE_DAYS)
    while t <= hour:
        key = t.strftime(PARTITION_FORMAT)
        if key in materialized:
            waiting = unprocessed_batches(lake, t.date(), t.hour)
            if waiting:
                yield dg.RunRequest(
                    partition_key=key,
                    run_key=f"late:{key}:{len(waiting)}:{waiting[-1].rsplit('/', 1)[-1]}",
                    tags={"cms/late_batches": str(len(waiting))},
                )
        t += dt.timedelta(hours=1)


@dg.sensor(
    name="late_raw_hours",
    job=ingest_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Loads an hour of the last {LATE_DAYS} days again when raw batches land in it after it was "
    "processed (no Parquet file or quarantined copy for them yet); declarative automation then rebuilds "
    "that hour's marts and anomalies.",
)
def late_raw_hours(context: dg.SensorEvaluationContext, lake: LakeResource) -> Iterator[dg.RunRequest | dg.SkipReason]:
    requests = list(late_hour_requests(context.instance, lake.lake(), dt.datetime.now(dt.timezone.utc)))
    if not requests:
        yield dg.SkipReason(f"every materialized hour of the last {LATE_DAYS} days has processed all its raw batches")
        return
    context.log.info(f"raw batches arrived late for {len(requests)} hour(s): {[r.partition_key for r in requests]}")
    yield from requests


@dg.asset_check(
    asset=processed_points,
    description="No input is waiting in quarantine. Warns with the reasons and keys of what was set aside "
    "(fix the producer; quarantine only grows, so move handled files to an archive to clear the warning).",
)
def nothing_in_quarantine(lake: LakeResource) -> dg.AssetCheckResult:
    waiting = quarantine_summary(lake.lake().raw)
    return dg.AssetCheckResult(
        passed=not waiting.reason_keys,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined_batches": len(waiting.reason_keys),
            "reasons": dg.MetadataValue.json(waiting.reasons),
            "keys": dg.MetadataValue.json(waiting.reason_keys[:20]),
        },
    )
