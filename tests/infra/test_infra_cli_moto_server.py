"""`cms infra deploy --endpoint-url` against a moto server: end to end through the CLI, twice."""

from __future__ import annotations

import warnings
from pathlib import Path

import boto3
import pytest
from infra_helpers import eks_cluster_parameters


def package_flags() -> list[str]:
    return []  # the collector's path is pure Python: the zip needs no wheels, and its import is checked


@pytest.mark.slow
def test_deploy_through_the_cli_against_a_moto_server(
    moto_server: str, aws_env, cms, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [
        "infra",
        "deploy",
        "--env",
        "e2e",
        "--endpoint-url",
        moto_server,
        "--region",
        "eu-west-1",
        "--build-dir",
        str(tmp_path),
        "--parameter",
        "CriticalEmail=oncall@example.com",
        *[a for p in eks_cluster_parameters("eu-west-1", moto_server) for a in ("--parameter", p)],
        *package_flags(),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cms(*argv) == 0
    out = capsys.readouterr().out
    keys = ("storage", "alerting", "collector", "monitoring", "snowflake-access", "orchestrator")
    for i, key in enumerate(keys, 1):
        assert f"[{i}/6] cms-e2e-{key}: deploying" in out
        assert f"cms-e2e-{key}: CREATE_COMPLETE" in out
    assert "CMS_RAW_URL=s3://cms-e2e-raw-123456789012-eu-west-1" in out
    assert "CMS_PROCESSED_URL=s3://cms-e2e-processed-123456789012-eu-west-1" in out
    assert "FunctionName = cms-e2e-collector" in out

    cfn = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=moto_server)
    stacks = {s["StackName"]: s["StackStatus"] for s in cfn.describe_stacks()["Stacks"]}
    assert stacks == {
        f"cms-e2e-{k}": "CREATE_COMPLETE"
        for k in keys
    }
    fn = boto3.client("lambda", region_name="eu-west-1", endpoint_url=moto_server)
    assert fn.get_function_configuration(FunctionName="cms-e2e-collector")["Environment"]["Variables"][
        "CMS_RAW_URL"
    ] == ("s3://cms-e2e-raw-123456789012-eu-west-1")

    # idempotent: the same command again changes nothing and is not an error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cms(*argv) == 0
    again = capsys.readouterr().out
    if "uploaded collector package" in again:
        # the cms_dagster sources changed between the two runs (someone edited them): a new package,
        # so the collector (and the monitoring wired to it) may update; the rest must not
        assert again.count(": no changes") >= 3
    else:
        assert again.count(": no changes") == 6
        assert "already uploaded" in again


def test_deploy_without_credentials_or_endpoint_fails_with_a_message(
    aws_env, cms, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    rc = cms(
        "infra",
        "deploy",
        "--env",
        "e2e",
        "--region",
        "eu-west-1",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--build-dir",
        str(tmp_path),
    )
    assert rc == 1
    assert "deploy failed:" in capsys.readouterr().err
