"""GetMetricData call planning: a pure function from (queries, window, period) to the fewest calls.

CloudWatch's limits per GetMetricData call: at most 500 MetricDataQueries, and at most 100,800 datapoints
returned (beyond that the answer is paginated with NextToken, each page one more call). A query over a
window of ``P`` periods returns up to ``P`` datapoints, so a call can carry ``min(500, 100800 // P)``
queries: 500 for an hour at 60 s (500 x 60 = 30,000), 70 for a day (70 x 1,440 = 100,800). Windows longer
than 100,800 periods (70 days at 60 s) are split in time.

With every call spanning the whole window, the plan meets the lower bound
``max(ceil(Q / 500), ceil(Q x P / 100800))`` whenever ``500 x P <= 100800`` (windows up to 3 h 21 min at
60 s) or ``100800 / P`` is a whole number (a day, 12 h, 6 h, ...): the windows the collector uses.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cms_dagster.collectors.metrics import MetricRef

MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_CALL = 100_800
DEFAULT_PERIOD = 60


@dataclass(frozen=True)
class Query:
    """One MetricDataQuery: one metric, one statistic (one "metric requested" in CloudWatch's price)."""

    metric: MetricRef
    stat: str


@dataclass(frozen=True)
class CallPlan:
    start: dt.datetime
    end: dt.datetime
    period: int
    queries: tuple[Query, ...]

    @property
    def periods(self) -> int:
        return periods_in(self.start, self.end, self.period)

    @property
    def datapoints(self) -> int:
        """The most datapoints the call can return."""
        return len(self.queries) * self.periods

    def request(self) -> dict:
        """Keyword arguments of ``cloudwatch.get_metric_data`` (query ids are ``m<index>``)."""
        return {
            "MetricDataQueries": [
                {
                    "Id": f"m{i}",
                    "MetricStat": {"Metric": q.metric.api(), "Period": self.period, "Stat": q.stat},
                    "ReturnData": True,
                }
                for i, q in enumerate(self.queries)
            ],
            "StartTime": self.start,
            "EndTime": self.end,
            "ScanBy": "TimestampAscending",
        }


def periods_in(start: dt.datetime, end: dt.datetime, period: int) -> int:
    seconds = (end - start).total_seconds()
    return math.ceil(seconds / period)


def queries_per_call(periods: int) -> int:
    """How many queries fit one call for a window of ``periods`` periods."""
    if periods <= 0:
        raise ValueError("the window is empty: end must be after start")
    return max(1, min(MAX_QUERIES_PER_CALL, MAX_DATAPOINTS_PER_CALL // periods))


def lower_bound_calls(n_queries: int, start: dt.datetime, end: dt.datetime, period: int = DEFAULT_PERIOD) -> int:
    """No plan can use fewer calls than this (each call: <= 500 queries and <= 100,800 datapoints)."""
    if n_queries == 0:
        return 0
    p = periods_in(start, end, period)
    return max(math.ceil(n_queries / MAX_QUERIES_PER_CALL), math.ceil(n_queries * p / MAX_DATAPOINTS_PER_CALL))


def build_queries(metrics: Iterable[MetricRef], stats_for) -> list[Query]:
    """Queries in a stable order: metrics as given, statistics in the order ``stats_for(metric)`` returns."""
    return [Query(m, s) for m in metrics for s in stats_for(m)]


def _check_aligned(t: dt.datetime, period: int, what: str) -> None:
    if t.tzinfo is None:
        raise ValueError(f"{what} {t.isoformat()} has no time zone: pass an aware UTC datetime")
    if int(t.timestamp()) % period or t.microsecond:
        raise ValueError(f"{what} {t.isoformat()} is not aligned to the {period}-second period")


def plan_calls(
    queries: Sequence[Query], start: dt.datetime, end: dt.datetime, period: int = DEFAULT_PERIOD
) -> list[CallPlan]:
    """The fewest GetMetricData calls that fetch every query over [start, end)."""
    if period % 60 and period not in (1, 5, 10, 30):
        raise ValueError(f"period {period}: CloudWatch accepts 1, 5, 10, 30 or a multiple of 60 seconds")
    _check_aligned(start, period, "start")
    _check_aligned(end, period, "end")
    if end <= start:
        raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
    if not queries:
        return []
    plans: list[CallPlan] = []
    max_span = dt.timedelta(seconds=MAX_DATAPOINTS_PER_CALL * period)
    t = start
    while t < end:
        t_end = min(end, t + max_span)
        per_call = queries_per_call(periods_in(t, t_end, period))
        for i in range(0, len(queries), per_call):
            plans.append(CallPlan(t, t_end, period, tuple(queries[i : i + per_call])))
        t = t_end
    return plans
