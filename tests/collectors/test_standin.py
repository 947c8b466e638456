"""Scale, limits, call counts, throttling and re-runs against the stand-in that enforces CloudWatch's limits.

The stand-in lives below botocore (``before-send``), so request validation, response parsing and botocore's
own retries (adaptive mode, the collector's default) are the real thing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter

import pytest
from botocore.exceptions import ClientError
from collectors_helpers import HOUR, raw_batches, read_points

from cms_dagster.collectors import metrics as M
from cms_dagster.collectors.collector import CollectorConfig, collect
from cms_dagster.lake import aws
from cms_harness.cloudwatch_standin import FakeCloudWatch, fleet

CFG = CollectorConfig(facts=False)
STATS = M.parse_statistics(M.KNOWN_STATISTICS)


def _queries(metrics) -> int:
    return sum(len(M.statistics_for(m, STATS)) for m in metrics)


def _truth(fake: FakeCloudWatch, start: dt.datetime, hours: int) -> dict[tuple, tuple]:
    """(metric name, dimensions, minute) -> (count, sum, min, max, p99 or None) for every minute with data."""
    out = {}
    s0 = int(start.timestamp())
    for m in fake.metrics:
        p99 = M.spec_for(m).p99
        for t in range(s0, s0 + hours * 3600, 60):
            v = fake.minute(m, t)
            if v is not None:
                key = (f"amazonaws.com/{m.namespace}/{m.name}", json.dumps(dict(sorted(m.dimensions))), t)
                out[key] = (float(v[0]), v[1], v[2], v[3], v[4] if p99 else None)
    return out


def _landed(table) -> dict[tuple, tuple]:
    out = {}
    for r in table.select(["metric_name", "attributes", "start_ts", "count", "sum", "min", "max", "p99"]).to_pylist():
        dims = json.dumps(json.loads(r["attributes"])["Dimensions"])
        out[(r["metric_name"], dims, int(r["start_ts"].timestamp()))] = (r["count"], r["sum"], r["min"], r["max"], r["p99"])
    return out


@pytest.mark.slow
def test_2000_metrics_take_the_planned_minimum_of_calls_and_throttling_loses_nothing(raw):
    metrics = fleet(2000)
    # sparse data (30% of minutes) keeps the test quick; calls do not depend on it
    fake = FakeCloudWatch(metrics, density=0.3, throttle={3, 9})  # a ListMetrics page and a GetMetricData call
    summary = collect(CFG, raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session())
    assert summary.ok, summary.errors
    q = _queries(metrics)
    assert summary.calls["GetMetricData"] == math.ceil(q / 500) == summary.minimum_get_metric_data_calls == 17
    assert summary.metrics_requested == q == fake.metrics_requested
    per_ns = Counter(m.namespace for m in metrics)
    assert summary.calls["ListMetrics"] == sum(math.ceil(n / 500) for n in per_ns.values())
    # throttled attempts were retried by botocore, and only they
    assert sum(fake.throttled.values()) == 2 and summary.retries == 2
    assert not fake.rejected and fake.max_queries_seen == 500 and fake.paginated_pages == 0
    assert fake.max_datapoints_seen <= 100_800
    # nothing lost, nothing doubled, every value as CloudWatch served it (p99 on latencies and durations)
    table = read_points(raw, raw_batches(raw))
    assert table.num_rows == summary.points == len(_truth(fake, HOUR, 1))
    assert len(set(table.column("point_id").to_pylist())) == table.num_rows
    assert _landed(table) == _truth(fake, HOUR, 1)
    assert summary.estimated_cost_usd == pytest.approx(q * 0.01 / 1000 + summary.calls["ListMetrics"] * 0.01 / 1000)


def test_answers_beyond_100800_datapoints_are_followed_through_next_token(raw):
    fake = FakeCloudWatch(fleet(60), max_datapoints=1000)  # a page limit well below one call's answer
    summary = collect(CFG, raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session())
    assert summary.ok, summary.errors
    assert summary.planned_get_metric_data_calls == 1 and fake.paginated_pages >= 10
    assert summary.calls["GetMetricData"] == 1 + fake.paginated_pages
    assert _landed(read_points(raw, raw_batches(raw))) == _truth(fake, HOUR, 1)


def test_more_than_500_queries_in_a_call_is_refused_like_cloudwatch():
    fake = FakeCloudWatch(fleet(200))
    cw = aws.client("cloudwatch", session=fake.session())
    metric = fake.metrics[0].api()
    queries = [{"Id": f"q{i}", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}} for i in range(501)]
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(MetricDataQueries=queries, StartTime=HOUR, EndTime=HOUR + dt.timedelta(hours=1))
    assert e.value.response["Error"]["Code"] == "ValidationError" and "500" in e.value.response["Error"]["Message"]


@pytest.mark.slow
def test_a_failed_window_is_rerun_whole_without_gaps_or_duplicates(raw):
    metrics = fleet(300)
    calls_per_window = math.ceil(_queries(metrics) / 500)
    # ListMetrics pages come first, then window 1's calls; fail the second call of window 2
    first_fail = 4 + calls_per_window + 2
    fake = FakeCloudWatch(metrics, density=0.3, fail=lambda op, n: n == first_fail)
    cfg = CFG.replace(max_span_hours=1)
    end = HOUR + dt.timedelta(hours=3)
    failed = collect(cfg, raw, HOUR, end, session=fake.session())
    assert not failed.ok and "AccessDenied" in failed.errors[0]
    assert failed.windows_collected == 1
    done = raw.list("checkpoints/collector/cloudwatch/")
    assert [k.rsplit("/", 2)[-1] for k in done] == ["hour=14.json"]  # only the finished window is marked
    rerun = collect(cfg, raw, HOUR, end, session=fake.session(), skip_done=True)
    assert rerun.ok and rerun.windows_skipped == 1 and rerun.windows_collected == 2
    table = read_points(raw, raw_batches(raw))
    assert len(set(table.column("point_id").to_pylist())) == table.num_rows
    assert _landed(table) == _truth(fake, HOUR, 3)
    assert sorted({r for r in table.column("hour").to_pylist()}) == [14, 15, 16]
    # collecting the same windows again overwrites the same keys: still one copy of each point
    keys = raw_batches(raw)
    again = collect(cfg, raw, HOUR, end, session=fake.session())
    assert again.ok and raw_batches(raw) == keys and sorted(again.raw_keys) == keys


@pytest.mark.slow
def test_rechunked_rerun_removes_the_earlier_batches(raw):
    fake = FakeCloudWatch(fleet(120))
    first = collect(CFG.replace(series_per_batch=10), raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session())
    second = collect(CFG.replace(series_per_batch=1000), raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session())
    assert len(first.raw_keys) > len(second.raw_keys) == 4  # one batch per namespace now
    assert sorted(second.deleted_keys) == sorted(set(first.raw_keys) - set(second.raw_keys))
    table = read_points(raw, raw_batches(raw))
    assert len(set(table.column("point_id").to_pylist())) == table.num_rows == second.points


@pytest.mark.slow
def test_discovery_is_cached_between_runs(raw):
    fake = FakeCloudWatch(fleet(100))
    now = dt.datetime(2026, 11, 20, 15, 10, tzinfo=dt.timezone.utc)
    first = collect(CFG, raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session(), now=lambda: now)
    later = collect(CFG, raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session(), now=lambda: now + dt.timedelta(minutes=30))
    stale = collect(CFG, raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session(), now=lambda: now + dt.timedelta(hours=2))
    assert first.calls["ListMetrics"] == 4 and "ListMetrics" not in later.calls and stale.calls["ListMetrics"] == 4
    assert first.metrics_discovered == later.metrics_discovered == 100


@pytest.mark.slow
def test_a_day_backfill_is_fetched_at_once_and_written_by_hour(raw):
    metrics = fleet(80)
    fake = FakeCloudWatch(metrics)
    summary = collect(CFG, raw, HOUR, HOUR + dt.timedelta(days=1), session=fake.session())
    assert summary.ok, summary.errors
    q = _queries(metrics)
    assert summary.calls["GetMetricData"] == math.ceil(q / 70) == summary.minimum_get_metric_data_calls
    assert fake.max_datapoints_seen <= 100_800 and fake.paginated_pages == 0
    assert summary.metrics_requested == q  # 1/24 of what 24 hourly runs request
    assert summary.windows_collected == 24 and len(list(raw.list("checkpoints/collector/cloudwatch/"))) == 24
    hours = {k.split("/")[3:5][1] for k in summary.raw_keys}
    assert len(hours) == 24


def test_an_hour_that_is_not_over_is_written_but_not_marked_done(raw):
    fake = FakeCloudWatch(fleet(20))
    during = collect(CFG, raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session(), now=lambda: HOUR + dt.timedelta(minutes=30))
    assert during.ok and during.windows_collected == 0 and "not over yet" in during.warnings[0]
    assert during.raw_keys and not list(raw.list("checkpoints/collector/cloudwatch/"))
    after = collect(CFG, raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session(), skip_done=True)
    assert after.windows_collected == 1 and sorted(after.raw_keys) == sorted(during.raw_keys)
