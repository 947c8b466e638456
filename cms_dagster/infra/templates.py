"""The CloudFormation stacks of CMS, in deploy order, and how to find and read their templates.

A stack's parameters that an earlier stack already knows (bucket names, the KMS key, topic ARNs) are
wired from that stack's outputs by :mod:`cms_dagster.infra.deploy`; ``inputs`` below says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cms_dagster

TEMPLATES_DIR_ENV = "CMS_INFRA_DIR"
TEMPLATES_SUBDIR = Path("infra") / "cloudformation"


@dataclass(frozen=True)
class StackSpec:
    """One stack: its short key, template file, what it holds and where its wired parameters come from."""

    key: str
    template: str
    summary: str
    # template parameter -> (key of an earlier stack, output name)
    inputs: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def stack_name(self, env: str) -> str:
        return stack_name(env, self.key)


STACKS: tuple[StackSpec, ...] = (
    StackSpec(
        "storage",
        "storage.yaml",
        "KMS key (rotation on); raw, processed, archive and artifacts buckets; TLS-only policies; "
        "lifecycle; Snowpipe notification",
    ),
    StackSpec(
        "alerting",
        "alerting.yaml",
        "SNS topics for critical and warning alerts, optional e-mail/HTTPS subscriptions",
    ),
    StackSpec(
        "collector",
        "collector.yaml",
        "collector Lambda (from `cms infra package`), least-privilege role, log group, schedule, "
        "REPORT-line metric filter",
        inputs={
            "RawBucketName": ("storage", "RawBucketName"),
            "KmsKeyArn": ("storage", "KmsKeyArn"),
            "CodeS3Bucket": ("storage", "ArtifactsBucketName"),
        },
    ),
    StackSpec(
        "monitoring",
        "monitoring.yaml",
        "task log groups, alarms on the collector and Dagster run failures, system-health dashboard",
        inputs={
            "CriticalTopicArn": ("alerting", "CriticalTopicArn"),
            "WarningTopicArn": ("alerting", "WarningTopicArn"),
            "CollectorFunctionName": ("collector", "FunctionName"),
            "CollectorLogGroupName": ("collector", "LogGroupName"),
            "CollectorMemorySize": ("collector", "MemorySize"),
            "CollectorTimeoutSeconds": ("collector", "TimeoutSeconds"),
            "CollectorMaxMemoryMetricName": ("collector", "MaxMemoryMetricName"),
            "RawBucketName": ("storage", "RawBucketName"),
            "ProcessedBucketName": ("storage", "ProcessedBucketName"),
        },
    ),
    StackSpec(
        "snowflake-access",
        "snowflake-access.yaml",
        "IAM role for Snowflake's storage integration (external-ID trust), read-only on raw and processed",
        inputs={
            "RawBucketName": ("storage", "RawBucketName"),
            "ProcessedBucketName": ("storage", "ProcessedBucketName"),
            "KmsKeyArn": ("storage", "KmsKeyArn"),
        },
    ),
    StackSpec(
        "orchestrator",
        "orchestrator.yaml",
        "Dagster's PostgreSQL on RDS (encrypted, private, Multi-AZ) and its generated secret; the IAM role of "
        "the Dagster service account (IRSA): lake, compute logs, alerts",
        inputs={
            "RawBucketName": ("storage", "RawBucketName"),
            "ProcessedBucketName": ("storage", "ProcessedBucketName"),
            "ArchiveBucketName": ("storage", "ArchiveBucketName"),
            "ArtifactsBucketName": ("storage", "ArtifactsBucketName"),
            "KmsKeyArn": ("storage", "KmsKeyArn"),
            "CriticalTopicArn": ("alerting", "CriticalTopicArn"),
            "WarningTopicArn": ("alerting", "WarningTopicArn"),
        },
    ),
)


def stack_name(env: str, key: str) -> str:
    """``cms-<env>-<key>``, e.g. ``cms-prod-storage``."""
    return f"cms-{env}-{key}"


def stack_spec(key: str) -> StackSpec:
    for spec in STACKS:
        if spec.key == key:
            return spec
    raise KeyError(f"no stack {key!r}; stacks are: {', '.join(s.key for s in STACKS)}")


def templates_dir(explicit: str | Path | None = None) -> Path:
    """The directory holding the templates.

    In order: ``explicit`` (the CLI passes ``--templates-dir``, else ``CMS_INFRA_DIR``), ``infra/cloudformation``
    in the current directory or one of its parents, and the one beside the installed ``cms_dagster`` package
    (a source checkout).
    """
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    else:
        cwd = Path.cwd().resolve()
        candidates.extend(base / TEMPLATES_SUBDIR for base in (cwd, *cwd.parents))
        package_root = Path(cms_dagster.__file__).resolve().parent
        candidates.append(package_root.parent / TEMPLATES_SUBDIR)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "CloudFormation templates not found (looked in: "
        + ", ".join(str(c) for c in candidates[:3])
        + (", ..." if len(candidates) > 3 else "")
        + f"). Run from the CMS checkout, or pass --templates-dir / set {TEMPLATES_DIR_ENV}."
    )


def template_path(spec: StackSpec, directory: str | Path | None = None) -> Path:
    path = templates_dir(directory) / spec.template
    if not path.is_file():
        raise FileNotFoundError(f"template {spec.template} of stack {spec.key!r} is missing in {path.parent}")
    return path


def template_files(directory: str | Path | None = None) -> list[Path]:
    """Every template in the directory (``*.yaml``, ``*.yml``, ``*.json``), sorted."""
    root = templates_dir(directory)
    return sorted(p for p in root.iterdir() if p.suffix in {".yaml", ".yml", ".json"} and p.is_file())


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a template (YAML with the short intrinsic tags ``!Ref``, ``!Sub``... or JSON) into dicts.

    Short tags become their long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``), as CloudFormation sees them.
    """
    from cfnlint.decode import decode  # cfn-lint's own loader: knows every intrinsic tag

    template, matches = decode(str(path))
    if matches or template is None:
        problems = "; ".join(str(m.message) for m in matches) or "empty template"
        raise ValueError(f"cannot parse {path}: {problems}")
    return _plain(template)


def _plain(node: Any) -> Any:
    """cfn-lint's nodes (dict/str subclasses with line marks) as plain dicts, lists and scalars."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def template_parameters(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``Parameters`` section (name -> declaration)."""
    return dict(template.get("Parameters") or {})
