"""GetMetricData planning: the fewest calls under CloudWatch's 500-query and 100,800-datapoint limits."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from cms_dagster.collectors import metrics as M
from cms_dagster.collectors import planning as P
from cms_harness.cloudwatch_standin import fleet

T0 = dt.datetime(2026, 11, 20, 0, tzinfo=dt.timezone.utc)


ALL_STATS = M.parse_statistics(M.KNOWN_STATISTICS)


def _queries(n_metrics: int, stats: tuple[str, ...] = ALL_STATS) -> list[P.Query]:
    return P.build_queries(fleet(n_metrics), lambda m: M.statistics_for(m, stats))


@pytest.mark.parametrize("n_metrics", [1, 120, 2000, 10000])
def test_an_hour_packs_500_queries_per_call(n_metrics):
    qs = _queries(n_metrics)
    plans = P.plan_calls(qs, T0, T0 + dt.timedelta(hours=1))
    assert len(plans) == math.ceil(len(qs) / 500) == P.lower_bound_calls(len(qs), T0, T0 + dt.timedelta(hours=1))
    assert all(len(p.queries) <= 500 and p.datapoints <= 100_800 for p in plans)
    assert [q for p in plans for q in p.queries] == qs  # every query exactly once, in order


def test_a_day_is_bound_by_100800_datapoints_70_queries_per_call():
    qs = _queries(1000)
    plans = P.plan_calls(qs, T0, T0 + dt.timedelta(days=1))
    assert max(len(p.queries) for p in plans) == 70 and max(p.datapoints for p in plans) == 100_800
    assert len(plans) == math.ceil(len(qs) / 70) == P.lower_bound_calls(len(qs), T0, T0 + dt.timedelta(days=1))


def test_windows_beyond_100800_periods_are_split_in_time():
    qs = _queries(3)
    plans = P.plan_calls(qs, T0, T0 + dt.timedelta(days=71))
    assert all(p.datapoints <= 100_800 for p in plans)
    cut = T0 + dt.timedelta(days=70)  # 100,800 minutes
    assert [(p.start, p.end, len(p.queries)) for p in plans] == [(T0, cut, 1)] * len(qs) + [(cut, cut + dt.timedelta(days=1), len(qs))]


def test_statistics_make_a_summary_and_p99_only_where_the_conventions_say():
    stats = M.parse_statistics(["Average", "Sum", "Minimum", "Maximum", "SampleCount", "p99"])
    assert stats == ("Sum", "SampleCount", "Minimum", "Maximum", "p99")  # Average = Sum / SampleCount: never asked
    lat = M.MetricRef("AWS/RDS", "ReadLatency", (("DBInstanceIdentifier", "orders-db"),))
    cpu = M.MetricRef("AWS/RDS", "CPUUtilization", (("DBInstanceIdentifier", "orders-db"),))
    assert "p99" in M.statistics_for(lat, stats) and "p99" not in M.statistics_for(cpu, stats)
    assert "p99" not in M.statistics_for(lat, M.parse_statistics(["Sum", "SampleCount", "Minimum", "Maximum"]))
    with pytest.raises(ValueError, match="unknown statistic"):
        M.parse_statistics(["Avg"])


def test_requests_use_metricstat_with_lowercase_ids():
    qs = _queries(2)
    req = P.plan_calls(qs, T0, T0 + dt.timedelta(hours=1))[0].request()
    assert [q["Id"] for q in req["MetricDataQueries"]] == [f"m{i}" for i in range(len(qs))]
    assert req["MetricDataQueries"][0]["MetricStat"]["Period"] == 60 and req["ScanBy"] == "TimestampAscending"


def test_unaligned_or_empty_windows_are_refused_with_a_reason():
    qs = _queries(1)
    with pytest.raises(ValueError, match="not aligned"):
        P.plan_calls(qs, T0 + dt.timedelta(seconds=30), T0 + dt.timedelta(hours=1))
    with pytest.raises(ValueError, match="after start"):
        P.plan_calls(qs, T0, T0)
    assert P.plan_calls([], T0, T0 + dt.timedelta(hours=1)) == []


def test_only_the_table_dimension_sets_and_filtered_resources_are_collected():
    fn = M.MetricRef("AWS/Lambda", "Invocations", (("FunctionName", "fx"),))
    alias = M.MetricRef("AWS/Lambda", "Invocations", (("FunctionName", "fx"), ("Resource", "fx:live")))
    assert M.spec_for(fn) is not None and M.spec_for(alias) is None
    f = M.ResourceFilter.parse(["orders-*", "eks:markets-prod/pricing", "tag:team=markets"])
    db = M.MetricRef("AWS/RDS", "CPUUtilization", (("DBInstanceIdentifier", "orders-db"),))
    other = M.MetricRef("AWS/RDS", "CPUUtilization", (("DBInstanceIdentifier", "risk-db"),))
    pod = M.MetricRef("ContainerInsights", "pod_cpu_utilization", (("ClusterName", "markets-prod"), ("Namespace", "pricing")))
    assert f.matches(db) and not f.matches(other) and f.matches(pod)
    assert f.matches(other, {"rds:risk-db"})
    assert M.entity_from_arn("arn:aws:lambda:us-east-1:123456789012:function:fx:live") == "lambda:fx"
    assert M.entity_from_arn("arn:aws:eks:us-east-1:123456789012:cluster/markets-prod") == "eks:markets-prod"


def test_bad_settings_are_refused_with_what_to_write():
    from cms_dagster import settings
    from cms_dagster.collectors.collector import CollectorConfig

    for env, message in (
        ({"CMS_CW_STATISTICS": "Sum,median"}, "unknown statistic"),
        ({"CMS_CW_RESOURCE_FILTER": "tag:=x"}, "tag:Key=Value"),
        ({"CMS_AWS_ROLE_ARNS": "cms-collector"}, "not a role ARN"),
    ):
        with pytest.raises(ValueError, match=message):
            CollectorConfig.from_settings(settings.load(env))
