"""Dagster wiring of the CloudWatch collectors (the library is cms_dagster.collectors).

- ``raw/cloudwatch``: hourly-partitioned polled CloudWatch data in the raw zone (source=cloudwatch), with
  retries (exponential backoff, jitter), backfills a day per run (a day fetched at once costs 1/24 of 24
  hourly fetches), a schedule at 10 past each hour for the previous hour (CloudWatch data arrive a few
  minutes late), and run metadata: metrics discovered, API calls, datapoints, bytes, estimated cost.
- ``raw/metric_stream``: Metric Streams files landed from CMS_METRIC_STREAMS_URL (source=metric-stream),
  requested by ``metric_streams_sensor`` when new files arrive.

Without an AWS account or endpoint (or a Metric Streams URL) configured, a run records no materialization,
so the asset never looks collected: it logs the reason and leaves it in an asset observation (``skipped``).
In the embedded mode the simulator stands in for CloudWatch.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from cms_dagster import settings as settings_mod
from cms_dagster.collectors import collector, streams
from cms_dagster.collectors.targets import NOT_CONFIGURED, roles_of_account, target_keys
from cms_dagster.defs.partitions import hourly_partitions
from cms_dagster.infra.dagster_instance import CLOUDWATCH_POOL, pool_tags
from cms_dagster.resources import LakeResource


def _metadata(summary: collector.RunSummary) -> dict[str, object]:
    return {
        "window": f"{summary.start} -> {summary.end}",
        "targets": ", ".join(summary.targets),
        "metrics_discovered": summary.metrics_discovered,
        "metrics_collected": summary.metrics_collected,
        "api_calls": sum(summary.calls.values()),
        "api_calls_by_operation": dg.MetadataValue.json(summary.calls),
        "get_metric_data_calls": summary.calls.get("GetMetricData", 0),
        "get_metric_data_calls_minimum": summary.minimum_get_metric_data_calls,
        "metrics_requested": summary.metrics_requested,
        "retries": summary.retries,
        "datapoints": summary.datapoints,
        "points": summary.points,
        "bytes": summary.bytes,
        "raw_batches": len(summary.raw_keys),
        "windows_collected": summary.windows_collected,
        "windows_skipped": summary.windows_skipped,
        "estimated_cost_usd": dg.MetadataValue.float(summary.estimated_cost_usd),
        "warnings": dg.MetadataValue.json(summary.warnings),
    }


def collection_partitions(settings) -> dg.PartitionsDefinition:
    """Hourly, and by account/region when more than one target is configured (hour x target)."""
    keys = target_keys(settings.aws_role_arns, settings.aws_regions or [settings.aws_default_region])
    if len(keys) <= 1:
        return hourly_partitions
    return dg.MultiPartitionsDefinition(
        {"hour": hourly_partitions, "target": dg.StaticPartitionsDefinition(keys)}
    )


def _config_for(context: dg.AssetExecutionContext, s) -> collector.CollectorConfig:
    """The collector settings of this run: every target, or the one of a (hour, target) partition."""
    key = context.partition_key
    if not isinstance(key, dg.MultiPartitionKey):
        return collector.CollectorConfig.from_settings(s)
    account, region = key.keys_by_dimension["target"].split("-", 1)
    roles = roles_of_account(s.aws_role_arns, account)
    return collector.CollectorConfig.from_settings(s, regions=(region,), role_arns=roles)


def build_cloudwatch_raw(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=["raw", "cloudwatch"],
        group_name="collection",
        partitions_def=partitions_def,
        retry_policy=dg.RetryPolicy(
            max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=24),
        kinds={"aws", "s3"},
        output_required=False,
        description=(
            "CloudWatch metrics (RDS, SQS, Lambda, EKS Container Insights) polled with GetMetricData into the raw "
            "zone as OTLP JSON lines (source=cloudwatch), one partition per data hour. Not materialized when no "
            "AWS account or endpoint is configured (the simulator stands in): the run records an observation "
            "with the reason instead."
        ),
    )
    def cloudwatch_raw(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[Any]:
        s = lake.settings()
        if not s.aws_configured:
            reason = NOT_CONFIGURED
            context.log.warning(f"CloudWatch collection skipped (nothing materialized): {reason}")
            yield dg.AssetObservation(
                asset_key=context.asset_key, partition=context.partition_key, metadata={"skipped": reason}
            )
            return
        window = context.partition_time_window
        config = _config_for(context, s)
        # a retry only redoes the windows a failed attempt did not finish; a first attempt (schedule, manual
        # re-materialization, backfill) collects its windows again and overwrites them
        summary = collector.collect(
            config, lake.lake().raw, window.start, window.end, skip_done=context.retry_number > 0
        )
        metadata = _metadata(summary)
        context.log.info(summary.human())
        if not summary.ok:
            raise dg.Failure(
                description="CloudWatch collection failed for " + "; ".join(summary.errors),
                metadata=metadata,
                allow_retries=True,
            )
        yield dg.MaterializeResult(metadata=metadata)

    return cloudwatch_raw


cloudwatch_raw = build_cloudwatch_raw(hourly_partitions)  # the embedded default's shape


def build_collection_schedule(asset: dg.AssetsDefinition, partitions_def: dg.PartitionsDefinition):
    job = dg.define_asset_job(
        "cloudwatch_collection",
        selection=[asset],
        partitions_def=partitions_def,
        tags=pool_tags(CLOUDWATCH_POOL),  # the production run queue caps concurrent collections
    )
    schedule = dg.build_schedule_from_partitioned_job(
        job,
        name="cloudwatch_hourly",
        minute_of_hour=10,
        description="Collect the previous hour of CloudWatch metrics at 10 past each hour (CloudWatch data arrive late).",
    )
    return job, schedule


cloudwatch_collection_job, cloudwatch_hourly_schedule = build_collection_schedule(
    cloudwatch_raw, hourly_partitions
)


@dg.asset(
    key=["raw", "metric_stream"],
    group_name="collection",
    retry_policy=dg.RetryPolicy(
        max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    ),
    kinds={"aws", "s3"},
    output_required=False,
    description=(
        "CloudWatch Metric Streams files (opentelemetry1.0 or json, gzip'd or not) delivered by Firehose under "
        "CMS_METRIC_STREAMS_URL, landed in the raw zone as OTLP JSON lines (source=metric-stream) by delivery "
        "hour. Each run lands the files not landed yet (checkpoint in the raw zone). Not materialized when "
        "CMS_METRIC_STREAMS_URL is not set (an observation says so)."
    ),
)
def metric_streams_raw(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[Any]:
    s = lake.settings()
    if not s.metric_streams_url:
        reason = "CMS_METRIC_STREAMS_URL is not set: no Metric Streams files to land"
        context.log.warning(f"Metric Streams landing skipped (nothing materialized): {reason}")
        yield dg.AssetObservation(asset_key=context.asset_key, metadata={"skipped": reason})
        return
    got = streams.land_new(s.metric_streams_url, lake.lake().raw)
    context.log.info(
        f"landed {got.files} Metric Streams file(s), {got.points} points, {len(got.quarantined)} quarantined"
    )
    yield dg.MaterializeResult(
        metadata={
            "files": got.files,
            "formats": dg.MetadataValue.json(got.formats),
            "points": got.points,
            "bytes": got.bytes,
            "raw_batches": len(got.raw_keys),
            "quarantined": dg.MetadataValue.json(got.quarantined),
        }
    )


metric_streams_job = dg.define_asset_job("metric_streams_landing", selection=[metric_streams_raw])


@dg.sensor(
    name="metric_streams_sensor",
    job=metric_streams_job,
    minimum_interval_seconds=60,
    description="Requests a landing run when new Metric Streams files appear under CMS_METRIC_STREAMS_URL.",
)
def metric_streams_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    s = lake.settings()
    if not s.metric_streams_url:
        return dg.SkipReason("CMS_METRIC_STREAMS_URL is not set: no Metric Streams files to watch")
    new = streams.pending(s.metric_streams_url, lake.lake().raw)
    # the cursor records what has been requested; the landing run's own checkpoint records what has landed,
    # so a failed landing run is requested again on a later tick (new run key once more files arrive)
    requested = streams.new_objects(new, context.cursor)
    if not requested:
        return dg.SkipReason(f"no new Metric Streams files ({len(new)} pending, already requested)")
    run_key = f"metric-streams:{requested[-1].last_modified.isoformat()}:{len(new)}"
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"cms/metric_stream_files": str(len(new))})],
        cursor=streams.advance_cursor(context.cursor, requested),
    )


@dg.definitions
def collection_defs() -> dg.Definitions:
    """Built when the code location loads: with several accounts/regions configured (CMS_AWS_ROLE_ARNS,
    CMS_AWS_REGIONS), raw/cloudwatch is partitioned by hour x target, so each account/region re-runs and
    back-fills on its own; raw/otel_metrics maps its hours onto the hour dimension."""
    pdef = collection_partitions(settings_mod.load())
    asset = cloudwatch_raw if pdef is hourly_partitions else build_cloudwatch_raw(pdef)
    job, schedule = (
        (cloudwatch_collection_job, cloudwatch_hourly_schedule)
        if asset is cloudwatch_raw
        else build_collection_schedule(asset, pdef)
    )
    return dg.Definitions(
        assets=[asset, metric_streams_raw],
        jobs=[job, metric_streams_job],
        schedules=[schedule],
        sensors=[metric_streams_sensor],
    )
