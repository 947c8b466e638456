"""Count failed Dagster runs in CloudWatch (CMS/Dagster RunFailures), for the alarm of cms-<env>-monitoring.

Publishes only with ``CMS_PUBLISH_RUN_METRICS=1`` (or an AWS endpoint configured); otherwise it logs that
it skipped. The Environment dimension is ``CMS_ENVIRONMENT``: set it to the ``--env`` of `cms infra deploy`.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from cms_dagster import settings
from cms_dagster.infra.run_metrics import METRIC_NAME, NAMESPACE, publish_run_failure, publishing_enabled

__all__ = ["cms_run_failure_metric"]


@dg.run_failure_sensor(
    name="cms_run_failure_metric",
    description=f"Publishes {NAMESPACE} {METRIC_NAME} (dimensions JobName, Environment) for every failed run.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def cms_run_failure_metric(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    enabled, reason = publishing_enabled(settings.process_environment())
    if not enabled:
        context.log.info(
            f"run {run.run_id} of {run.job_name} failed; {NAMESPACE} {METRIC_NAME} skipped: {reason}"
        )
        return

    from cms_dagster.lake import aws

    event_ts = getattr(context.failure_event, "timestamp", None)
    when = dt.datetime.fromtimestamp(event_ts, dt.timezone.utc) if event_ts else None
    environment = settings.load().environment
    publish_run_failure(
        aws.client("cloudwatch"), job_name=run.job_name, environment=environment, timestamp=when
    )
    context.log.info(
        f"run {run.run_id} of {run.job_name} failed; published {NAMESPACE} {METRIC_NAME} "
        f"(JobName={run.job_name}, Environment={environment})"
    )
