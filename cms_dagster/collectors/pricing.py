"""CloudWatch's price model (us-east-1 list prices), so a run's and a design's cost can be stated in dollars.

- GetMetricData: $0.01 per 1,000 *metrics requested* (each MetricDataQuery is one metric requested).
- GetMetricStatistics, ListMetrics and the other CloudWatch API requests: $0.01 per 1,000 requests.
- Metric Streams: $0.003 per 1,000 metric updates (one update = one metric, one minute).

Free tiers are ignored (they are per account and shared with everything else). Requests to other services
that a run makes (SQS GetQueueAttributes, Lambda GetFunctionConfiguration, RDS Describe*, CloudWatch Logs
FilterLogEvents, STS) are not CloudWatch metric charges and are counted but not priced.
"""

from __future__ import annotations

from collections.abc import Mapping

GET_METRIC_DATA_PER_1000_METRICS = 0.01
REQUESTS_PER_1000 = 0.01
METRIC_STREAM_PER_1000_UPDATES = 0.003
HOURS_PER_MONTH = 730

# CloudWatch operations priced per request (GetMetricData is priced per metric requested).
PER_REQUEST_OPERATIONS = ("ListMetrics", "GetMetricStatistics")


def get_metric_data_cost(metrics_requested: int) -> float:
    return metrics_requested * GET_METRIC_DATA_PER_1000_METRICS / 1000


def request_cost(requests: int) -> float:
    return requests * REQUESTS_PER_1000 / 1000


def metric_streams_cost(metric_updates: int) -> float:
    return metric_updates * METRIC_STREAM_PER_1000_UPDATES / 1000


def run_cost(calls: Mapping[str, int], metrics_requested: int) -> float:
    """Estimated CloudWatch cost of a collector run (USD)."""
    per_request = sum(n for op, n in calls.items() if op in PER_REQUEST_OPERATIONS)
    return get_metric_data_cost(metrics_requested) + request_cost(per_request)
