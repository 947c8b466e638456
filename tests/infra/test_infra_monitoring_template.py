"""Monitoring of the monitor: alarms (moto skips AWS::CloudWatch::Alarm, so they are asserted here), log
groups with retention, the dashboard, and the SNS topics the alarms notify."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from infra_helpers import default, props, resources, substitute

from cms_dagster.infra import run_metrics

CRITICAL = {"Ref": "CriticalTopicArn"}
WARNING = {"Ref": "WarningTopicArn"}
FUNCTION_DIMENSION = [{"Name": "FunctionName", "Value": {"Ref": "CollectorFunctionName"}}]


@pytest.fixture(scope="module")
def monitoring(templates):
    return templates["monitoring"]


def alarm(monitoring, logical_id: str) -> dict:
    return props(monitoring, logical_id)


def evaluate_math(expression: str, **metrics: float) -> float:
    """Evaluate a metric-math expression of + - * / ( ) numbers and metric ids."""
    assert re.fullmatch(r"[\w\s.+\-*/()]+", expression), expression
    return float(eval(expression, {"__builtins__": {}}, metrics))  # noqa: S307 - checked above


def test_every_alarm_notifies_a_topic_and_clears_it(monitoring) -> None:
    alarms = resources(monitoring, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 6
    for logical_id, a in alarms.items():
        p = a["Properties"]
        assert p["AlarmActions"] in ([CRITICAL], [WARNING]), logical_id
        assert p["OKActions"] == p["AlarmActions"], logical_id
        assert p["AlarmName"]["Fn::Sub"].startswith("cms-${Environment}-"), logical_id
        assert p["AlarmDescription"], logical_id


@pytest.mark.parametrize(
    ("logical_id", "metric", "topic"),
    [("CollectorErrorsAlarm", "Errors", CRITICAL), ("CollectorThrottlesAlarm", "Throttles", WARNING)],
)
def test_collector_failures_and_throttles_alarm_on_the_first_one(
    monitoring, logical_id, metric, topic
) -> None:
    p = alarm(monitoring, logical_id)
    assert (p["Namespace"], p["MetricName"], p["Dimensions"]) == ("AWS/Lambda", metric, FUNCTION_DIMENSION)
    assert (p["Statistic"], p["Period"], p["EvaluationPeriods"]) == ("Sum", 300, 1)
    assert (p["ComparisonOperator"], p["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert p["TreatMissingData"] == "notBreaching"
    assert p["AlarmActions"] == [topic]


def test_a_silent_collector_is_critical(monitoring) -> None:
    p = alarm(monitoring, "CollectorSilentAlarm")
    assert (p["Namespace"], p["MetricName"], p["Dimensions"]) == (
        "AWS/Lambda",
        "Invocations",
        FUNCTION_DIMENSION,
    )
    assert (p["ComparisonOperator"], p["Threshold"], p["Statistic"]) == ("LessThanThreshold", 1, "Sum")
    assert p["TreatMissingData"] == "breaching", "no invocation at all means no data points"
    assert (
        p["Period"] == {"Ref": "CollectorSilenceSeconds"}
        and default(monitoring, "CollectorSilenceSeconds") == 7200
    )
    assert p["AlarmActions"] == [CRITICAL]


def test_duration_near_the_timeout_warns_at_80_percent(monitoring) -> None:
    p = alarm(monitoring, "CollectorDurationAlarm")
    duration, percent = p["Metrics"]
    assert duration["MetricStat"]["Metric"] == {
        "Namespace": "AWS/Lambda",
        "MetricName": "Duration",
        "Dimensions": FUNCTION_DIMENSION,
    }
    assert duration["MetricStat"]["Stat"] == "Maximum" and duration["ReturnData"] is False
    assert percent["ReturnData"] is True
    assert (
        p["Threshold"] == {"Ref": "DurationAlarmPercent"}
        and default(monitoring, "DurationAlarmPercent") == 80
    )
    assert p["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert p["AlarmActions"] == [WARNING]
    expression = substitute(percent["Expression"]["Fn::Sub"], {"CollectorTimeoutSeconds": 300})
    # Lambda reports Duration in milliseconds; the timeout parameter is in seconds
    assert evaluate_math(expression, duration=240_000) == pytest.approx(80.0)
    assert evaluate_math(expression, duration=250_000) >= 80 > evaluate_math(expression, duration=200_000)


def test_memory_near_the_limit_warns_at_90_percent_from_the_report_lines(monitoring, templates) -> None:
    p = alarm(monitoring, "CollectorMemoryAlarm")
    memory, percent = p["Metrics"]
    metric = memory["MetricStat"]["Metric"]
    assert metric == {"Namespace": "CMS/Collector", "MetricName": {"Ref": "CollectorMaxMemoryMetricName"}}
    # the metric the collector stack's filter writes (wired by `cms infra deploy`)
    collector = templates["collector"]
    (flt,) = resources(collector, "AWS::Logs::MetricFilter").values()
    assert flt["Properties"]["MetricTransformations"][0]["MetricNamespace"] == metric["Namespace"]
    assert memory["MetricStat"]["Stat"] == "Maximum"
    assert p["Threshold"] == {"Ref": "MemoryAlarmPercent"} and default(monitoring, "MemoryAlarmPercent") == 90
    assert p["AlarmActions"] == [WARNING]
    expression = substitute(percent["Expression"]["Fn::Sub"], {"CollectorMemorySize": 512})
    assert evaluate_math(expression, max_memory=471) >= 90 > evaluate_math(expression, max_memory=400)


def test_dagster_run_failures_alarm_watches_what_the_sensor_publishes(monitoring) -> None:
    p = alarm(monitoring, "DagsterRunFailuresAlarm")
    assert (
        (p["Namespace"], p["MetricName"])
        == (run_metrics.NAMESPACE, run_metrics.METRIC_NAME)
        == ("CMS/Dagster", "RunFailures")
    )
    assert p["Dimensions"] == [{"Name": "Environment", "Value": {"Ref": "Environment"}}]
    published = run_metrics.run_failure_datums("daily_pnl", "prod", dt.datetime.now(dt.timezone.utc))
    assert [{"Name": "Environment", "Value": "prod"}] in [d["Dimensions"] for d in published]
    assert (p["Statistic"], p["Period"], p["ComparisonOperator"]) == (
        "Sum",
        300,
        "GreaterThanOrEqualToThreshold",
    )
    assert (
        p["Threshold"] == {"Ref": "RunFailuresThreshold"} and default(monitoring, "RunFailuresThreshold") == 1
    )
    assert p["TreatMissingData"] == "notBreaching"
    assert p["AlarmActions"] == [CRITICAL]


def test_every_task_has_a_log_group_with_retention(monitoring, templates) -> None:
    groups = {
        lid: r["Properties"]
        for t in (monitoring, templates["collector"])
        for lid, r in resources(t, "AWS::Logs::LogGroup").items()
    }
    names = {p["LogGroupName"]["Fn::Sub"] for p in groups.values()}
    assert names == {
        "/aws/lambda/cms-${Environment}-collector",
        "/cms/${Environment}/dagster/webserver",
        "/cms/${Environment}/dagster/daemon",
        "/cms/${Environment}/dagster/runs",
        "/cms/${Environment}/ingest",
    }
    for p in groups.values():
        assert p["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert default(monitoring, "LogRetentionDays") == 30


def dashboard_body(monitoring) -> dict:
    (dash,) = resources(monitoring, "AWS::CloudWatch::Dashboard").values()
    values = {
        "Environment": "prod",
        "CollectorFunctionName": "cms-prod-collector",
        "CollectorLogGroupName": "/aws/lambda/cms-prod-collector",
        "CollectorTimeoutSeconds": 300,
        "CollectorMemorySize": 512,
        "CollectorMaxMemoryMetricName": "prod-MaxMemoryUsedMB",
        "DurationAlarmPercent": 80,
        "MemoryAlarmPercent": 90,
        "RawBucketName": "cms-prod-raw-1-eu-west-1",
        "ProcessedBucketName": "cms-prod-processed-1-eu-west-1",
        "AWS::Region": "eu-west-1",
        "AWS::AccountId": "123456789012",
        "AWS::Partition": "aws",
    }
    return json.loads(substitute(dash["Properties"]["DashboardBody"]["Fn::Sub"], values))


def test_dashboard_body_is_valid_json_covering_system_health(monitoring) -> None:
    body = dashboard_body(monitoring)
    metrics = json.dumps([w["properties"].get("metrics") for w in body["widgets"]])
    for needle in (
        '"Invocations"',
        '"Errors"',
        '"Throttles"',
        '"Duration"',
        "prod-MaxMemoryUsedMB",
        '"RunFailures"',
        "BucketSizeBytes",
    ):
        assert needle in metrics, needle
    (alarms_widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    alarm_names = {a.rsplit(":", 1)[1] for a in alarms_widget["properties"]["alarms"]}
    declared = {
        substitute(r["Properties"]["AlarmName"]["Fn::Sub"], {"Environment": "prod"})
        for r in resources(monitoring, "AWS::CloudWatch::Alarm").values()
    }
    assert alarm_names == declared
    (logs_widget,) = [w for w in body["widgets"] if w["type"] == "log"]
    assert "SOURCE '/aws/lambda/cms-prod-collector'" in logs_widget["properties"]["query"]


def test_alerting_has_critical_and_warning_topics_with_optional_subscriptions(templates) -> None:
    alerting = templates["alerting"]
    topics = resources(alerting, "AWS::SNS::Topic")
    assert {t["Properties"]["TopicName"]["Fn::Sub"] for t in topics.values()} == {
        "cms-${Environment}-critical",
        "cms-${Environment}-warning",
    }
    subs = resources(alerting, "AWS::SNS::Subscription")
    seen = set()
    for sub in subs.values():
        p = sub["Properties"]
        parameter = p["Endpoint"]["Ref"]
        assert default(alerting, parameter) == "", "subscriptions are optional"
        assert alerting["Conditions"][sub["Condition"]] == {
            "Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]
        }
        seen.add((p["TopicArn"]["Ref"], p["Protocol"]))
    assert seen == {(t, proto) for t in ("CriticalTopic", "WarningTopic") for proto in ("email", "https")}
    (policy,) = resources(alerting, "AWS::SNS::TopicPolicy").values()
    allow = next(s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow")
    assert set(allow["Principal"]["Service"]) == {"cloudwatch.amazonaws.com", "events.amazonaws.com"}
    assert allow["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
