"""The role Snowflake's storage integration assumes: external-ID trust, read-only on what it loads."""

from __future__ import annotations

import pytest
from infra_helpers import as_list, default, props, statements, sub_text

RAW = "arn:${AWS::Partition}:s3:::${RawBucketName}"
PROCESSED = "arn:${AWS::Partition}:s3:::${ProcessedBucketName}"


@pytest.fixture(scope="module")
def role(templates):
    return props(templates["snowflake-access"], "SnowflakeStorageRole")


def test_trust_is_snowflakes_iam_user_with_the_external_id(role, templates) -> None:
    (stmt,) = statements(role["AssumeRolePolicyDocument"])
    assert stmt["Effect"] == "Allow" and stmt["Action"] == "sts:AssumeRole"
    assert stmt["Principal"] == {
        "AWS": {
            "Fn::If": [
                "HasSnowflakeUser",
                {"Ref": "SnowflakeIamUserArn"},
                {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"},
            ]
        }
    }
    assert stmt["Condition"] == {
        "StringEquals": {
            "sts:ExternalId": {
                "Fn::If": [
                    "HasExternalId",
                    {"Ref": "SnowflakeExternalId"},
                    {"Fn::Sub": "cms-${Environment}-snowflake-${AWS::AccountId}"},
                ]
            }
        }
    }
    template = templates["snowflake-access"]
    # the first deploy may precede the integration: then only this account is trusted, never "*"
    assert default(template, "SnowflakeIamUserArn") == ""
    assert template["Parameters"]["SnowflakeIamUserArn"]["AllowedPattern"].startswith("^(arn:aws")


def test_role_only_reads_the_buckets_its_stages_load(role) -> None:
    (policy,) = role["Policies"]
    stmts = statements(policy["PolicyDocument"])
    assert all(s["Effect"] == "Allow" for s in stmts)
    actions = {a for s in stmts for a in as_list(s["Action"])}
    assert actions == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "kms:Decrypt",
    }
    by_sid = {s["Sid"]: s for s in stmts}
    assert [sub_text(r) for r in by_sid["ReadObjects"]["Resource"]] == [f"{RAW}/*", f"{PROCESSED}/*"]
    assert [sub_text(r) for r in by_sid["ListAndLocateBuckets"]["Resource"]] == [RAW, PROCESSED]
    assert by_sid["DecryptThroughS3"]["Resource"] == {"Ref": "KmsKeyArn"}
    assert by_sid["DecryptThroughS3"]["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}
    }


def test_the_integration_values_are_outputs(templates) -> None:
    template = templates["snowflake-access"]
    outputs = template["Outputs"]
    assert outputs["RoleArn"]["Value"] == {"Fn::GetAtt": ["SnowflakeStorageRole", "Arn"]}
    # the locations of infra/snowflake/20_storage_integration.sql: the raw and processed zones
    assert outputs["StorageAllowedLocations"]["Value"] == {
        "Fn::Sub": "s3://${RawBucketName}/,s3://${ProcessedBucketName}/"
    }
    assert set(outputs) >= {"ExternalId", "TrustsSnowflake"}
