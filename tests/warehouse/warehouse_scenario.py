"""A small, hand-made estate history with known truth, for the warehouse tests.

Two days (2026-11-16 and -17 UTC) of: six batch runs (on time, late with a retry, failed after retries,
running past its deadline, ...), two feeds with three outages (one across an hour boundary), a few
CloudWatch series (one on a resource that is not in the ontology) and config gauges, plus a duplicate
delivery with a newer value. Points are built as OTLP requests and flattened by the product's own
``flatten_lines``, so every row follows docs/data-contract.md; they are written as processed Parquet
files, one per (hour, source, batch), in a lake's processed zone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from cms_dagster import lake as lake_mod
from cms_dagster.domain.model import Ontology
from cms_dagster.otel import otlp
from cms_dagster.otel.flatten import flatten_lines

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
DAYS = 2
NS = 1_000_000_000


def t(day: int, hh: int, mm: int = 0, ss: float = 0.0) -> dt.datetime:
    return START + dt.timedelta(days=day, hours=hh, minutes=mm, seconds=ss)


def ns(x: dt.datetime) -> int:
    return int(x.timestamp()) * NS + x.microsecond * 1000


def iso(x: dt.datetime) -> str:
    return x.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Attempt:
    stage: str
    attempt: int
    start: dt.datetime
    end: dt.datetime | None
    status: str = "success"
    error_type: str = ""
    records: int = 0
    declared_depends_on: str | None = None  # what the emitter declares, when it differs from the ontology


@dataclass
class Run:
    asset_class: str
    job: str
    scheduled: dt.datetime
    start: dt.datetime
    end: dt.datetime | None
    status: str  # success | failed | running
    error_type: str = ""
    records: int = 0
    bytes: int = 0
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return f"{self.asset_class}.{self.job}.{self.scheduled:%Y-%m-%dT%H:%M}"


@dataclass
class Scenario:
    runs: list[Run]
    outages: list[tuple[str, dt.datetime, dt.datetime]]  # feed, start, end (exclusive)
    feeds: list[str]
    infra: list[tuple[str, str, str, dict[str, str], str, bool]]  # entity, ns, metric, dims, unit, p99
    duplicate_point: dict[str, Any] = field(default_factory=dict)

    def truth_runs(self, ont: Ontology) -> dict[str, dict[str, Any]]:
        out = {}
        as_of = max(
            max([r.start] + [r.end or r.start] + [a.end or a.start for a in r.attempts]) for r in self.runs
        )
        for r in self.runs:
            deadline = r.scheduled + dt.timedelta(minutes=ont.job(f"{r.asset_class}.{r.job}").sla_minutes)
            if r.status == "success":
                breached = r.end > deadline
            elif r.status == "failed":
                breached = True
            else:
                breached = as_of > deadline
            out[r.run_id] = {"status": r.status, "breached": breached, "on_time": r.status == "success" and not breached,
                             "deadline": deadline, "records": r.records, "attempts": len(r.attempts)}
        return out


def default_scenario() -> Scenario:
    runs: list[Run] = []
    # 1. derivatives.eod_valuation, Monday: on time; aggregation and loading run in parallel after valuation
    r = Run("derivatives", "eod_valuation", t(0, 22), t(0, 22, 1), None, "success", records=1_500_000, bytes=600_000_000)
    r.attempts = [
        Attempt("ingest", 1, t(0, 22, 1, 10), t(0, 22, 11)),
        Attempt("validation", 1, t(0, 22, 11, 10), t(0, 22, 17)),
        Attempt("enrichment", 1, t(0, 22, 17, 10), t(0, 22, 25)),
        Attempt("valuation", 1, t(0, 22, 25, 10), t(0, 23, 0)),
        Attempt("aggregation", 1, t(0, 23, 0, 10), t(0, 23, 10)),
        Attempt("loading", 1, t(0, 23, 0, 15), t(0, 23, 13)),
        Attempt("publication", 1, t(0, 23, 13, 10), t(0, 23, 16)),
    ]
    r.end = t(0, 23, 16)
    runs.append(r)
    # 2. derivatives.eod_valuation, Tuesday: valuation fails once (ConnectionError) and is retried; the run
    #    ends after midnight, past its 00:00 deadline -> late, breached
    r = Run("derivatives", "eod_valuation", t(1, 22), t(1, 22, 1), None, "success", records=1_400_000, bytes=560_000_000)
    r.attempts = [
        Attempt("ingest", 1, t(1, 22, 1, 10), t(1, 22, 12)),
        Attempt("validation", 1, t(1, 22, 12, 10), t(1, 22, 18)),
        Attempt("enrichment", 1, t(1, 22, 18, 10), t(1, 22, 26)),
        Attempt("valuation", 1, t(1, 22, 26, 10), t(1, 22, 31), "failed", "ConnectionError"),
        Attempt("valuation", 2, t(1, 22, 31, 40), t(1, 23, 50)),
        Attempt("aggregation", 1, t(1, 23, 50, 10), t(2, 0, 5)),
        Attempt("loading", 1, t(1, 23, 50, 15), t(2, 0, 1)),
        Attempt("publication", 1, t(2, 0, 5, 10), t(2, 0, 8)),
    ]
    r.end = t(2, 0, 8)
    runs.append(r)
    # 3. equities.corporate_actions, Monday: enrichment fails on all three attempts -> run failed
    r = Run("equities", "corporate_actions", t(0, 6), t(0, 6, 0, 40), t(0, 6, 40), "failed", "DataQualityError")
    r.attempts = [
        Attempt("ingest", 1, t(0, 6, 0, 50), t(0, 6, 7)),
        Attempt("validation", 1, t(0, 6, 7, 10), t(0, 6, 12)),
        Attempt("enrichment", 1, t(0, 6, 12, 10), t(0, 6, 18), "failed", "DataQualityError"),
        Attempt("enrichment", 2, t(0, 6, 18, 40), t(0, 6, 25), "failed", "DataQualityError"),
        Attempt("enrichment", 3, t(0, 6, 26, 10), t(0, 6, 40), "failed", "DataQualityError"),
    ]
    runs.append(r)
    # 4. equities.corporate_actions, Tuesday: success on time, started nine minutes late
    r = Run("equities", "corporate_actions", t(1, 6), t(1, 6, 9), t(1, 6, 40), "success", records=40_000, bytes=16_000_000)
    r.attempts = [
        Attempt("ingest", 1, t(1, 6, 9, 5), t(1, 6, 15)),
        Attempt("validation", 1, t(1, 6, 15, 10), t(1, 6, 20)),
        Attempt("enrichment", 1, t(1, 6, 20, 10), t(1, 6, 33)),
        Attempt("loading", 1, t(1, 6, 33, 10), t(1, 6, 40)),
    ]
    runs.append(r)
    # 5. fx.spot_rates_snapshot, Tuesday 14:05: started, publication never finishes -> running past deadline
    r = Run("fx", "spot_rates_snapshot", t(1, 14, 5), t(1, 14, 5, 30), None, "running")
    r.attempts = [
        Attempt("ingest", 1, t(1, 14, 5, 40), t(1, 14, 7)),
        Attempt("validation", 1, t(1, 14, 7, 10), t(1, 14, 8)),
        Attempt("publication", 1, t(1, 14, 8, 10), None, "running"),
    ]
    runs.append(r)
    # 6. equities.intraday_risk, Monday 13:00: success on time; its emitter declares that publication also
    #    waits for transformation, which the ontology does not say
    r = Run("equities", "intraday_risk", t(0, 13), t(0, 13, 0, 30), t(0, 13, 14), "success", records=350_000, bytes=140_000_000)
    r.attempts = [
        Attempt("ingest", 1, t(0, 13, 0, 40), t(0, 13, 4)),
        Attempt("transformation", 1, t(0, 13, 4, 10), t(0, 13, 8)),
        Attempt("aggregation", 1, t(0, 13, 8, 10), t(0, 13, 13)),
        Attempt("publication", 1, t(0, 13, 13, 10), t(0, 13, 14), declared_depends_on="transformation,aggregation"),
    ]
    runs.append(r)
    for run in runs:
        for a in run.attempts:
            a.records = run.records if a.status == "success" else 0
    outages = [
        ("cme-mdp", t(0, 5, 45), t(0, 6, 25)),  # 40 minutes
        ("bloomberg-bpipe", t(1, 10, 50), t(1, 11, 10)),  # 20 minutes, across an hour boundary
        ("cme-mdp", t(1, 23, 58), t(2, 0, 0)),  # 2 minutes, ends with the data
    ]
    infra = [
        ("rds:positions-db", "AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": "positions-db"}, "Percent", False),
        ("rds:positions-db", "AWS/RDS", "DatabaseConnections", {"DBInstanceIdentifier": "positions-db"}, "Count", False),
        ("lambda:publication-notifier", "AWS/Lambda", "Duration", {"FunctionName": "publication-notifier"}, "Milliseconds", True),
        ("sqs:audit-trail", "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "audit-trail"}, "Count", False),
    ]
    return Scenario(runs, outages, ["bloomberg-bpipe", "cme-mdp"], infra)


# ---- OTLP building -----------------------------------------------------------------------------------
def _sdk_resource(service: str) -> dict[str, Any]:
    return {"service.name": service, "cms.environment": "demo", "telemetry.sdk.name": "cms-sdk", "telemetry.sdk.language": "python"}


def _batch_points(run: Run, ont: Ontology) -> list[tuple[dt.datetime, str, str, str, dict, float, dt.datetime | None]]:
    """(time, metric, kind, unit, attrs, value, start) of every batch and stage point of a run."""
    job = ont.job(f"{run.asset_class}.{run.job}")
    base = {"cms.asset_class": run.asset_class, "cms.job": run.job, "cms.run_id": run.run_id}
    pts: list = [(run.start, "cms.batch.run.started", "sum", "{run}", {**base, "cms.scheduled_start": iso(run.scheduled)}, 1, None)]
    for a in run.attempts:
        st = job.stage(a.stage)
        sa = {**base, "cms.stage": a.stage, "cms.stage_type": st.type, "cms.attempt": a.attempt, "cms.retries": a.attempt - 1,
              "cms.stage_depends_on": a.declared_depends_on if a.declared_depends_on is not None else ",".join(st.depends_on)}
        pts.append((a.start, "cms.stage.run.started", "sum", "{run}", sa, 1, None))
        if a.end is not None:
            fa = {**sa, "cms.status": a.status, "cms.error_type": a.error_type}
            pts += [
                (a.end, "cms.stage.run.finished", "sum", "{run}", fa, 1, None),
                (a.end, "cms.stage.run.duration", "gauge", "s", fa, round((a.end - a.start).total_seconds(), 3), a.start),
                (a.end, "cms.stage.run.records", "sum", "{record}", fa, a.records, None),
            ]
    if run.end is not None:
        fa = {**base, "cms.status": run.status, "cms.error_type": run.error_type}
        pts += [
            (run.end, "cms.batch.run.finished", "sum", "{run}", fa, 1, None),
            (run.end, "cms.batch.run.duration", "gauge", "s", fa, round((run.end - run.start).total_seconds(), 3), run.start),
            (run.end, "cms.batch.run.records", "sum", "{record}", fa, run.records, None),
            (run.end, "cms.batch.run.bytes", "sum", "By", fa, run.bytes, None),
        ]
    return pts


def _number_metric(name: str, kind: str, unit: str, points: list[dict]) -> dict:
    return otlp.gauge(name, unit, points) if kind == "gauge" else otlp.sum_(name, unit, points)


def feed_values(feed: str, minute: dt.datetime, down: bool) -> dict[str, float]:
    i = int((minute - START).total_seconds() // 60)
    return {
        "up": 0 if down else 1,
        "latency": 30.0 + (i % 7),
        "staleness": 60.0 if down else 0.5 + (i % 3) * 0.25,
        "messages": 0 if down else 1000 + (i % 11),
        "missing_fields": 0 if down else (1 if i % 50 == 0 else 0),
        "invalid_values": 0 if down else (1 if i % 120 == 0 else 0),
    }


def requests_by_hour(sc: Scenario, ont: Ontology) -> dict[tuple[dt.datetime, str], list[dict]]:
    """OTLP requests per (raw hour, source)."""
    out: dict[tuple[dt.datetime, str], list[dict]] = defaultdict(list)
    # batch: grouped by the hour of the point's time, one request per (hour, asset class)
    grouped: dict[tuple[dt.datetime, str], dict[tuple[str, str, str], list]] = defaultdict(lambda: defaultdict(list))
    for run in sc.runs:
        for when, name, kind, unit, attrs, value, start in _batch_points(run, ont):
            hour = when.replace(minute=0, second=0, microsecond=0)
            grouped[(hour, run.asset_class)][(name, kind, unit)].append(
                otlp.number_point(attrs, ns(when), value, ns(start) if start else None)
            )
    for (hour, ac), metrics in sorted(grouped.items()):
        ms = [_number_metric(n, k, u, p) for (n, k, u), p in metrics.items()]
        out[(hour, "sdk")].append(otlp.request(_sdk_resource(f"batch-{ac}"), ms, scope_name="cms-sdk"))
    # feeds: a heartbeat at the end of each minute about that minute
    providers = {f: ont.feeds[f].provider for f in sc.feeds}
    kinds = {"up": ("gauge", "1"), "latency": ("gauge", "ms"), "staleness": ("gauge", "s"), "messages": ("sum", "{message}"),
             "missing_fields": ("sum", "{field}"), "invalid_values": ("sum", "{value}")}
    for h in range(DAYS * 24):
        hour = START + dt.timedelta(hours=h)
        for feed in sc.feeds:
            attrs = {"cms.feed": feed, "cms.provider": providers[feed]}
            per_metric: dict[str, list] = defaultdict(list)
            for m in range(60):
                minute = hour + dt.timedelta(minutes=m)
                down = any(f == feed and a <= minute < b for f, a, b in sc.outages)
                for measure, v in feed_values(feed, minute, down).items():
                    kind = kinds[measure][0]
                    per_metric[measure].append(
                        otlp.number_point(attrs, ns(minute + dt.timedelta(minutes=1)), v,
                                          ns(minute) if kind == "sum" else None)
                    )
            ms = [_number_metric(f"cms.feed.{k}", kinds[k][0], kinds[k][1], p) for k, p in per_metric.items()]
            out[(hour, "sdk")].append(otlp.request(_sdk_resource(f"md-{feed}"), ms, scope_name="cms-sdk"))
        # infra: one summary per series and minute; config gauge once an hour
        res = {"cloud.provider": "aws", "cloud.account.id": "123456789012", "cloud.region": "us-east-1"}
        metrics = []
        for _entity, ns_, metric, dims, unit, p99 in sc.infra:
            attrs = {"Namespace": ns_, "MetricName": metric, "Dimensions": dims}
            pts = []
            for m in range(60):
                minute = hour + dt.timedelta(minutes=m)
                i = h * 60 + m
                v = 20.0 + (i % 10)
                pts.append(otlp.summary_point(attrs, ns(minute), ns(minute + dt.timedelta(minutes=1)), 1, v, v * 0.9, v * 1.1,
                                              {0.99: v * 1.5} if p99 else None))
            metrics.append(otlp.summary(f"amazonaws.com/{ns_}/{metric}", unit, pts))
        cfg = {"Namespace": "CMS/AWSConfig", "MetricName": "MaxConnections", "Dimensions": {"DBInstanceIdentifier": "positions-db"}}
        metrics.append(otlp.summary("amazonaws.com/CMS/AWSConfig/MaxConnections", "Count",
                                    [otlp.summary_point(cfg, ns(hour), ns(hour + dt.timedelta(minutes=1)), 1, 800, 800, 800)]))
        out[(hour, "cloudwatch")].append(otlp.request(res, metrics, scope_name="cms.collectors.cloudwatch"))
    return out


def write_processed(sc: Scenario, ont: Ontology, processed_dir: Path) -> list[str]:
    """Flatten every (hour, source) batch and write it as processed Parquet; returns the keys written.

    The last hour's CPU points are delivered twice: a second, later batch repeats them with a new value, so
    the warehouse must keep one row per point with the later value.
    """
    zone = lake_mod.Zone(str(processed_dir))
    keys: list[str] = []
    by_hour = requests_by_hour(sc, ont)
    for (hour, source), reqs in sorted(by_hour.items()):
        ingest = hour + dt.timedelta(hours=1)
        batch = lake_mod.batch_name(ingest, "sim", f"test-{source}")
        raw_key = lake_mod.raw_key(source, hour, batch)
        lines = [orjson.dumps(r) for r in reqs]
        flat = flatten_lines(lines, source=source, raw_key=raw_key, ingested_at=ingest, day=hour.date(), hour=hour.hour)
        assert not flat.rejected, flat.rejected[:3]
        key = lake_mod.processed_key(hour.date(), hour.hour, source, batch)
        keys.append(key)
        _write(zone, key, flat.table)
    # duplicate delivery of the first hour's CPU points (ingested later, value + 1000)
    hour = START
    cw = [r for r in by_hour[(hour, "cloudwatch")]]
    dup = orjson.loads(orjson.dumps(cw[0]))
    for m in dup["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]:
        if m["name"].endswith("/CPUUtilization"):
            for p in m["summary"]["dataPoints"]:
                p["sum"] = float(p["sum"]) + 1000.0
    dup["resourceMetrics"][0]["scopeMetrics"][0]["metrics"] = [
        m for m in dup["resourceMetrics"][0]["scopeMetrics"][0]["metrics"] if m["name"].endswith("/CPUUtilization")
    ]
    ingest = hour + dt.timedelta(hours=2)
    batch = lake_mod.batch_name(ingest, "ms", "redelivery")
    raw_key = lake_mod.raw_key("metric-stream", hour, batch)
    flat = flatten_lines([orjson.dumps(dup)], source="metric-stream", raw_key=raw_key, ingested_at=ingest, day=hour.date(), hour=hour.hour)
    key = lake_mod.processed_key(hour.date(), hour.hour, "metric-stream", batch)
    _write(zone, key, flat.table)
    keys.append(key)
    sc.duplicate_point = {"entity_id": "rds:positions-db", "metric": "CPUUtilization", "minute": hour, "avg": 20.0 + 1000.0}
    return keys


def _write(zone: lake_mod.Zone, key: str, table: pa.Table) -> None:
    path = zone.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def hour_keys(keys: list[str], day: dt.date, hour: int) -> list[str]:
    prefix = lake_mod.processed_hour_prefix(day, hour)
    return [k for k in keys if k.startswith(prefix)]
