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
import pyarrow.parquet as pq

from cms_dagster.domain import load_ontology
from cms_dagster.lake import Lake, Zone
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
        jsonl = root / "batch.jsonl"
        with jsonl.open("wb") as out:
            for key in res.raw_keys:
                out.write(gzip.decompress(lake.raw.get(key)))
        lines = jsonl.read_bytes().split(b"\n")
        print(
            f"input: {res.points:,} datapoints in {len(lines):,} OTLP/JSON lines, {jsonl.stat().st_size / 1e6:.0f} MB ({days} simulated days)"
        )

        t0 = time.perf_counter()
        flat = flatten_lines(
            lines,
            source="sdk",
            raw_key="bench",
            ingested_at=dt.datetime.now(dt.timezone.utc),
            day=dt.date(2026, 11, 16),
            hour=0,
        )
        t1 = time.perf_counter()
        pq.write_table(flat.table, root / "cms.parquet", compression="zstd")
        t2 = time.perf_counter()
        assert flat.points == res.points, (flat.points, res.points)
        cms_rate = flat.points / (t2 - t0)

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
