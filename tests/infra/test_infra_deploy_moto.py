"""Every stack deploys into moto, in order, and boto3 reads back what moto applies.

moto's CloudFormation skips AWS::CloudWatch::Alarm, AWS::S3::BucketPolicy, AWS::SNS::Subscription,
AWS::SNS::TopicPolicy and AWS::Logs::MetricFilter, and drops S3 versioning, lifecycle and public-access
settings: those are asserted from the templates (test_infra_*_template.py).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from infra_helpers import OIDC_URL, eks_cluster_parameters
from moto import mock_aws

from cms_dagster.infra.deploy import StackResult, deploy, parse_parameter_overrides
from cms_dagster.infra.package import PackageOptions

ENV = "test"
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_A = "arn:aws:iam::111111111111:role/cms-read"
ROLE_B = "arn:aws:iam::222222222222:role/cms-read"
SNOWFLAKE_USER = "arn:aws:iam::999999999999:user/abc1-s-v2st0001"
EXTERNAL_ID = "AB12345_SFCRole=2_abcdefghijklmnop"
PARAMETERS = [
    "CriticalEmail=oncall@example.com",
    "WarningHttpsEndpoint=https://hooks.example.com/cms",
    f"collector.CrossAccountRoleArns={ROLE_A},{ROLE_B}",
    "collector.CollectRegions=us-east-1,eu-west-1",
    f"SnowflakeIamUserArn={SNOWFLAKE_USER}",
    f"SnowflakeExternalId={EXTERNAL_ID}",
    "SnowpipeQueueArn=arn:aws:sqs:us-east-1:999999999999:sf-snowpipe-abc",
]


def package_options() -> PackageOptions:
    """Check that the handler imports from the zip (the collector's path is pure Python: no wheels)."""
    return PackageOptions()


class Deployed:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.log: list[str] = []

    def run(self, parameters: list[str]) -> dict[str, StackResult]:
        self.log.clear()
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # moto: "Tried to parse AWS::CloudWatch::Alarm but it's not supported"
            return deploy(
                ENV,
                region=REGION,
                overrides=parse_parameter_overrides(parameters),
                build_dir=self.tmp,
                package=package_options(),
                out=self.log.append,
            )

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployed, dict[str, StackResult]]]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_REGION"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        with mock_aws():
            d = Deployed(tmp_path_factory.mktemp("build"))
            results = d.run(PARAMETERS + eks_cluster_parameters(REGION))
            yield d, results


def outputs(deployed, key: str) -> dict[str, str]:
    return deployed[1][f"cms-{ENV}-{key}"].outputs


@pytest.mark.slow
def test_all_six_stacks_are_created_in_order(deployed) -> None:
    d, results = deployed
    assert list(results) == [
        f"cms-{ENV}-{k}"
        for k in ("storage", "alerting", "collector", "monitoring", "snowflake-access", "orchestrator")
    ]
    assert {r.action for r in results.values()} == {"created"}
    cfn = d.client("cloudformation")
    for name in results:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert {"Key": "cms:environment", "Value": ENV} in stack["Tags"]


def test_buckets_exist_encrypted_with_the_stacks_kms_key(deployed) -> None:
    d, _ = deployed
    out = outputs(deployed, "storage")
    s3 = d.client("s3")
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for zone in ("raw", "processed", "archive", "artifacts"):
        bucket = f"cms-{ENV}-{zone}-{ACCOUNT}-{REGION}"
        assert bucket in names
        (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": out["KmsKeyArn"],
        }
        tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
        assert tags["cms:zone"] == zone
    assert out["RawUrl"] == f"s3://cms-{ENV}-raw-{ACCOUNT}-{REGION}"


def test_kms_key_rotates_and_has_its_alias(deployed) -> None:
    d, _ = deployed
    kms = d.client("kms")
    key_arn = outputs(deployed, "storage")["KmsKeyArn"]
    assert kms.get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"] is True
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    assert aliases[f"alias/cms-{ENV}-lake"] == key_arn.rsplit("/", 1)[1]


def test_sns_topics_exist(deployed) -> None:
    d, _ = deployed
    out = outputs(deployed, "alerting")
    arns = {t["TopicArn"] for t in d.client("sns").list_topics()["Topics"]}
    assert {out["CriticalTopicArn"], out["WarningTopicArn"]} <= arns
    assert out["CriticalTopicArn"].endswith(f":cms-{ENV}-critical")


def test_log_groups_have_their_retention(deployed) -> None:
    d, _ = deployed
    logs = d.client("logs")
    groups = {g["logGroupName"]: g.get("retentionInDays") for g in logs.describe_log_groups()["logGroups"]}
    for name in (
        f"/aws/lambda/cms-{ENV}-collector",
        f"/cms/{ENV}/dagster/webserver",
        f"/cms/{ENV}/dagster/daemon",
        f"/cms/{ENV}/dagster/runs",
        f"/cms/{ENV}/ingest",
    ):
        assert groups.get(name) == 30, name


def test_collector_function_runs_the_uploaded_package_with_its_settings(deployed) -> None:
    d, _ = deployed
    out = outputs(deployed, "collector")
    storage = outputs(deployed, "storage")
    config = d.client("lambda").get_function_configuration(FunctionName=out["FunctionName"])
    assert config["Handler"] == "cms_dagster.collectors.lambda_handler.handler"
    assert config["Runtime"] == "python3.12"
    assert (config["MemorySize"], config["Timeout"]) == (1024, 900)
    assert config["Role"] == out["RoleArn"]
    assert config["Environment"]["Variables"] == {
        "CMS_RAW_URL": storage["RawUrl"],
        "CMS_AWS_REGIONS": "us-east-1,eu-west-1",
        "CMS_AWS_ROLE_ARNS": f"{ROLE_A},{ROLE_B}",
        "CMS_CW_NAMESPACES": "AWS/RDS,AWS/SQS,AWS/Lambda,ContainerInsights",
        "CMS_CW_RESOURCE_FILTER": "",
        "CMS_ENVIRONMENT": ENV,
        "CMS_HOME": "/tmp/cms",
    }
    # the code is the zip `cms infra deploy` built and uploaded, content-addressed
    params = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in d.client("cloudformation").describe_stacks(StackName=f"cms-{ENV}-collector")["Stacks"][0][
            "Parameters"
        ]
    }
    assert params["CodeS3Bucket"] == storage["ArtifactsBucketName"]
    body = d.client("s3").get_object(Bucket=params["CodeS3Bucket"], Key=params["CodeS3Key"])["Body"].read()
    digest = hashlib.sha256(body)
    assert params["CodeS3Key"] == f"collector/cms-collector-{digest.hexdigest()[:16]}.zip"
    assert config["CodeSha256"] == base64.b64encode(digest.digest()).decode()
    assert config["CodeSize"] == len(body)


def test_schedule_invokes_the_collector(deployed) -> None:
    d, _ = deployed
    out = outputs(deployed, "collector")
    events = d.client("events")
    rule = events.describe_rule(Name=f"cms-{ENV}-collector-schedule")
    assert rule["ScheduleExpression"] == "cron(10 * * * ? *)" and rule["State"] == "ENABLED"
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == out["FunctionArn"]
    policy = json.loads(d.client("lambda").get_policy(FunctionName=out["FunctionName"])["Policy"])
    (stmt,) = policy["Statement"]
    assert stmt["Principal"] in ({"Service": "events.amazonaws.com"}, "events.amazonaws.com")


def role_policies(iam: Any, role: str) -> dict[str, dict]:
    documents = {
        name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    }
    # moto hands back inline policies from CloudFormation as the Python repr of the document
    return {name: ast.literal_eval(doc) if isinstance(doc, str) else doc for name, doc in documents.items()}


def test_collector_role_writes_only_its_raw_prefix_and_assumes_the_given_roles(deployed) -> None:
    d, _ = deployed
    iam = d.client("iam")
    role = iam.get_role(RoleName=f"cms-{ENV}-collector")["Role"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    policies = role_policies(iam, f"cms-{ENV}-collector")
    assert set(policies) == {
        "write-own-logs",
        "read-metrics-and-metadata",
        "write-raw-prefix",
        "assume-monitored-account-roles",
    }
    raw = f"arn:aws:s3:::cms-{ENV}-raw-{ACCOUNT}-{REGION}"
    writes = [s for s in policies["write-raw-prefix"]["Statement"] if "s3:PutObject" in s["Action"]]
    assert sorted(s["Resource"] for s in writes) == [
        f"{raw}/checkpoints/collector/*",
        f"{raw}/otel/metrics/source=cloudwatch/*",
    ]
    (assume,) = policies["assume-monitored-account-roles"]["Statement"]
    assert assume["Effect"] == "Allow" and assume["Resource"] == [ROLE_A, ROLE_B]


def test_snowflake_role_trusts_the_integration_user_with_the_external_id(deployed) -> None:
    d, _ = deployed
    iam = d.client("iam")
    out = outputs(deployed, "snowflake-access")
    role = iam.get_role(RoleName=f"cms-{ENV}-snowflake-access")["Role"]
    assert role["Arn"] == out["RoleArn"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": SNOWFLAKE_USER}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
    (policy,) = role_policies(iam, f"cms-{ENV}-snowflake-access").values()
    actions = {
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "kms:Decrypt",
    }
    assert out["StorageAllowedLocations"] == (
        f"s3://cms-{ENV}-raw-{ACCOUNT}-{REGION}/,s3://cms-{ENV}-processed-{ACCOUNT}-{REGION}/"
    )
    assert (out["ExternalId"], out["TrustsSnowflake"]) == (EXTERNAL_ID, "true")


def test_dashboard_is_deployed_with_the_collectors_names(deployed) -> None:
    d, _ = deployed
    body = json.loads(
        d.client("cloudwatch").get_dashboard(DashboardName=f"cms-{ENV}-system-health")["DashboardBody"]
    )
    text = json.dumps(body)
    assert f"cms-{ENV}-collector" in text and f"{ENV}-MaxMemoryUsedMB" in text
    assert f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:cms-{ENV}-dagster-run-failures" in text


def test_deploy_prints_progress_outputs_and_the_cms_settings(deployed) -> None:
    d, results = deployed
    # the fixture's log was for the first run; re-run below checks idempotence, so check a fresh copy here
    text = "\n".join(d.log)
    assert "[1/6] cms-test-storage: deploying storage.yaml" in text
    assert "[6/6] cms-test-orchestrator: deploying orchestrator.yaml" in text
    assert f"DAGSTER_PG_HOST={results[f'cms-{ENV}-orchestrator'].outputs['DatabaseEndpoint']}" in text
    assert f"CMS_RAW_URL=s3://cms-{ENV}-raw-{ACCOUNT}-{REGION}" in text
    assert f"CMS_SNS_TOPIC_ARN={results[f'cms-{ENV}-alerting'].outputs['CriticalTopicArn']}" in text
    assert "uploaded collector package s3://" in text


def test_a_second_deploy_changes_nothing(deployed) -> None:
    d, _ = deployed
    again = d.run(PARAMETERS)
    if any("uploaded collector package" in line for line in d.log):
        # the cms_dagster sources changed since the first run (someone edited them): a new package
        assert again[f"cms-{ENV}-collector"].action == "updated"
        return
    assert {r.action for r in again.values()} == {"unchanged"}
    assert sum("no changes" in line for line in d.log) == 6
    assert any("already uploaded" in line for line in d.log)


@pytest.mark.slow
def test_an_update_flows_into_the_wired_stacks_and_later_deploys_keep_it(deployed) -> None:
    d, _ = deployed
    updated = d.run(["collector.MemorySize=2048"])
    actions = {name.removeprefix(f"cms-{ENV}-"): r.action for name, r in updated.items()}
    assert actions == {
        "storage": "unchanged",
        "alerting": "unchanged",
        "collector": "updated",
        "monitoring": "updated",  # CollectorMemorySize is wired from the collector's outputs
        "snowflake-access": "unchanged",  # the Snowflake user and external id set before are kept
        "orchestrator": "unchanged",  # the cluster's VPC, subnets and OIDC provider given before are kept
    }
    config = d.client("lambda").get_function_configuration(FunctionName=f"cms-{ENV}-collector")
    assert config["MemorySize"] == 2048
    cfn = d.client("cloudformation")
    monitoring = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in cfn.describe_stacks(StackName=f"cms-{ENV}-monitoring")["Stacks"][0]["Parameters"]
    }
    assert monitoring["CollectorMemorySize"] == "2048"
    # a deploy without parameters keeps what the stacks have (MemorySize, the Snowflake trust...)
    kept = d.run([])
    new_package = any("uploaded collector package" in line for line in d.log)  # sources edited meanwhile
    for key, result in kept.items():
        if not (new_package and key.endswith(("-collector", "-monitoring"))):
            assert result.action == "unchanged", key
    assert kept[f"cms-{ENV}-snowflake-access"].outputs["TrustsSnowflake"] == "true"
    assert kept[f"cms-{ENV}-collector"].outputs["MemorySize"] == "2048"


def test_dagsters_postgres_is_private_encrypted_and_its_password_generated(deployed) -> None:
    d, _ = deployed
    out = outputs(deployed, "orchestrator")
    db = d.client("rds").describe_db_instances(DBInstanceIdentifier=f"cms-{ENV}-dagster")["DBInstances"][0]
    assert db["Engine"] == "postgres" and db["StorageEncrypted"] and not db["PubliclyAccessible"]
    assert db["KmsKeyId"] == outputs(deployed, "storage")["KmsKeyArn"]
    assert db["Endpoint"]["Address"] == out["DatabaseEndpoint"]
    # moto's CloudFormation does not create AWS::SecretsManager::Secret: the generated password is
    # asserted from the template (test_orchestrator_template.py)
    assert out["ComputeLogsUrl"] == f"s3://{outputs(deployed, 'storage')['ArtifactsBucketName']}/dagster/compute-logs"


def test_only_the_dagster_service_account_of_the_cluster_can_assume_the_run_pod_role(deployed) -> None:
    d, _ = deployed
    arn = outputs(deployed, "orchestrator")["ServiceAccountRoleArn"]
    role = d.client("iam").get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]
    (stmt,) = role["AssumeRolePolicyDocument"]["Statement"]
    url = OIDC_URL.format(region=REGION)
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert stmt["Principal"]["Federated"].endswith(f"oidc-provider/{url}")
    assert stmt["Condition"]["StringEquals"] == {
        f"{url}:sub": "system:serviceaccount:cms:cms-dagster",
        f"{url}:aud": "sts.amazonaws.com",
    }
    iam = d.client("iam")
    policies = {
        n: _document(iam.get_role_policy(RoleName=role["RoleName"], PolicyName=n)["PolicyDocument"])
        for n in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    }
    assert set(policies) == {"lake", "alerts", "database-secret"}
    alerting = outputs(deployed, "alerting")
    assert policies["alerts"]["Statement"][0]["Resource"] == [alerting["CriticalTopicArn"], alerting["WarningTopicArn"]]
    writes = next(s for s in policies["lake"]["Statement"] if s["Sid"] == "ReadWriteZones")
    storage = outputs(deployed, "storage")
    assert sorted(writes["Resource"]) == sorted(
        f"arn:aws:s3:::{storage[k]}/*" for k in ("RawBucketName", "ProcessedBucketName", "ArchiveBucketName")
    )


def _document(doc: Any) -> dict[str, Any]:
    """A policy document as boto3 gives it: decoded, or the string moto sends for a policy that the
    template gave as an object (a Python literal, not JSON)."""
    if not isinstance(doc, str):
        return doc
    try:
        return json.loads(doc)
    except ValueError:
        return ast.literal_eval(doc)
