"""CloudWatch collection: calls and price of this collector beside the simple approach and Metric Streams.

For 2,000 and 10,000 metrics (RDS, SQS, Lambda, EKS in the proportions of the conventions table, p99 on
latencies and durations) over one hour at 60 s:

- this collector, hourly window: measured by running it against the stand-in that enforces CloudWatch's
  limits (GetMetricData calls, metrics requested, ListMetrics discovery calls counted separately);
- this collector, 24-hour window (a daily schedule or a backfill): planned by the same planner the run
  uses (the tests show runs make exactly the planned calls);
- the simple approach: one GetMetricStatistics call per metric for its basic statistics, plus one per
  percentile (GetMetricStatistics takes Statistics or ExtendedStatistics, not both);
- CloudWatch Metric Streams: one metric update per metric and minute (an upper bound: minutes without data
  are not streamed), plus one per metric and minute for the p99 additional statistic.

Prices (us-east-1 list): GetMetricData $0.01 per 1,000 metrics requested; GetMetricStatistics and
ListMetrics $0.01 per 1,000 requests; Metric Streams $0.003 per 1,000 metric updates; a month is 730 hours.
Free tiers, Firehose and S3 charges are left out.

Run: .venv/bin/python benchmarks/collect.py [--metrics 2000 10000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import tempfile
import time

from cms_dagster import lake
from cms_dagster.collectors import metrics as M
from cms_dagster.collectors import pricing
from cms_dagster.collectors.collector import CollectorConfig, collect
from cms_dagster.collectors.planning import build_queries, plan_calls
from cms_harness.cloudwatch_standin import FakeCloudWatch, fleet

HOUR = dt.datetime(2026, 11, 20, 14, tzinfo=dt.timezone.utc)
H = pricing.HOURS_PER_MONTH


def measure(n: int) -> dict:
    metrics = fleet(n)
    stats = M.parse_statistics(M.KNOWN_STATISTICS)
    n_p99 = sum(1 for m in metrics if "p99" in M.statistics_for(m, stats))
    fake = FakeCloudWatch(metrics)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        s = collect(CollectorConfig(facts=False), lake.Zone(d), HOUR, HOUR + dt.timedelta(hours=1), session=fake.session())
    wall = time.perf_counter() - t0
    assert s.ok, s.errors
    queries = build_queries(metrics, lambda m: M.statistics_for(m, stats))
    day_calls = len(plan_calls(queries, HOUR, HOUR + dt.timedelta(days=1)))
    return {
        "n": n,
        "n_p99": n_p99,
        "queries": len(queries),
        "gmd_calls": s.calls["GetMetricData"],
        "minimum": s.minimum_get_metric_data_calls,
        "metrics_requested": s.metrics_requested,
        "list_calls": s.calls.get("ListMetrics", 0),
        "datapoints": s.datapoints,
        "points": s.points,
        "bytes": s.bytes,
        "wall": wall,
        "day_calls": day_calls,
        "max_queries": fake.max_queries_seen,
        "max_datapoints": fake.max_datapoints_seen,
    }


def rows(r: dict) -> list[tuple[str, str, str, str, float]]:
    """(approach, API calls per hour, metrics requested / updates per hour, discovery calls, $ per hour)."""
    disc = r["list_calls"]
    hourly = pricing.get_metric_data_cost(r["metrics_requested"]) + pricing.request_cost(disc)
    daily = (pricing.get_metric_data_cost(r["queries"]) + pricing.request_cost(disc)) / 24
    simple_calls = r["n"] + r["n_p99"]
    simple = pricing.request_cost(simple_calls + disc)
    updates = (r["n"] + r["n_p99"]) * 60
    return [
        (
            "this collector, 1 h window (measured)",
            f"{r['gmd_calls']:,} GetMetricData",
            f"{r['metrics_requested']:,} metrics requested",
            f"{disc} ListMetrics",
            hourly,
        ),
        (
            "this collector, 24 h window (planned)",
            f"{r['day_calls'] / 24:,.1f} GetMetricData ({r['day_calls']}/day)",
            f"{r['queries'] / 24:,.0f} metrics requested",
            f"{disc / 24:.2f} ListMetrics",
            daily,
        ),
        (
            "simple: GetMetricStatistics per metric + per p99",
            f"{simple_calls:,} GetMetricStatistics",
            f"{simple_calls:,} requests",
            f"{disc} ListMetrics",
            simple,
        ),
        ("CloudWatch Metric Streams", "0 (push via Firehose)", f"{updates:,} metric updates", "0", pricing.metric_streams_cost(updates)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metrics", type=int, nargs="+", default=[2000, 10000])
    args = ap.parse_args()
    print("CloudWatch collection of one hour of data at 60 s (us-east-1 list prices, month = 730 h)\n")
    for n in args.metrics:
        r = measure(n)
        print(
            f"== {r['n']:,} metrics ({r['n_p99']:,} with p99): {r['queries']:,} queries per window "
            f"(Sum, SampleCount, Minimum, Maximum + p99; Average is Sum/SampleCount, not requested)"
        )
        print(
            f"   measured hourly run: {r['gmd_calls']} GetMetricData calls = ceil({r['queries']:,} / 500) = "
            f"{math.ceil(r['queries'] / 500)} (minimum {r['minimum']}); at most {r['max_queries']} queries and "
            f"{r['max_datapoints']:,} datapoints per call; {r['datapoints']:,} datapoints -> {r['points']:,} points, "
            f"{r['bytes'] / 1e6:.1f} MB gzip'd, {r['wall']:.1f} s against the stand-in"
        )
        print(f"   {'approach':<50} {'API calls / hour':<32} {'billed units / hour':<28} {'discovery / hour':<18} {'$ / hour':>9} {'$ / month':>10}")
        for name, calls, units, disc, usd in rows(r):
            print(f"   {name:<50} {calls:<32} {units:<28} {disc:<18} {usd:>9.4f} {usd * H:>10.2f}")
        print()
    print(
        "Reading: GetMetricData makes ceil(queries / 500) calls per window, 100-500x fewer than one request per\n"
        "metric, but is billed per metric requested (each statistic is one), so hourly polling costs more than\n"
        "GetMetricStatistics; a 24 h window (daily schedule or backfill) costs 1/24 of hourly polling; Metric\n"
        "Streams cost the most but deliver within minutes."
    )


if __name__ == "__main__":
    main()
