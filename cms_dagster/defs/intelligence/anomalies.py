"""Anomaly detection over the fact tables, hour by hour, with detector state carried in the lake."""

import datetime as dt

import dagster as dg

from cms_dagster.defs import automation
from cms_dagster.defs.partitions import hourly_partitions
from cms_dagster.detect.pipeline import score_window
from cms_dagster.resources import LakeResource, WarehouseResource

FACT_TABLES = ["fct_infra_metrics", "fct_feed_status", "fct_batch_runs", "fct_stage_runs"]


@dg.asset(
    key=["intelligence", "anomalies"],
    group_name="intelligence",
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey(["dbt", t]) for t in [*FACT_TABLES, "dim_feed"]],
    automation_condition=automation.HOURLY,
    kinds={"python", "duckdb"},
    description="intelligence.anomalies: every series of fct_infra_metrics and fct_feed_status scored by the "
    "streaming detector, and every run of fct_batch_runs and fct_stage_runs judged against the same job's or "
    "stage's runs at the same schedule slot; a feed minute that ends a few minutes down or stale past the feed's "
    "SLA is an alarm by rule (source sla, score 1). Columns: score in [0, 1], kind, baseline, observed; kept: rows "
    "with score >= 0.3, "
    "and the detector's repeats that its quiet period after an alarm damped (kind not none, score lower), "
    "is_alarm at score >= 0.5. Each run starts from the checkpoint before its hours (kept in the lake under "
    "checkpoints/detect/) and re-scores any later hours that had been scored, in order.",
)
def anomalies(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    wh = warehouse.client()
    window = context.partition_time_window
    start = window.start.astimezone(dt.timezone.utc)
    end = window.end.astimezone(dt.timezone.utc)

    def write(source, span_start, span_end, df):
        wh.replace_span("intelligence.anomalies", df, "ts", span_start, span_end, {"source": source})

    rep = score_window(
        wh.query, write, lake.lake().raw, start, end, marts_schema=wh.marts, log=context.log.info
    )
    if rep.errors:
        context.log.warning(
            f"{len(rep.errors)} series could not be scored: {dict(list(rep.errors.items())[:5])}"
        )
    return dg.MaterializeResult(
        metadata={
            "points_scored": rep.points,
            "series": rep.series,
            "anomaly_rows": rep.anomalies,
            "alarms": rep.alarms,
            "rescored_from": str(rep.rescored_from),
            "series_errors": len(rep.errors),
        }
    )
