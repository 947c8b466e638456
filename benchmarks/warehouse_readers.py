"""Readers of the embedded warehouse while another process holds DuckDB's write lock.

Builds a DuckDB file of ROWS points (the shape of raw.metric_points, narrowed), publishes the readers'
snapshot (cms_dagster/warehouse/snapshot.py) and prints what that costs, then starts a writer in another
process that holds the write lock (an open transaction) for HOLD_S seconds while this process answers
QUERIES queries through Warehouse(settings).query, and prints their latencies. A plain read-only open of
the live file is tried too, to show the lock is really held.

    .venv/bin/python benchmarks/warehouse_readers.py [ROWS] [HOLD_S] [QUERIES]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from cms_dagster import settings
from cms_dagster.warehouse import snapshot
from cms_dagster.warehouse.client import Warehouse

WRITER = """
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1])
con.execute("begin transaction")
con.execute("insert into marts.points select now()::timestamp, 'late', 1.0 from range(1000)")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("rollback")
con.close()
"""


def main(rows: int = 5_000_000, hold_s: float = 60.0, queries: int = 50) -> None:
    with tempfile.TemporaryDirectory(prefix="cms-readers-") as tmp:
        home = Path(tmp)
        db = home / "warehouse.duckdb"
        print(f"building {rows:,} rows in {db} ...", flush=True)
        con = duckdb.connect(str(db))
        con.execute("create schema marts")
        con.execute(
            "create table marts.points as select timestamp '2026-11-16' + to_minutes(i % 43200) as ts, "
            "'series-' || (i % 1000) as series, random() * 100 as value from range(?) t(i)",
            [rows],
        )
        t = time.perf_counter()
        snapshot.publish(con, db)
        publish_s = time.perf_counter() - t
        con.close()
        size_mb = db.stat().st_size / 1e6
        print(f"publish (checkpoint + copy + rename) of a {size_mb:,.0f} MB file: {publish_s:.2f} s", flush=True)

        wh = Warehouse(settings.load({"CMS_HOME": str(home)}))
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(hold_s)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "holding"
        try:
            duckdb.connect(str(db), read_only=True).close()
            print("live file: opened read-only (the writer holds no lock?)")
        except duckdb.IOException as e:
            print(f"live file, read-only: {str(e).splitlines()[0][:90]}")
        sql = "select series, avg(value) as v, count(*) as n from marts.points where ts >= ? group by series order by v desc limit 10"
        times = []
        for _ in range(queries):
            t = time.perf_counter()
            df = wh.query(sql, ["2026-11-30"])
            times.append(time.perf_counter() - t)
            assert len(df) == 10
        held = writer.poll() is None
        writer.wait()
        times.sort()
        print(
            f"{queries} queries while the writer held the lock ({'still held' if held else 'released before the end'}): "
            f"median {statistics.median(times) * 1000:.0f} ms, p95 {times[int(0.95 * (len(times) - 1))] * 1000:.0f} ms, "
            f"max {times[-1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 5_000_000, float(args[1]) if len(args) > 1 else 60.0, int(args[2]) if len(args) > 2 else 50)
