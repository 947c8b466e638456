"""infra/helm/values.yaml, the values of Dagster's official chart for CMS on EKS. The chart's JSON schema is
not available offline, so this reads the file: only keys the chart declares, and the instance it makes is
the one `cms infra instance` writes for the same production settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cms_dagster import settings as settings_mod
from cms_dagster.infra import dagster_instance

ROOT = Path(__file__).resolve().parents[2]

# top-level keys of the chart's values (helm/dagster/schema/.../values.py: DagsterHelmValues)
CHART_KEYS = {
    "dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
    "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
    "telemetry", "serviceAccount", "global", "retention", "concurrency", "additionalInstanceConfig",
}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "infra" / "helm" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def production() -> dict[str, Any]:
    o = settings_mod.load_orchestrator({
        "CMS_DAGSTER_STORAGE": "postgres", "DAGSTER_PG_HOST": "db", "CMS_DAGSTER_RUN_LAUNCHER": "k8s",
        "CMS_DAGSTER_COMPUTE_LOGS_URL": "s3://cms-prod-artifacts-123456789012-eu-west-1/dagster/compute-logs",
    })
    return dagster_instance.instance_config(o)


def test_only_keys_the_chart_declares(values) -> None:
    assert set(values) <= CHART_KEYS, set(values) - CHART_KEYS


def test_storage_is_the_external_postgres_with_the_password_from_a_secret(values, production) -> None:
    pg = values["postgresql"]
    assert pg["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in pg  # the password lives in the secret, not in the values
    assert values["global"]["postgresqlSecretName"] == production["run_launcher"]["config"]["postgres_password_secret"]
    assert pg["postgresqlDatabase"] == production["storage"]["postgres"]["postgres_db"]["db_name"]
    assert pg["postgresqlUsername"] == production["storage"]["postgres"]["postgres_db"]["username"]


def test_the_run_queue_has_the_same_limits_as_the_instance_cms_writes(values, production) -> None:
    runs = values["concurrency"]["runs"]
    assert values["concurrency"]["enabled"] is True
    assert runs["maxConcurrentRuns"] == production["concurrency"]["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == production["concurrency"]["runs"]["tag_concurrency_limits"]
    assert values["concurrency"]["pools"]["defaultLimit"] == production["concurrency"]["pools"]["default_limit"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"


def test_runs_are_pods_with_the_settings_secret_and_the_irsa_service_account(values, production) -> None:
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    k8s = launcher["config"]["k8sRunLauncher"]
    assert {"name": production["run_launcher"]["config"]["env_secrets"][0]} in k8s["envSecrets"]
    container = k8s["runK8sConfig"]["containerConfig"]
    assert container["resources"] == production["run_launcher"]["config"]["resources"]
    assert container["securityContext"]["runAsNonRoot"] is True
    sa = values["serviceAccount"]
    assert sa["name"] == values["global"]["serviceAccountName"] == production["run_launcher"]["config"]["service_account_name"]
    assert sa["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


def test_the_code_location_serves_the_package_definitions(values) -> None:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    module = re.search(r'^module_name = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True


def test_compute_logs_go_to_the_artifacts_bucket(values, production) -> None:
    s3 = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert (s3["bucket"], s3["prefix"]) == (production["compute_logs"]["config"]["bucket"], production["compute_logs"]["config"]["prefix"])
