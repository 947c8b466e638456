"""Raw zone → processed Parquet points → ``raw.metric_points``: the first chain of the warehouse."""

import dagster as dg
import orjson

from cms_dagster.defs.partitions import hourly_partitions, hours_of
from cms_dagster.processing import process_hour
from cms_dagster.resources import CmsResource
from cms_dagster.warehouse import duckdb_load

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
def processed_points(context: dg.AssetExecutionContext, cms: CmsResource) -> dg.MaterializeResult:
    lake = cms.lake()
    points = files = rejected_lines = rejected_points = quarantined = 0
    quarantine: list[str] = []
    for day, hour in hours_of(context):
        rep = process_hour(lake, day, hour)
        points += rep.points
        files += rep.raw_files
        rejected_lines += rep.rejected_lines
        rejected_points += rep.rejected_points
        quarantined += rep.quarantined_files
        quarantine += rep.quarantine_keys
    if quarantine:
        context.log.warning(
            f"quarantined input: {quarantined} unreadable file(s), {rejected_lines} bad line(s), "
            f"{rejected_points} rejected point(s); see the .reason.json beside each in the raw zone: {quarantine[:10]}"
        )
    context.log.info(f"flattened {points:,} point(s) from {files} raw file(s)")
    return dg.MaterializeResult(
        metadata={
            "points": points,
            "raw_files": files,
            "quarantined_files": quarantined,
            "rejected_lines": rejected_lines,
            "rejected_points": rejected_points,
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
def metric_points(context: dg.AssetExecutionContext, cms: CmsResource) -> dg.MaterializeResult:
    s = cms.settings()
    lake = cms.lake()
    hours = list(hours_of(context))
    if s.warehouse == "snowflake":
        from cms_dagster.warehouse.snowflake_load import load_hours_snowflake

        totals = load_hours_snowflake(lake.processed, hours, log=context.log.info)
    else:
        totals = duckdb_load.LoadReport()
        con = duckdb_load.connect(s.duckdb_path)
        try:
            for day, hour in hours:
                rep = duckdb_load.load_hour(con, lake.processed, day, hour)
                for f in ("files", "staged", "inserted", "replaced", "unchanged"):
                    setattr(totals, f, getattr(totals, f) + getattr(rep, f))
                totals.total_rows = rep.total_rows
        finally:
            con.close()
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
def nothing_in_quarantine(cms: CmsResource) -> dg.AssetCheckResult:
    lake = cms.lake()
    reasons = [k for k in lake.raw.list("quarantine/") if k.endswith(".reason.json")]
    summary: dict[str, int] = {}
    for k in reasons[:200]:
        for reason, n in orjson.loads(lake.raw.get(k)).get("reasons", {}).items():
            summary[reason] = summary.get(reason, 0) + (n or 1)
    return dg.AssetCheckResult(
        passed=not reasons,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined_batches": len(reasons),
            "reasons": dg.MetadataValue.json(summary),
            "keys": dg.MetadataValue.json(reasons[:20]),
        },
    )
