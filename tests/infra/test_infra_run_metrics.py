"""Failed Dagster runs become CMS/Dagster RunFailures in CloudWatch, which the monitoring alarm watches."""

from __future__ import annotations

import datetime as dt

import boto3
import dagster as dg
import pytest
from moto import mock_aws

from cms_dagster.infra.run_metrics import (
    METRIC_NAME,
    NAMESPACE,
    publish_run_failure,
    publishing_enabled,
)

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"CMS_PUBLISH_RUN_METRICS": "1"}, True),
        ({"CMS_PUBLISH_RUN_METRICS": "true"}, True),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, True),
        ({"AWS_ENDPOINT_URL_CLOUDWATCH": "http://127.0.0.1:5000"}, True),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "CMS_PUBLISH_RUN_METRICS": "0"}, False),
    ],
)
def test_publishing_is_opt_in(environ: dict, enabled: bool) -> None:
    assert publishing_enabled(environ)[0] is enabled


def test_why_not_publishing_is_explained() -> None:
    assert "set it to 1" in publishing_enabled({})[1]
    with pytest.raises(ValueError, match="use 1 to publish"):
        publishing_enabled({"CMS_PUBLISH_RUN_METRICS": "maybe"})


def stats(cw, dimensions: list[dict]) -> float:
    points = cw.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=METRIC_NAME,
        Dimensions=dimensions,
        StartTime=NOW - dt.timedelta(minutes=10),
        EndTime=NOW + dt.timedelta(minutes=10),
        Period=3600,
        Statistics=["Sum"],
    )["Datapoints"]
    return sum(p["Sum"] for p in points)


@pytest.mark.slow
def test_a_failure_is_counted_per_job_and_per_environment(aws_env) -> None:
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        publish_run_failure(cw, job_name="daily_pnl", environment="prod", timestamp=NOW)
        publish_run_failure(cw, job_name="daily_pnl", environment="prod", timestamp=NOW)
        publish_run_failure(cw, job_name="eod_prices", environment="prod", timestamp=NOW)
        listed = cw.list_metrics(Namespace=NAMESPACE, MetricName=METRIC_NAME)["Metrics"]
        dims = {tuple((d["Name"], d["Value"]) for d in m["Dimensions"]) for m in listed}
        assert dims == {(("JobName", "daily_pnl"),), (("JobName", "eod_prices"),), (("Environment", "prod"),)}
        assert stats(cw, [{"Name": "JobName", "Value": "daily_pnl"}]) == 2
        assert stats(cw, [{"Name": "Environment", "Value": "prod"}]) == 3


def test_naive_timestamps_and_empty_jobs_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        publish_run_failure(object(), job_name="j", environment="e", timestamp=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="job_name is empty"):
        publish_run_failure(object(), job_name="", environment="e", timestamp=NOW)


# --- the Dagster sensor -------------------------------------------------------------------------------


def test_module_exports_the_sensor_for_the_definitions_loader() -> None:
    namespace: dict = {}
    exec("from cms_dagster.defs.alerting.run_failure_sensor import *", namespace)
    sensor = namespace["cms_run_failure_metric"]
    assert isinstance(sensor, dg.RunStatusSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    dg.Definitions.validate_loadable(dg.Definitions(sensors=[sensor]))


@dg.op
def boom() -> None:
    raise RuntimeError("feed missing")


@dg.job
def failing_job() -> None:
    boom()


def run_sensor_on_a_failed_run() -> None:
    from cms_dagster.defs.alerting.run_failure_sensor import cms_run_failure_metric

    instance = dg.DagsterInstance.ephemeral()
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="cms_run_failure_metric",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    cms_run_failure_metric(context)


def test_sensor_publishes_the_failed_runs_job_when_enabled(aws_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMS_PUBLISH_RUN_METRICS", "1")
    monkeypatch.setenv("CMS_ENVIRONMENT", "prod")
    with mock_aws():
        run_sensor_on_a_failed_run()
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        listed = cw.list_metrics(Namespace=NAMESPACE, MetricName=METRIC_NAME)["Metrics"]
        dims = {tuple((d["Name"], d["Value"]) for d in m["Dimensions"]) for m in listed}
        assert dims == {(("JobName", "failing_job"),), (("Environment", "prod"),)}


def test_sensor_skips_without_opt_in(aws_env, capfd: pytest.CaptureFixture[str]) -> None:
    with mock_aws():
        run_sensor_on_a_failed_run()
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        assert cw.list_metrics(Namespace=NAMESPACE)["Metrics"] == []
    captured = capfd.readouterr()
    assert (
        "CMS/Dagster RunFailures skipped: CMS_PUBLISH_RUN_METRICS is not set" in captured.err + captured.out
    )
