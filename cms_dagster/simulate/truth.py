"""The simulator's ground truth, written to the archive zone beside the raw data: the incidents' labels
(``labels.json``) and truth tables (batch and stage runs, feed outages, feed minutes and hours, resource
hours, as CSV) that tests and benchmarks compare the warehouse's marts against."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from cms_dagster import lake as lake_mod
from cms_dagster.domain.model import Ontology
from cms_dagster.simulate.cloudwatch import CwSeries
from cms_dagster.simulate.engine import FeedSeries, Timeline
from cms_dagster.simulate.incidents import iso

if TYPE_CHECKING:
    from cms_dagster.simulate.run import SimulationResult

__all__ = ["feed_outages", "feed_truth", "resource_truth", "write_truth"]


def _csv(header: list[str], rows: Iterable[list[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def feed_outages(feeds: dict[str, FeedSeries], tl: Timeline) -> list[list[Any]]:
    rows = []
    for fid, fs in sorted(feeds.items()):
        down = np.flatnonzero(fs.up == 0)
        if not len(down):
            continue
        splits = np.split(down, np.flatnonzero(np.diff(down) > 1) + 1)
        for seg in splits:
            a = tl.start + dt.timedelta(minutes=int(seg[0]))
            b = tl.start + dt.timedelta(minutes=int(seg[-1]) + 1)
            rows.append([fid, iso(a), iso(b), len(seg)])
    return rows


# CloudWatch metrics whose hourly truth is written (the measures of natural-language questions)
TRUTH_CW_METRICS = (
    "CPUUtilization",
    "DatabaseConnections",
    "ApproximateNumberOfMessagesVisible",
    "pod_cpu_utilization",
    "pod_memory_utilization",
    "node_cpu_utilization",
    "node_memory_utilization",
)


def _cw_entity(s: CwSeries) -> str | None:
    d = s.dimensions
    if s.namespace == "AWS/RDS" and "DBInstanceIdentifier" in d:
        return f"rds:{d['DBInstanceIdentifier']}"
    if s.namespace == "AWS/SQS" and "QueueName" in d:
        return f"sqs:{d['QueueName']}"
    if s.namespace == "ContainerInsights" and "ClusterName" in d:
        return f"eks:{d['ClusterName']}" + (f"/{d['Namespace']}" if "Namespace" in d else "")
    return None


def feed_truth(ont: Ontology, feeds: dict[str, FeedSeries], tl: Timeline) -> tuple[list[list[Any]], list[list[Any]]]:
    """(minutes a feed was down or stale beyond its SLA, per-hour summaries) of every feed."""
    minutes, hours = [], []
    for fid, fs in sorted(feeds.items()):
        sla = ont.feeds[fid].staleness_sla_s
        for i in np.flatnonzero((fs.up == 0) | (fs.staleness_s > sla)):
            t = tl.start + dt.timedelta(minutes=int(i))
            minutes.append([fid, iso(t), int(fs.up[i]), float(fs.staleness_s[i]), str(bool(fs.staleness_s[i] > sla)).lower()])
        for h in range(tl.n // 60):
            sl = slice(h * 60, h * 60 + 60)
            hours.append([
                fid, iso(tl.start + dt.timedelta(hours=h)), 60, int(fs.up[sl].sum()), int(fs.messages[sl].sum()),
                round(float(fs.latency_ms[sl].mean()), 6), float(fs.staleness_s[sl].max()), int((fs.staleness_s[sl] > sla).sum()),
            ])  # fmt: skip
    return minutes, hours


def resource_truth(cw: list[CwSeries], tl: Timeline) -> list[list[Any]]:
    """Per resource, metric and hour: the largest and the mean minute average (dimension sets combined)."""
    combined: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for s in cw:
        ent = _cw_entity(s)
        if ent is None or s.metric not in TRUTH_CW_METRICS:
            continue
        tot, cnt = combined.get((ent, s.metric), (np.zeros(tl.n), np.zeros(tl.n)))
        combined[(ent, s.metric)] = (tot + s.avg * s.count, cnt + s.count)
    rows = []
    for (ent, metric), (tot, cnt) in sorted(combined.items()):
        avg = tot / np.maximum(cnt, 1e-12)
        for h in range(tl.n // 60):
            sl = slice(h * 60, h * 60 + 60)
            rows.append([ent, metric, iso(tl.start + dt.timedelta(hours=h)), float(avg[sl].max()), round(float(avg[sl].mean()), 6)])
    return rows


def write_truth(
    archive: lake_mod.Zone,
    name: str,
    result: SimulationResult,
    feeds: dict[str, FeedSeries],
    tl: Timeline,
    seed: int,
    ont: Ontology | None = None,
    cw: list[CwSeries] | None = None,
) -> list[str]:
    base = f"simulations/{name}"
    labels = {
        "seed": seed,
        "start": iso(result.start),
        "end": iso(result.end),
        "incidents": [inc.label() for inc in result.incidents],
    }
    files = {
        f"{base}/labels.json": orjson.dumps(labels, option=orjson.OPT_INDENT_2) + b"\n",
        f"{base}/truth/batch_runs.csv": _csv(
            [
                "run_id",
                "asset_class",
                "job",
                "scheduled_start",
                "start",
                "end",
                "status",
                "error_type",
                "records",
                "bytes",
                "sla_deadline",
                "sla_breached",
                "via",
            ],
            (
                [
                    r.run_id,
                    r.job.asset_class,
                    r.job.id,
                    iso(r.scheduled),
                    iso(r.start),
                    iso(r.end),
                    r.status,
                    r.error_type,
                    r.records,
                    r.bytes,
                    iso(r.deadline),
                    str(r.sla_breached).lower(),
                    r.via,
                ]
                for r in result.runs
            ),
        ),
        f"{base}/truth/stage_runs.csv": _csv(
            [
                "run_id",
                "asset_class",
                "job",
                "stage",
                "attempt",
                "start",
                "end",
                "status",
                "error_type",
                "records",
            ],
            (
                [
                    a.run_id,
                    a.asset_class,
                    a.job,
                    a.stage.id,
                    a.attempt,
                    iso(a.start),
                    iso(a.end),
                    a.status,
                    a.error_type,
                    a.records,
                ]
                for r in result.runs
                for a in r.attempts
            ),
        ),
        f"{base}/truth/feed_outages.csv": _csv(["feed", "start", "end", "minutes"], feed_outages(feeds, tl)),
    }
    if ont is not None:
        minutes, hours = feed_truth(ont, feeds, tl)
        files[f"{base}/truth/feed_minutes.csv"] = _csv(["feed", "minute", "up", "staleness_s", "stale"], minutes)
        files[f"{base}/truth/feed_hours.csv"] = _csv(
            ["feed", "hour", "minutes", "minutes_up", "messages", "latency_ms_mean", "staleness_s_max", "stale_minutes"], hours
        )
    if cw is not None:
        files[f"{base}/truth/resource_hours.csv"] = _csv(
            ["resource", "metric", "hour", "max_avg", "mean_avg"], resource_truth(cw, tl)
        )
    if result.sdk_events:
        files[f"{base}/sdk_events.jsonl"] = b"".join(
            orjson.dumps({k: (iso(v) if isinstance(v, dt.datetime) else v) for k, v in e.items()}) + b"\n"
            for e in result.sdk_events
        )
    for k, v in files.items():
        archive.put(k, v)
    return list(files)
