"""A small code location for the orchestrator tests: an hourly-partitioned pair of assets, a collection
job under the CloudWatch pool's limit that a cursor sensor feeds, and a schedule. The instance under test
is real (PostgreSQL storage, queued coordinator, daemon); only the work inside the steps is small."""


import os
import time
from pathlib import Path

import dagster as dg

from cms_dagster.infra.dagster_instance import CLOUDWATCH_POOL, pool_tags

hourly = dg.HourlyPartitionsDefinition(start_date="2026-01-05-00:00")


@dg.asset(partitions_def=hourly)
def points(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"hour": context.partition_key})


@dg.asset(partitions_def=hourly, deps=[points])
def loaded(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"hour": context.partition_key})


@dg.op
def collect(context: dg.OpExecutionContext) -> None:
    time.sleep(2)  # long enough that two collections at once would overlap
    context.log.info("collected")


@dg.job(tags=pool_tags(CLOUDWATCH_POOL), executor_def=dg.in_process_executor)
def collection() -> None:
    collect()


@dg.op
def tick_op() -> None:
    pass


@dg.job(executor_def=dg.in_process_executor)
def scheduled() -> None:
    tick_op()


REQUESTS_PER_TICK = 2
FILES = 6


def _arrived() -> int:
    """How many files have 'arrived' so far: the test sets it through a file, to stop the daemon between two
    batches (with no run in flight) and let the rest arrive after the restart."""
    path = os.environ.get("CMS_TEST_ARRIVED_FILE")
    return int(Path(path).read_text()) if path and Path(path).exists() else FILES


@dg.sensor(job=collection, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def new_files(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Each tick 'finds' the next files: the cursor says how many were seen, run keys name them."""
    seen = int(context.cursor or 0)
    if seen >= min(FILES, _arrived()):
        return dg.SensorResult(run_requests=[], cursor=str(seen))
    batch = [dg.RunRequest(run_key=f"file-{seen + i}") for i in range(REQUESTS_PER_TICK)]
    return dg.SensorResult(run_requests=batch, cursor=str(seen + REQUESTS_PER_TICK))


minutely = dg.ScheduleDefinition(name="minutely", job=scheduled, cron_schedule="* * * * *", default_status=dg.DefaultScheduleStatus.RUNNING)

defs = dg.Definitions(assets=[points, loaded], jobs=[collection, scheduled], sensors=[new_files], schedules=[minutely])
