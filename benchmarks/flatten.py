"""Flattening throughput: OTLP/JSON lines → Parquet points, beside DuckDB's own read_json of the same file.

Simulates enough days of the default estate to pass --min-points datapoints (default 1,000,000), writes
them as one plain JSON-lines file, then times
  1. CMS: cms_dagster.otel.flatten.flatten_lines + Parquet write (the processed zone's path), and
  2. DuckDB: read_json of the same file, unnesting every data point to one row, written to Parquet,
and prints datapoints/s for each and their ratio (aim: CMS at least half of DuckDB's rate).

    .venv/bin/python benchmarks/flatten.py [--min-points N] [--threads T]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cms_dagster.domain import load_ontology
from cms_dagster.lake import Lake, Zone
from cms_dagster.lake.layout import parse_raw_key
from cms_dagster.otel.flatten import flatten_lines
from cms_dagster.simulate.run import simulate

DUCKDB_SQL = """
COPY (
  WITH req AS (
    SELECT unnest(resourceMetrics) AS rm FROM read_json(?, format='newline_delimited', maximum_object_size=1073741824, sample_size=-1)
  ), sm AS (SELECT rm.resource AS res, unnest(rm.scopeMetrics) AS sm FROM req),
  m AS (SELECT res, unnest(sm.metrics) AS m FROM sm),
  p AS (
    SELECT res, m.name AS name, m.unit AS unit, unnest(m.summary.dataPoints) AS p FROM m WHERE m.summary IS NOT NULL
    UNION ALL BY NAME
    SELECT res, m.name AS name, m.unit AS unit, unnest(m.gauge.dataPoints) AS g FROM m WHERE m.gauge IS NOT NULL
    UNION ALL BY NAME
    SELECT res, m.name AS name, m.unit AS unit, unnest(m.sum.dataPoints) AS s FROM m WHERE m.sum IS NOT NULL
  )
  SELECT name, unit, to_json(res) AS resource, to_json(coalesce(p.attributes, g.attributes, s.attributes)) AS attributes,
         coalesce(p.timeUnixNano, g.timeUnixNano, s.timeUnixNano) AS t, p.sum AS sum, p.count AS count,
         coalesce(g.asDouble, g.asInt::DOUBLE, s.asInt::DOUBLE) AS value
  FROM p
) TO ? (FORMAT parquet)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min-points", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0 = DuckDB's default: all cores)")
    args = ap.parse_args()
    ont = load_ontology()
    with tempfile.TemporaryDirectory(prefix="cms-bench-") as tmp:
        root = Path(tmp)
        lake = Lake(Zone(str(root / "raw")), Zone(str(root / "processed")), Zone(str(root / "archive")))
        days = 1
        while True:
            res = simulate(ont, lake, days=days, seed=7)
            if res.points >= args.min_points:
                break
            days += 1
        # One file for DuckDB; for CMS the same lines grouped by the source their raw key names, since the
        # contract ties some namespaces to a source (AWS/* points come only from cloudwatch or metric-stream).
        jsonl = root / "batch.jsonl"
        by_source: dict[str, list[bytes]] = {}
        with jsonl.open("wb") as out:
            for key in res.raw_keys:
                body = gzip.decompress(lake.raw.get(key))
                out.write(body)
                by_source.setdefault(parse_raw_key(key)["source"], []).extend(body.split(b"\n"))
        n_lines = sum(len(lines) for lines in by_source.values())
        print(
            f"input: {res.points:,} datapoints in {n_lines:,} OTLP/JSON lines, {jsonl.stat().st_size / 1e6:.0f} MB ({days} simulated days; "
            + ", ".join(f"{s} {len(lines):,} lines" for s, lines in sorted(by_source.items()))
            + ")"
        )

        t0 = time.perf_counter()
        flats = [
            flatten_lines(
                lines,
                source=source,
                raw_key="bench",
                ingested_at=dt.datetime.now(dt.timezone.utc),
                day=dt.date(2026, 11, 16),
                hour=0,
            )
            for source, lines in by_source.items()
        ]
        table = pa.concat_tables([f.table for f in flats])
        t1 = time.perf_counter()
        pq.write_table(table, root / "cms.parquet", compression="zstd")
        t2 = time.perf_counter()
        points = sum(f.points for f in flats)
        assert points == res.points, (points, res.points)
        cms_rate = points / (t2 - t0)

        con = duckdb.connect()
        if args.threads:
            con.execute(f"SET threads={args.threads}")
        t3 = time.perf_counter()
        con.execute(DUCKDB_SQL, [str(jsonl), str(root / "duckdb.parquet")])
        t4 = time.perf_counter()
        n_duck = con.execute(
            "SELECT count(*) FROM read_parquet(?)", [str(root / "duckdb.parquet")]
        ).fetchone()[0]
        assert n_duck == res.points, (n_duck, res.points)
        duck_rate = n_duck / (t4 - t3)
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]

        print(
            f"CMS flatten -> Parquet : {cms_rate:>12,.0f} datapoints/s  ({t1 - t0:.2f} s flatten + {t2 - t1:.2f} s Parquet; 1 thread; ids, entity ids, validation)"
        )
        print(
            f"DuckDB read_json       : {duck_rate:>12,.0f} datapoints/s  ({t4 - t3:.2f} s; {threads} threads; unnest only, no ids)"
        )
        print(f"ratio CMS / DuckDB     : {cms_rate / duck_rate:.2f}  (aim: >= 0.50)")


if __name__ == "__main__":
    main()
