"""The CloudWatch metric CMS/Dagster RunFailures that the run-failure alarm of cms-<env>-monitoring watches.

Each failed run is one pair of data points (value 1, unit Count): one with dimension ``JobName`` (which
job fails) and one with dimension ``Environment`` (what the alarm counts, whatever the job). Publishing
happens only when asked for (``CMS_PUBLISH_RUN_METRICS=1``) or when an AWS endpoint is configured, so the
embedded mode never calls AWS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

NAMESPACE = "CMS/Dagster"
METRIC_NAME = "RunFailures"
PUBLISH_ENV = "CMS_PUBLISH_RUN_METRICS"
TRUE_VALUES = ("1", "true", "yes", "on")
FALSE_VALUES = ("0", "false", "no", "off")
ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL")


def publishing_enabled(environ: Mapping[str, str]) -> tuple[bool, str]:
    """Whether to publish, and why: ``CMS_PUBLISH_RUN_METRICS`` decides; unset, a configured AWS endpoint does."""
    flag = (environ.get(PUBLISH_ENV) or "").strip().lower()
    if flag in TRUE_VALUES:
        return True, f"{PUBLISH_ENV}={flag}"
    if flag in FALSE_VALUES:
        return False, f"{PUBLISH_ENV}={flag}"
    if flag:
        raise ValueError(f"{PUBLISH_ENV}={flag!r}: use 1 to publish run-failure metrics or 0 not to")
    for name in ENDPOINT_ENVS:
        if (environ.get(name) or "").strip():
            return True, f"{name} is set"
    return False, f"{PUBLISH_ENV} is not set (set it to 1 to publish {NAMESPACE} {METRIC_NAME} to CloudWatch)"


def run_failure_datums(job_name: str, environment: str, timestamp: dt.datetime) -> list[dict[str, Any]]:
    """The MetricData of one failed run."""
    if not job_name:
        raise ValueError("job_name is empty: a run failure is counted per job")
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware (UTC)")
    base = {"MetricName": METRIC_NAME, "Timestamp": timestamp, "Value": 1.0, "Unit": "Count"}
    return [
        {**base, "Dimensions": [{"Name": "JobName", "Value": job_name}]},
        {**base, "Dimensions": [{"Name": "Environment", "Value": environment}]},
    ]


def publish_run_failure(
    cloudwatch: Any,
    *,
    job_name: str,
    environment: str,
    timestamp: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Put the run-failure data points with a boto3 CloudWatch client; returns what was sent."""
    when = timestamp or dt.datetime.now(dt.timezone.utc)
    datums = run_failure_datums(job_name, environment, when)
    cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=datums)
    return datums
