"""docs/semantic-conventions.md as code: metric tables, validation and entity ids.

The receiver validates SDK points with :func:`validate_point`; flattening derives ``entity_id`` with
:func:`entity_id`. A test keeps this module and the document in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ASSET_CLASSES = ("equities", "fixed_income", "derivatives", "fx", "commodities")
STAGE_TYPES = (
    "ingest",
    "validation",
    "enrichment",
    "transformation",
    "valuation",
    "aggregation",
    "loading",
    "publication",
    "reconciliation",
)
STATUSES = ("success", "failed")
INCIDENT_KINDS = (
    "connection_pool_exhaustion",
    "memory_leak",
    "network_latency",
    "delayed_market_data",
    "volume_spike",
    "capacity_constraint",
    "job_failure",
    "feed_outage",
)
INCIDENT_ROOT_TYPES = {
    "connection_pool_exhaustion": "rds",
    "memory_leak": "eks",
    "network_latency": "feed",
    "delayed_market_data": "feed",
    "volume_spike": "feed",
    "capacity_constraint": "eks",
    "job_failure": "stage",
    "feed_outage": "feed",
}
CLOUDWATCH_PREFIX = "amazonaws.com/"
CONFIG_NAMESPACE = "CMS/AWSConfig"


@dataclass(frozen=True)
class BusinessMetric:
    name: str
    kind: str  # gauge | sum
    unit: str
    required: tuple[str, ...]


_RUN = ("cms.asset_class", "cms.job", "cms.run_id")
_STAGE = (*_RUN, "cms.stage", "cms.attempt")
_FEED = ("cms.feed",)
BUSINESS_METRICS: dict[str, BusinessMetric] = {
    m.name: m
    for m in (
        BusinessMetric("cms.batch.run.started", "sum", "{run}", _RUN),
        BusinessMetric("cms.batch.run.finished", "sum", "{run}", (*_RUN, "cms.status")),
        BusinessMetric("cms.batch.run.duration", "gauge", "s", (*_RUN, "cms.status")),
        BusinessMetric("cms.batch.run.records", "sum", "{record}", (*_RUN, "cms.status")),
        BusinessMetric("cms.batch.run.bytes", "sum", "By", (*_RUN, "cms.status")),
        BusinessMetric("cms.stage.run.started", "sum", "{run}", _STAGE),
        BusinessMetric("cms.stage.run.finished", "sum", "{run}", (*_STAGE, "cms.status")),
        BusinessMetric("cms.stage.run.duration", "gauge", "s", (*_STAGE, "cms.status")),
        BusinessMetric("cms.stage.run.records", "sum", "{record}", (*_STAGE, "cms.status")),
        BusinessMetric("cms.feed.up", "gauge", "1", _FEED),
        BusinessMetric("cms.feed.latency", "gauge", "ms", _FEED),
        BusinessMetric("cms.feed.staleness", "gauge", "s", _FEED),
        BusinessMetric("cms.feed.messages", "sum", "{message}", _FEED),
        BusinessMetric("cms.feed.missing_fields", "sum", "{field}", _FEED),
        BusinessMetric("cms.feed.invalid_values", "sum", "{value}", _FEED),
    )
}


@dataclass(frozen=True)
class CloudWatchMetric:
    namespace: str
    metric: str
    unit: str
    dimensions: tuple[str, ...]
    p99: bool = False

    @property
    def otel_name(self) -> str:
        return f"{CLOUDWATCH_PREFIX}{self.namespace}/{self.metric}"


def _cw(ns: str, names: str, unit: str, dims: tuple[str, ...], p99: bool = False) -> list[CloudWatchMetric]:
    return [CloudWatchMetric(ns, n.strip(), unit, dims, p99) for n in names.split(",")]


_DB = ("DBInstanceIdentifier",)
_Q = ("QueueName",)
_FN = ("FunctionName",)
_CL = ("ClusterName",)
_NS = ("ClusterName", "Namespace")
CLOUDWATCH_METRICS: list[CloudWatchMetric] = [
    *_cw("AWS/RDS", "CPUUtilization", "Percent", _DB),
    *_cw("AWS/RDS", "FreeableMemory, FreeStorageSpace", "Bytes", _DB),
    *_cw("AWS/RDS", "DatabaseConnections, DiskQueueDepth", "Count", _DB),
    *_cw("AWS/RDS", "ReadIOPS, WriteIOPS", "Count/Second", _DB),
    *_cw("AWS/RDS", "ReadLatency, WriteLatency", "Seconds", _DB, p99=True),
    *_cw(
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible, ApproximateNumberOfMessagesNotVisible, ApproximateNumberOfMessagesDelayed",
        "Count",
        _Q,
    ),
    *_cw("AWS/SQS", "ApproximateAgeOfOldestMessage", "Seconds", _Q),
    *_cw(
        "AWS/SQS",
        "NumberOfMessagesSent, NumberOfMessagesReceived, NumberOfMessagesDeleted, NumberOfEmptyReceives",
        "Count",
        _Q,
    ),
    *_cw("AWS/Lambda", "Invocations, Errors, Throttles", "Count", _FN),
    *_cw("AWS/Lambda", "Duration", "Milliseconds", _FN, p99=True),
    *_cw("AWS/Lambda", "ConcurrentExecutions, ProvisionedConcurrentExecutions", "Count", _FN),
    *_cw("AWS/Lambda", "ProvisionedConcurrencyUtilization", "None", _FN),
    *_cw("ContainerInsights", "node_cpu_utilization, node_memory_utilization", "Percent", _CL),
    *_cw("ContainerInsights", "cluster_failed_node_count", "Count", _CL),
    *_cw(
        "ContainerInsights",
        "pod_cpu_utilization, pod_memory_utilization, pod_cpu_utilization_over_pod_limit",
        "Percent",
        _NS,
    ),
    *_cw("ContainerInsights", "pod_number_of_container_restarts", "Count", _NS),
    *_cw("ContainerInsights", "service_number_of_running_pods", "Count", (*_NS, "Service")),
]
CONFIG_METRICS: list[CloudWatchMetric] = [
    *_cw(CONFIG_NAMESPACE, "MaxConnections", "Count", _DB),
    *_cw(CONFIG_NAMESPACE, "VisibilityTimeout, MessageRetentionPeriod", "Seconds", _Q),
    *_cw(CONFIG_NAMESPACE, "RedriveMaxReceiveCount", "Count", _Q),
    *_cw(CONFIG_NAMESPACE, "MemorySize, MaxMemoryUsed", "Megabytes", _FN),
    *_cw(CONFIG_NAMESPACE, "Timeout", "Seconds", _FN),
    *_cw(CONFIG_NAMESPACE, "Timeouts", "Count", _FN),
]


def job_entity(asset_class: str, job: str) -> str:
    return f"job:{asset_class}.{job}"


def stage_entity(asset_class: str, job: str, stage: str) -> str:
    return f"stage:{asset_class}.{job}.{stage}"


def cloudwatch_entity(dimensions: Mapping[str, Any]) -> str | None:
    """Entity id of a CloudWatch dimension set (None when it names no known resource)."""
    if "DBInstanceIdentifier" in dimensions:
        return f"rds:{dimensions['DBInstanceIdentifier']}"
    if "QueueName" in dimensions:
        return f"sqs:{dimensions['QueueName']}"
    if "FunctionName" in dimensions:
        return f"lambda:{dimensions['FunctionName']}"
    if "ClusterName" in dimensions:
        ns = dimensions.get("Namespace")
        return f"eks:{dimensions['ClusterName']}/{ns}" if ns else f"eks:{dimensions['ClusterName']}"
    return None


def entity_id(metric_name: str, point_attrs: Mapping[str, Any], resource_attrs: Mapping[str, Any]) -> str:
    """The entity a point is about, by the rules of semantic-conventions §3."""
    if metric_name.startswith(CLOUDWATCH_PREFIX):
        dims = point_attrs.get("Dimensions")
        ent = cloudwatch_entity(dims) if isinstance(dims, Mapping) else None
        if ent:
            return ent
    ac, job = point_attrs.get("cms.asset_class"), point_attrs.get("cms.job")
    if ac and job:
        stage = point_attrs.get("cms.stage")
        return stage_entity(ac, job, stage) if stage else job_entity(ac, job)
    if point_attrs.get("cms.feed"):
        return f"feed:{point_attrs['cms.feed']}"
    if ac:
        return f"asset_class:{ac}"
    return f"app:{resource_attrs.get('service.name') or 'unknown'}"


# metric namespaces only a source's own collector may write: an SDK point can never pose as one
RESERVED_PREFIXES = {"amazonaws.com/": ("cloudwatch", "metric-stream")}


def reserved_name(metric_name: str, source: str) -> str | None:
    """Why ``source`` may not write ``metric_name`` (a namespace reserved for other sources), or None."""
    for prefix, owners in RESERVED_PREFIXES.items():
        if metric_name.startswith(prefix) and source not in owners:
            return f"metric namespace {prefix} is reserved for {' and '.join(owners)}: send business metrics as cms.*"
    return None


def validate_point(
    metric_name: str, kind: str, point_attrs: Mapping[str, Any], value: float | None
) -> str | None:
    """Why a point breaks the conventions, or None when it is fine. Reasons are short and stable."""
    if value is not None and (value != value or value in (float("inf"), float("-inf"))):
        return "value is not finite"
    if not metric_name:
        return "metric has no name"
    if not metric_name.startswith("cms."):
        return None
    if metric_name.startswith("cms.app."):
        return None
    spec = BUSINESS_METRICS.get(metric_name)
    if spec is None:
        return f"unknown cms metric {metric_name!r} (custom metrics go under cms.app.*)"
    if kind != spec.kind:
        return f"{metric_name} must be a {spec.kind}, got {kind}"
    missing = [k for k in spec.required if point_attrs.get(k) in (None, "")]
    if missing:
        return f"{metric_name} lacks required attribute(s) {', '.join(missing)}"
    ac = point_attrs.get("cms.asset_class")
    if ac is not None and ac not in ASSET_CLASSES:
        return f"cms.asset_class {ac!r} is not one of {', '.join(ASSET_CLASSES)}"
    st = point_attrs.get("cms.status")
    if st is not None and st not in STATUSES:
        return f"cms.status {st!r} is not one of {', '.join(STATUSES)}"
    return None
