"""The demo's SDK path: one asset class's runs go simulator -> Python SDK -> receiver -> raw zone, once."""

import csv
import io
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cms_dagster.defs.collection.simulation import simulation
from cms_dagster.lake import Lake, batch_ingest_time, parse_raw_key
from cms_dagster.otel.flatten import flatten_lines
from cms_dagster.resources import build_resources
from cms_dagster.settings import load as load_settings


@pytest.mark.slow
def test_fx_runs_arrive_through_the_sdk_and_receiver_exactly_once(cms_home: Path) -> None:
    import gzip

    cfg = {"ops": {"raw__simulation": {"config": {"days": 1, "seed": 3, "via_sdk": ["fx"]}}}}
    res = dg.materialize(
        [simulation],
        resources=build_resources(),
        run_config=cfg,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert res.success
    lake = Lake.from_settings(load_settings())
    tables = []
    for key in lake.raw.list("otel/metrics/"):
        p = parse_raw_key(key)
        flat = flatten_lines(
            gzip.decompress(lake.raw.get(key)).split(b"\n"),
            source=p["source"],
            raw_key=key,
            ingested_at=batch_ingest_time(p["batch"]),
            day=p["dt"],
            hour=p["hour"],
        )
        assert not flat.rejected
        tables.append(flat.table)
    points = pa.concat_tables(tables)
    finished = points.filter(pc.equal(points.column("metric_name"), "cms.batch.run.finished"))
    truth = list(
        csv.DictReader(io.StringIO(lake.archive.get("simulations/seed-3/truth/batch_runs.csv").decode()))
    )
    # every run is in the raw zone exactly once; fx runs came through the receiver (source=sdk, ingest batches)
    assert sorted(finished.column("run_id").to_pylist()) == sorted(r["run_id"] for r in truth)
    fx = finished.filter(pc.equal(finished.column("asset_class"), "fx")).to_pylist()
    assert fx and all("-ingest-" in r["raw_key"] for r in fx)
    assert {r["run_id"] for r in truth if r["via"] == "sdk"} == {r["run_id"] for r in fx}
    assert not [r for r in finished.to_pylist() if r["asset_class"] != "fx" and "-ingest-" in r["raw_key"]]
    st = {r["run_id"]: r["status"] for r in fx}
    assert all(st[r["run_id"]] == r["status"] for r in truth if r["via"] == "sdk")
    assert pc.count_distinct(points.column("point_id")).as_py() == points.num_rows
