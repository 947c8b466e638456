"""The raw zone as an hourly asset: what every source (simulator, collectors, Metric Streams, SDK
receiver) landed for each hour."""

from collections import Counter

import dagster as dg

from cms_dagster.defs.partitions import hourly_partitions, hours_of
from cms_dagster.lake import parse_raw_key
from cms_dagster.resources import LakeResource

RAW_UPSTREAMS = [dg.AssetKey(["raw", "simulation"]), dg.AssetKey(["raw", "cloudwatch"]), dg.AssetKey(["raw", "metric_stream"])]


@dg.asset(
    key=["raw", "otel_metrics"],
    group_name="collection",
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=RAW_UPSTREAMS,
    kinds={"s3", "json"},
    description="Immutable OTLP/JSON lines in the raw zone, one hour per partition "
    "(otel/metrics/source=<cloudwatch|metric-stream|sdk>/dt=YYYY-MM-DD/hour=HH/). Materializing it takes "
    "stock of what landed; the sources write it.",
)
def raw_otel_metrics(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    zones = lake.lake()
    files: Counter = Counter()
    hours_with_data = 0
    total = 0
    for day, hour in hours_of(context):
        keys = zones.raw_keys_for_hour(day, hour)
        hours_with_data += bool(keys)
        for k in keys:
            files[parse_raw_key(k)["source"]] += 1
        total += len(keys)
    context.log.info(f"{total} raw batch file(s) in {hours_with_data} hour(s) with data: {dict(files)}")
    return dg.MaterializeResult(
        metadata={
            "raw_files": total,
            "hours_with_data": hours_with_data,
            **{f"files_{k}": v for k, v in files.items()},
        }
    )
