"""The storage template holds what the issue asks (moto drops versioning, lifecycle and the public-access
block, so they are asserted here, from the template CloudFormation reads)."""

from __future__ import annotations

import pytest
from infra_helpers import as_list, default, props, resources, statements, sub_text

ZONE_BUCKETS = {"raw": "RawBucket", "processed": "ProcessedBucket", "archive": "ArchiveBucket"}
ALL_BUCKETS = [*ZONE_BUCKETS.values(), "ArtifactsBucket"]


def test_three_dedicated_zone_buckets_and_an_artifacts_bucket(templates) -> None:
    storage = templates["storage"]
    buckets = resources(storage, "AWS::S3::Bucket")
    assert set(buckets) == set(ALL_BUCKETS)
    names = {sub_text(props(storage, b)["BucketName"]) for b in buckets}
    assert names == {
        f"${{BucketNamePrefix}}-${{Environment}}-{zone}-${{AWS::AccountId}}-${{AWS::Region}}"
        for zone in ("raw", "processed", "archive", "artifacts")
    }


def test_kms_key_is_customer_managed_with_rotation(templates) -> None:
    storage = templates["storage"]
    (key_id,) = resources(storage, "AWS::KMS::Key")
    key = props(storage, key_id)
    assert key["EnableKeyRotation"] is True
    assert key["KeyUsage"] == "ENCRYPT_DECRYPT" and key["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert storage["Resources"][key_id]["DeletionPolicy"] == "Retain"
    (alias,) = resources(storage, "AWS::KMS::Alias").values()
    assert alias["Properties"]["TargetKeyId"] == {"Ref": key_id}


@pytest.mark.parametrize("bucket", ALL_BUCKETS)
def test_bucket_is_versioned_kms_encrypted_private_and_retained(templates, bucket: str) -> None:
    storage = templates["storage"]
    p = props(storage, bucket)
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["LakeKey", "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True
    assert p["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert p["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert storage["Resources"][bucket]["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("bucket", ALL_BUCKETS)
def test_bucket_policy_denies_anything_without_tls(templates, bucket: str) -> None:
    storage = templates["storage"]
    (policy,) = [
        r["Properties"]["PolicyDocument"]
        for r in resources(storage, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    by_sid = {s["Sid"]: s for s in statements(policy)}
    tls = by_sid["DenyInsecureTransport"]
    assert tls["Effect"] == "Deny" and tls["Principal"] == "*" and tls["Action"] == "s3:*"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert tls["Resource"] == [{"Fn::GetAtt": [bucket, "Arn"]}, {"Fn::Sub": f"${{{bucket}.Arn}}/*"}]
    old_tls = by_sid["DenyTlsOlderThan12"]
    assert old_tls["Effect"] == "Deny" and old_tls["Condition"] == {
        "NumericLessThan": {"s3:TlsVersion": "1.2"}
    }
    non_kms = by_sid["DenyNonKmsEncryption"]
    assert non_kms["Effect"] == "Deny" and non_kms["Action"] == "s3:PutObject"
    assert non_kms["Condition"] == {
        "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": ["aws:kms", "aws:kms:dsse"]}
    }
    assert all(s["Effect"] == "Deny" for s in statements(policy)), (
        "bucket policies only deny; access is granted by IAM roles"
    )


def test_lifecycle_defaults_are_standard_ia_after_30_days_and_glacier_after_90(templates) -> None:
    storage = templates["storage"]
    assert default(storage, "InfrequentAccessAfterDays") == 30
    assert default(storage, "GlacierAfterDays") == 90
    assert default(storage, "NoncurrentVersionExpirationDays") == 30
    assert default(storage, "AbortIncompleteMultipartUploadDays") == 7
    # S3 refuses STANDARD_IA before 30 days: the parameter cannot be set lower
    assert storage["Parameters"]["InfrequentAccessAfterDays"]["MinValue"] == 30


def _rules(storage, bucket: str) -> list[dict]:
    return props(storage, bucket)["LifecycleConfiguration"]["Rules"]


TIERING = [
    {"StorageClass": "STANDARD_IA", "TransitionInDays": {"Ref": "InfrequentAccessAfterDays"}},
    {"StorageClass": "GLACIER", "TransitionInDays": {"Ref": "GlacierAfterDays"}},
]


@pytest.mark.parametrize(
    ("bucket", "tiered_prefixes"),
    [("RawBucket", {"otel/", "quarantine/"}), ("ProcessedBucket", {"points/"}), ("ArchiveBucket", {None})],
)
def test_data_prefixes_tier_to_standard_ia_then_glacier(templates, bucket: str, tiered_prefixes: set) -> None:
    rules = _rules(templates["storage"], bucket)
    tiered = {r.get("Prefix"): r for r in rules if "Transitions" in r}
    assert set(tiered) == tiered_prefixes
    for rule in tiered.values():
        assert rule["Status"] == "Enabled"
        assert rule["Transitions"] == TIERING


def test_raw_checkpoints_are_never_tiered(templates) -> None:
    """Collector cursors and detector checkpoints are read every run: GLACIER would make them unreadable."""
    for rule in _rules(templates["storage"], "RawBucket"):
        if "Transitions" in rule:
            assert rule.get("Prefix") and not "checkpoints/".startswith(rule["Prefix"])


def test_artifacts_are_never_tiered(templates) -> None:
    assert all("Transitions" not in r for r in _rules(templates["storage"], "ArtifactsBucket"))


@pytest.mark.parametrize("bucket", ALL_BUCKETS)
def test_noncurrent_versions_and_incomplete_uploads_are_cleaned_up_bucket_wide(
    templates, bucket: str
) -> None:
    cleanup = [
        r
        for r in _rules(templates["storage"], bucket)
        if "Prefix" not in r and r["Status"] == "Enabled" and "NoncurrentVersionExpiration" in r
    ]
    assert len(cleanup) == 1
    assert cleanup[0]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "NoncurrentVersionExpirationDays"}
    }
    assert cleanup[0]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": {"Ref": "AbortIncompleteMultipartUploadDays"}
    }


def test_snowpipe_is_notified_of_new_parquet_points_only_when_a_queue_is_given(templates) -> None:
    storage = templates["storage"]
    assert default(storage, "SnowpipeQueueArn") == ""
    assert storage["Conditions"]["HasSnowpipeQueue"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "SnowpipeQueueArn"}, ""]}]
    }
    condition, config, otherwise = props(storage, "ProcessedBucket")["NotificationConfiguration"]["Fn::If"]
    assert condition == "HasSnowpipeQueue" and otherwise == {"Ref": "AWS::NoValue"}
    (queue,) = config["QueueConfigurations"]
    assert queue["Event"] == "s3:ObjectCreated:*"
    assert queue["Queue"] == {"Ref": "SnowpipeQueueArn"}
    assert queue["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": "points/"},
        {"Name": "suffix", "Value": ".parquet"},
    ]
    for other in ("RawBucket", "ArchiveBucket", "ArtifactsBucket"):
        assert "NotificationConfiguration" not in props(storage, other)


def test_folder_structure_of_the_data_contract_is_documented(templates) -> None:
    layout = templates["storage"]["Metadata"]["CMS::Layout"]
    raw = " ".join(layout["raw"])
    assert "otel/metrics/source=<cloudwatch|metric-stream|sdk>/dt=YYYY-MM-DD/hour=HH/<batch>.jsonl.gz" in raw
    assert "quarantine/otel/metrics/source=" in raw and "checkpoints/<name>/" in raw
    assert "points/dt=YYYY-MM-DD/hour=HH/<source>--<batch>.parquet" in " ".join(layout["processed"])
    archive = " ".join(layout["archive"])
    assert "simulations/<run>/labels.json" in archive and "rca/" in archive


def test_outputs_give_the_zone_urls_cms_reads(templates) -> None:
    outputs = templates["storage"]["Outputs"]
    assert outputs["RawUrl"]["Value"] == {"Fn::Sub": "s3://${RawBucket}"}
    assert outputs["ProcessedUrl"]["Value"] == {"Fn::Sub": "s3://${ProcessedBucket}"}
    assert outputs["ArchiveUrl"]["Value"] == {"Fn::Sub": "s3://${ArchiveBucket}"}
    assert outputs["KmsKeyArn"]["Value"] == {"Fn::GetAtt": ["LakeKey", "Arn"]}
    assert as_list(outputs["ArtifactsBucketName"]["Value"]) == [{"Ref": "ArtifactsBucket"}]
