"""Load processed Parquet points into DuckDB's ``raw.metric_points``, idempotently by ``point_id``.

For each hour: stage the hour's Parquet files, keep one row per point id (latest ``ingested_at``, then
latest ``raw_key``), replace the target rows that the staged ones supersede, insert the new ones. A re-run,
a retry or a duplicate delivery therefore changes nothing; a newer delivery of a point replaces the older.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from cms_dagster import lake as lake_mod
from cms_dagster.otel.schema import sql_columns
from cms_dagster.warehouse.loading import LoadReport, processed_keys_for_hour

TABLE = "raw.metric_points"


def ddl() -> str:
    cols = ",\n  ".join(
        f"{name} {typ}{' PRIMARY KEY' if name == 'point_id' else ''}" for name, typ in sql_columns()
    )
    return f"CREATE SCHEMA IF NOT EXISTS raw;\nCREATE TABLE IF NOT EXISTS {TABLE} (\n  {cols}\n);"


def connect(path: Path, retries: int = 30, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting for another process's write lock to go (see ../shared/FACTS.md)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for i in range(retries):
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET TimeZone='UTC'")
            return con
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or i == retries - 1:
                raise
            time.sleep(min(2.0, 0.1 * (i + 1)))
    raise RuntimeError("unreachable")


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(ddl())


@contextmanager
def _local_files(zone: lake_mod.Zone, keys: list[str]) -> Iterator[list[str]]:
    if not zone.is_s3:
        yield [str(zone.path(k)) for k in keys]
        return
    with tempfile.TemporaryDirectory(prefix="cms-load-") as tmp:
        paths = []
        for i, k in enumerate(keys):
            p = Path(tmp) / f"{i:05d}.parquet"
            p.write_bytes(zone.get(k))
            paths.append(str(p))
        yield paths


def load_keys(con: duckdb.DuckDBPyConnection, zone: lake_mod.Zone, keys: list[str]) -> LoadReport:
    rep = LoadReport(files=len(keys))
    ensure_table(con)
    if not keys:
        rep.total_rows = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
        return rep
    cols = ", ".join(n for n, _ in sql_columns())
    with _local_files(zone, keys) as paths:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE staged AS
                SELECT {cols} FROM read_parquet(?, union_by_name = true)
                QUALIFY row_number() OVER (PARTITION BY point_id ORDER BY ingested_at DESC, raw_key DESC) = 1""",
                [paths],
            )
            rep.staged = con.execute("SELECT count(*) FROM staged").fetchone()[0]
            # rows whose existing copy is at least as new stay as they are
            con.execute(
                f"""DELETE FROM staged s USING {TABLE} t
                WHERE t.point_id = s.point_id AND (t.ingested_at, t.raw_key) >= (s.ingested_at, s.raw_key)"""
            )
            fresh = con.execute("SELECT count(*) FROM staged").fetchone()[0]
            rep.unchanged = rep.staged - fresh
            rep.replaced = con.execute(
                f"DELETE FROM {TABLE} t USING staged s WHERE t.point_id = s.point_id"
            ).fetchone()[0]
            con.execute(f"INSERT INTO {TABLE} ({cols}) SELECT {cols} FROM staged")
            rep.inserted = fresh - rep.replaced
            con.execute("DROP TABLE staged")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    rep.total_rows = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    return rep


def load_hour(con: duckdb.DuckDBPyConnection, zone: lake_mod.Zone, day: dt.date, hour: int) -> LoadReport:
    return load_keys(con, zone, processed_keys_for_hour(zone, day, hour))


def load_hours(path: Path, zone: lake_mod.Zone, hours: Iterable[tuple[dt.date, int]]) -> LoadReport:
    """Load the processed points of ``hours`` into the DuckDB file at ``path`` in one pass: every file of
    every hour staged together, one transaction (a back-fill of many hours is one load, not one per hour).
    The result is the same as hour by hour: per point id the latest delivery wins, whichever hour holds it.
    Ends by publishing the readers' snapshot (cms_dagster/warehouse/snapshot.py), so the dashboard, `cms ask`
    and the sensors see the new points without waiting for this or a later writer's lock."""
    from cms_dagster.warehouse import snapshot

    keys = [k for day, hour in hours for k in processed_keys_for_hour(zone, day, hour)]
    con = connect(path)
    try:
        report = load_keys(con, zone, keys)
        snapshot.publish(con, path)
        return report
    finally:
        con.close()

