"""The series of each hour window of a fetched span: CloudWatch's answers bucketed by hour as OTLP summary
points, plus the CMS/AWSConfig gauges (configuration facts, Lambda memory and timeouts) of that hour."""

from __future__ import annotations

from collections.abc import Sequence

from cms_dagster.collectors import facts as facts_mod
from cms_dagster.collectors.metrics import MetricRef, spec_for, statistics_for
from cms_dagster.collectors.planning import Query
from cms_dagster.collectors.shape import Series, encoded_point_attributes, gauge_point, summary_point
from cms_dagster.collectors.windows import Window
from cms_dagster.otel.conventions import CONFIG_METRICS, CONFIG_NAMESPACE

__all__ = ["span_series"]

_CONFIG_UNITS = {m.metric: m.unit for m in CONFIG_METRICS}


def span_series(
    span: Sequence[Window],
    selected: Sequence[MetricRef],
    insights: Sequence[MetricRef],
    values: dict[Query, dict[int, float]],
    stats: tuple[str, ...],
    period: int,
    facts: facts_mod.Facts,
    log_minutes: dict[str, dict[int, facts_mod.LogMinute] | None],
) -> list[tuple[Window, list[Series]]]:
    """The series of each hour window of a span (metric points bucketed by hour in one pass)."""
    buckets: dict[int, list[Series]] = {int(w.start.timestamp()): [] for w in span}
    duration_max: dict[str, dict[int, float]] = {}
    for m in selected:
        spec = spec_for(m)
        assert spec is not None
        counts = values.get(Query(m, "SampleCount"), {})
        sums = values.get(Query(m, "Sum"), {})
        mins = values.get(Query(m, "Minimum"), {})
        maxs = values.get(Query(m, "Maximum"), {})
        p99s = values.get(Query(m, "p99"), {}) if "p99" in statistics_for(m, stats) else {}
        dims = dict(m.dimensions)
        sorted_dims = tuple(sorted(m.dimensions))
        encoded = encoded_point_attributes(m.namespace, m.name, dims)
        per_hour: dict[int, Series] = {}
        for t in sorted(counts):
            hour = t - t % 3600
            if hour not in buckets:
                continue
            count = counts[t]
            total = sums.get(t)
            if total is None or count <= 0:
                continue
            s = per_hour.get(hour)
            if s is None:
                s = per_hour[hour] = Series(m.namespace, m.name, spec.unit, sorted_dims)
            avg = total / count
            q = {0.99: p99s[t]} if t in p99s else None
            s.points.append(
                summary_point(
                    m.namespace, m.name, dims, t, t + period, count, total, mins.get(t, avg), maxs.get(t, avg), q,
                    encoded_attributes=encoded,
                )
            )
        for hour, s in per_hour.items():
            buckets[hour].append(s)
        if m.namespace == "AWS/Lambda" and m.name == "Duration":
            duration_max[dims["FunctionName"]] = maxs
    out = []
    for w in span:
        w0, w1 = int(w.start.timestamp()), int(w.end.timestamp())
        out.append((w, buckets[w0] + _fact_series(w0, w1, period, facts, insights, values, log_minutes, duration_max)))
    return out


def _fact_series(
    w0: int,
    w1: int,
    period: int,
    facts: facts_mod.Facts,
    insights: Sequence[MetricRef],
    values: dict[Query, dict[int, float]],
    log_minutes: dict[str, dict[int, facts_mod.LogMinute] | None],
    duration_max: dict[str, dict[int, float]],
) -> list[Series]:
    series: dict[tuple[str, tuple], Series] = {}

    def add(name: str, dim: str, value_of: str, start: int, end: int, value: float) -> None:
        key = (name, ((dim, value_of),))
        s = series.get(key)
        if s is None:
            s = series[key] = Series(CONFIG_NAMESPACE, name, _CONFIG_UNITS[name], ((dim, value_of),))
        s.points.append(gauge_point(CONFIG_NAMESPACE, name, {dim: value_of}, start, end, value))

    for db, f in facts.rds.items():
        for name, v in f.items():
            add(name, "DBInstanceIdentifier", db, w0, w1, v)
    for q, f in facts.sqs.items():
        for name, v in f.items():
            add(name, "QueueName", q, w0, w1, v)
    for fn, f in facts.lambdas.items():
        for name, v in f.items():
            add(name, "FunctionName", fn, w0, w1, v)
    for m in insights:
        fn = m.dims["function_name"]
        for t, v in sorted(values.get(Query(m, "Maximum"), {}).items()):
            if w0 <= t < w1:
                add("MaxMemoryUsed", "FunctionName", fn, t, t + period, v)
    for fn, mins in log_minutes.items():
        if mins is None:
            continue
        for t, lm in sorted(mins.items()):
            if not (w0 <= t < w1):
                continue
            if lm.max_memory_mb is not None:
                add("MaxMemoryUsed", "FunctionName", fn, t, t + 60, lm.max_memory_mb)
            add("Timeouts", "FunctionName", fn, t, t + 60, float(lm.timeouts))
    for fn, maxima in duration_max.items():
        if log_minutes.get(fn) is not None:
            continue  # counted from the log lines
        timeout_s = facts.lambdas.get(fn, {}).get("Timeout")
        if not timeout_s:
            continue
        for t, v in sorted(maxima.items()):
            if not (w0 <= t < w1):
                continue
            add("Timeouts", "FunctionName", fn, t, t + period, 1.0 if v >= timeout_s * 1000 - 5 else 0.0)
    return list(series.values())
