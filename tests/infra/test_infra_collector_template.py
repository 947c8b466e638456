"""The collector template: its handler, settings, schedule, log group, REPORT-line metric filter and a role
that can do exactly what the collectors do, nothing more."""

from __future__ import annotations

import re

import pytest
from infra_helpers import as_list, default, props, resources, statements, sub_text

from cms_dagster.infra.package import HANDLER, package_source_dir

# The read calls the collectors make; anything else in the role is a finding.
EXPECTED_READ_ACTIONS = {
    "cloudwatch:ListMetrics",  # cloudwatch.list_metrics
    "cloudwatch:GetMetricData",  # cloudwatch.fetch
    "tag:GetResources",  # collector: resources by tag
    "rds:DescribeDBInstances",  # facts.rds_max_connections
    "rds:DescribeDBParameters",
    "sqs:GetQueueUrl",  # facts.sqs_attributes
    "sqs:GetQueueAttributes",
    "lambda:GetFunctionConfiguration",  # facts.lambda_configurations
    "logs:FilterLogEvents",  # facts.lambda_log_minutes
}
RAW = "arn:${AWS::Partition}:s3:::${RawBucketName}"


@pytest.fixture(scope="module")
def collector(templates):
    return templates["collector"]


def role_statements(collector) -> list[dict]:
    role = props(collector, "CollectorRole")
    return [s for policy in role["Policies"] for s in statements(policy["PolicyDocument"])]


def allowed(collector) -> list[dict]:
    return [s for s in role_statements(collector) if s["Effect"] == "Allow"]


def test_function_runs_the_collectors_lambda_handler(collector) -> None:
    fn = props(collector, "CollectorFunction")
    assert fn["Handler"] == HANDLER == "cms_dagster.collectors.lambda_handler.handler"
    assert fn["Runtime"] == {"Ref": "Runtime"} and default(collector, "Runtime") == "python3.12"
    assert fn["Code"] == {"S3Bucket": {"Ref": "CodeS3Bucket"}, "S3Key": {"Ref": "CodeS3Key"}}
    assert fn["Role"] == {"Fn::GetAtt": ["CollectorRole", "Arn"]}
    assert fn["MemorySize"] == {"Ref": "MemorySize"} and default(collector, "MemorySize") == 1024
    assert fn["Timeout"] == {"Ref": "TimeoutSeconds"} and default(collector, "TimeoutSeconds") == 900


def test_function_reads_the_cms_settings_from_its_environment(collector) -> None:
    env = props(collector, "CollectorFunction")["Environment"]["Variables"]
    assert env["CMS_RAW_URL"] == {"Fn::Sub": "s3://${RawBucketName}"}
    assert env["CMS_AWS_REGIONS"] == {
        "Fn::If": ["HasCollectRegions", {"Ref": "CollectRegions"}, {"Ref": "AWS::Region"}]
    }
    assert env["CMS_AWS_ROLE_ARNS"] == {"Ref": "CrossAccountRoleArns"}
    assert env["CMS_CW_NAMESPACES"] == {"Ref": "CloudWatchNamespaces"}
    assert env["CMS_CW_RESOURCE_FILTER"] == {"Ref": "ResourceFilter"}
    assert env["CMS_HOME"] == "/tmp/cms", "only /tmp is writable in Lambda"
    assert default(collector, "CloudWatchNamespaces") == "AWS/RDS,AWS/SQS,AWS/Lambda,ContainerInsights"


def test_no_overlapping_runs_by_default(collector) -> None:
    fn = props(collector, "CollectorFunction")
    assert default(collector, "ReservedConcurrency") == 1
    assert fn["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }


def test_an_eventbridge_schedule_invokes_the_function(collector) -> None:
    (rule_id,) = resources(collector, "AWS::Events::Rule")
    rule = props(collector, rule_id)
    assert rule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    # the handler collects the previous complete hour: hourly, a few minutes past the hour
    assert default(collector, "ScheduleExpression") == "cron(10 * * * ? *)"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["CollectorFunction", "Arn"]}
    (permission,) = resources(collector, "AWS::Lambda::Permission").values()
    p = permission["Properties"]
    assert p["Principal"] == "events.amazonaws.com" and p["Action"] == "lambda:InvokeFunction"
    assert p["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}
    assert p["FunctionName"] == {"Ref": "CollectorFunction"}


def test_log_group_has_retention_and_is_the_functions(collector) -> None:
    log_group = props(collector, "CollectorLogGroup")
    assert log_group["LogGroupName"] == {"Fn::Sub": "/aws/lambda/cms-${Environment}-collector"}
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert default(collector, "LogRetentionDays") == 30
    assert props(collector, "CollectorFunction")["LoggingConfig"]["LogGroup"] == {"Ref": "CollectorLogGroup"}


def test_role_is_assumable_by_lambda_only(collector) -> None:
    trust = props(collector, "CollectorRole")["AssumeRolePolicyDocument"]
    (stmt,) = statements(trust)
    assert stmt == {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }


def test_role_allows_exactly_the_calls_the_collectors_make(collector) -> None:
    actions = {a for s in role_statements(collector) for a in as_list(s["Action"])}
    assert actions == EXPECTED_READ_ACTIONS | {
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:GetObject",
        "s3:ListBucket",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sts:AssumeRole",
    }
    write_verbs = (
        "Put",
        "Delete",
        "Create",
        "Update",
        "Send",
        "Purge",
        "Tag",
        "Untag",
        "Invoke",
        "Set",
        "Start",
    )
    for action in EXPECTED_READ_ACTIONS:
        assert not action.split(":")[1].startswith(write_verbs), action


# boto3 calls of the collectors -> the permission each needs (None: needs none, or not an AWS call)
CALLS = {
    "list_metrics": "cloudwatch:ListMetrics",
    "get_metric_data": "cloudwatch:GetMetricData",
    "get_resources": "tag:GetResources",
    "describe_db_instances": "rds:DescribeDBInstances",
    "describe_db_parameters": "rds:DescribeDBParameters",
    "get_queue_url": "sqs:GetQueueUrl",
    "get_queue_attributes": "sqs:GetQueueAttributes",
    "get_function_configuration": "lambda:GetFunctionConfiguration",
    "filter_log_events": "logs:FilterLogEvents",
    "get_caller_identity": None,  # sts:GetCallerIdentity needs no permission
    "get_component": None,  # botocore session internals
    "get_peekable_stream_from_bytes": None,
}


def test_the_role_tracks_the_aws_calls_in_the_collectors_source() -> None:
    """A new AWS call in cms_dagster/collectors needs a new permission (and a line in CALLS)."""
    source = "".join(
        (package_source_dir() / "collectors" / name).read_text()
        for name in ("cloudwatch.py", "facts.py", "collector.py")
    )
    calls = set(re.findall(r"\.((?:list|get|describe|filter|start)_[a-z_]+)\(", source))
    unknown = calls - set(CALLS)
    assert not unknown, f"new AWS call(s) {sorted(unknown)}: add their permission to collector.yaml and CALLS"
    needed = {CALLS[c] for c in calls} - {None}
    assert needed == EXPECTED_READ_ACTIONS


def test_role_writes_only_its_raw_prefix_and_checkpoint(collector) -> None:
    s3 = [s for s in allowed(collector) if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    by_action: dict[str, list[str]] = {}
    for stmt in s3:
        for action in as_list(stmt["Action"]):
            by_action.setdefault(action, []).append(sub_text(stmt["Resource"]))
    assert {a: sorted(r) for a, r in by_action.items()} == {
        "s3:PutObject": [f"{RAW}/checkpoints/collector/*", f"{RAW}/otel/metrics/source=cloudwatch/*"],
        # re-collecting a window replaces its own stale batches (a delete marker in the versioned bucket)
        "s3:DeleteObject": [f"{RAW}/otel/metrics/source=cloudwatch/*"],
        "s3:GetObject": [f"{RAW}/checkpoints/collector/*"],
        # key names of the raw bucket: a HEAD of a missing checkpoint must answer 404, not 403
        "s3:ListBucket": [RAW],
    }
    resources_text = " ".join(sub_text(s["Resource"]) for s in s3)
    for other in ("ProcessedBucket", "ArchiveBucket", "quarantine/", "source=sdk", "source=metric-stream"):
        assert other not in resources_text


def test_role_uses_the_bucket_key_through_s3_only(collector) -> None:
    (kms,) = [s for s in allowed(collector) if any(a.startswith("kms:") for a in as_list(s["Action"]))]
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert kms["Resource"] == {"Ref": "KmsKeyArn"}
    assert kms["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}
    }


def test_role_assumes_exactly_the_configured_cross_account_roles(collector) -> None:
    (stmt,) = [s for s in role_statements(collector) if s.get("Sid") == "AssumeConfiguredRoles"]
    assert stmt["Action"] == "sts:AssumeRole"
    assert stmt["Effect"] == {"Fn::If": ["HasCrossAccountRoles", "Allow", "Deny"]}
    assert stmt["Resource"] == {
        "Fn::If": ["HasCrossAccountRoles", {"Fn::Split": [",", {"Ref": "CrossAccountRoleArns"}]}, "*"]
    }
    others = [s for s in role_statements(collector) if s is not stmt]
    assert not any("sts:" in a for s in others for a in as_list(s["Action"]))


def test_role_writes_logs_only_to_its_log_group(collector) -> None:
    (logs,) = [s for s in allowed(collector) if "logs:PutLogEvents" in as_list(s["Action"])]
    assert set(logs["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert logs["Resource"] == {"Fn::Sub": "${CollectorLogGroup.Arn}"}


# --- the metric filter on the REPORT lines -------------------------------------------------------------

REPORT = (
    "REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3\tDuration: 61234.56 ms\tBilled Duration: 61235 ms\t"
    "Memory Size: 512 MB\tMax Memory Used: 471 MB\tInit Duration: 812.33 ms\t"
)


def match_space_delimited(pattern: str, line: str) -> dict[str, str] | None:
    """CloudWatch Logs' space-delimited filter semantics, enough for this pattern: named fields, quoted
    literals, and ``...`` for the rest. Returns the named fields when the line matches."""
    fields = [f.strip() for f in pattern.strip().strip("[]").split(",")]
    tokens = line.split()
    named: dict[str, str] = {}
    for i, field in enumerate(fields):
        if field == "...":
            assert i == len(fields) - 1, "only a trailing ellipsis is handled here"
            return named
        if i >= len(tokens):
            return None
        name, _, literal = field.partition("=")
        if literal and tokens[i] != literal.strip('"'):
            return None
        named[name] = tokens[i]
    return named if len(tokens) == len(fields) else None


def test_metric_filter_extracts_max_memory_used_from_report_lines(collector) -> None:
    (flt,) = resources(collector, "AWS::Logs::MetricFilter").values()
    p = flt["Properties"]
    assert p["LogGroupName"] == {"Ref": "CollectorLogGroup"}
    (transform,) = p["MetricTransformations"]
    assert transform["MetricNamespace"] == "CMS/Collector"
    assert transform["MetricName"] == {"Fn::Sub": "${Environment}-MaxMemoryUsedMB"}
    assert transform["Unit"] == "Megabytes"
    value_field = transform["MetricValue"].lstrip("$")

    pattern = re.sub(r"\s+", " ", p["FilterPattern"])
    fields = match_space_delimited(pattern, REPORT)
    assert fields is not None, "the REPORT line must match"
    assert fields[value_field] == "471"
    assert fields["memory_size"] == "512"
    # without an init duration (warm start) too
    warm = REPORT.split("\tInit Duration")[0]
    assert match_space_delimited(pattern, warm)[value_field] == "471"
    # other lines of the function's log do not count
    assert match_space_delimited(pattern, "START RequestId: 3604209a Version: $LATEST") is None
    assert match_space_delimited(pattern, "END RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3") is None


def test_outputs_feed_the_monitoring_stack(collector, templates) -> None:
    outputs = collector["Outputs"]
    flt = next(iter(resources(collector, "AWS::Logs::MetricFilter").values()))
    assert (
        outputs["MaxMemoryMetricName"]["Value"] == flt["Properties"]["MetricTransformations"][0]["MetricName"]
    )
    assert outputs["MemorySize"]["Value"] == {"Ref": "MemorySize"}
    assert outputs["TimeoutSeconds"]["Value"] == {"Ref": "TimeoutSeconds"}
    assert outputs["FunctionName"]["Value"] == {"Ref": "CollectorFunction"}
