"""The Dagster instance CMS runs on, chosen by settings: the embedded default (SQLite under DAGSTER_HOME,
runs as local processes, compute logs on disk) or production (run, event-log and schedule storage on
PostgreSQL, compute logs in S3, the queued run coordinator with per-tag limits, each run in its own pod on
EKS). This module turns :class:`~cms_dagster.settings.OrchestratorSettings` into the ``dagster.yaml`` that
Dagster reads; secrets stay ``{env: ...}`` references, so the file never holds a password.

On Kubernetes the official Helm chart renders the same instance from ``infra/helm/values.yaml``;
``tests/infra/test_orchestrator.py`` keeps the two in agreement (storage, coordinator limits, launcher).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cms_dagster.settings import OrchestratorSettings

# Run tag that the run queue limits: every job that needs a cap carries `cms/pool: <name>`.
POOL_TAG = "cms/pool"
CLOUDWATCH_POOL = "cloudwatch"
DBT_POOL = "dbt"


def pool_tags(pool: str) -> dict[str, str]:
    """Run tags that put a job's runs under the queue's limit for ``pool``."""
    return {POOL_TAG: pool}


def tag_concurrency_limits(o: OrchestratorSettings) -> list[dict[str, Any]]:
    """At most N CloudWatch collections at a time (API quotas), one dbt build at a time (one warehouse
    writer; on DuckDB a second writer would wait for the file lock)."""
    return [
        {"key": POOL_TAG, "value": CLOUDWATCH_POOL, "limit": o.max_collection_runs},
        {"key": POOL_TAG, "value": DBT_POOL, "limit": 1},
    ]


def _env(name: str) -> dict[str, str]:
    return {"env": name}


def _split_s3(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ValueError(f"CMS_DAGSTER_COMPUTE_LOGS_URL={url!r}: use s3://bucket/prefix (or leave it unset for local disk)")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"CMS_DAGSTER_COMPUTE_LOGS_URL={url!r} names no bucket: use s3://bucket/prefix")
    return bucket, prefix.strip("/") or "dagster/compute-logs"


def instance_config(o: OrchestratorSettings) -> dict[str, Any]:
    """The ``dagster.yaml`` for these settings (a mapping; :func:`render` makes it YAML)."""
    cfg: dict[str, Any] = {"telemetry": {"enabled": False}, "nux": {"enabled": False}}
    if o.storage == "postgres":
        cfg["storage"] = {
            "postgres": {
                "postgres_db": {
                    "hostname": o.pg_host,
                    "port": o.pg_port,
                    "username": o.pg_user,
                    "password": _env("DAGSTER_PG_PASSWORD"),
                    "db_name": o.pg_db,
                    # SQLAlchemy 2.1 would pick psycopg 3, whose server-side parameters break
                    # dagster-postgres's NOTIFY; dagster-postgres is built on psycopg2
                    "scheme": "postgresql+psycopg2",
                }
            }
        }
    if o.compute_logs_url:
        bucket, prefix = _split_s3(o.compute_logs_url)
        s3: dict[str, Any] = {"bucket": bucket, "prefix": prefix, "upload_interval": 30}
        if o.aws_region:
            s3["region"] = o.aws_region
        if o.aws_endpoint_url:
            s3["endpoint_url"] = o.aws_endpoint_url
        cfg["compute_logs"] = {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": "S3ComputeLogManager",
            "config": s3,
        }
    if o.queued:
        cfg["run_coordinator"] = {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
        }
        cfg["concurrency"] = {
            # op-level pools: the dbt assets are in pool "dbt", so one dbt build runs at a time whatever
            # launched it (a schedule, a back-fill, the automation sensor)
            "pools": {"default_limit": 1},
            "runs": {
                "max_concurrent_runs": o.max_concurrent_runs,
                "tag_concurrency_limits": tag_concurrency_limits(o),
            }
        }
    else:  # the embedded default: the queue of the top-level dagster.yaml
        cfg["run_queue"] = {"max_concurrent_runs": o.max_concurrent_runs}
    if o.run_launcher == "k8s":
        launcher: dict[str, Any] = {
            "service_account_name": o.k8s_service_account,
            "instance_config_map": o.k8s_instance_config_map,
            "postgres_password_secret": o.k8s_postgres_secret,
            "job_namespace": o.k8s_namespace,
            "env_secrets": [o.k8s_env_secret],
            "fail_pod_on_run_failure": True,
            "resources": {
                "requests": {"cpu": o.k8s_run_cpu, "memory": o.k8s_run_memory},
                "limits": {"memory": o.k8s_run_memory},
            },
            "security_context": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False},
        }
        if o.k8s_image:
            launcher["job_image"] = o.k8s_image
        if o.k8s_kubeconfig:
            launcher["load_incluster_config"] = False
            launcher["kubeconfig_file"] = o.k8s_kubeconfig
        cfg["run_launcher"] = {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher}
    return cfg


def render(o: OrchestratorSettings) -> str:
    head = (
        "# Dagster instance written by `cms infra instance` from the CMS_DAGSTER_* / DAGSTER_PG_* / CMS_K8S_*\n"
        "# settings (docs/configuration.md). The password is read from DAGSTER_PG_PASSWORD when Dagster starts.\n"
    )
    return head + yaml.safe_dump(instance_config(o), sort_keys=False)


def write(o: OrchestratorSettings, dagster_home: Path) -> Path:
    """Write ``dagster.yaml`` into ``dagster_home`` (created if missing); returns its path."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(render(o))
    tmp.replace(path)
    return path


def describe(o: OrchestratorSettings) -> str:
    """One line for `cms config`: which instance is in use."""
    if not o.production:
        return "embedded: SQLite under DAGSTER_HOME, runs as local processes, compute logs on disk"
    parts = [
        "PostgreSQL storage" if o.storage == "postgres" else "SQLite storage",
        f"compute logs in {o.compute_logs_url}" if o.compute_logs_url else "compute logs on disk",
        f"queued runs (max {o.max_concurrent_runs}, {o.max_collection_runs} CloudWatch, 1 dbt)"
        if o.queued
        else f"run queue max {o.max_concurrent_runs}",
        f"runs as pods in namespace {o.k8s_namespace}" if o.run_launcher == "k8s" else "runs as local processes",
    ]
    return "production: " + ", ".join(parts)
