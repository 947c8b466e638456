"""Raw zone → processed Parquet points → ``raw.metric_points``: the first chain of the warehouse."""

import dagster as dg

from cms_dagster.defs.partitions import hourly_partitions, hours_of
from cms_dagster.lake.processing import process_hours, quarantine_summary
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
