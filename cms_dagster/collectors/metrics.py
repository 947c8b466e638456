"""Which CloudWatch metrics are collected, with which statistics, for which resources.

The metric table is :data:`cms_dagster.otel.conventions.CLOUDWATCH_METRICS` (docs/semantic-conventions.md
§1): a listed metric is collected only with exactly the dimension set of its table row (ListMetrics also
returns per-alias, per-pod and account-wide variants: those are skipped).

Statistics. A point is a Summary: ``count`` = SampleCount, ``sum`` = Sum, quantile 0 = Minimum, quantile 1 =
Maximum, so these four are always requested. ``Average`` is never requested: it is Sum / SampleCount by
CloudWatch's own definition and the flattened ``value`` column is exactly that, so asking for it would add a
fifth query per metric (25% more GetMetricData cost) for no information. ``p99`` is requested for the
metrics whose table row says p99 (latencies and durations) when ``p99`` is among the configured statistics.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cms_dagster.otel.conventions import CLOUDWATCH_METRICS, CloudWatchMetric, cloudwatch_entity

SUMMARY_STATISTICS = ("Sum", "SampleCount", "Minimum", "Maximum")
KNOWN_STATISTICS = ("Average", *SUMMARY_STATISTICS, "p99")
DEFAULT_NAMESPACES = ("AWS/RDS", "AWS/SQS", "AWS/Lambda", "ContainerInsights")

# Lambda Insights (when installed on a function) reports the memory used; the collector turns it into
# the CMS/AWSConfig MaxMemoryUsed gauge instead of scanning the function's REPORT log lines.
LAMBDA_INSIGHTS_NAMESPACE = "LambdaInsights"
LAMBDA_INSIGHTS_MEMORY = "used_memory_max"

_SPECS: dict[tuple[str, str], CloudWatchMetric] = {(m.namespace, m.metric): m for m in CLOUDWATCH_METRICS}
_RESOURCE_DIMENSIONS = ("DBInstanceIdentifier", "QueueName", "FunctionName", "ClusterName", "function_name")


@dataclass(frozen=True)
class MetricRef:
    """One CloudWatch metric (namespace, name, dimensions), dimensions in the order CloudWatch lists them."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...] = ()

    @property
    def dims(self) -> dict[str, str]:
        return dict(self.dimensions)

    @property
    def series_key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """Identity regardless of dimension order (CloudWatch treats dimension sets as unordered)."""
        return (self.namespace, self.name, tuple(sorted(self.dimensions)))

    @property
    def resource_name(self) -> str | None:
        d = self.dims
        return next((d[k] for k in _RESOURCE_DIMENSIONS if k in d), None)

    @property
    def entity(self) -> str | None:
        d = self.dims
        if "function_name" in d:
            return f"lambda:{d['function_name']}"
        return cloudwatch_entity(d)

    def api(self) -> dict:
        """The ``Metric`` structure of the CloudWatch API."""
        return {
            "Namespace": self.namespace,
            "MetricName": self.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
        }

    @classmethod
    def from_api(cls, m: Mapping) -> MetricRef:
        return cls(
            m["Namespace"],
            m["MetricName"],
            tuple((d["Name"], d["Value"]) for d in m.get("Dimensions") or []),
        )


def spec_for(metric: MetricRef) -> CloudWatchMetric | None:
    """The conventions row a metric is collected under, or None when it is not collected."""
    spec = _SPECS.get((metric.namespace, metric.name))
    if spec is None:
        return None
    if {k for k, _ in metric.dimensions} != set(spec.dimensions):
        return None
    return spec


def parse_statistics(statistics: Iterable[str]) -> tuple[str, ...]:
    """The statistics to request for the configured list (see the module docstring for why)."""
    wanted = [s.strip() for s in statistics if s.strip()]
    lower = {k.lower(): k for k in KNOWN_STATISTICS}
    unknown = [s for s in wanted if s.lower() not in lower]
    if unknown:
        raise ValueError(
            f"CMS_CW_STATISTICS has unknown statistic(s) {unknown}: use a comma list of {', '.join(KNOWN_STATISTICS)}"
        )
    names = {lower[s.lower()] for s in wanted}
    return (*SUMMARY_STATISTICS, "p99") if "p99" in names else SUMMARY_STATISTICS


def statistics_for(metric: MetricRef, statistics: Sequence[str]) -> tuple[str, ...]:
    """The statistics requested for one metric (p99 only where the conventions table says p99)."""
    if metric.namespace == LAMBDA_INSIGHTS_NAMESPACE:
        return ("Maximum",)
    spec = spec_for(metric)
    base = tuple(s for s in statistics if s != "p99")
    if spec is not None and spec.p99 and "p99" in statistics:
        return (*base, "p99")
    return base


@dataclass(frozen=True)
class ResourceFilter:
    """``CMS_CW_RESOURCE_FILTER``: which resources to collect (empty = all).

    Entries (comma list, any matching entry keeps a resource):
    - a name or glob, matched against the resource name (``orders-db``, ``trade-*``) or its entity id
      (``rds:orders-db``, ``eks:markets-prod/pricing``, ``sqs:*``);
    - ``tag:Key=Value`` (or ``tag:Key`` for any value): resources carrying that tag, resolved with the
      Resource Groups Tagging API (one paged GetResources per tag entry, account and region).
    """

    patterns: tuple[str, ...] = ()
    tags: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> ResourceFilter:
        patterns: list[str] = []
        tags: list[tuple[str, str | None]] = []
        for e in (x.strip() for x in entries):
            if not e:
                continue
            if e.startswith("tag:"):
                k, sep, v = e[4:].partition("=")
                if not k:
                    raise ValueError(f"CMS_CW_RESOURCE_FILTER entry {e!r}: write tag:Key=Value or tag:Key")
                tags.append((k, v if sep else None))
            else:
                patterns.append(e)
        return cls(tuple(patterns), tuple(tags))

    @property
    def is_empty(self) -> bool:
        return not self.patterns and not self.tags

    def matches(self, metric: MetricRef, tagged_entities: frozenset[str] | set[str] = frozenset()) -> bool:
        if self.is_empty:
            return True
        name, entity = metric.resource_name, metric.entity
        if entity and entity in tagged_entities:
            return True
        if entity and entity.startswith("eks:") and "/" in entity and entity.split("/")[0] in tagged_entities:
            return True  # a tagged cluster keeps its namespaces
        for p in self.patterns:
            if name is not None and fnmatch.fnmatchcase(name, p):
                return True
            if entity is not None and fnmatch.fnmatchcase(entity, p):
                return True
        return False


def entity_from_arn(arn: str) -> str | None:
    """The entity id of a tagged resource's ARN (RDS instance, SQS queue, Lambda function, EKS cluster)."""
    parts = arn.split(":", 6)
    if len(parts) < 6:
        return None
    service, rest = parts[2], parts[5:]
    tail = ":".join(rest)
    if service == "rds" and tail.startswith("db:"):
        return f"rds:{tail[3:]}"
    if service == "sqs":
        return f"sqs:{tail}"
    if service == "lambda" and tail.startswith("function:"):
        return f"lambda:{tail.split(':')[1]}"
    if service == "eks" and tail.startswith("cluster/"):
        return f"eks:{tail[len('cluster/'):]}"
    return None
