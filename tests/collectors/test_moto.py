"""Correctness against moto in server mode (real HTTP, real botocore): all four services, small histories.

moto's CloudWatch crashes on percentile statistics, so these runs collect without p99
(CMS_CW_STATISTICS=Sum,SampleCount,Minimum,Maximum); p99 is covered by the stand-in tests.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from collectors_helpers import ACCOUNT, DAY, HOUR, raw_batches, read_points

from cms_dagster import settings
from cms_dagster.collectors.collector import CollectorConfig, collect


def _rows(table, metric: str, **dims) -> list[dict]:
    out = []
    for r in table.to_pylist():
        if r["metric_name"] != metric:
            continue
        d = json.loads(r["attributes"])["Dimensions"]
        if all(d.get(k) == v for k, v in dims.items()):
            out.append(r)
    return sorted(out, key=lambda r: r["ts"])


@pytest.fixture
def run(moto_env):
    cfg = CollectorConfig.from_settings(settings.load())
    summary = collect(cfg, moto_env["raw"], HOUR, HOUR + dt.timedelta(hours=1))
    assert summary.ok, summary.errors
    return summary, read_points(moto_env["raw"], raw_batches(moto_env["raw"]))


def test_rds_minutes_land_as_summary_points_with_the_published_values(run):
    summary, t = run
    cpu = _rows(t, "amazonaws.com/AWS/RDS/CPUUtilization", DBInstanceIdentifier="orders-db")
    assert [r["sum"] for r in cpu] == [41.0, 55.5, 63.0, 71.25, 88.0]
    assert {r["count"] for r in cpu} == {1.0}
    first = cpu[0]
    assert first["entity_id"] == "rds:orders-db" and first["unit"] == "Percent" and first["metric_kind"] == "summary"
    assert first["start_ts"] == HOUR and first["ts"] == HOUR + dt.timedelta(minutes=1)
    assert (first["account_id"], first["region"]) == (ACCOUNT, "us-east-1")
    lat = _rows(t, "amazonaws.com/AWS/RDS/ReadLatency", DBInstanceIdentifier="orders-db")[0]
    assert (lat["count"], lat["sum"], lat["min"], lat["max"]) == (2.0, pytest.approx(0.016), 0.004, 0.012)
    assert lat["value"] == pytest.approx(0.008)  # Average = Sum / SampleCount, never requested
    assert lat["p99"] is None  # no percentiles against moto
    conns = _rows(t, "amazonaws.com/AWS/RDS/DatabaseConnections", DBInstanceIdentifier="orders-db")
    limit = _rows(t, "amazonaws.com/CMS/AWSConfig/MaxConnections", DBInstanceIdentifier="orders-db")
    assert [r["value"] for r in limit] == [400.0]  # from the parameter group
    assert max(r["max"] for r in conns) / limit[0]["value"] == 1.0  # pool exhaustion visible as a ratio
    # refdata-db has no max_connections: the postgres default for db.r6g.large (16 GiB / 9531392)
    assert _rows(t, "amazonaws.com/CMS/AWSConfig/MaxConnections", DBInstanceIdentifier="refdata-db")[0]["value"] == 1802.0


def test_only_the_hour_window_is_written_under_its_data_hour(run, moto_env):
    summary, t = run
    cpu = _rows(t, "amazonaws.com/AWS/RDS/CPUUtilization", DBInstanceIdentifier="orders-db")
    assert 99.0 not in [r["max"] for r in cpu]  # 15:05 belongs to the next window
    assert {(str(r["dt"]), r["hour"], r["source"]) for r in t.to_pylist()} == {(DAY, 14, "cloudwatch")}
    for k in summary.raw_keys:
        assert k.startswith(f"otel/metrics/source=cloudwatch/dt={DAY}/hour=14/{HOUR:%Y%m%d}T150000Z-cw-123456789012-us-east-1-")
    assert moto_env["raw"].exists(f"checkpoints/collector/cloudwatch/123456789012/us-east-1/dt={DAY}/hour=14.json")


def test_sqs_queue_depth_and_attributes(run):
    _, t = run
    vis = _rows(t, "amazonaws.com/AWS/SQS/ApproximateNumberOfMessagesVisible", QueueName="trade-events")
    assert [r["max"] for r in vis] == [120.0, 480.0, 1900.0] and vis[0]["entity_id"] == "sqs:trade-events"
    age = _rows(t, "amazonaws.com/AWS/SQS/ApproximateAgeOfOldestMessage", QueueName="trade-events")
    assert [r["max"] for r in age] == [12.0, 75.0, 240.0] and age[0]["unit"] == "Seconds"
    facts = {}
    for name, want in (("VisibilityTimeout", 45.0), ("MessageRetentionPeriod", 86400.0), ("RedriveMaxReceiveCount", 5.0)):
        got = _rows(t, f"amazonaws.com/CMS/AWSConfig/{name}", QueueName="trade-events")
        assert [(r["count"], r["value"], r["min"], r["max"]) for r in got] == [(1.0, want, want, want)]
        facts[name] = got[0]
    assert facts["VisibilityTimeout"]["start_ts"] == HOUR and facts["VisibilityTimeout"]["ts"] == HOUR + dt.timedelta(hours=1)
    dlq = _rows(t, "amazonaws.com/CMS/AWSConfig/RedriveMaxReceiveCount", QueueName="trade-events-dlq")
    assert [r["value"] for r in dlq] == [0.0]  # no redrive policy


@pytest.mark.slow
def test_lambda_metrics_config_memory_and_timeouts(run):
    _, t = run
    dur = _rows(t, "amazonaws.com/AWS/Lambda/Duration", FunctionName="fx-rate-normalizer")
    assert (dur[0]["count"], dur[0]["min"], dur[0]["max"], dur[0]["value"]) == (2.0, 120.0, 180.0, 150.0)
    inv = _rows(t, "amazonaws.com/AWS/Lambda/Invocations")
    assert {json.dumps(json.loads(r["attributes"])["Dimensions"]) for r in inv} == {'{"FunctionName": "fx-rate-normalizer"}'}
    cfg = {n: _rows(t, f"amazonaws.com/CMS/AWSConfig/{n}", FunctionName="fx-rate-normalizer")[0]["value"] for n in ("MemorySize", "Timeout")}
    assert cfg == {"MemorySize": 512.0, "Timeout": 60.0}
    # memory from the REPORT lines (largest per minute), timeouts from the "Task timed out" line
    mem = _rows(t, "amazonaws.com/CMS/AWSConfig/MaxMemoryUsed", FunctionName="fx-rate-normalizer")
    assert [(r["start_ts"].minute, r["value"]) for r in mem] == [(2, 91.0), (3, 130.0)]
    assert mem[0]["unit"] == "Megabytes"
    tos = _rows(t, "amazonaws.com/CMS/AWSConfig/Timeouts", FunctionName="fx-rate-normalizer")
    assert [(r["start_ts"].minute, r["value"]) for r in tos] == [(2, 0.0), (3, 1.0)]
    # bond-price-loader: memory from Lambda Insights, timeouts from Duration reaching its 300 s timeout
    mem = _rows(t, "amazonaws.com/CMS/AWSConfig/MaxMemoryUsed", FunctionName="bond-price-loader")
    assert [(r["start_ts"].minute, r["value"]) for r in mem] == [(5, 612.0), (6, 1019.0)]
    tos = _rows(t, "amazonaws.com/CMS/AWSConfig/Timeouts", FunctionName="bond-price-loader")
    assert [(r["start_ts"].minute, r["value"]) for r in tos] == [(5, 0.0), (6, 1.0)]
    assert not _rows(t, "amazonaws.com/LambdaInsights/used_memory_max")


def test_eks_container_insights(run):
    _, t = run
    pods = _rows(t, "amazonaws.com/ContainerInsights/service_number_of_running_pods", Service="pricer")
    assert [r["max"] for r in pods] == [24.0, 23.0] and pods[0]["entity_id"] == "eks:markets-prod/pricing"
    mem = _rows(t, "amazonaws.com/ContainerInsights/pod_memory_utilization", ClusterName="markets-prod")
    assert [r["max"] for r in mem] == [70.0, 74.0, 79.0]
    failed = _rows(t, "amazonaws.com/ContainerInsights/cluster_failed_node_count")
    assert [r["max"] for r in failed] == [0.0, 1.0] and failed[0]["entity_id"] == "eks:markets-prod"
    per_pod = [r for r in _rows(t, "amazonaws.com/ContainerInsights/pod_cpu_utilization") if "PodName" in r["attributes"]]
    assert per_pod == []  # only the table's dimension sets are collected


def test_run_summary_counts_calls_and_prices_them(run):
    summary, t = run
    assert summary.calls["GetMetricData"] == summary.planned_get_metric_data_calls == 1
    assert summary.calls["ListMetrics"] == 5  # four namespaces + Lambda Insights, one page each
    # 10 RDS, 9 SQS, 8 Lambda, 8 EKS series (not the per-alias, account-wide or per-pod variants)
    assert summary.metrics_collected == 35 and summary.metrics_discovered == 38
    # Sum, SampleCount, Minimum, Maximum per metric (Average is never requested) + Lambda Insights memory
    assert summary.metrics_requested == 4 * 35 + 1
    assert summary.estimated_cost_usd == pytest.approx(summary.metrics_requested * 0.01 / 1000 + 5 * 0.01 / 1000)
    assert summary.points == t.num_rows and summary.datapoints > 0 and summary.bytes > 0
    assert {"GetQueueAttributes", "GetFunctionConfiguration", "DescribeDBInstances", "FilterLogEvents"} <= set(summary.calls)


@pytest.mark.slow
def test_tag_filter_keeps_only_tagged_resources(moto_env, monkeypatch):
    monkeypatch.setenv("CMS_CW_RESOURCE_FILTER", "tag:team=markets")
    cfg = CollectorConfig.from_settings(settings.load())
    summary = collect(cfg, moto_env["raw"], HOUR, HOUR + dt.timedelta(hours=1))
    assert summary.ok, summary.errors
    t = read_points(moto_env["raw"], summary.raw_keys)
    entities = set(t.column("entity_id").to_pylist())
    assert entities == {"rds:orders-db", "sqs:trade-events", "lambda:fx-rate-normalizer", "lambda:bond-price-loader"}
    assert summary.calls["GetResources"] == 1


def test_accounts_are_assumed_into_with_sts(moto_env, monkeypatch):
    monkeypatch.setenv("CMS_AWS_ROLE_ARNS", f"arn:aws:iam::{ACCOUNT}:role/cms-collector")
    monkeypatch.setenv("CMS_CW_NAMESPACES", "AWS/SQS")
    summary = collect(CollectorConfig.from_settings(settings.load()), moto_env["raw"], HOUR, HOUR + dt.timedelta(hours=1))
    assert summary.ok, summary.errors
    assert summary.calls["AssumeRole"] == 1 and summary.targets == [f"{ACCOUNT}/us-east-1"]
    assert "GetCallerIdentity" not in summary.calls
