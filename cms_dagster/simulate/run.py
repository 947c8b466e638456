"""`cms simulate`: write a simulated estate into the raw zone exactly as the real sources would, and its
ground truth (labels and truth tables) into the archive zone."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from cms_dagster import lake as lake_mod
from cms_dagster.domain.model import Ontology
from cms_dagster.otel import otlp
from cms_dagster.simulate.cloudwatch import CwSeries, config_facts, simulate_cloudwatch
from cms_dagster.simulate.engine import (
    UTC,
    FeedSeries,
    Run,
    Timeline,
    run_summary,
    simulate_feeds,
    simulate_runs,
    stage_load,
)
from cms_dagster.simulate.incidents import Incident, default_incidents, iso, validate_target
from cms_dagster.simulate.truth import write_truth

DEFAULT_START = dt.datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
NS = 1_000_000_000


@dataclass
class SimulationResult:
    name: str
    start: dt.datetime
    end: dt.datetime
    raw_keys: list[str]
    points: int
    incidents: list[Incident]
    runs: list[Run]
    sdk_events: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": iso(self.start),
            "end": iso(self.end),
            "raw_files": len(self.raw_keys),
            "points": self.points,
            "incidents": len(self.incidents),
            "sdk_events": len(self.sdk_events),
            **run_summary(self.runs),
        }


def _ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * NS + t.microsecond * 1000


def _hour_of(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def build_incidents(
    ont: Ontology, start: dt.datetime, specs: list[Incident] | None, use_defaults: bool
) -> list[Incident]:
    if specs is None:
        specs = []
        if use_defaults:
            for kind, ent, off, minutes in default_incidents(start):
                validate_target(ont, kind, ent)
                specs.append(Incident(kind, ent, start + off, start + off + dt.timedelta(minutes=minutes)))
    for i, inc in enumerate(sorted(specs, key=lambda x: (x.start, x.kind, x.root_cause)), start=1):
        inc.id = f"inc-{i:03d}"
    return sorted(specs, key=lambda x: x.id)


# ---- OTLP builders -----------------------------------------------------------------------------------
def _cw_requests(series: list[CwSeries], facts: list, tl: Timeline, hour_idx: int) -> list[dict]:
    lo, hi = hour_idx * 60, min(tl.n, hour_idx * 60 + 60)
    by_ns: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    units: dict[str, str] = {}
    t0 = _ns(tl.start)
    for s in series:
        name = f"amazonaws.com/{s.namespace}/{s.metric}"
        units[name] = s.unit
        attrs = {"Namespace": s.namespace, "MetricName": s.metric, "Dimensions": s.dimensions}
        enc = otlp.attributes(attrs)
        pts = by_ns[s.namespace][name]
        for i in range(lo, hi):
            c = float(s.count[i])
            q = {0.99: float(s.p99[i])} if s.p99 is not None else None
            p = otlp.summary_point(
                {},
                t0 + i * 60 * NS,
                t0 + (i + 1) * 60 * NS,
                c,
                float(s.avg[i]) * c,
                float(s.min[i]),
                float(s.max[i]),
                q,
            )
            p["attributes"] = enc
            pts.append(p)
    hour_start = t0 + lo * 60 * NS
    for metric, unit, dims, value in facts:
        name = f"amazonaws.com/CMS/AWSConfig/{metric}"
        units[name] = unit
        attrs = {"Namespace": "CMS/AWSConfig", "MetricName": metric, "Dimensions": dims}
        by_ns["CMS/AWSConfig"][name].append(
            otlp.summary_point(attrs, hour_start, hour_start + 60 * NS, 1, value, value, value)
        )
    res = {"cloud.provider": "aws", "cloud.account.id": ACCOUNT_ID, "cloud.region": REGION}
    return [
        otlp.request(
            res,
            [otlp.summary(n, units[n], pts) for n, pts in metrics.items()],
            scope_name="cms.collectors.cloudwatch",
        )
        for ns_, metrics in sorted(by_ns.items())
    ]


_FEED_METRICS = [
    ("cms.feed.up", "gauge", "1", "up", int),
    ("cms.feed.latency", "gauge", "ms", "latency_ms", float),
    ("cms.feed.staleness", "gauge", "s", "staleness_s", float),
    ("cms.feed.messages", "sum", "{message}", "messages", int),
    ("cms.feed.missing_fields", "sum", "{field}", "missing_fields", int),
    ("cms.feed.invalid_values", "sum", "{value}", "invalid_values", int),
]


def _sdk_resource(service: str, environment: str) -> dict[str, Any]:
    return {
        "service.name": service,
        "cms.environment": environment,
        "telemetry.sdk.name": "cms-sdk",
        "telemetry.sdk.language": "python",
    }


def _feed_requests(
    ont: Ontology, feeds: dict[str, FeedSeries], tl: Timeline, hour_idx: int, env: str
) -> list[dict]:
    lo, hi = hour_idx * 60, min(tl.n, hour_idx * 60 + 60)
    t0 = _ns(tl.start)
    out = []
    for fid, fs in feeds.items():
        feed = ont.feeds[fid]
        enc = otlp.attributes({"cms.feed": fid, "cms.provider": feed.provider})
        metrics = []
        for name, kind, unit, attr, cast in _FEED_METRICS:
            arr = getattr(fs, attr)
            pts = []
            for i in range(lo, hi):
                # heartbeat at the end of each minute; the sums cover that minute
                p = otlp.number_point(
                    {},
                    t0 + (i + 1) * 60 * NS,
                    cast(arr[i]),
                    start_ns=t0 + i * 60 * NS if kind == "sum" else None,
                )
                p["attributes"] = enc
                pts.append(p)
            metrics.append(otlp.gauge(name, unit, pts) if kind == "gauge" else otlp.sum_(name, unit, pts))
        out.append(otlp.request(_sdk_resource(f"md-{fid}", env), metrics, scope_name="cms-sdk"))
    return out


def run_events(run: Run) -> list[dict[str, Any]]:
    """A run as SDK-level events (what an application would call), in time order."""
    job = run.job
    base = {"asset_class": job.asset_class, "job": job.id, "run_id": run.run_id}
    ev: list[dict[str, Any]] = [
        {"op": "run_start", **base, "scheduled_start": iso(run.scheduled), "time": run.start}
    ]
    for a in run.attempts:
        st = {
            **base,
            "stage": a.stage.id,
            "stage_type": a.stage.type,
            "attempt": a.attempt,
            "depends_on": list(a.stage.depends_on),
        }
        ev.append({"op": "stage_start", **st, "time": a.start})
        ev.append(
            {
                "op": "stage_end",
                **st,
                "status": a.status,
                "error_type": a.error_type,
                "records": a.records,
                "start": a.start,
                "time": a.end,
            }
        )
    ev.append(
        {
            "op": "run_end",
            **base,
            "status": run.status,
            "error_type": run.error_type,
            "records": run.records,
            "bytes": run.bytes,
            "start": run.start,
            "time": run.end,
        }
    )
    return ev


def events_to_metrics(
    events: Iterable[dict[str, Any]],
) -> list[tuple[dt.datetime, str, str, str, dict[str, Any], int, float | int, int | None]]:
    """SDK events → (time, metric, kind, unit, attributes, time_ns, value, start_ns) per the conventions."""
    out = []
    for e in events:
        t = e["time"]
        run_attrs = {"cms.asset_class": e["asset_class"], "cms.job": e["job"], "cms.run_id": e["run_id"]}
        if e["op"] == "run_start":
            out.append(
                (
                    t,
                    "cms.batch.run.started",
                    "sum",
                    "{run}",
                    {**run_attrs, "cms.scheduled_start": e["scheduled_start"]},
                    _ns(t),
                    1,
                    None,
                )
            )
        elif e["op"] == "run_end":
            a = {**run_attrs, "cms.status": e["status"], "cms.error_type": e["error_type"]}
            out += [
                (t, "cms.batch.run.finished", "sum", "{run}", a, _ns(t), 1, None),
                (
                    t,
                    "cms.batch.run.duration",
                    "gauge",
                    "s",
                    a,
                    _ns(t),
                    round((t - e["start"]).total_seconds(), 3),
                    _ns(e["start"]),
                ),
                (t, "cms.batch.run.records", "sum", "{record}", a, _ns(t), int(e["records"]), None),
                (t, "cms.batch.run.bytes", "sum", "By", a, _ns(t), int(e["bytes"]), None),
            ]
        else:
            a = {
                **run_attrs,
                "cms.stage": e["stage"],
                "cms.stage_type": e["stage_type"],
                "cms.attempt": e["attempt"],
                "cms.retries": e["attempt"] - 1,
                "cms.stage_depends_on": ",".join(e["depends_on"]),
            }
            if e["op"] == "stage_start":
                out.append((t, "cms.stage.run.started", "sum", "{run}", a, _ns(t), 1, None))
            else:
                a = {**a, "cms.status": e["status"], "cms.error_type": e["error_type"]}
                out += [
                    (t, "cms.stage.run.finished", "sum", "{run}", a, _ns(t), 1, None),
                    (
                        t,
                        "cms.stage.run.duration",
                        "gauge",
                        "s",
                        a,
                        _ns(t),
                        round((t - e["start"]).total_seconds(), 3),
                        _ns(e["start"]),
                    ),
                    (t, "cms.stage.run.records", "sum", "{record}", a, _ns(t), int(e["records"]), None),
                ]
    return out


def _batch_requests(runs: list[Run], env: str) -> dict[dt.datetime, list[dict]]:
    """Batch and stage points grouped by the hour they were emitted in, one request per job and hour."""
    grouped: dict[tuple[dt.datetime, str], dict[tuple[str, str, str], list]] = defaultdict(
        lambda: defaultdict(list)
    )
    for run in runs:
        for t, name, kind, unit, attrs, t_ns, value, start_ns in events_to_metrics(run_events(run)):
            grouped[(_hour_of(t), run.job.asset_class)][(name, kind, unit)].append(
                otlp.number_point(attrs, t_ns, value, start_ns)
            )
    out: dict[dt.datetime, list[dict]] = defaultdict(list)
    for (hour, ac), metrics in sorted(grouped.items()):
        ms = [otlp.gauge(n, u, p) if k == "gauge" else otlp.sum_(n, u, p) for (n, k, u), p in metrics.items()]
        out[hour].append(otlp.request(_sdk_resource(f"batch-{ac}", env), ms, scope_name="cms-sdk"))
    return out


def _count_points(reqs: list[dict]) -> int:
    return sum(
        len(m[k]["dataPoints"])
        for r in reqs
        for rm in r["resourceMetrics"]
        for sm in rm["scopeMetrics"]
        for m in sm["metrics"]
        for k in ("gauge", "sum", "summary")
        if k in m
    )


def _lines(reqs: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in reqs)


def simulate(
    ont: Ontology,
    lake: lake_mod.Lake,
    *,
    days: int = 7,
    seed: int = 42,
    start: dt.datetime = DEFAULT_START,
    incidents: list[Incident] | None = None,
    default_incidents_on: bool = True,
    via_sdk: Iterable[str] = (),
    environment: str = "demo",
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Simulate ``days`` days from ``start`` and write raw OTLP + ground truth. Returns what was written.

    Batch runs of the asset classes in ``via_sdk`` are not written to the raw zone: they are returned (and
    archived) as SDK events for the caller to send through the SDK and the receiver.
    """
    if days < 1:
        raise ValueError("--days must be at least 1")
    start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    say = progress or (lambda _m: None)
    tl = Timeline(start, days)
    incs = build_incidents(ont, start, incidents, default_incidents_on)
    say(f"simulating {days} day(s) from {iso(start)} with {len(incs)} incident(s)")
    feeds = simulate_feeds(ont, tl, incs, seed)
    runs = simulate_runs(ont, tl, feeds, incs, seed)
    load = stage_load(tl, runs)
    cw = simulate_cloudwatch(ont, tl, load, incs, seed)
    via = set(via_sdk)
    unknown = via - set(ont.asset_classes)
    if unknown:
        raise ValueError(f"--via-sdk: unknown asset class(es) {sorted(unknown)}")
    sdk_runs = [r for r in runs if r.job.asset_class in via]
    for r in sdk_runs:
        r.via = "sdk"
    sdk_events = [e for r in sdk_runs for e in run_events(r)]
    batch_by_hour = _batch_requests([r for r in runs if r.job.asset_class not in via], environment)
    facts = config_facts(ont)
    name = f"seed-{seed}"
    keys: list[str] = []
    points = 0
    hours = days * 24
    for h in range(hours):
        hour = start + dt.timedelta(hours=h)
        ingest_time = hour + dt.timedelta(hours=1)
        reqs_cw = _cw_requests(cw, facts, tl, h)
        reqs_sdk = _feed_requests(ont, feeds, tl, h, environment) + batch_by_hour.get(hour, [])
        for source, reqs in (("cloudwatch", reqs_cw), ("sdk", reqs_sdk)):
            batch = lake_mod.batch_name(ingest_time, "sim", f"s{seed}-{source}")
            key = lake_mod.raw_key(source, hour, batch)
            lake.raw.put(key, lake_mod.gzip_bytes(_lines(reqs)))
            keys.append(key)
            points += _count_points(reqs)
        if (h + 1) % 24 == 0:
            say(f"  day {(h + 1) // 24}/{days}: {len(keys)} raw files, {points:,} points")
    # runs that finish after the window emit their last points in later hours: write those too
    for hour in sorted(h for h in batch_by_hour if h >= tl.end):
        reqs = batch_by_hour[hour]
        batch = lake_mod.batch_name(hour + dt.timedelta(hours=1), "sim", f"s{seed}-sdk")
        key = lake_mod.raw_key("sdk", hour, batch)
        lake.raw.put(key, lake_mod.gzip_bytes(_lines(reqs)))
        keys.append(key)
        points += _count_points(reqs)
    result = SimulationResult(name, start, tl.end, keys, points, incs, runs, sdk_events)
    write_truth(lake.archive, name, result, feeds, tl, seed, ont, cw)
    say(
        f"wrote {len(keys)} raw files ({points:,} points) and ground truth to {lake.archive.uri(f'simulations/{name}/')}"
    )
    return result
