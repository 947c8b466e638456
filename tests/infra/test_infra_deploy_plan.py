"""What `cms infra deploy` plans and how it explains mistakes, without an AWS call."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import ANY, Stubber

from cms_dagster.infra.deploy import (
    DeployError,
    deploy_stack,
    describe_plan,
    parse_parameter_overrides,
    plan,
    update_parameters,
)


def test_overrides_go_to_every_stack_or_one_stack() -> None:
    assert parse_parameter_overrides(["CriticalEmail=a@b.c", "collector.MemorySize=1024", "X=a=b"]) == {
        "*": {"CriticalEmail": "a@b.c", "X": "a=b"},
        "collector": {"MemorySize": "1024"},
    }
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_parameter_overrides(["MemorySize"])
    with pytest.raises(ValueError, match="no stack 'colector'"):
        parse_parameter_overrides(["colector.MemorySize=1"])


def test_plan_wires_outputs_of_earlier_stacks() -> None:
    plans = {p.spec.key: p for p in plan("prod")}
    assert [p.name for p in plans.values()] == [
        "cms-prod-storage",
        "cms-prod-alerting",
        "cms-prod-collector",
        "cms-prod-monitoring",
        "cms-prod-snowflake-access",
        "cms-prod-orchestrator",
    ]
    assert all(p.parameters["Environment"] == "prod" for p in plans.values())
    assert plans["collector"].wired["RawBucketName"] == ("storage", "RawBucketName")
    assert plans["collector"].wired["CodeS3Bucket"] == ("storage", "ArtifactsBucketName")
    assert plans["collector"].package_code is True
    assert plans["monitoring"].wired["CriticalTopicArn"] == ("alerting", "CriticalTopicArn")
    assert plans["monitoring"].wired["CollectorMemorySize"] == ("collector", "MemorySize")
    assert plans["snowflake-access"].wired["KmsKeyArn"] == ("storage", "KmsKeyArn")
    assert plans["orchestrator"].wired["CriticalTopicArn"] == ("alerting", "CriticalTopicArn")
    assert plans["orchestrator"].wired["ArtifactsBucketName"] == ("storage", "ArtifactsBucketName")
    # every parameter without a default is wired or given, but for what only the operator knows: the
    # EKS cluster the orchestrator stack joins
    cluster = {"VpcId", "SubnetIds", "ClusterSecurityGroupId", "OidcProviderArn", "OidcProviderUrl"}
    for p in plans.values():
        for name, decl in p.declared.items():
            assert "Default" in decl or name in p.parameters or name in p.wired or name == "CodeS3Key" or (
                p.spec.key == "orchestrator" and name in cluster
            ), (
                p.name,
                name,
            )


@pytest.mark.slow
def test_a_given_parameter_wins_over_wiring_and_packaging() -> None:
    plans = {
        p.spec.key: p
        for p in plan(
            "prod", parse_parameter_overrides(["collector.CodeS3Key=my/zip.zip", "RawBucketName=mine"])
        )
    }
    assert plans["collector"].package_code is False
    assert plans["collector"].parameters["RawBucketName"] == "mine"
    assert "RawBucketName" not in plans["collector"].wired
    assert plans["monitoring"].parameters["RawBucketName"] == "mine"


def test_unknown_parameters_are_refused_with_the_declared_ones() -> None:
    with pytest.raises(ValueError, match="no template declares parameter.*CriticalEmial"):
        plan("prod", parse_parameter_overrides(["CriticalEmial=a@b.c"]))
    with pytest.raises(ValueError, match="stack alerting declares no parameter 'MemorySize'.*CriticalEmail"):
        plan("prod", parse_parameter_overrides(["alerting.MemorySize=1"]))


def test_dry_run_prints_the_plan_and_calls_nothing(
    cms, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setattr(boto3.session, "Session", lambda *a, **k: pytest.fail("dry run must not touch AWS"))
    assert (
        cms(
            "infra",
            "deploy",
            "--env",
            "stage",
            "--dry-run",
            "--parameter",
            "CriticalEmail=oncall@example.com",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "[3/6] cms-stage-collector  (collector.yaml)" in out
    assert "RawBucketName = <output RawBucketName of cms-stage-storage>" in out
    assert "CodeS3Key = <uploaded `cms infra package` zip>" in out
    assert "CriticalEmail = 'oncall@example.com'" in out
    assert "CollectorMemorySize = <output MemorySize of cms-stage-collector>" in out
    assert "GlacierAfterDays = default 90" in out


def test_bad_parameters_exit_2_with_the_reason(cms, capsys: pytest.CaptureFixture[str]) -> None:
    assert cms("infra", "deploy", "--env", "stage", "--dry-run", "--parameter", "Nope=1") == 2
    assert "no template declares parameter(s) Nope" in capsys.readouterr().err


@pytest.mark.parametrize("env", ["Prod", "p", "prod_1", "a-very-long-environment-name"])
def test_environment_names_that_cannot_name_buckets_are_refused(env: str) -> None:
    with pytest.raises(ValueError, match="lower-case letters"):
        plan(env)


def test_environment_pattern_is_the_templates(templates) -> None:
    from cms_dagster.infra.deploy import ENV_PATTERN

    for template in templates.values():
        assert template["Parameters"]["Environment"]["AllowedPattern"] == f"^{ENV_PATTERN.pattern}$"


def test_describe_plan_flags_missing_required_parameters() -> None:
    plans = plan("prod")
    plans[2].wired.pop("RawBucketName")
    lines = describe_plan(plans)
    assert "    RawBucketName = MISSING: pass --parameter collector.RawBucketName=VALUE" in lines


def test_update_keeps_values_set_before_and_lets_defaults_follow_the_template() -> None:
    declared = {"A": {"Default": "x"}, "B": {"Default": "y"}, "C": {}, "D": {"Default": "d"}}
    current = {
        "Parameters": [
            {"ParameterKey": "A", "ParameterValue": "x"},  # at its default: left out
            {"ParameterKey": "B", "ParameterValue": "custom"},  # set before: kept
            {"ParameterKey": "C", "ParameterValue": "c"},  # no default: kept
            {"ParameterKey": "D", "ParameterValue": "d"},
            {"ParameterKey": "Gone", "ParameterValue": "z"},  # no longer declared: dropped
        ]
    }
    assert update_parameters(current, declared, {"D": "new"}) == [
        {"ParameterKey": "D", "ParameterValue": "new"},
        {"ParameterKey": "B", "UsePreviousValue": True},
        {"ParameterKey": "C", "UsePreviousValue": True},
    ]


def _stack(status: str) -> dict:
    return {"StackName": "cms-x-storage", "StackStatus": status, "CreationTime": dt.datetime(2026, 1, 1)}


def test_a_stack_left_in_rollback_complete_must_be_deleted_first() -> None:
    cfn = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(cfn) as stub:
        stub.add_response(
            "describe_stacks", {"Stacks": [_stack("ROLLBACK_COMPLETE")]}, {"StackName": "cms-x-storage"}
        )
        with pytest.raises(DeployError, match=r"ROLLBACK_COMPLETE.*delete-stack --stack-name cms-x-storage"):
            deploy_stack(cfn, "cms-x-storage", "{}", {}, out=lambda s: None)


def test_a_failed_creation_names_the_failing_resources() -> None:
    cfn = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(cfn) as stub:
        stub.add_client_error(
            "describe_stacks", "ValidationError", "Stack with id cms-x-storage does not exist"
        )
        stub.add_response(
            "create_stack",
            {"StackId": "arn:stack"},
            {
                "StackName": "cms-x-storage",
                "TemplateBody": "{}",
                "Parameters": [],
                "Capabilities": ANY,
                "Tags": [],
            },
        )
        stub.add_response(
            "describe_stacks", {"Stacks": [_stack("ROLLBACK_IN_PROGRESS")]}, {"StackName": "cms-x-storage"}
        )
        stub.add_response(
            "describe_stack_events",
            {
                "StackEvents": [
                    {
                        "StackId": "arn:stack",
                        "EventId": "1",
                        "StackName": "cms-x-storage",
                        "Timestamp": dt.datetime(2026, 1, 1),
                        "LogicalResourceId": "RawBucket",
                        "ResourceType": "AWS::S3::Bucket",
                        "ResourceStatus": "CREATE_FAILED",
                        "ResourceStatusReason": "cms-x-raw-1-us-east-1 already exists",
                    }
                ]
            },
            {"StackName": "cms-x-storage"},
        )
        with pytest.raises(
            DeployError,
            match=r"creation failed[\s\S]*RawBucket \(AWS::S3::Bucket\): cms-x-raw-1-us-east-1 already exists",
        ):
            deploy_stack(
                cfn, "cms-x-storage", "{}", {}, out=lambda s: None, wait_delay=0, wait_max_attempts=1
            )
