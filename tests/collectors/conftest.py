"""Fixtures for the CloudWatch collector tests: a clean environment, a raw zone, moto in server mode."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import Iterator

import pytest
from collectors_helpers import ACCOUNT, HOUR, UTC, raw_batches, read_points  # noqa: F401

from cms_dagster import lake

_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "CMS_AWS_REGIONS",
    "CMS_AWS_ROLE_ARNS",
    "CMS_CW_NAMESPACES",
    "CMS_CW_RESOURCE_FILTER",
    "CMS_CW_STATISTICS",
    "CMS_METRIC_STREAMS_URL",
    "CMS_LAKE_URL",
    "CMS_RAW_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for k in _ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CMS_HOME", str(tmp_path / "cms"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def raw(tmp_path) -> lake.Zone:
    return lake.Zone(str(tmp_path / "raw"))


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    yield f"http://{host}:{port}"
    srv.stop()


def _at(minute: int, second: int = 10) -> dt.datetime:
    return HOUR + dt.timedelta(minutes=minute, seconds=second)


def _put(cw, namespace: str, name: str, dims: dict[str, str], unit: str, points: list[tuple[int, float]]) -> None:
    cw.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                "Timestamp": _at(m, 10 + 5 * i),
                "Value": v,
                "Unit": unit,
            }
            for i, (m, v) in enumerate(points)
        ],
    )


@pytest.fixture(scope="session")
def moto_estate(moto_url: str) -> dict:
    """RDS, SQS, Lambda (+ logs, + Lambda Insights) and EKS Container Insights, with <= 5 points per series."""
    import boto3

    s = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")

    def c(svc: str):
        return s.client(svc, endpoint_url=moto_url)

    rds, sqs, lam, logs, cw = c("rds"), c("sqs"), c("lambda"), c("logs"), c("cloudwatch")
    # RDS: orders-db with max_connections 400 in its parameter group; refdata-db on the engine default
    rds.create_db_parameter_group(DBParameterGroupName="orders-pg", DBParameterGroupFamily="postgres16", Description="orders")
    rds.modify_db_parameter_group(
        DBParameterGroupName="orders-pg",
        Parameters=[{"ParameterName": "max_connections", "ParameterValue": "400", "ApplyMethod": "pending-reboot"}],
    )
    common = {"Engine": "postgres", "MasterUsername": "cms", "MasterUserPassword": "password123", "AllocatedStorage": 100}
    rds.create_db_instance(
        DBInstanceIdentifier="orders-db", DBInstanceClass="db.r6g.xlarge", DBParameterGroupName="orders-pg",
        Tags=[{"Key": "team", "Value": "markets"}], **common,
    )
    rds.create_db_instance(DBInstanceIdentifier="refdata-db", DBInstanceClass="db.r6g.large", **common)
    # SQS: trade-events with a redrive policy to its DLQ
    dlq = sqs.create_queue(QueueName="trade-events-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(
        QueueName="trade-events",
        Attributes={
            "VisibilityTimeout": "45",
            "MessageRetentionPeriod": "86400",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
        },
        tags={"team": "markets"},
    )
    # Lambda: two functions (metadata only), one with REPORT logs, one with Lambda Insights
    role = c("iam").create_role(RoleName="cms-lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    for name, mem, timeout in (("fx-rate-normalizer", 512, 60), ("bond-price-loader", 1024, 300)):
        lam.create_function(
            FunctionName=name, Runtime="python3.11", Role=role, Handler="handler.handler",
            Code={"ZipFile": buf.getvalue()}, MemorySize=mem, Timeout=timeout, Tags={"team": "markets"},
        )
    group = "/aws/lambda/fx-rate-normalizer"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=f"{HOUR:%Y/%m/%d}/[$LATEST]abc")
    rid = "1f0e5a52-1111-2222-3333-44445555666{}"
    events = [
        (_at(2, 1), f"START RequestId: {rid.format(1)} Version: $LATEST"),
        (_at(2, 3), f"REPORT RequestId: {rid.format(1)}\tDuration: 102.25 ms\tBilled Duration: 103 ms\tMemory Size: 512 MB\tMax Memory Used: 78 MB"),
        (_at(2, 9), f"REPORT RequestId: {rid.format(2)}\tDuration: 90.00 ms\tBilled Duration: 90 ms\tMemory Size: 512 MB\tMax Memory Used: 91 MB"),
        (_at(3, 40), f"{_at(3, 40):%Y-%m-%dT%H:%M:%S}.000Z {rid.format(3)} Task timed out after 60.06 seconds"),
        (_at(3, 41), f"REPORT RequestId: {rid.format(3)}\tDuration: 60000.00 ms\tBilled Duration: 60000 ms\tMemory Size: 512 MB\tMax Memory Used: 130 MB"),
    ]
    logs.put_log_events(
        logGroupName=group,
        logStreamName=f"{HOUR:%Y/%m/%d}/[$LATEST]abc",
        logEvents=[{"timestamp": int(t.timestamp() * 1000), "message": m} for t, m in events],
    )
    db = {"DBInstanceIdentifier": "orders-db"}
    # RDS history: connections climbing towards the limit, latency with two samples in one minute
    _put(cw, "AWS/RDS", "CPUUtilization", db, "Percent", [(0, 41.0), (1, 55.5), (2, 63.0), (3, 71.25), (4, 88.0)])
    _put(cw, "AWS/RDS", "DatabaseConnections", db, "Count", [(0, 310.0), (1, 352.0), (2, 389.0), (3, 400.0), (4, 400.0)])
    _put(cw, "AWS/RDS", "ReadLatency", db, "Seconds", [(0, 0.004), (0, 0.012), (1, 0.020)])
    _put(cw, "AWS/RDS", "WriteLatency", db, "Seconds", [(0, 0.006)])
    _put(cw, "AWS/RDS", "FreeableMemory", db, "Bytes", [(0, 8.1e9), (1, 7.9e9)])
    _put(cw, "AWS/RDS", "FreeStorageSpace", db, "Bytes", [(0, 5.2e10)])
    _put(cw, "AWS/RDS", "ReadIOPS", db, "Count/Second", [(0, 1200.0)])
    _put(cw, "AWS/RDS", "WriteIOPS", db, "Count/Second", [(0, 640.0)])
    _put(cw, "AWS/RDS", "DiskQueueDepth", db, "Count", [(0, 1.5), (1, 3.0)])
    _put(cw, "AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": "refdata-db"}, "Percent", [(0, 12.0)])
    _put(cw, "AWS/RDS", "CPUUtilization", db, "Percent", [(65, 99.0)])  # 15:05: next hour's window
    # SQS history
    q = {"QueueName": "trade-events"}
    _put(cw, "AWS/SQS", "ApproximateNumberOfMessagesVisible", q, "Count", [(0, 120.0), (1, 480.0), (2, 1900.0)])
    _put(cw, "AWS/SQS", "ApproximateNumberOfMessagesNotVisible", q, "Count", [(0, 30.0), (1, 35.0)])
    _put(cw, "AWS/SQS", "ApproximateNumberOfMessagesDelayed", q, "Count", [(0, 0.0)])
    _put(cw, "AWS/SQS", "ApproximateAgeOfOldestMessage", q, "Seconds", [(0, 12.0), (1, 75.0), (2, 240.0)])
    _put(cw, "AWS/SQS", "NumberOfMessagesSent", q, "Count", [(0, 900.0), (1, 1400.0)])
    _put(cw, "AWS/SQS", "NumberOfMessagesReceived", q, "Count", [(0, 780.0), (1, 920.0)])
    _put(cw, "AWS/SQS", "NumberOfMessagesDeleted", q, "Count", [(0, 770.0), (1, 910.0)])
    _put(cw, "AWS/SQS", "NumberOfEmptyReceives", q, "Count", [(0, 3.0)])
    _put(cw, "AWS/SQS", "NumberOfMessagesSent", {"QueueName": "trade-events-dlq"}, "Count", [(2, 4.0)])
    # Lambda history (+ variants that must not be collected: per alias, account-wide)
    fx, bond = {"FunctionName": "fx-rate-normalizer"}, {"FunctionName": "bond-price-loader"}
    _put(cw, "AWS/Lambda", "Invocations", fx, "Count", [(0, 40.0), (1, 52.0), (2, 61.0), (3, 58.0)])
    _put(cw, "AWS/Lambda", "Errors", fx, "Count", [(3, 1.0)])
    _put(cw, "AWS/Lambda", "Throttles", fx, "Count", [(2, 2.0)])
    _put(cw, "AWS/Lambda", "Duration", fx, "Milliseconds", [(0, 120.0), (0, 180.0), (2, 102.25), (3, 60000.0)])
    _put(cw, "AWS/Lambda", "ConcurrentExecutions", fx, "Count", [(0, 3.0), (1, 5.0)])
    _put(cw, "AWS/Lambda", "ProvisionedConcurrentExecutions", fx, "Count", [(0, 2.0)])
    _put(cw, "AWS/Lambda", "ProvisionedConcurrencyUtilization", fx, "None", [(0, 0.75)])
    _put(cw, "AWS/Lambda", "Invocations", {"FunctionName": "fx-rate-normalizer", "Resource": "fx-rate-normalizer:live"}, "Count", [(0, 40.0)])
    _put(cw, "AWS/Lambda", "Invocations", {}, "Count", [(0, 500.0)])
    _put(cw, "AWS/Lambda", "Duration", bond, "Milliseconds", [(5, 41000.0), (6, 300000.0)])
    _put(cw, "LambdaInsights", "used_memory_max", {"function_name": "bond-price-loader"}, "Megabytes", [(5, 612.0), (6, 1019.0)])
    # EKS Container Insights
    cl, ns = {"ClusterName": "markets-prod"}, {"ClusterName": "markets-prod", "Namespace": "pricing"}
    _put(cw, "ContainerInsights", "node_cpu_utilization", cl, "Percent", [(0, 62.0), (1, 64.0)])
    _put(cw, "ContainerInsights", "node_memory_utilization", cl, "Percent", [(0, 71.0)])
    _put(cw, "ContainerInsights", "cluster_failed_node_count", cl, "Count", [(0, 0.0), (1, 1.0)])
    _put(cw, "ContainerInsights", "pod_cpu_utilization", ns, "Percent", [(0, 45.0)])
    _put(cw, "ContainerInsights", "pod_memory_utilization", ns, "Percent", [(0, 70.0), (1, 74.0), (2, 79.0)])
    _put(cw, "ContainerInsights", "pod_cpu_utilization_over_pod_limit", ns, "Percent", [(1, 12.5)])
    _put(cw, "ContainerInsights", "pod_number_of_container_restarts", ns, "Count", [(2, 1.0)])
    _put(cw, "ContainerInsights", "service_number_of_running_pods", {**ns, "Service": "pricer"}, "Count", [(0, 24.0), (1, 23.0)])
    _put(cw, "ContainerInsights", "pod_cpu_utilization", {**ns, "PodName": "pricer"}, "Percent", [(0, 45.0)])
    return {"url": moto_url, "hour": HOUR}


@pytest.fixture
def moto_env(monkeypatch: pytest.MonkeyPatch, moto_estate: dict, tmp_path) -> dict:
    """The environment of a production deployment pointed at moto (no percentiles: moto crashes on them)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_estate["url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("CMS_AWS_REGIONS", "us-east-1")
    monkeypatch.setenv("CMS_CW_STATISTICS", "Sum,SampleCount,Minimum,Maximum")
    monkeypatch.setenv("CMS_RAW_URL", str(tmp_path / "raw"))
    return {**moto_estate, "raw": lake.Zone(str(tmp_path / "raw"))}
