"""CloudWatch data in CloudWatch Metric Streams' OpenTelemetry 1.0 shape (docs/semantic-conventions.md §1).

Polled GetMetricData results and Metric Streams JSON records both go through these builders, so a minute of
a metric lands as the same point (same point id, same values) whichever way it came.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cms_dagster.lake import jsonio
from cms_dagster.otel import otlp
from cms_dagster.otel.conventions import CLOUDWATCH_PREFIX

NS = 1_000_000_000
SCOPE_NAME = "cms.collectors.cloudwatch"


def metric_name(namespace: str, name: str) -> str:
    return f"{CLOUDWATCH_PREFIX}{namespace}/{name}"


def resource_attributes(account_id: str, region: str, exporter_arn: str | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"cloud.provider": "aws", "cloud.account.id": str(account_id), "cloud.region": region}
    if exporter_arn:
        attrs["aws.exporter.arn"] = exporter_arn
    return attrs


def point_attributes(namespace: str, name: str, dimensions: Mapping[str, str]) -> dict[str, Any]:
    return {
        "Namespace": namespace,
        "MetricName": name,
        "Dimensions": {k: str(dimensions[k]) for k in sorted(dimensions)},
    }


def summary_point(
    namespace: str,
    name: str,
    dimensions: Mapping[str, str],
    start_s: int,
    end_s: int,
    count: float,
    total: float,
    minimum: float,
    maximum: float,
    quantiles: Mapping[float, float] | None = None,
    *,
    encoded_attributes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One minute of one metric: count = SampleCount, sum = Sum, quantile 0/1 = Minimum/Maximum (+ p99).

    ``encoded_attributes`` (from :func:`encoded_point_attributes`) lets the points of one series share
    one encoded attribute list instead of encoding it per point.
    """
    if encoded_attributes is None:
        return otlp.summary_point(
            point_attributes(namespace, name, dimensions), start_s * NS, end_s * NS, count, total, minimum, maximum, quantiles
        )
    p = otlp.summary_point({}, start_s * NS, end_s * NS, count, total, minimum, maximum, quantiles)
    p["attributes"] = encoded_attributes
    return p


def encoded_point_attributes(namespace: str, name: str, dimensions: Mapping[str, str]) -> list[dict[str, Any]]:
    return otlp.attributes(point_attributes(namespace, name, dimensions))


def gauge_point(
    namespace: str, name: str, dimensions: Mapping[str, str], start_s: int, end_s: int, value: float
) -> dict[str, Any]:
    """A fact recorded as a single-value summary (count 1, sum = min = max = value)."""
    return summary_point(namespace, name, dimensions, start_s, end_s, 1, value, value, value)


@dataclass
class Series:
    """The points of one metric and dimension set."""

    namespace: str
    name: str
    unit: str
    dimensions: tuple[tuple[str, str], ...]  # sorted by name
    points: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sort_key(self) -> tuple:
        return (self.namespace, self.name, self.dimensions)


def build_requests(
    account_id: str,
    region: str,
    series: Sequence[Series],
    *,
    exporter_arn: str | None = None,
    series_per_request: int = 100,
) -> list[dict[str, Any]]:
    """ExportMetricsServiceRequests (one per ``series_per_request`` series), metrics grouped by name."""
    res = resource_attributes(account_id, region, exporter_arn)
    out = []
    ordered = [s for s in sorted(series, key=lambda s: s.sort_key) if s.points]
    for i in range(0, len(ordered), series_per_request):
        metrics: list[dict[str, Any]] = []
        by_name: dict[tuple[str, str], dict[str, Any]] = {}
        for s in ordered[i : i + series_per_request]:
            key = (metric_name(s.namespace, s.name), s.unit)
            m = by_name.get(key)
            if m is None:
                m = otlp.summary(key[0], s.unit, [])
                by_name[key] = m
                metrics.append(m)
            m["summary"]["dataPoints"].extend(sorted(s.points, key=lambda p: int(p["timeUnixNano"])))
        out.append(otlp.request(res, metrics, scope_name=SCOPE_NAME))
    return out


def encode_lines(requests: Iterable[Mapping[str, Any]]) -> bytes:
    """OTLP/JSON lines (one request per line), the content of a raw batch before gzip."""
    return b"".join(jsonio.dumps(r) + b"\n" for r in requests)
