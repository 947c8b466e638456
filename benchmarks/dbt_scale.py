"""How the dbt build scales: a full build of 30 days against adding one more hour incrementally.

Builds 30 days of the default estate scaled to at least 1,000 CloudWatch series (the estate's resources
replicated: orders-db, orders-db-r01, ...), with the simulator's feeds and batch runs, straight into
DuckDB's raw.metric_points (columns of docs/data-contract.md; point ids are deterministic md5s of series
and time rather than the SHA-256 rule, which does not matter to dbt). Then, in process with dbt's
dbtRunner and a manifest parsed once:

  * the fixed per-invocation overhead: an invocation that selects nothing, and the same `dbt build` as
    the incremental hour run with --empty (every node and test, zero rows: what the project costs
    before any data),
  * the full build (seeds, models, data tests; unit tests excluded, as in the Dagster runs),
  * one more hour loaded, then `dbt build --vars {window_start, window_end}` for that hour, as the
    Dagster partition run does.

Aim: the incremental hour, less the --empty overhead, at most 5 % of the full build.

    .venv/bin/python benchmarks/dbt_scale.py [--days 30] [--replicas 9] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from cms_dagster.domain import load_ontology
from cms_dagster.domain.model import Ontology
from cms_dagster.otel.conventions import CLOUDWATCH_METRICS, CONFIG_METRICS
from cms_dagster.simulate.engine import Timeline, simulate_feeds, simulate_runs
from cms_dagster.simulate.run import build_incidents, events_to_metrics, run_events
from cms_dagster.warehouse import dbt as warehouse_dbt

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 16, tzinfo=UTC)
ACCOUNT = "123456789012"
REGION = "us-east-1"
CW_RESOURCE = orjson.dumps({"cloud.account.id": ACCOUNT, "cloud.provider": "aws", "cloud.region": REGION}, option=orjson.OPT_SORT_KEYS).decode()
RAW_DDL = """
create schema if not exists raw;
create table raw.metric_points (
  point_id varchar, metric_name varchar, metric_kind varchar, unit varchar, ts timestamp, start_ts timestamp,
  value double, sum double, count double, min double, max double, p99 double, entity_id varchar,
  service_name varchar, environment varchar, account_id varchar, region varchar, asset_class varchar,
  job varchar, run_id varchar, stage varchar, feed varchar, status varchar, attributes varchar,
  resource_attributes varchar, source varchar, raw_key varchar, ingested_at timestamp, dt date, hour integer
);
"""
COLUMNS = [
    "point_id", "metric_name", "metric_kind", "unit", "ts", "start_ts", "value", "sum", "count", "min", "max", "p99",
    "entity_id", "service_name", "environment", "account_id", "region", "asset_class", "job", "run_id", "stage", "feed",
    "status", "attributes", "resource_attributes", "source", "raw_key", "ingested_at", "dt", "hour",
]


SCHEMA = pa.schema(
    [
        (c, pa.timestamp("us") if c in ("ts", "start_ts", "ingested_at") else pa.date32() if c == "dt"
         else pa.int32() if c == "hour" else pa.float64() if c in ("value", "sum", "count", "min", "max", "p99") else pa.string())
        for c in COLUMNS
    ]
)


def _pid(*parts: object) -> str:
    return hashlib.md5("|".join(map(str, parts)).encode()).hexdigest()


def _canon(obj: dict) -> str:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def infra_series(ont: Ontology, replicas: int) -> pa.Table:
    """One row per CloudWatch series: the estate's resources, each replicated ``replicas`` more times."""
    by_dims: dict[tuple[str, ...], list] = {}
    for m in CLOUDWATCH_METRICS:
        by_dims.setdefault(m.dimensions, []).append(m)
    rows: list[dict] = []

    def add(entity: str, dims: dict[str, str], metrics: list, base: float) -> None:
        for k, m in enumerate(metrics):
            rows.append({
                "entity_id": entity,
                "metric_name": m.otel_name,
                "unit": m.unit,
                "attributes": _canon({"Dimensions": dims, "MetricName": m.metric, "Namespace": m.namespace}),
                "has_p99": m.p99,
                "base": base * (1 + k % 5),
                "series_no": len(rows),
            })

    for r in range(replicas + 1):
        suffix = f"-r{r:02d}" if r else ""
        for res in ont.resources.values():
            name = f"{res.name}{suffix}"
            if res.kind == "rds":
                add(f"rds:{name}", {"DBInstanceIdentifier": name}, by_dims[("DBInstanceIdentifier",)], 20.0)
            elif res.kind == "sqs":
                add(f"sqs:{name}", {"QueueName": name}, by_dims[("QueueName",)], 15.0)
            elif res.kind == "lambda":
                add(f"lambda:{name}", {"FunctionName": name}, by_dims[("FunctionName",)], 40.0)
            elif res.kind == "eks_cluster":
                add(f"eks:{name}", {"ClusterName": name}, by_dims[("ClusterName",)], 30.0)
            elif res.kind == "eks_namespace":
                cluster = f"{res.cluster}{suffix}"
                dims = {"ClusterName": cluster, "Namespace": res.name}
                add(f"eks:{cluster}/{res.name}", dims, by_dims[("ClusterName", "Namespace")], 35.0)
                add(f"eks:{cluster}/{res.name}", {**dims, "Service": res.name}, by_dims[("ClusterName", "Namespace", "Service")], 10.0)
    return pa.Table.from_pylist(rows)


def config_series(ont: Ontology, replicas: int) -> pa.Table:
    kinds = {("DBInstanceIdentifier",): "rds", ("QueueName",): "sqs", ("FunctionName",): "lambda"}
    rows = []
    for r in range(replicas + 1):
        suffix = f"-r{r:02d}" if r else ""
        for res in ont.resources.values():
            for m in CONFIG_METRICS:
                if kinds.get(m.dimensions) != res.kind:
                    continue
                name = f"{res.name}{suffix}"
                dims = {m.dimensions[0]: name}
                value = float(res.attrs.get("max_connections") or res.attrs.get("memory_mb") or 30)
                rows.append({"entity_id": f"{res.kind}:{name}", "metric_name": m.otel_name, "unit": m.unit,
                             "attributes": _canon({"Dimensions": dims, "MetricName": m.metric, "Namespace": m.namespace}),
                             "value": value})
    return pa.Table.from_pylist(rows)


def insert_infra(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime) -> None:
    """CloudWatch summaries of every series, minute by minute, for [start, end)."""
    con.execute(
        f"""
        insert into raw.metric_points
        select
            substr(md5(s.entity_id || '|' || s.attributes || '|' || cast(m.t as varchar)), 1, 32),
            s.metric_name, 'summary', s.unit,
            m.t + interval 60 second, m.t,
            v.value, v.value, 1.0, v.value * 0.9, v.value * 1.1, case when s.has_p99 then v.value * 1.6 end,
            s.entity_id, null, null, '{ACCOUNT}', '{REGION}', null, null, null, null, null, null,
            s.attributes, '{CW_RESOURCE}', 'cloudwatch',
            'otel/metrics/source=cloudwatch/dt=' || strftime(m.t, '%Y-%m-%d') || '/hour=' || strftime(m.t, '%H')
                || '/' || strftime(m.t + interval 1 hour, '%Y%m%dT%H0000Z') || '-cw-bench.jsonl.gz',
            date_trunc('hour', m.t) + interval 1 hour, cast(m.t as date), hour(m.t)
        from (select unnest(range(timestamp '{start:%Y-%m-%d %H:%M:%S}', timestamp '{end:%Y-%m-%d %H:%M:%S}', interval 1 minute)) as t) m
        cross join series s
        cross join lateral (
            select round(s.base * (1 + 0.3 * sin(2 * pi() * (hour(m.t) * 60 + minute(m.t)) / 1440.0))
                         + (hash(s.series_no, m.t) % 1000) / 200.0, 3) as value
        ) v
        order by m.t
        """
    )
    con.execute(
        f"""
        insert into raw.metric_points
        select
            substr(md5(c.entity_id || '|' || c.attributes || '|' || cast(h.t as varchar)), 1, 32),
            c.metric_name, 'summary', c.unit, h.t + interval 60 second, h.t,
            c.value, c.value, 1.0, c.value, c.value, null,
            c.entity_id, null, null, '{ACCOUNT}', '{REGION}', null, null, null, null, null, null,
            c.attributes, '{CW_RESOURCE}', 'cloudwatch',
            'otel/metrics/source=cloudwatch/dt=' || strftime(h.t, '%Y-%m-%d') || '/hour=' || strftime(h.t, '%H') || '/bench.jsonl.gz',
            h.t + interval 1 hour, cast(h.t as date), hour(h.t)
        from (select unnest(range(timestamp '{start:%Y-%m-%d %H:%M:%S}', timestamp '{end:%Y-%m-%d %H:%M:%S}', interval 1 hour)) as t) h
        cross join config c
        """
    )


FEED_MEASURES = [("up", "gauge", "1"), ("latency_ms", "gauge", "ms"), ("staleness_s", "gauge", "s"),
                 ("messages", "sum", "{message}"), ("missing_fields", "sum", "{field}"), ("invalid_values", "sum", "{value}")]
FEED_METRIC = {"up": "cms.feed.up", "latency_ms": "cms.feed.latency", "staleness_s": "cms.feed.staleness",
               "messages": "cms.feed.messages", "missing_fields": "cms.feed.missing_fields", "invalid_values": "cms.feed.invalid_values"}


def feed_rows(ont: Ontology, feeds: dict, tl: Timeline, lo: int, hi: int) -> pa.Table:
    """Feed heartbeats of minutes [lo, hi) of the timeline, from the simulator's feed series."""
    t0 = np.datetime64(tl.start.replace(tzinfo=None), "us")
    minutes = t0 + np.arange(lo, hi).astype("timedelta64[m]")
    ends = minutes + np.timedelta64(1, "m")
    n = hi - lo
    parts = []
    for fid, fs in feeds.items():
        attrs = _canon({"cms.feed": fid, "cms.provider": ont.feeds[fid].provider})
        res = _canon({"cms.environment": "demo", "service.name": f"md-{fid}"})
        for attr, kind, unit in FEED_MEASURES:
            name = FEED_METRIC[attr]

            def const(v: object, typ: pa.DataType) -> pa.Array:
                return pa.array([v] * n, typ)

            cols = {
                "point_id": pa.array([_pid(fid, name, i) for i in range(lo, hi)], pa.string()),
                "metric_name": const(name, pa.string()),
                "metric_kind": const(kind, pa.string()),
                "unit": const(unit, pa.string()),
                "ts": pa.array(ends, pa.timestamp("us")),
                "start_ts": pa.array(minutes, pa.timestamp("us")) if kind == "sum" else const(None, pa.timestamp("us")),
                "value": pa.array(np.asarray(getattr(fs, attr), float)[lo:hi], pa.float64()),
                "entity_id": const(f"feed:{fid}", pa.string()),
                "service_name": const(f"md-{fid}", pa.string()),
                "environment": const("demo", pa.string()),
                "feed": const(fid, pa.string()),
                "attributes": const(attrs, pa.string()),
                "resource_attributes": const(res, pa.string()),
                "source": const("sdk", pa.string()),
                "raw_key": const("otel/metrics/source=sdk/bench.jsonl.gz", pa.string()),
                "ingested_at": pa.array(ends + np.timedelta64(60, "m"), pa.timestamp("us")),
                "dt": pa.array(minutes.astype("datetime64[D]"), pa.date32()),
                "hour": pa.array(minutes.astype("datetime64[h]").astype(np.int64) % 24, pa.int32()),
            }
            parts.append(pa.table([cols.get(f.name, pa.nulls(n, f.type)) for f in SCHEMA], schema=SCHEMA))
    return pa.concat_tables(parts)


def batch_rows(runs: list, start: dt.datetime, end: dt.datetime) -> pa.Table:
    """Batch and stage points (as the SDK emits them) with times in [start, end)."""
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    for run in runs:
        for t, name, kind, unit, attrs, t_ns, value, start_ns in events_to_metrics(run_events(run)):
            if not (start <= t < end):
                continue
            a = _canon({k: v for k, v in attrs.items()})
            row = {c: None for c in COLUMNS}
            row.update(
                point_id=_pid(name, a, t_ns), metric_name=name, metric_kind=kind, unit=unit,
                ts=t.replace(tzinfo=None),
                start_ts=dt.datetime.fromtimestamp(start_ns / 1e9, UTC).replace(tzinfo=None) if start_ns else None,
                value=float(value), service_name=f"batch-{run.job.asset_class}", environment="demo",
                asset_class=attrs["cms.asset_class"], job=attrs["cms.job"], run_id=attrs["cms.run_id"],
                stage=attrs.get("cms.stage"), status=attrs.get("cms.status"), attributes=a,
                resource_attributes=_canon({"cms.environment": "demo", "service.name": f"batch-{run.job.asset_class}"}),
                source="sdk", raw_key="otel/metrics/source=sdk/bench.jsonl.gz", ingested_at=t.replace(tzinfo=None, minute=0, second=0, microsecond=0) + dt.timedelta(hours=1),
                dt=t.date(), hour=t.hour, entity_id=f"stage:{attrs['cms.asset_class']}.{attrs['cms.job']}.{attrs['cms.stage']}" if "cms.stage" in attrs else f"job:{attrs['cms.asset_class']}.{attrs['cms.job']}",
            )
            for c in COLUMNS:
                cols[c].append(row[c])
    return pa.table({c: cols[c] for c in COLUMNS}, schema=SCHEMA)


class Estate:
    def __init__(self, ont: Ontology, days: int, seed: int = 42) -> None:
        self.ont = ont
        self.tl = Timeline(START, days + 1)
        incidents = build_incidents(ont, START, None, True)
        self.feeds = simulate_feeds(ont, self.tl, incidents, seed)
        self.runs = simulate_runs(ont, self.tl, self.feeds, incidents, seed)

    def load(self, con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime) -> None:
        """Everything with a time in [start, end), in time order (as the hourly loader would)."""
        lo, hi = self.tl.index(start), self.tl.index(end)
        insert_infra(con, start, end)
        con.register("feeds", feed_rows(self.ont, self.feeds, self.tl, lo, hi))
        con.execute("insert into raw.metric_points select * from feeds")
        con.register("batch", batch_rows(self.runs, start, end))
        con.execute("insert into raw.metric_points select * from batch")


def _invoke(runner, args: list[str]) -> tuple[float, object]:
    t = time.perf_counter()
    res = runner.invoke(args)
    elapsed = time.perf_counter() - t
    if not res.success:
        failed = [f"{r.node.unique_id}: {r.status} {r.message}" for r in (res.result or [])
                  if str(r.status) not in ("success", "pass", "RunStatus.Success", "TestStatus.Pass")] if res.result else [str(res.exception)]
        sys.exit(f"dbt {' '.join(args)} failed:\n" + "\n".join(failed[:20]))
    return elapsed, res.result


def _slowest(result, n: int = 6) -> str:
    rows = sorted(((r.execution_time, r.node.name) for r in result), reverse=True)[:n]
    return ", ".join(f"{name} {secs:.2f}s" for secs, name in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=30, help="days in the full build (default 30)")
    ap.add_argument("--replicas", type=int, default=9, help="extra copies of each resource (default 9: 1,071 series)")
    ap.add_argument("--keep", help="keep the DuckDB file and dbt target in this folder")
    args = ap.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cms-dbt-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "warehouse.duckdb"
    db.unlink(missing_ok=True)
    ont = load_ontology()
    series = infra_series(ont, args.replicas)
    config = config_series(ont, args.replicas)
    n_series = len({(r["entity_id"], r["metric_name"], r["attributes"]) for r in series.to_pylist()})
    n_entity_metrics = len({(r["entity_id"], r["metric_name"]) for r in series.to_pylist()})
    estate = Estate(ont, args.days)
    end = START + dt.timedelta(days=args.days)

    t = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(RAW_DDL)
    con.register("series", series)
    con.register("config", config)
    for d in range(args.days):
        day = START + dt.timedelta(days=d)
        estate.load(con, day, day + dt.timedelta(days=1))
    rows = con.execute("select count(*) from raw.metric_points").fetchone()[0]
    con.close()
    print(f"data: {args.days} days, {n_series:,} CloudWatch series ({n_entity_metrics:,} resource x metric), "
          f"{len(estate.runs):,} batch runs, {rows:,} points in raw.metric_points ({time.perf_counter() - t:.0f} s to generate)")

    os.environ.update(DO_NOT_TRACK="1", DBT_TARGET="duckdb", CMS_DUCKDB_PATH=str(db),
                      DBT_TARGET_PATH=str(work / "target"), DBT_LOG_PATH=str(work / "logs"))
    project = str(warehouse_dbt.dbt_project_dir())
    from dbt.cli.main import dbtRunner

    common = ["--project-dir", project, "--profiles-dir", project, "--quiet"]
    t = time.perf_counter()
    parsed = dbtRunner().invoke(["parse", *common])
    if not parsed.success:
        sys.exit(f"dbt parse failed: {parsed.exception}")
    runner = dbtRunner(manifest=parsed.result)
    print(f"manifest parsed in {time.perf_counter() - t:.1f} s (not counted below)")

    no_unit = ["--exclude-resource-type", "unit_test"]
    nothing, _ = _invoke(runner, ["run", "--select", "tag:no_such_tag", *common])
    full, full_result = _invoke(runner, ["build", *no_unit, *common])
    print(f"full build:        {full:8.2f} s  ({len(full_result)} nodes; slowest: {_slowest(full_result)})")

    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    con.register("series", series)
    con.register("config", config)
    estate.load(con, end, end + dt.timedelta(hours=1))
    con.close()
    window = {"window_start": f"{end:%Y-%m-%dT%H:%M:%S}", "window_end": f"{end + dt.timedelta(hours=1):%Y-%m-%dT%H:%M:%S}"}
    hour, hour_result = _invoke(runner, ["build", *no_unit, "--vars", json.dumps(window), *common])
    empty, _ = _invoke(runner, ["build", *no_unit, "--empty", "--vars", json.dumps(window), *common])
    print(f"incremental hour:  {hour:8.2f} s  (window {window['window_start']} .. {window['window_end']}; slowest: {_slowest(hour_result)})")
    print(f"fixed overhead:    {nothing:8.2f} s  per invocation (dbt run selecting nothing)")
    print(f"                   {empty:8.2f} s  per build of this project with no rows (dbt build --empty: every node and test)")
    share = (hour - empty) / full * 100
    print(f"incremental hour less the --empty overhead: {hour - empty:.2f} s = {share:.1f} % of the full build "
          f"(aim: <= 5 %); {hour / full * 100:.1f} % with the overhead")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
