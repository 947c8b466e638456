"""The first chain: raw zone → processed Parquet points → raw.metric_points, on the embedded default."""

import datetime as dt
import gzip
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import pytest

from cms_dagster.defs.collection.raw_zone import raw_otel_metrics
from cms_dagster.defs.collection.simulation import simulation
from cms_dagster.defs.warehouse.points import metric_points, processed_points
from cms_dagster.lake import Lake, gzip_bytes, raw_key
from cms_dagster.otel import otlp
from cms_dagster.resources import build_resources
from cms_dagster.settings import load as load_settings

ASSETS = [simulation, raw_otel_metrics, processed_points, metric_points]
RANGE = {
    "dagster/asset_partition_range_start": "2026-11-16-20:00",
    "dagster/asset_partition_range_end": "2026-11-16-22:00",
}
HOURLY = [raw_otel_metrics, processed_points, metric_points]


def _materialize(selection, tags=None, run_config=None, partition_key=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        resources=build_resources(),
        selection=selection,
        tags=tags,
        run_config=run_config,
        partition_key=partition_key,
        instance=dg.DagsterInstance.ephemeral(),
    )


def _rows(cms_home: Path) -> list[tuple]:
    con = duckdb.connect(str(cms_home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT point_id, value, ingested_at, raw_key FROM raw.metric_points ORDER BY point_id"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture
def simulated(cms_home: Path) -> Path:
    res = _materialize(
        [simulation], run_config={"ops": {"raw__simulation": {"config": {"days": 1, "seed": 11}}}}
    )
    assert res.success
    return cms_home


def _meta(res: dg.ExecuteInProcessResult, key: list[str]) -> dict:
    mats = res.asset_materializations_for_node("__".join(key))
    return {k: v.value for k, v in mats[-1].metadata.items()}


@pytest.mark.slow
def test_chain_materializes_a_range_in_one_run_and_loads_every_point_once(simulated: Path) -> None:
    res = _materialize(HOURLY, tags=RANGE)
    assert res.success
    # the three hours are one run (a single-run back-fill) that records a materialization per partition
    mats = res.asset_materializations_for_node("processed__points")
    assert sorted(m.partition for m in mats) == ["2026-11-16-20:00", "2026-11-16-21:00", "2026-11-16-22:00"]
    assert len({res.run_id}) == 1
    flat = _meta(res, ["processed", "points"])
    loaded = _meta(res, ["warehouse", "metric_points"])
    assert flat["raw_files"] == 6 and flat["points"] > 20_000 and flat["quarantined_files"] == 0
    assert loaded["inserted"] == flat["points"] == loaded["table_rows"]
    rows = _rows(simulated)
    assert len(rows) == len({r[0] for r in rows}) == flat["points"]
    # processed zone: one Parquet file per raw batch, under the hour's key
    parquet = sorted((simulated / "lake" / "processed" / "points").rglob("*.parquet"))
    assert [p.parent.name for p in parquet] == [
        "hour=20",
        "hour=20",
        "hour=21",
        "hour=21",
        "hour=22",
        "hour=22",
    ]


@pytest.mark.slow
def test_rerunning_a_partition_leaves_the_warehouse_unchanged(simulated: Path) -> None:
    assert _materialize(HOURLY, tags=RANGE).success
    before = _rows(simulated)
    res = _materialize(HOURLY, partition_key="2026-11-16-21:00")
    assert res.success
    meta = _meta(res, ["warehouse", "metric_points"])
    assert meta["inserted"] == 0 and meta["replaced"] == 0 and meta["unchanged"] > 0
    assert _rows(simulated) == before


@pytest.mark.slow
def test_duplicate_delivery_is_one_row_and_the_latest_value_wins(cms_home: Path) -> None:
    lake = Lake.from_settings(load_settings())
    hour = dt.datetime(2026, 11, 16, 9, tzinfo=dt.timezone.utc)
    t = int(hour.timestamp() * 1e9) + 30 * 10**9

    def deliver(batch: str, value: float) -> None:
        req = otlp.request(
            {"service.name": "pricing", "cms.environment": "demo"},
            [otlp.gauge("cms.app.queue_depth", "1", [otlp.number_point({}, t, value)])],
        )
        lake.raw.put(raw_key("sdk", hour, batch), gzip_bytes(orjson.dumps(req) + b"\n"))

    deliver("20261116T091000Z-ingest-a-1", 5.0)
    assert _materialize(HOURLY, partition_key="2026-11-16-09:00").success
    deliver("20261116T091000Z-ingest-b-1", 5.0)  # a retry delivered the same point again
    deliver("20261116T095000Z-ingest-a-2", 7.0)  # a later correction of the same point
    assert _materialize(HOURLY, partition_key="2026-11-16-09:00").success
    rows = _rows(cms_home)
    assert len(rows) == 1 and rows[0][1] == 7.0


@pytest.mark.slow
def test_malformed_input_is_quarantined_with_its_reason_and_the_rest_loads(simulated: Path) -> None:
    lake = Lake.from_settings(load_settings())
    hour = dt.datetime(2026, 11, 16, 21, tzinfo=dt.timezone.utc)
    lake.raw.put(raw_key("sdk", hour, "20261116T215000Z-ingest-x-1"), b"this is not gzip")
    good = otlp.request(
        {"service.name": "pricing"},
        [otlp.gauge("cms.app.queue_depth", "1", [otlp.number_point({}, int(hour.timestamp() * 1e9), 1.0)])],
    )
    lake.raw.put(
        raw_key("sdk", hour, "20261116T215500Z-ingest-x-2"),
        gzip_bytes(orjson.dumps(good) + b'\n{"resourceMetrics": [\n'),
    )
    res = _materialize(HOURLY, partition_key="2026-11-16-21:00")
    assert res.success
    meta = _meta(res, ["processed", "points"])
    assert meta["quarantined_files"] == 1 and meta["rejected_lines"] == 1
    q = "quarantine/otel/metrics/source=sdk/dt=2026-11-16/hour=21"
    assert lake.raw.get(f"{q}/20261116T215000Z-ingest-x-1.processed.jsonl.gz") == b"this is not gzip"
    reason = orjson.loads(lake.raw.get(f"{q}/20261116T215000Z-ingest-x-1.processed.reason.json"))
    assert "unreadable batch" in next(iter(reason["reasons"]))
    (rkey,) = [k for k in lake.raw.list(f"{q}/20261116T215500Z-ingest-x-2.") if k.endswith(".rejected.jsonl")]
    assert ".processed-" in rkey
    rejected = [orjson.loads(line) for line in lake.raw.get(rkey).splitlines()]
    assert rejected[0]["line"] == 2 and rejected[0]["reason"].startswith("malformed JSON")
    # everything else of the partition loaded, including the good line of the damaged batch
    loaded = _meta(res, ["warehouse", "metric_points"])
    assert loaded["inserted"] == meta["points"] > 9_000
    assert gzip.decompress(
        lake.raw.get("otel/metrics/source=sdk/dt=2026-11-16/hour=21/20261116T215500Z-ingest-x-2.jsonl.gz")
    )  # raw is never changed


@pytest.mark.slow
def test_quarantine_check_warns_with_the_reasons(simulated: Path) -> None:
    from cms_dagster.defs.warehouse.points import nothing_in_quarantine

    assert _materialize(HOURLY, partition_key="2026-11-16-21:00").success
    clean = dg.materialize([processed_points, nothing_in_quarantine], resources=build_resources(), selection=dg.AssetSelection.checks(nothing_in_quarantine), instance=dg.DagsterInstance.ephemeral())
    assert clean.get_asset_check_evaluations()[0].passed
    lake = Lake.from_settings(load_settings())
    lake.raw.put(raw_key("sdk", dt.datetime(2026, 11, 16, 21, tzinfo=dt.timezone.utc), "20261116T215000Z-ingest-x-9"), b"garbage")
    assert _materialize(HOURLY, partition_key="2026-11-16-21:00").success
    res = dg.materialize([processed_points, nothing_in_quarantine], resources=build_resources(), selection=dg.AssetSelection.checks(nothing_in_quarantine), instance=dg.DagsterInstance.ephemeral())
    ev = res.get_asset_check_evaluations()[0]
    assert not ev.passed and ev.metadata["quarantined_batches"].value == 1
    assert "unreadable batch" in next(iter(ev.metadata["reasons"].value))
