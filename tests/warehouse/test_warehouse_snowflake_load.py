"""Loading processed Parquet points into Snowflake (fakesnow, in process): PUT to the internal stage, COPY
INTO a transient staging table, QUALIFY to one row per point, MERGE on point id. Re-runs, duplicate
deliveries and out-of-order deliveries leave one row per point, the latest ingested."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakesnow
import pytest
import snowflake.connector
from warehouse_helpers import ScenarioLake, apply_fakesnow_subset

from cms_dagster.warehouse import snowflake_load as sl

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")



@pytest.fixture()
def conn() -> Iterator[Any]:
    with fakesnow.patch():
        c = snowflake.connector.connect(database="CMS", schema="RAW")
        apply_fakesnow_subset(c)
        yield c
        c.close()


def _hour_files(lake: ScenarioLake, day: str, hour: int) -> list[Path]:
    return sorted((lake.processed / f"points/dt={day}/hour={hour:02d}").glob("*.parquet"))


def _rows(conn: Any, sql: str) -> list[tuple]:
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall()


CPU_AT_MIDNIGHT = (
    "select value, raw_key from RAW.METRIC_POINTS where metric_name = 'amazonaws.com/AWS/RDS/CPUUtilization' "
    "and ts = '2026-11-16 00:01:00'"
)


def test_loading_a_partition_twice_changes_nothing(conn: Any, scenario_lake: ScenarioLake) -> None:
    files = _hour_files(scenario_lake, "2026-11-16", 3)
    first = sl.load_partition_snowflake(conn, files)
    assert first.files == len(files) and first.inserted == first.staged > 0
    before = sorted(_rows(conn, "select * from RAW.METRIC_POINTS"), key=repr)
    again = sl.load_partition_snowflake(conn, files)
    assert (again.inserted, again.replaced, again.unchanged) == (0, 0, first.inserted)
    assert sorted(_rows(conn, "select * from RAW.METRIC_POINTS"), key=repr) == before
    assert _rows(conn, "select count(*), count(distinct point_id) from RAW.METRIC_POINTS") == [(first.inserted, first.inserted)]


def test_a_duplicate_delivery_in_one_load_keeps_the_latest(conn: Any, scenario_lake: ScenarioLake) -> None:
    files = _hour_files(scenario_lake, "2026-11-16", 0)  # the hour's batches plus a later re-delivery of its CPU points
    rep = sl.load_partition_snowflake(conn, files)
    assert rep.staged - rep.inserted == 60  # one duplicate per CPU minute, removed by QUALIFY
    value, raw_key = _rows(conn, CPU_AT_MIDNIGHT)[0]
    assert value == pytest.approx(1020.0) and "redelivery" in raw_key
    assert _rows(conn, "select count(*) - count(distinct point_id) from RAW.METRIC_POINTS") == [(0,)]


def test_a_newer_delivery_replaces_and_an_older_one_does_not(conn: Any, scenario_lake: ScenarioLake) -> None:
    files = _hour_files(scenario_lake, "2026-11-16", 0)
    original = [f for f in files if "redelivery" not in f.name]
    redelivery = [f for f in files if "redelivery" in f.name]
    sl.load_partition_snowflake(conn, original)
    assert _rows(conn, CPU_AT_MIDNIGHT)[0][0] == pytest.approx(20.0)
    newer = sl.load_partition_snowflake(conn, redelivery)
    assert (newer.inserted, newer.replaced, newer.unchanged) == (0, 60, 0)
    assert _rows(conn, CPU_AT_MIDNIGHT)[0][0] == pytest.approx(1020.0)
    older = sl.load_partition_snowflake(conn, original)  # a retry of the original batch arrives last
    assert older.replaced == 0 and older.inserted == 0
    assert _rows(conn, CPU_AT_MIDNIGHT)[0][0] == pytest.approx(1020.0)


def test_load_hours_reads_the_processed_zone_hour_by_hour(conn: Any, scenario_lake: ScenarioLake) -> None:
    lines: list[str] = []
    hours = [(dt.date(2026, 11, 16), 13), (dt.date(2026, 11, 16), 14)]
    total = sl.load_hours_snowflake(scenario_lake.zone, hours, conn=conn, log=lines.append)
    expected = sum(len(_hour_files(scenario_lake, "2026-11-16", h)) for _, h in hours)
    assert total.files == expected and total.inserted == total.total_rows > 0
    assert len(lines) == 2 and lines[0].startswith("2026-11-16 13:00")
    started = _rows(conn, "select count(*) from RAW.METRIC_POINTS where metric_name = 'cms.batch.run.started'")
    assert started == [(1,)]  # equities.intraday_risk at 13:00


def test_loader_refuses_ambiguous_or_missing_input(conn: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        sl.load_partition_snowflake(conn)
    with pytest.raises(ValueError, match="exactly one"):
        sl.load_partition_snowflake(conn, [tmp_path / "a.parquet"], stage_path="@RAW.PROCESSED_ZONE_STAGE/points/")
    with pytest.raises(FileNotFoundError, match="do not exist"):
        sl.load_partition_snowflake(conn, [tmp_path / "missing.parquet"])


def test_the_external_stage_path_is_a_copy_with_merge(scenario_lake: ScenarioLake) -> None:
    """fakesnow cannot read S3, so the production statements are checked as text and parsed."""
    import sqlglot
    from sqlglot import exp

    merge = sqlglot.parse_one(sl.merge_sql("RAW.METRIC_POINTS_LOAD_X"), read="snowflake")
    assert isinstance(merge, exp.Merge)
    using = merge.args["using"]
    assert "ROW_NUMBER() OVER (PARTITION BY \"POINT_ID\" ORDER BY \"INGESTED_AT\" DESC, \"RAW_KEY\" DESC)" in using.sql("snowflake")
    whens = merge.args["whens"].expressions
    assert [w.args.get("matched") for w in whens] == [True, False]
    assert "INGESTED_AT" in whens[0].args["condition"].sql("snowflake")
